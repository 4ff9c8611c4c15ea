//! Releasing a claim that may have reached the store after its deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::call::within_deadline;
use crate::extract::IdempotencyClaim;
use crate::idempotency::Inner;
use crate::metrics::{Operation, Outcome};
use crate::store::Fence;

/// How many answers of the store end the attempts: a claim stuck on an abandoned connection
/// can still be processed shortly after the store resumes.
const ANSWERS: u32 = 3;
/// During a long outage every request lands here; past this many pending releases, the rest
/// are left to expire after `lock_ttl`.
const MAX_PENDING: usize = 10_000;

/// A claim that timed out may land in the store later, and would then block the key's
/// retries until `lock_ttl`. Keep trying a fenced release in the background: until it is
/// applied, or the store has answered a few times, or the lock would have expired anyway.
pub(super) fn release_late_claim(inner: &Arc<Inner>, claim: IdempotencyClaim, lock_ttl: Duration) {
    let Some(slot) = inner.late_releases.take(MAX_PENDING) else {
        return;
    };
    let inner = inner.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let give_up = Instant::now() + lock_ttl;
        let mut pause = Duration::from_millis(100);
        let mut answers = 0;
        loop {
            let released = within_deadline(
                &inner,
                Operation::Release,
                inner.store.release(&claim.key, &claim.token),
            )
            .await;
            if let Ok(fence) = released {
                if fence == Fence::Applied {
                    inner
                        .metrics
                        .record_for(claim.key.prefix(), Outcome::LateClaimReleased);
                    tracing::info!(
                        key_prefix = claim.key.prefix(),
                        "idempotency: released a claim that reached the store after its deadline"
                    );
                    return;
                }
                answers += 1;
                if answers >= ANSWERS {
                    return;
                }
            }
            if Instant::now() + pause >= give_up {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    });
}

//! Lease renewal: a handler that runs long keeps its claim.

use std::future::Future;
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::Duration;

use super::call::within_deadline;
use crate::extract::IdempotencyClaim;
use crate::idempotency::Inner;
use crate::metrics::{Operation, Outcome};
use crate::store::{Fence, StoreErrorKind};

/// Run `work`; while it runs past half of `lock_ttl`, renew the claim's lease every half
/// `lock_ttl`, fenced by its token, so that a retry does not find the key free and run the
/// handler a second time. A handler that finishes without waiting costs nothing: the
/// renewal (and its timer) is set up, on the heap, only once `work` first returns pending,
/// so that it does not weigh on the future of every request.
pub(super) async fn renewing<F: Future>(
    inner: &Inner,
    claim: &IdempotencyClaim,
    lock_ttl: Duration,
    work: F,
) -> F::Output {
    let mut work = pin!(work);
    let mut renewal: Option<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = None;
    let mut renewing = true;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(output) = work.as_mut().poll(cx) {
            return Poll::Ready(output);
        }
        if renewing {
            let keeping = renewal.get_or_insert_with(|| Box::pin(keep(inner, claim, lock_ttl)));
            // Ended: the store refused or cannot renew; the work goes on without it.
            renewing = keeping.as_mut().poll(cx).is_pending();
        }
        Poll::Pending
    })
    .await
}

/// Renew until the store refuses (the claim is no longer ours) or cannot renew at all;
/// a failed renewal is tried again at the next tick (the lease may still be alive).
async fn keep(inner: &Inner, claim: &IdempotencyClaim, lock_ttl: Duration) {
    let every = lock_ttl / 2;
    loop {
        tokio::time::sleep(every).await;
        let renewed = within_deadline(
            inner,
            Operation::Renew,
            inner.store.renew(&claim.key, &claim.token, lock_ttl),
        )
        .await;
        match renewed {
            Ok(Fence::Applied) => inner
                .metrics
                .record_for(claim.key.prefix(), Outcome::LeaseRenewed),
            Ok(_) => {
                inner
                    .metrics
                    .record_for(claim.key.prefix(), Outcome::Fenced);
                tracing::warn!(
                    key_prefix = claim.key.prefix(),
                    "idempotency: the lease of a running handler could not be renewed: its lock \
                     expired and the key is no longer this request's; its response will not \
                     be stored if another request claimed the key"
                );
                return;
            }
            Err(error) if error.kind() == StoreErrorKind::Unsupported => {
                tracing::debug!(
                    key_prefix = claim.key.prefix(),
                    "idempotency: the store does not renew leases; the lock expires after lock_ttl"
                );
                return;
            }
            Err(error) => {
                inner
                    .metrics
                    .record_for(claim.key.prefix(), Outcome::StoreError);
                tracing::warn!(%error, key_prefix = claim.key.prefix(), "idempotency: renewing the lease of a running handler failed; trying again");
            }
        }
    }
}

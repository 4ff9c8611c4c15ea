//! Store calls under the store deadline, and the fenced release every failure path uses.

use std::future::Future;

use crate::extract::IdempotencyClaim;
use crate::idempotency::Inner;
use crate::metrics::{Operation, Outcome};
use crate::store::{Fence, StoreError};

/// A store call bounded by the store deadline. A call that misses it is an error whose
/// outcome is unknown: it was sent and may still take effect. The calls of a store that
/// never waits for I/O (the memory store) run without the timer.
pub(super) async fn within_deadline<T>(
    inner: &Inner,
    operation: Operation,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    #[cfg(feature = "metrics")]
    let started = tokio::time::Instant::now();
    let result = if inner.store.waits_for_io() {
        bounded(inner, operation, call).await
    } else {
        call.await
    };
    #[cfg(feature = "metrics")]
    inner
        .metrics
        .store_call(inner.store.name(), operation, started.elapsed());
    result
}

async fn bounded<T>(
    inner: &Inner,
    operation: Operation,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(inner.store_timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::new(format!(
                "{} timed out after {:?}",
                operation.describe(),
                inner.store_timeout
            ))
            .indeterminate())
        })
}

/// Delete our PROCESSING record so a retry runs again. Best effort: if the store cannot be
/// reached, the record expires after `lock_ttl`.
pub(super) async fn release(inner: &Inner, claim: &IdempotencyClaim) {
    let released = within_deadline(
        inner,
        Operation::Release,
        inner.store.release(&claim.key, &claim.token),
    )
    .await;
    match released {
        Ok(Fence::Applied) => {}
        Ok(_) => {
            inner
                .metrics
                .record_for(claim.key.prefix(), Outcome::Fenced);
            tracing::warn!(
                key_prefix = claim.key.prefix(),
                "idempotency: not releasing the key: another request owns it now"
            );
        }
        Err(error) => {
            inner
                .metrics
                .record_for(claim.key.prefix(), Outcome::StoreError);
            tracing::warn!(%error, key_prefix = claim.key.prefix(), "idempotency: releasing the key failed; it stays locked until lock_ttl");
        }
    }
}

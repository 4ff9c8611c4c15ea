//! Counters of what the layer did.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A snapshot of the counters of one [`Idempotency`](crate::Idempotency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Handler runs under a claimed key.
    pub executions: u64,
    /// Responses replayed from the store.
    pub replays: u64,
    /// Requests answered 409 because the first was still running.
    pub conflicts: u64,
    /// Requests that waited for a running duplicate (`on_conflict = "wait"`).
    pub waits: u64,
    /// Requests answered 422 because the key came with a different body.
    pub mismatches: u64,
    /// Store calls that failed or missed their deadline.
    pub store_errors: u64,
    /// Handler runs without idempotency because the store was unavailable (fail-open).
    /// Alert on this: such runs are not protected against duplicates.
    pub fail_open_runs: u64,
    /// Requests answered 503 because the store was unavailable (fail-closed).
    pub fail_closed_rejections: u64,
    /// Completions or releases refused because another claim owns the key.
    pub fenced_writes: u64,
    /// 2xx responses not stored because they were over the size limit.
    pub oversized_responses: u64,
    /// Claims that reached the store after their deadline and were then released.
    pub late_claims_released: u64,
    /// Leases of running handlers extended (a handler running past half its `lock_ttl`).
    pub lease_renewals: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) executions: AtomicU64,
    pub(crate) replays: AtomicU64,
    pub(crate) conflicts: AtomicU64,
    pub(crate) waits: AtomicU64,
    pub(crate) mismatches: AtomicU64,
    pub(crate) store_errors: AtomicU64,
    pub(crate) fail_open_runs: AtomicU64,
    pub(crate) fail_closed_rejections: AtomicU64,
    pub(crate) fenced_writes: AtomicU64,
    pub(crate) oversized_responses: AtomicU64,
    pub(crate) late_claims_released: AtomicU64,
    pub(crate) lease_renewals: AtomicU64,
}

impl Metrics {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        MetricsSnapshot {
            executions: self.executions.load(Relaxed),
            replays: self.replays.load(Relaxed),
            conflicts: self.conflicts.load(Relaxed),
            waits: self.waits.load(Relaxed),
            mismatches: self.mismatches.load(Relaxed),
            store_errors: self.store_errors.load(Relaxed),
            fail_open_runs: self.fail_open_runs.load(Relaxed),
            fail_closed_rejections: self.fail_closed_rejections.load(Relaxed),
            fenced_writes: self.fenced_writes.load(Relaxed),
            oversized_responses: self.oversized_responses.load(Relaxed),
            late_claims_released: self.late_claims_released.load(Relaxed),
            lease_renewals: self.lease_renewals.load(Relaxed),
        }
    }
}

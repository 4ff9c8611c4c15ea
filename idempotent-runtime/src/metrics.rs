//! Counters of what the layer did, and the rate limit on outage warnings.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

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
}

#[derive(Debug)]
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
    late_releases_pending: Arc<AtomicUsize>,
    started: Instant,
    last_outage_warning_ms: AtomicU64,
    suppressed_warnings: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            executions: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            fail_open_runs: AtomicU64::new(0),
            fail_closed_rejections: AtomicU64::new(0),
            fenced_writes: AtomicU64::new(0),
            oversized_responses: AtomicU64::new(0),
            late_claims_released: AtomicU64::new(0),
            late_releases_pending: Arc::default(),
            started: Instant::now(),
            last_outage_warning_ms: AtomicU64::new(u64::MAX),
            suppressed_warnings: AtomicU64::new(0),
        }
    }
}

/// At most one outage warning per this many milliseconds.
const WARNING_INTERVAL_MS: u64 = 10_000;

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
        }
    }

    /// A place among at most `max` pending background releases, freed on drop.
    pub(crate) fn late_release_slot(&self, max: usize) -> Option<PendingSlot> {
        let pending = &self.late_releases_pending;
        let taken = pending
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok();
        taken.then(|| PendingSlot(pending.clone()))
    }

    /// Whether an outage warning may be logged now; if so, how many were suppressed since
    /// the last one.
    pub(crate) fn outage_warning_permit(&self) -> Option<u64> {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.last_outage_warning_ms.load(Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= WARNING_INTERVAL_MS;
        if due
            && self
                .last_outage_warning_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            Some(self.suppressed_warnings.swap(0, Relaxed))
        } else {
            self.suppressed_warnings.fetch_add(1, Relaxed);
            None
        }
    }
}

/// One pending background release; frees its place when dropped.
pub(crate) struct PendingSlot(Arc<AtomicUsize>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

//! Bounds on background work and on log volume during an outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// At most one log line per interval; counts the lines it suppressed in between.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    interval: Duration,
    started: Instant,
    /// Milliseconds since `started` of the last line let through; `u64::MAX` for none yet.
    last_ms: AtomicU64,
    suppressed: AtomicU64,
}

impl LogThrottle {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            interval,
            started: Instant::now(),
            last_ms: AtomicU64::new(u64::MAX),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a line may be logged now; if so, how many were suppressed since the last one.
    pub(crate) fn permit(&self) -> Option<u64> {
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let interval = u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX);
        let last = self.last_ms.load(Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= interval;
        if due
            && self
                .last_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_ok()
        {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

/// A bounded number of places for pieces of background work.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    taken: Arc<AtomicUsize>,
}

impl Slots {
    /// A place among at most `max`, freed when the returned slot is dropped.
    pub(crate) fn take(&self, max: usize) -> Option<Slot> {
        let taken = self
            .taken
            .fetch_update(Relaxed, Relaxed, |n| (n < max).then_some(n + 1))
            .is_ok();
        taken.then(|| Slot(self.taken.clone()))
    }
}

/// One place taken; freed on drop.
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_the_count_of_those_suppressed() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.permit(), Some(0));
        assert_eq!(throttle.permit(), None);
        assert_eq!(throttle.permit(), None);
        let every_time = LogThrottle::new(Duration::ZERO);
        assert_eq!(every_time.permit(), Some(0));
        assert_eq!(every_time.permit(), Some(0));
    }

    #[test]
    fn slots_are_bounded_and_freed_on_drop() {
        let slots = Slots::default();
        let a = slots.take(2);
        let b = slots.take(2);
        assert!(a.is_some() && b.is_some());
        assert!(slots.take(2).is_none());
        drop(a);
        assert!(slots.take(2).is_some());
    }
}

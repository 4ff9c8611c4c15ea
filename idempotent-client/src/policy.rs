//! When to retry, and how long to wait first.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

/// The default [`RetryPolicy::base`]: one second.
pub const DEFAULT_BASE: Duration = Duration::from_secs(1);
/// The default [`RetryPolicy::cap`]: eight seconds.
pub const DEFAULT_CAP: Duration = Duration::from_secs(8);
/// The default [`RetryPolicy::max_attempts`]: five (the first attempt and four retries).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// How many times a request is sent, and how long the client waits between two attempts.
///
/// Retry number `n` (0 for the first retry) waits
/// `min(cap, base * 2^n) + random(0, base)`, or, when the failed attempt's response carried
/// `Retry-After` (seconds or an HTTP date), that long, up to `cap`.
///
/// ```
/// use std::time::Duration;
/// use idempotent_client::RetryPolicy;
///
/// let policy = RetryPolicy::new()
///     .base(Duration::from_millis(200))
///     .cap(Duration::from_secs(2))
///     .max_attempts(3);
/// assert_eq!(policy.max_attempts, 3);
///
/// // The third retry: min(2 s, 200 ms * 2^2) = 800 ms, plus up to 200 ms of jitter.
/// let delay = policy.backoff(2);
/// assert!(delay >= Duration::from_millis(800) && delay < Duration::from_millis(1000));
///
/// // A server's `Retry-After: 30` is honoured up to the cap.
/// assert_eq!(policy.retry_delay(0, Some(Duration::from_secs(30))), Duration::from_secs(2));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The first retry's delay, and the range of the random jitter added to every delay.
    /// Default [`DEFAULT_BASE`].
    pub base: Duration,
    /// The longest delay before jitter, and the longest `Retry-After` honoured. Default
    /// [`DEFAULT_CAP`].
    pub cap: Duration,
    /// How many times a request is sent at most, the first time included; `0` counts as `1`.
    /// Default [`DEFAULT_MAX_ATTEMPTS`].
    pub max_attempts: u32,
    /// Whether a response's `Retry-After` replaces the computed delay. Default `true`.
    pub honour_retry_after: bool,
}

impl RetryPolicy {
    /// The defaults: base 1 s, cap 8 s, 5 attempts, `Retry-After` honoured.
    pub const fn new() -> RetryPolicy {
        RetryPolicy {
            base: DEFAULT_BASE,
            cap: DEFAULT_CAP,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            honour_retry_after: true,
        }
    }

    /// A policy that sends a request once and never retries it (the key is still sent).
    ///
    /// ```
    /// assert_eq!(idempotent_client::RetryPolicy::once().max_attempts, 1);
    /// ```
    pub const fn once() -> RetryPolicy {
        RetryPolicy::new().max_attempts(1)
    }

    /// Set [`base`](RetryPolicy::base).
    pub const fn base(mut self, base: Duration) -> RetryPolicy {
        self.base = base;
        self
    }

    /// Set [`cap`](RetryPolicy::cap).
    pub const fn cap(mut self, cap: Duration) -> RetryPolicy {
        self.cap = cap;
        self
    }

    /// Set [`max_attempts`](RetryPolicy::max_attempts).
    pub const fn max_attempts(mut self, max_attempts: u32) -> RetryPolicy {
        self.max_attempts = max_attempts;
        self
    }

    /// Set [`honour_retry_after`](RetryPolicy::honour_retry_after).
    pub const fn honour_retry_after(mut self, honour: bool) -> RetryPolicy {
        self.honour_retry_after = honour;
        self
    }

    /// How many attempts a request gets: [`max_attempts`](RetryPolicy::max_attempts), at
    /// least one.
    pub fn attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    /// The delay before retry number `retry` (0 for the first retry) without `Retry-After`:
    /// `min(cap, base * 2^retry) + random(0, base)`, the jitter drawn uniformly.
    pub fn backoff(&self, retry: u32) -> Duration {
        let jitter = match u64::try_from(self.base.as_nanos()) {
            Ok(0) => 0,
            Ok(base) => fastrand::u64(0..base),
            Err(_) => fastrand::u64(..),
        };
        self.backoff_floor(retry)
            .saturating_add(Duration::from_nanos(jitter))
    }

    /// The delay before retry number `retry` without its jitter: `min(cap, base * 2^retry)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use idempotent_client::RetryPolicy;
    ///
    /// let floors: Vec<u64> = (0..6)
    ///     .map(|retry| RetryPolicy::new().backoff_floor(retry).as_secs())
    ///     .collect();
    /// assert_eq!(floors, [1, 2, 4, 8, 8, 8]);
    /// ```
    pub fn backoff_floor(&self, retry: u32) -> Duration {
        // Doubling until the cap: at most ~94 steps from 1 ns to `Duration::MAX`.
        let mut floor = self.base;
        for _ in 0..retry {
            if floor.is_zero() || floor >= self.cap {
                break;
            }
            floor = floor.saturating_mul(2);
        }
        floor.min(self.cap)
    }

    /// The delay before retry number `retry`, given the `Retry-After` of the failed attempt's
    /// response, if it had one: that, up to [`cap`](RetryPolicy::cap), when
    /// [`honour_retry_after`](RetryPolicy::honour_retry_after) is set; else
    /// [`backoff`](RetryPolicy::backoff).
    pub fn retry_delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(after) if self.honour_retry_after => after.min(self.cap),
            _ => self.backoff(retry),
        }
    }
}

impl Default for RetryPolicy {
    /// [`RetryPolicy::new`].
    fn default() -> RetryPolicy {
        RetryPolicy::new()
    }
}

/// Whether a response with this status is retried: 409 (the first request with the key is
/// still running), 429, 502, 503 and 504. Every other status is final; in particular 400,
/// 401, 403, 404, 413, 422 and any other 4xx are never retried, nor is 500.
///
/// ```
/// use http::StatusCode;
/// use idempotent_client::is_retryable_status;
///
/// assert!(is_retryable_status(StatusCode::CONFLICT));
/// assert!(is_retryable_status(StatusCode::SERVICE_UNAVAILABLE));
/// assert!(!is_retryable_status(StatusCode::UNPROCESSABLE_ENTITY));
/// assert!(!is_retryable_status(StatusCode::INTERNAL_SERVER_ERROR));
/// ```
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::CONFLICT
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// The delay a response's `Retry-After` asks for, as of `now`: delay-seconds, or an HTTP
/// date (a date in the past asks for none). `None` when the header is absent, appears more
/// than once or cannot be read.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use http::{HeaderMap, HeaderValue, header::RETRY_AFTER};
/// use idempotent_client::retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(784_111_757); // Sun, 06 Nov 1994 08:49:17 GMT
/// let mut headers = HeaderMap::new();
/// headers.insert(RETRY_AFTER, HeaderValue::from_static("120"));
/// assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
/// headers.insert(RETRY_AFTER, HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"));
/// assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(20)));
/// ```
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let mut values = headers.get_all(http::header::RETRY_AFTER).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Digits that overflow are a very long delay, which the cap then shortens.
        return Some(
            text.parse::<u64>()
                .map_or(Duration::MAX, Duration::from_secs),
        );
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The delays between attempts, as `backon` consumes them: one per retry the policy
/// allows. A `Retry-After` replaces one of them in the retry loop.
#[derive(Debug)]
pub(crate) struct Delays {
    policy: RetryPolicy,
    retry: u32,
}

impl Delays {
    pub(crate) fn new(policy: RetryPolicy) -> Delays {
        Delays { policy, retry: 0 }
    }
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.retry.saturating_add(1) >= self.policy.attempts() {
            return None;
        }
        let delay = self.policy.backoff(self.retry);
        self.retry += 1;
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::UNIX_EPOCH;

    #[test]
    fn backoff_stays_within_the_formula_and_its_jitter_spans_the_base() {
        let policy = RetryPolicy::new()
            .base(Duration::from_millis(100))
            .cap(Duration::from_millis(700));
        for retry in 0..12 {
            let floor = Duration::from_millis(100 * 2u64.pow(retry)).min(policy.cap);
            assert_eq!(policy.backoff_floor(retry), floor);
            let draws: Vec<Duration> = (0..2000).map(|_| policy.backoff(retry)).collect();
            for &delay in &draws {
                assert!(
                    delay >= floor && delay < floor + policy.base,
                    "{delay:?} after retry {retry}"
                );
            }
            // Uniform over [floor, floor + base): 2000 draws all in one quarter of it
            // happen with probability 4 * (1/4)^2000.
            let (low, high) = (draws.iter().min().unwrap(), draws.iter().max().unwrap());
            assert!(*low < floor + policy.base / 4, "{low:?}");
            assert!(*high >= floor + policy.base * 3 / 4, "{high:?}");
        }
    }

    #[test]
    fn huge_retries_and_bases_saturate_instead_of_overflowing() {
        let policy = RetryPolicy::new().base(Duration::MAX).cap(Duration::MAX);
        assert_eq!(policy.backoff_floor(u32::MAX), Duration::MAX);
        assert_eq!(policy.backoff(40), Duration::MAX);
        let zero = RetryPolicy::new().base(Duration::ZERO);
        assert_eq!(zero.backoff(3), Duration::ZERO);
        assert_eq!(zero.backoff_floor(u32::MAX), Duration::ZERO);
        // A base of one nanosecond still reaches the cap after enough retries.
        let tiny = RetryPolicy::new().base(Duration::from_nanos(1));
        assert_eq!(tiny.backoff_floor(10), Duration::from_nanos(1024));
        assert_eq!(tiny.backoff_floor(40), DEFAULT_CAP);
        assert_eq!(RetryPolicy::new().backoff_floor(1000), DEFAULT_CAP);
    }

    #[test]
    fn retry_after_replaces_the_backoff_up_to_the_cap() {
        let policy = RetryPolicy::new();
        let five = Duration::from_secs(5);
        assert_eq!(policy.retry_delay(3, Some(five)), five);
        assert_eq!(policy.retry_delay(0, Some(Duration::ZERO)), Duration::ZERO);
        assert_eq!(policy.retry_delay(0, Some(Duration::MAX)), DEFAULT_CAP);
        let ignoring = policy.clone().honour_retry_after(false);
        let delay = ignoring.retry_delay(0, Some(five));
        assert!(
            delay >= DEFAULT_BASE && delay < DEFAULT_BASE * 2,
            "{delay:?}"
        );
    }

    #[test]
    fn delays_yield_one_per_retry() {
        assert_eq!(Delays::new(RetryPolicy::new()).count(), 4);
        assert_eq!(Delays::new(RetryPolicy::once()).count(), 0);
        assert_eq!(Delays::new(RetryPolicy::new().max_attempts(0)).count(), 0);
        let floors: Vec<Duration> = Delays::new(RetryPolicy::new())
            .zip(0..)
            .map(|(delay, retry)| {
                let floor = RetryPolicy::new().backoff_floor(retry);
                assert!(delay >= floor && delay < floor + DEFAULT_BASE);
                floor
            })
            .collect();
        assert_eq!(floors, [1, 2, 4, 8].map(Duration::from_secs));
    }

    #[test]
    fn retryable_statuses_are_exactly_the_contract_s() {
        let retried: Vec<u16> = (100..600)
            .filter_map(|code| StatusCode::from_u16(code).ok())
            .filter(|&status| is_retryable_status(status))
            .map(|status| status.as_u16())
            .collect();
        assert_eq!(retried, [409, 429, 502, 503, 504]);
    }

    fn after(values: &[&'static str], now: SystemTime) -> Option<Duration> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(http::header::RETRY_AFTER, HeaderValue::from_static(value));
        }
        retry_after(&headers, now)
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(after(&[], now), None);
        assert_eq!(after(&["0"], now), Some(Duration::ZERO));
        assert_eq!(after(&[" 3 "], now), Some(Duration::from_secs(3)));
        assert_eq!(
            after(&["99999999999999999999999"], now),
            Some(Duration::MAX)
        );
        // The three date formats of RFC 9110 §5.6.7.
        for date in [
            "Sun, 06 Nov 1994 08:49:47 GMT",
            "Sunday, 06-Nov-94 08:49:47 GMT",
            "Sun Nov  6 08:49:47 1994",
        ] {
            assert_eq!(after(&[date], now), Some(Duration::from_secs(10)), "{date}");
        }
        // A date in the past asks for no delay.
        assert_eq!(
            after(&["Sun, 06 Nov 1994 08:00:00 GMT"], now),
            Some(Duration::ZERO)
        );
        for bad in ["-1", "1.5", "soon", "", "Sun, 06 Nov 1994"] {
            assert_eq!(after(&[bad], now), None, "{bad}");
        }
        assert_eq!(after(&["1", "2"], now), None);
    }
}

//! [`Policy`]: the per-route options of the protocol, as one value.

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::fingerprint::Fingerprint;

/// What a duplicate of a request that is still running gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnConflict {
    /// 409 `idempotency_request_in_progress`, with `Retry-After`.
    Reject,
    /// Wait for the first request to finish, up to this long, and replay its response (409
    /// if it is still running then; a run of its own if the first one failed).
    Wait(Duration),
}

/// The options of one route: what `#[idempotent(...)]` takes, as a value.
///
/// The attribute builds one at compile time; without the macro, build it with the setters
/// and hand it to [`Idempotency::layer`](crate::Idempotency::layer). Every setter has the
/// attribute option's name and default:
///
/// ```
/// use std::time::Duration;
/// use idempotent_runtime::Policy;
///
/// // #[idempotent(key_prefix = "orders", ttl = "24h", include_body = true, mandatory = true)]
/// let policy = Policy::new()
///     .key_prefix("orders")
///     .ttl(Duration::from_secs(24 * 3600))
///     .include_body(true)
///     .mandatory(true);
/// assert_eq!(policy.key_prefix, "orders");
/// assert_eq!(policy.lock_ttl, Duration::from_secs(60));
/// ```
///
/// The setters check their values as the attribute does, and panic on a mistake (a prefix
/// with `:`, a zero duration): a policy is built once, when the app starts, and a mistake
/// there is a bug to fix, not a condition to handle. The fields are public to read; set
/// them with the setters, which keep them valid.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// The prefix of the store key: `idempotency:{key_prefix}:{key}`.
    pub key_prefix: Cow<'static, str>,
    /// The header that carries the key.
    pub header: HeaderName,
    /// How long a completed response is kept.
    pub ttl: Duration,
    /// How long an unfinished request blocks duplicates if its owner dies.
    pub lock_ttl: Duration,
    /// Whether the request body is part of the fingerprint.
    pub include_body: bool,
    /// How the body becomes a fingerprint (with `include_body`).
    pub fingerprint: Fingerprint,
    /// Whether a request without a key is rejected.
    pub mandatory: bool,
    /// Whether the handler runs when the store is unavailable.
    pub fail_open: bool,
    /// What a duplicate of a request still running gets.
    pub on_conflict: OnConflict,
    /// The `Cache-Control` of 2xx and 304 answers, unless the handler set one.
    pub cache_control: Option<HeaderValue>,
    /// Whether a stored 2xx response gets a strong `ETag` (unless the handler set one) and a
    /// request whose `If-None-Match` matches it is answered 304.
    pub etag: bool,
}

/// The default `ttl`: one hour.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60 * 60);
/// The default `lock_ttl`: one minute.
pub const DEFAULT_LOCK_TTL: Duration = Duration::from_secs(60);
/// The default `max_wait` of `on_conflict = "wait"`: ten seconds.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(10);
/// The default header: `Idempotency-Key`.
pub const DEFAULT_HEADER: HeaderName = idempotent_protocol::IDEMPOTENCY_KEY;

impl Default for Policy {
    fn default() -> Self {
        Self::new()
    }
}

impl Policy {
    /// The defaults: no prefix, `ttl` 1 h, `lock_ttl` 60 s, `include_body = false`,
    /// `mandatory = true`, header `Idempotency-Key`, `fail_open = true`,
    /// `on_conflict = "reject"`.
    pub const fn new() -> Self {
        Self {
            key_prefix: Cow::Borrowed(""),
            header: DEFAULT_HEADER,
            ttl: DEFAULT_TTL,
            lock_ttl: DEFAULT_LOCK_TTL,
            include_body: false,
            fingerprint: Fingerprint::Json,
            mandatory: true,
            fail_open: true,
            on_conflict: OnConflict::Reject,
            cache_control: None,
            etag: false,
        }
    }

    /// The `Cache-Control` of 2xx and 304 answers (unless the handler set one), for keyed
    /// reads that browsers and shared caches may keep. Also turns [`etag`](Self::etag) on, as
    /// the attribute's `cache_control` does; call `.etag(false)` after it to turn it off.
    pub fn cache_control(mut self, value: HeaderValue) -> Self {
        self.cache_control = Some(value);
        self.etag = true;
        self
    }

    /// Whether a stored 2xx response gets a strong `ETag` from the SHA-256 of its body
    /// (unless the handler set one), on the first answer and on every replay, and a request
    /// whose `If-None-Match` matches it (weak comparison, `*` matching any) is answered
    /// `304 Not Modified` without running the handler (default `false`; `true` once
    /// [`cache_control`](Self::cache_control) is set).
    pub fn etag(mut self, etag: bool) -> Self {
        self.etag = etag;
        self
    }

    /// The prefix of the store key, `idempotency:{key_prefix}:{key}`.
    ///
    /// # Panics
    ///
    /// If `prefix` contains `:`, `|`, whitespace or control characters (they would make
    /// store keys ambiguous).
    pub fn key_prefix(mut self, prefix: impl Into<Cow<'static, str>>) -> Self {
        let prefix = prefix.into();
        if let Some(bad) = prefix
            .chars()
            .find(|c| matches!(c, ':' | '|') || c.is_whitespace() || c.is_control())
        {
            panic!(
                "idempotency: `key_prefix` {prefix:?} contains {bad:?}; `:`, `|`, whitespace and control characters are not allowed"
            );
        }
        self.key_prefix = prefix;
        self
    }

    /// The header that carries the key (default `Idempotency-Key`).
    pub fn header(mut self, name: HeaderName) -> Self {
        self.header = name;
        self
    }

    /// How long a completed response is kept for replay (default 1 h).
    ///
    /// # Panics
    ///
    /// If `ttl` is under a millisecond.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = at_least_a_millisecond("ttl", ttl);
        self
    }

    /// How long an unfinished request blocks duplicates if its owner dies (default 60 s).
    /// While the handler runs, the engine renews the lease on stores that can, so a slow
    /// handler keeps its claim.
    ///
    /// # Panics
    ///
    /// If `lock_ttl` is under a millisecond.
    pub fn lock_ttl(mut self, lock_ttl: Duration) -> Self {
        self.lock_ttl = at_least_a_millisecond("lock_ttl", lock_ttl);
        self
    }

    /// Whether the request body is part of the fingerprint, so that a key reused with a
    /// different body is answered 422 (default `false`).
    pub fn include_body(mut self, include: bool) -> Self {
        self.include_body = include;
        self
    }

    /// How the request body becomes a fingerprint, with [`include_body`](Self::include_body):
    /// compact JSON in the request's order (the default), RFC 8785 canonical JSON, or the
    /// body's type written back as Jackson writes it (see [`Fingerprint`]). On this path the
    /// typed mode deserialises the body once more for the handler's own extractor; the
    /// attribute hands its value to `Json<T>` instead.
    pub fn fingerprint(mut self, mode: Fingerprint) -> Self {
        self.fingerprint = mode;
        self
    }

    /// Whether a request without a key is answered 400 (default `true`).
    pub fn mandatory(mut self, mandatory: bool) -> Self {
        self.mandatory = mandatory;
        self
    }

    /// Whether the handler runs when the store is unavailable (default `true`); if not,
    /// such requests are answered 503.
    pub fn fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// What a duplicate of a request still running gets (default [`OnConflict::Reject`]).
    ///
    /// # Panics
    ///
    /// If the wait of [`OnConflict::Wait`] is under a millisecond.
    pub fn on_conflict(mut self, on_conflict: OnConflict) -> Self {
        if let OnConflict::Wait(max_wait) = on_conflict {
            at_least_a_millisecond("max_wait", max_wait);
        }
        self.on_conflict = on_conflict;
        self
    }

    /// A policy from the attribute's validated options, in a constant expression.
    pub(crate) const fn from_fields(fields: PolicyFields) -> Self {
        let PolicyFields {
            key_prefix,
            header,
            ttl,
            lock_ttl,
            include_body,
            fingerprint,
            mandatory,
            fail_open,
            on_conflict,
            cache_control,
            etag,
        } = fields;
        Self {
            key_prefix: Cow::Borrowed(key_prefix),
            header: HeaderName::from_static(header),
            ttl,
            lock_ttl,
            include_body,
            fingerprint,
            mandatory,
            fail_open,
            on_conflict,
            cache_control: match cache_control {
                Some(value) => Some(HeaderValue::from_static(value)),
                None => None,
            },
            etag,
        }
    }
}

/// Not public API: the options of one `#[idempotent]` attribute, as it validated them,
/// named so that generated code cannot swap two of them.
#[doc(hidden)]
#[derive(Debug)]
pub struct PolicyFields {
    pub key_prefix: &'static str,
    /// A lowercase, valid header name.
    pub header: &'static str,
    pub ttl: Duration,
    pub lock_ttl: Duration,
    pub include_body: bool,
    pub fingerprint: Fingerprint,
    pub mandatory: bool,
    pub fail_open: bool,
    pub on_conflict: OnConflict,
    /// A valid header value.
    pub cache_control: Option<&'static str>,
    pub etag: bool,
}

fn at_least_a_millisecond(option: &str, value: Duration) -> Duration {
    assert!(
        value >= Duration::from_millis(1),
        "idempotency: `{option}` must be at least 1ms, not {value:?}"
    );
    value
}

/// A route's policy as the engine holds it: a `static` of the attribute, or one shared by a
/// layer's services.
#[derive(Debug, Clone)]
pub(crate) enum PolicyRef {
    Static(&'static Policy),
    Shared(Arc<Policy>),
}

impl Deref for PolicyRef {
    type Target = Policy;

    fn deref(&self) -> &Policy {
        match self {
            PolicyRef::Static(policy) => policy,
            PolicyRef::Shared(policy) => policy,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_attributes() {
        let policy = Policy::new();
        assert_eq!(policy, Policy::default());
        assert_eq!(policy.key_prefix, "");
        assert_eq!(policy.header.as_str(), "idempotency-key");
        assert_eq!(policy.ttl, Duration::from_secs(3600));
        assert_eq!(policy.lock_ttl, Duration::from_secs(60));
        assert!(!policy.include_body);
        assert!(policy.mandatory);
        assert!(policy.fail_open);
        assert_eq!(policy.on_conflict, OnConflict::Reject);
        assert_eq!((policy.cache_control, policy.etag), (None, false));
        let cached = Policy::new().cache_control(HeaderValue::from_static("max-age=60"));
        assert!(cached.etag, "caching turns ETags on");
        assert!(!cached.etag(false).etag);
    }

    #[test]
    #[should_panic(expected = "`key_prefix` \"a:b\" contains ':'")]
    fn a_prefix_with_a_colon_is_refused() {
        let _ = Policy::new().key_prefix("a:b");
    }

    #[test]
    #[should_panic(expected = "`lock_ttl` must be at least 1ms")]
    fn a_zero_lock_ttl_is_refused() {
        let _ = Policy::new().lock_ttl(Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "`max_wait` must be at least 1ms")]
    fn a_zero_wait_is_refused() {
        let _ = Policy::new().on_conflict(OnConflict::Wait(Duration::from_micros(10)));
    }
}

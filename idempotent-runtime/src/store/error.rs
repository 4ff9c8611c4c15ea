//! [`StoreError`]: what a store answers when it cannot do what it was asked.

use std::fmt;

/// What kind of failure a [`StoreError`] is; the engine acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store could not be reached or refused the call (connection refused, pool
    /// exhausted, an error answer): the operation did not take effect. An outage.
    Unavailable,
    /// The operation was sent but its answer was lost (a deadline missed, a connection
    /// dropped while waiting), so it may still take effect. An outage; for a failed claim
    /// the engine also releases the claim, fenced by its token, in the background, so that
    /// a claim landing late does not block the key's retries until `lock_ttl`.
    Indeterminate,
    /// The store holds something under the key that is not a record it can decode (written
    /// by something else, or corrupted). An outage for this key: the value is left alone,
    /// neither overwritten (it is not ours) nor taken as a conflict (that would block the
    /// key for ever).
    Undecodable,
    /// The record is over what the store can hold (DynamoDB's item size, for instance). Not
    /// an outage: the response is returned without being stored, and the key released.
    TooLarge,
    /// The store does not implement this operation (lease renewal, for instance). The engine
    /// does without it.
    Unsupported,
}

impl StoreErrorKind {
    /// A short lowercase name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Indeterminate => "indeterminate",
            StoreErrorKind::Undecodable => "undecodable",
            StoreErrorKind::TooLarge => "too_large",
            StoreErrorKind::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A store that could not answer: down, erroring, or holding a record it cannot decode.
///
/// The engine treats every `StoreError` of kind [`Unavailable`](StoreErrorKind::Unavailable),
/// [`Indeterminate`](StoreErrorKind::Indeterminate) or
/// [`Undecodable`](StoreErrorKind::Undecodable) (and a store call that misses its deadline)
/// as an outage: with `fail_open = true` the handler runs and nothing is written; with
/// `fail_open = false` the request is answered 503.
///
/// ```
/// use idempotent_runtime::store::{StoreError, StoreErrorKind};
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
/// let error = StoreError::with_source("connecting to the store", io);
/// assert_eq!(error.kind(), StoreErrorKind::Unavailable);
/// assert_eq!(error.to_string(), "connecting to the store: refused");
/// let lost = StoreError::new("no answer within 250ms").indeterminate();
/// assert!(lost.is_indeterminate());
/// ```
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StoreError {
    /// An [`Unavailable`](StoreErrorKind::Unavailable) error with a message and no
    /// underlying cause.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            kind: StoreErrorKind::Unavailable,
            message: message.into(),
            source: None,
        }
    }

    /// An [`Unavailable`](StoreErrorKind::Unavailable) error with a message and the
    /// underlying cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            kind: StoreErrorKind::Unavailable,
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }

    /// The same error, of kind `kind`.
    pub fn with_kind(mut self, kind: StoreErrorKind) -> Self {
        self.kind = kind;
        self
    }

    /// The same error, of kind [`Indeterminate`](StoreErrorKind::Indeterminate): it was
    /// sent, but its answer was lost, so it may still take effect.
    pub fn indeterminate(self) -> Self {
        self.with_kind(StoreErrorKind::Indeterminate)
    }

    /// An [`Unsupported`](StoreErrorKind::Unsupported) error: the store does not implement
    /// `operation`.
    pub fn unsupported(operation: &str) -> Self {
        Self::new(format!("this store does not support {operation}"))
            .with_kind(StoreErrorKind::Unsupported)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether the operation may still have taken effect (see
    /// [`StoreErrorKind::Indeterminate`]).
    pub fn is_indeterminate(&self) -> bool {
        self.kind == StoreErrorKind::Indeterminate
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Some(source) => write!(f, "{}: {}", self.message, source),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

//! Where records live: the [`IdempotencyStore`] trait and its adapters.
//!
//! A store keeps one [`Record`] per store key. It is shaped for an atomic claim: a single
//! [`claim`](IdempotencyStore::claim) either takes the key (writing a
//! [`Record::Processing`] that carries the claim's [`Token`]) or returns what is there, in
//! one operation, so that of any number of concurrent requests exactly one runs the handler.
//! [`complete`](IdempotencyStore::complete) and [`release`](IdempotencyStore::release) are
//! fenced by that token: a request whose lock expired and was taken over can neither
//! overwrite nor delete the newer owner's record.
//!
//! # Implementing a store
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Mutex;
//! use std::time::{Duration, Instant};
//! use idempotent_runtime::store::{
//!     Claim, ClaimOutcome, Fence, IdempotencyStore, Record, StoreError, StoredResponse, Token,
//! };
//!
//! #[derive(Default)]
//! struct MapStore(Mutex<HashMap<String, (Record, Instant)>>);
//!
//! impl MapStore {
//!     fn live(map: &mut HashMap<String, (Record, Instant)>, key: &str) -> Option<Record> {
//!         match map.get(key) {
//!             Some((record, expires)) if *expires > Instant::now() => Some(record.clone()),
//!             _ => None,
//!         }
//!     }
//! }
//!
//! #[idempotent_runtime::async_trait]
//! impl IdempotencyStore for MapStore {
//!     async fn claim(&self, key: &str, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
//!         let mut map = self.0.lock().map_err(|_| StoreError::new("lock poisoned"))?;
//!         if let Some(record) = Self::live(&mut map, key) {
//!             return Ok(ClaimOutcome::Existing(record));
//!         }
//!         let expires = Instant::now() + claim.lock_ttl;
//!         map.insert(key.to_owned(), (claim.to_processing(), expires));
//!         Ok(ClaimOutcome::Claimed)
//!     }
//!
//!     async fn complete(
//!         &self,
//!         key: &str,
//!         token: &Token,
//!         response: &StoredResponse,
//!         ttl: Duration,
//!     ) -> Result<Fence, StoreError> {
//!         let mut map = self.0.lock().map_err(|_| StoreError::new("lock poisoned"))?;
//!         match Self::live(&mut map, key) {
//!             Some(record) if !record.is_owned_by(token) => Ok(Fence::Refused),
//!             _ => {
//!                 let record = Record::Completed(response.clone());
//!                 map.insert(key.to_owned(), (record, Instant::now() + ttl));
//!                 Ok(Fence::Applied)
//!             }
//!         }
//!     }
//!
//!     async fn release(&self, key: &str, token: &Token) -> Result<Fence, StoreError> {
//!         let mut map = self.0.lock().map_err(|_| StoreError::new("lock poisoned"))?;
//!         match Self::live(&mut map, key) {
//!             Some(record) if record.is_owned_by(token) => {
//!                 map.remove(key);
//!                 Ok(Fence::Applied)
//!             }
//!             _ => Ok(Fence::Refused),
//!         }
//!     }
//! }
//!
//! let idem = idempotent_runtime::Idempotency::new(MapStore::default());
//! # drop(idem);
//! ```

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

pub use crate::record::{Record, StoredResponse, Token};

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

/// A claim request: what [`IdempotencyStore::claim`] writes when the key is free.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Claim {
    /// The token that fences this claim's later `complete` and `release`.
    pub token: Token,
    /// The request's fingerprint (`None` when the handler does not hash bodies).
    pub fingerprint: Option<String>,
    /// How long the PROCESSING record blocks duplicates if its owner dies.
    pub lock_ttl: Duration,
}

impl Claim {
    /// A claim with the given token, fingerprint and lock lifetime.
    pub fn new(token: Token, fingerprint: Option<String>, lock_ttl: Duration) -> Self {
        Self {
            token,
            fingerprint,
            lock_ttl,
        }
    }

    /// The PROCESSING record this claim writes.
    pub fn to_processing(&self) -> Record {
        Record::Processing {
            token: self.token.clone(),
            fingerprint: self.fingerprint.clone(),
        }
    }
}

/// What a [`claim`](IdempotencyStore::claim) found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClaimOutcome {
    /// The key was free (absent, or its PROCESSING record had expired): it is ours now.
    Claimed,
    /// The key is taken; this is the live record under it.
    Existing(Record),
}

/// Whether a fenced write ([`complete`](IdempotencyStore::complete) or
/// [`release`](IdempotencyStore::release)) took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fence {
    /// The write happened.
    Applied,
    /// The key belongs to another claim (or, for a release, holds no claim of ours); nothing
    /// was changed.
    Refused,
}

/// A store that could not answer: down, erroring, or holding a record it cannot decode.
///
/// The engine treats every `StoreError` (and a store call that misses its deadline) as an
/// outage: with `fail_open = true` the handler runs and nothing is written; with
/// `fail_open = false` the request is answered 503.
#[derive(Debug)]
pub struct StoreError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    indeterminate: bool,
}

impl StoreError {
    /// An error with a message and no underlying cause.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
            indeterminate: false,
        }
    }

    /// An error with a message and the underlying cause.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
            indeterminate: false,
        }
    }

    /// Mark the operation's outcome as unknown: it was sent, but its answer was lost (a
    /// timeout, a connection dropped while waiting), so it may still take effect. For a
    /// failed [`claim`](IdempotencyStore::claim) the engine then releases the claim, fenced
    /// by its token, in the background, so that a claim landing late does not block the
    /// key's retries until `lock_ttl`.
    pub fn indeterminate(mut self) -> Self {
        self.indeterminate = true;
        self
    }

    /// Whether the operation may still have taken effect (see
    /// [`indeterminate`](Self::indeterminate)).
    pub fn is_indeterminate(&self) -> bool {
        self.indeterminate
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

/// A place to keep idempotency records, shared by every request (and, for a networked store,
/// every process) that must see the same keys.
///
/// Every method is called with a deadline by the engine; a store need not add its own
/// (though a networked one should also bound its connection attempts).
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Atomically: if no live record is under `key`, write `claim.to_processing()` with a
    /// lifetime of `claim.lock_ttl` and return [`ClaimOutcome::Claimed`]; otherwise return
    /// the live record unchanged. A PROCESSING record older than its `lock_ttl` counts as
    /// absent.
    async fn claim(&self, key: &str, claim: &Claim) -> Result<ClaimOutcome, StoreError>;

    /// Replace the PROCESSING record of `token` with the completed `response`, to live for
    /// `ttl`. Also write it when the key is absent (the lock expired and nobody claimed the
    /// key since). Refuse when the key holds any other record.
    async fn complete(
        &self,
        key: &str,
        token: &Token,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Fence, StoreError>;

    /// Delete the record under `key` only if it is the PROCESSING record of `token`.
    async fn release(&self, key: &str, token: &Token) -> Result<Fence, StoreError>;
}

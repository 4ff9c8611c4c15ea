//! Where records live: the [`IdempotencyStore`] trait and its adapters.
//!
//! A store keeps one [`Record`] per [`StoreKey`]. It is shaped for an atomic claim: a single
//! [`claim`](IdempotencyStore::claim) either takes the key (writing a
//! [`Record::Processing`] that carries the claim's [`Token`]) or returns what is there, in
//! one operation, so that of any number of concurrent requests exactly one runs the handler.
//! [`complete`](IdempotencyStore::complete), [`release`](IdempotencyStore::release) and
//! [`renew`](IdempotencyStore::renew) are fenced by that token: a request whose lock expired
//! and was taken over can neither overwrite, delete nor prolong the newer owner's record.
//!
//! # Implementing a store
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::{Arc, Mutex};
//! use std::time::{Duration, Instant};
//! use idempotent_runtime::store::{
//!     Claim, ClaimOutcome, Fence, IdempotencyStore, Record, StoreError, StoreKey,
//!     StoredResponse, Token,
//! };
//!
//! #[derive(Default)]
//! struct MapStore(Mutex<HashMap<String, (Record, Instant)>>);
//!
//! impl MapStore {
//!     fn live(map: &mut HashMap<String, (Record, Instant)>, key: &StoreKey) -> Option<Record> {
//!         match map.get(key.as_str()) {
//!             Some((record, expires)) if *expires > Instant::now() => Some(record.clone()),
//!             _ => None,
//!         }
//!     }
//! }
//!
//! #[idempotent_runtime::async_trait]
//! impl IdempotencyStore for MapStore {
//!     async fn claim(&self, key: &StoreKey, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
//!         let mut map = self.0.lock().map_err(|_| StoreError::new("lock poisoned"))?;
//!         if let Some(record) = Self::live(&mut map, key) {
//!             return Ok(ClaimOutcome::Existing(record));
//!         }
//!         let expires = Instant::now() + claim.lock_ttl;
//!         map.insert(key.to_string(), (claim.to_processing(), expires));
//!         Ok(ClaimOutcome::Claimed)
//!     }
//!
//!     async fn complete(
//!         &self,
//!         key: &StoreKey,
//!         token: &Token,
//!         response: StoredResponse,
//!         ttl: Duration,
//!     ) -> Result<Fence, StoreError> {
//!         let mut map = self.0.lock().map_err(|_| StoreError::new("lock poisoned"))?;
//!         match Self::live(&mut map, key) {
//!             Some(record) if !record.is_owned_by(token) => Ok(Fence::Refused),
//!             _ => {
//!                 let record = Record::Completed(Arc::new(response));
//!                 map.insert(key.to_string(), (record, Instant::now() + ttl));
//!                 Ok(Fence::Applied)
//!             }
//!         }
//!     }
//!
//!     async fn release(&self, key: &StoreKey, token: &Token) -> Result<Fence, StoreError> {
//!         let mut map = self.0.lock().map_err(|_| StoreError::new("lock poisoned"))?;
//!         match Self::live(&mut map, key) {
//!             Some(record) if record.is_owned_by(token) => {
//!                 map.remove(key.as_str());
//!                 Ok(Fence::Applied)
//!             }
//!             _ => Ok(Fence::Refused),
//!         }
//!     }
//!
//!     // `renew` is optional: without it, a PROCESSING record expires after `lock_ttl`
//!     // whatever its handler is doing.
//! }
//!
//! let idem = idempotent_runtime::Idempotency::new(MapStore::default());
//! # drop(idem);
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use crate::record::{Record, StoredResponse, Token};
pub use error::{StoreError, StoreErrorKind};
pub use key::StoreKey;

#[cfg(feature = "dynamodb")]
pub mod dynamodb;
mod error;
mod key;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
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

/// Whether a fenced write ([`complete`](IdempotencyStore::complete),
/// [`release`](IdempotencyStore::release) or [`renew`](IdempotencyStore::renew)) took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fence {
    /// The write happened.
    Applied,
    /// The key belongs to another claim (or, for a release or a renewal, holds no claim of
    /// ours); nothing was changed.
    Refused,
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
    async fn claim(&self, key: &StoreKey, claim: &Claim) -> Result<ClaimOutcome, StoreError>;

    /// Replace the PROCESSING record of `token` with the completed `response`, to live for
    /// `ttl`. Also write it when the key is absent (the lock expired and nobody claimed the
    /// key since). Refuse when the key holds any other record. A record over what the store
    /// can hold is an error of kind [`StoreErrorKind::TooLarge`].
    async fn complete(
        &self,
        key: &StoreKey,
        token: &Token,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<Fence, StoreError>;

    /// Delete the record under `key` only if it is the PROCESSING record of `token`.
    async fn release(&self, key: &StoreKey, token: &Token) -> Result<Fence, StoreError>;

    /// Extend the life of the PROCESSING record of `token` to `lock_ttl` from now, only if
    /// the key still holds it. The engine calls this while a handler runs past half its
    /// `lock_ttl`, so that a slow handler keeps its claim.
    ///
    /// The default answers [`StoreErrorKind::Unsupported`]: the engine then stops renewing,
    /// and the record expires after `lock_ttl` (completion stays fenced by the token).
    async fn renew(
        &self,
        key: &StoreKey,
        token: &Token,
        lock_ttl: Duration,
    ) -> Result<Fence, StoreError> {
        let _ = (key, token, lock_ttl);
        Err(StoreError::unsupported("lease renewal"))
    }

    /// A unit of work for one request: a transaction in the store's own database that the
    /// handler can take (through the store's extractor) and that the engine commits
    /// together with the completed record. The engine asks for one before it runs a handler
    /// and [lends](UnitOfWork::lend) it to the request.
    ///
    /// The default is `None`: the store has no database a handler could write to (memory,
    /// Redis, DynamoDB). The PostgreSQL store's (feature `postgres`) is taken with its `Tx`
    /// extractor.
    fn unit_of_work(&self) -> Option<Box<dyn UnitOfWork>> {
        None
    }

    /// The completed record under `key`, if the store holds it in this process's memory
    /// and can read it at once, without I/O and without waiting; otherwise `None` (the
    /// default, and always the answer of a store that must ask a server).
    ///
    /// The engine asks before it claims: a replay of a record read here needs no claim, no
    /// token and no deadline. Answer only with a live, completed record; a PROCESSING one is
    /// for [`claim`](Self::claim) to find.
    fn completed_in_memory(&self, key: &StoreKey) -> Option<Arc<StoredResponse>> {
        let _ = key;
        None
    }

    /// Whether the store's calls may wait for I/O (`true`, the default). The engine bounds
    /// every call of a store that may by the store deadline; the calls of one that never
    /// does (the memory store: a map under a lock held for one operation) finish at their
    /// first poll, and run without a timer.
    fn waits_for_io(&self) -> bool {
        true
    }

    /// A short name for metrics and logs (the `store` label of
    /// `idempotency_store_duration_seconds`): `memory`, `redis`, `redis_cluster`,
    /// `dynamodb`, `postgres`; `custom` unless a store says otherwise.
    fn name(&self) -> &'static str {
        "custom"
    }
}

/// The completed record a [`UnitOfWork`] writes in its transaction before it commits.
#[derive(Debug)]
#[non_exhaustive]
pub struct Completion {
    /// The key the record is stored under.
    pub key: StoreKey,
    /// The claim that owns the key: the write is fenced by it, as
    /// [`complete`](IdempotencyStore::complete) is.
    pub token: Token,
    /// The response to store.
    pub response: StoredResponse,
    /// How long the record lives.
    pub ttl: Duration,
}

impl Completion {
    /// The completion of `key`'s claim `token` with `response`, to live for `ttl`.
    pub fn new(key: StoreKey, token: Token, response: StoredResponse, ttl: Duration) -> Self {
        Self {
            key,
            token,
            response,
            ttl,
        }
    }
}

/// A transaction lent to a handler, committed by the engine together with the request's
/// completed record (the same-transaction mode). See
/// [`IdempotencyStore::unit_of_work`].
///
/// The engine calls [`lend`](Self::lend) before the handler runs. When the handler is done,
/// it calls [`begun`](Self::begun): if the handler never took the transaction, nothing more
/// happens here (the record is completed as usual). Otherwise exactly one of
/// [`commit`](Self::commit) (after a 2xx answer) or [`rollback`](Self::rollback) (after any
/// other answer, a panic or an error).
#[async_trait]
pub trait UnitOfWork: Send + Sync + 'static {
    /// Put into the request's extensions what the store's extractor takes.
    fn lend(&self, extensions: &mut http::Extensions);

    /// Whether the handler took the transaction.
    fn begun(&self) -> bool;

    /// Write `completion` in the transaction (fenced by its token, as
    /// [`IdempotencyStore::complete`]) and commit; without a completion (a request that owns
    /// no claim: no key on an optional route, or a store outage with `fail_open`), just
    /// commit. When the key belongs to another claim, roll back and answer
    /// [`Fence::Refused`]. On an error, the transaction is rolled back (or its outcome is
    /// unknown, for an error of kind [`StoreErrorKind::Indeterminate`]).
    async fn commit(&self, completion: Option<Completion>) -> Result<Fence, StoreError>;

    /// Roll the transaction back.
    async fn rollback(&self);
}

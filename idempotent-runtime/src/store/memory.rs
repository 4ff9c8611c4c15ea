//! [`MemoryStore`]: the embedded default, for one process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::ops::compute::Op;
use moka::sync::Cache;

use super::{
    Claim, ClaimOutcome, Fence, IdempotencyStore, Record, StoreError, StoredResponse, Token,
};

/// The default capacity of a [`MemoryStore`], in bytes of keys and stored responses.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// An in-memory store on a bounded concurrent cache ([moka]): per-entry lifetimes
/// (`lock_ttl` for PROCESSING records, `ttl` for completed ones), an atomic per-key claim,
/// and a capacity in bytes beyond which the least useful records are evicted.
///
/// It serves one process; processes that must share keys need a shared store such as
/// Redis. Eviction under memory pressure can drop a completed record before its `ttl`:
/// size the capacity for your traffic (`requests per ttl × response size`).
///
/// [moka]: https://docs.rs/moka
#[derive(Clone)]
pub struct MemoryStore {
    cache: Cache<String, Entry>,
}

#[derive(Clone)]
struct Entry {
    record: Arc<Record>,
    ttl: Duration,
    expires_at: Instant,
}

impl Entry {
    fn new(record: Record, ttl: Duration) -> Self {
        Self {
            record: Arc::new(record),
            ttl,
            expires_at: Instant::now().checked_add(ttl).unwrap_or_else(far_future),
        }
    }

    fn live(self) -> Option<Self> {
        (self.expires_at > Instant::now()).then_some(self)
    }

    fn weight(key: &str, record: &Record) -> u32 {
        let body = match record {
            Record::Processing { .. } => 0,
            Record::Completed(response) => {
                response.body.len()
                    + response.headers.as_ref().map_or(0, |h| {
                        h.iter().map(|(n, v)| n.as_str().len() + v.len()).sum()
                    })
            }
        };
        // Keys, fingerprints and bookkeeping: a fixed allowance.
        u32::try_from(key.len() + body + 256).unwrap_or(u32::MAX)
    }
}

/// About 30 years from now: "never" for a cache entry, and always representable.
fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(30 * 365 * 24 * 3600))
        .unwrap_or(now)
}

struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _key: &String, value: &Entry, _now: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Entry,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store holding at most [`DEFAULT_MAX_BYTES`].
    pub fn new() -> Self {
        Self::with_max_bytes(DEFAULT_MAX_BYTES)
    }

    /// A store holding at most `max_bytes` of keys and stored responses (each record also
    /// counts a fixed 256 bytes of bookkeeping).
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|key: &String, entry: &Entry| Entry::weight(key, &entry.record))
                .expire_after(PerEntryTtl)
                .build(),
        }
    }

    /// The number of records held (after pending evictions are applied).
    pub fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes held, as counted against the capacity (after pending evictions are
    /// applied).
    pub fn weighted_size(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }

    /// The record under `key`, if it is live.
    pub fn get(&self, key: &str) -> Option<Record> {
        self.cache
            .get(key)
            .and_then(Entry::live)
            .map(|e| (*e.record).clone())
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn claim(&self, key: &str, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        // A completed record never changes back: read it without the per-key lock.
        if let Some(entry) = self.cache.get(key).and_then(Entry::live)
            && matches!(*entry.record, Record::Completed(_))
        {
            return Ok(ClaimOutcome::Existing(Arc::unwrap_or_clone(entry.record)));
        }
        let mut existing = None;
        self.cache.entry_by_ref(key).and_compute_with(|current| {
            match current.and_then(|e| e.into_value().live()) {
                Some(entry) => {
                    existing = Some(entry.record);
                    Op::Nop
                }
                None => Op::Put(Entry::new(claim.to_processing(), claim.lock_ttl)),
            }
        });
        Ok(match existing {
            Some(record) => ClaimOutcome::Existing(Arc::unwrap_or_clone(record)),
            None => ClaimOutcome::Claimed,
        })
    }

    async fn complete(
        &self,
        key: &str,
        token: &Token,
        response: &StoredResponse,
        ttl: Duration,
    ) -> Result<Fence, StoreError> {
        let mut fence = Fence::Refused;
        self.cache.entry_by_ref(key).and_compute_with(|current| {
            match current.and_then(|e| e.into_value().live()) {
                Some(entry) if !entry.record.is_owned_by(token) => Op::Nop,
                _ => {
                    fence = Fence::Applied;
                    Op::Put(Entry::new(Record::Completed(response.clone()), ttl))
                }
            }
        });
        Ok(fence)
    }

    async fn release(&self, key: &str, token: &Token) -> Result<Fence, StoreError> {
        let mut fence = Fence::Refused;
        self.cache
            .entry_by_ref(key)
            .and_compute_with(|current| match current {
                Some(entry) if entry.value().record.is_owned_by(token) => {
                    fence = Fence::Applied;
                    Op::Remove
                }
                _ => Op::Nop,
            });
        Ok(fence)
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.cache.entry_count())
            .field("weighted_size", &self.cache.weighted_size())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::StatusCode;

    fn response() -> StoredResponse {
        StoredResponse::new(StatusCode::CREATED, None, Bytes::from_static(b"{}"), None)
    }

    fn claim(lock_ttl: Duration) -> Claim {
        Claim::new(Token::generate(), None, lock_ttl)
    }

    #[tokio::test]
    async fn claim_complete_replay() {
        let store = MemoryStore::new();
        let first = claim(Duration::from_secs(60));
        assert!(matches!(
            store.claim("k", &first).await.unwrap(),
            ClaimOutcome::Claimed
        ));
        let second = claim(Duration::from_secs(60));
        assert!(matches!(
            store.claim("k", &second).await.unwrap(),
            ClaimOutcome::Existing(Record::Processing { token, .. }) if token == first.token
        ));
        assert_eq!(
            store
                .complete("k", &second.token, &response(), Duration::from_secs(60))
                .await
                .unwrap(),
            Fence::Refused
        );
        assert_eq!(
            store.release("k", &second.token).await.unwrap(),
            Fence::Refused
        );
        assert_eq!(
            store
                .complete("k", &first.token, &response(), Duration::from_secs(60))
                .await
                .unwrap(),
            Fence::Applied
        );
        assert!(matches!(
            store.claim("k", &second).await.unwrap(),
            ClaimOutcome::Existing(Record::Completed(r)) if r == response()
        ));
        // A completed record cannot be released.
        assert_eq!(
            store.release("k", &first.token).await.unwrap(),
            Fence::Refused
        );
    }

    #[tokio::test]
    async fn expired_lock_is_taken_over_and_fences_the_old_owner() {
        let store = MemoryStore::new();
        let old = claim(Duration::from_millis(20));
        assert!(matches!(
            store.claim("k", &old).await.unwrap(),
            ClaimOutcome::Claimed
        ));
        tokio::time::sleep(Duration::from_millis(40)).await;
        let new = claim(Duration::from_secs(60));
        assert!(matches!(
            store.claim("k", &new).await.unwrap(),
            ClaimOutcome::Claimed
        ));
        assert_eq!(
            store
                .complete("k", &old.token, &response(), Duration::from_secs(60))
                .await
                .unwrap(),
            Fence::Refused
        );
        assert_eq!(
            store.release("k", &old.token).await.unwrap(),
            Fence::Refused
        );
        assert!(store.get("k").unwrap().is_owned_by(&new.token));
    }

    #[tokio::test]
    async fn late_finisher_stores_when_nobody_claimed_since() {
        let store = MemoryStore::new();
        let old = claim(Duration::from_millis(20));
        assert!(matches!(
            store.claim("k", &old).await.unwrap(),
            ClaimOutcome::Claimed
        ));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(
            store
                .complete("k", &old.token, &response(), Duration::from_secs(60))
                .await
                .unwrap(),
            Fence::Applied
        );
        assert!(matches!(store.get("k"), Some(Record::Completed(_))));
    }

    #[tokio::test]
    async fn capacity_bounds_the_store() {
        let store = MemoryStore::with_max_bytes(64 * 1024);
        for i in 0..10_000 {
            let c = claim(Duration::from_secs(60));
            store.claim(&format!("key-{i}"), &c).await.unwrap();
            store
                .complete(
                    &format!("key-{i}"),
                    &c.token,
                    &response(),
                    Duration::from_secs(60),
                )
                .await
                .unwrap();
        }
        assert!(
            store.weighted_size() <= 64 * 1024,
            "{}",
            store.weighted_size()
        );
        assert!(store.len() < 10_000 && !store.is_empty());
    }
}

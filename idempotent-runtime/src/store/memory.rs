//! [`MemoryStore`]: the embedded default, for one process.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;

use super::{
    Claim, ClaimOutcome, Fence, IdempotencyStore, Record, StoreError, StoreKey, StoredResponse,
    Token,
};

/// The default capacity of a [`MemoryStore`], in bytes of keys and stored responses.
pub const DEFAULT_MAX_BYTES: u64 = 256 * 1024 * 1024;

/// The number of independently locked parts of the PROCESSING records' map.
const SHARDS: usize = 64;

/// The hasher of both maps: fast on short keys, randomly seeded per process.
pub(crate) type Hasher = foldhash::fast::RandomState;

/// An in-memory store for one process: completed records in a bounded concurrent cache
/// ([moka]), PROCESSING records in a sharded map beside it.
///
/// - A completed record lives for its `ttl`; the cache holds at most a capacity in bytes
///   (keys, stored bodies, headers and fingerprints, plus 744 bytes per record for the
///   record's own structures and the cache's bookkeeping: what a record really takes in
///   the process), beyond which the records used longest ago are evicted (least recently
///   used first), so that a record just written is always kept. A replay reads it without
///   taking a lock, and a retry that sends the same bytes as the request that produced it
///   (bodies up to 512 bytes, which are kept beside the record) is recognised without
///   hashing its body again.
/// - A PROCESSING record lives until its request completes or releases it, or for its
///   `lock_ttl`, after which the next claim takes the key over. There is one per request in
///   flight, so they are not counted against the capacity.
/// - A claim, a completion and a release of one key take that key's shard lock, so of any
///   number of concurrent claims of a key exactly one wins, and a request whose lock was
///   taken over can neither overwrite nor delete the newer owner's record.
///
/// It serves one process; processes that must share keys need a shared store such as
/// Redis. Eviction under memory pressure can drop a completed record before its `ttl`:
/// size the capacity for your traffic (`requests per ttl × response size`).
///
/// [moka]: https://docs.rs/moka
#[derive(Clone)]
pub struct MemoryStore {
    completed: Cache<String, Completed, Hasher>,
    claims: Arc<Claims>,
}

/// A completed record in the cache, with the lifetime it was stored for.
#[derive(Clone)]
pub(crate) struct Completed {
    pub(crate) response: Arc<StoredResponse>,
    pub(crate) ttl: Duration,
}

/// A bounded cache of completed records: at most `max_bytes` of keys and responses, each
/// entry living for its own `ttl`, the least recently used evicted first. The memory store's,
/// and the local cache's in front of a networked store.
pub(crate) fn completed_cache(max_bytes: u64, hasher: Hasher) -> Cache<String, Completed, Hasher> {
    Cache::builder()
        .max_capacity(max_bytes)
        .weigher(|key: &String, entry: &Completed| Completed::weight(key, &entry.response))
        .expire_after(PerEntryTtl)
        // Retries come soon after the first request: under pressure, evict the records
        // written longest ago, and always keep the newest (a frequency-based policy would
        // refuse a new record in favour of older ones).
        .eviction_policy(EvictionPolicy::lru())
        .build_with_hasher(hasher)
}

/// What a completed record occupies beyond the bytes weighed one by one (its key, body,
/// headers, fingerprint and kept request body): the record and its allocations, the
/// cache's entry with its eviction-queue and timer nodes, and the allocator's rounding.
/// Measured with the benchmarks' `record_sizes` (resident memory growth over 100,000
/// records).
pub(crate) const RECORD_OVERHEAD: usize = 744;

impl Completed {
    /// The bytes a record takes in the process, as the capacity counts them.
    pub(crate) fn weight(key: &str, response: &StoredResponse) -> u32 {
        let headers: usize = response.headers.as_ref().map_or(0, |h| {
            h.iter().map(|(n, v)| n.as_str().len() + v.len()).sum()
        });
        let fingerprint = response.fingerprint.as_ref().map_or(0, String::len);
        u32::try_from(
            key.len()
                + response.body.len()
                + headers
                + fingerprint
                + response.kept_request_len()
                + RECORD_OVERHEAD,
        )
        .unwrap_or(u32::MAX)
    }

    fn record(self) -> Record {
        Record::Completed(self.response)
    }
}

struct PerEntryTtl;

impl moka::Expiry<String, Completed> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Completed,
        _now: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Completed,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// A PROCESSING record.
struct Pending {
    token: Token,
    fingerprint: Option<String>,
    expires_at: Instant,
}

impl Pending {
    fn live(&self, now: Instant) -> bool {
        self.expires_at > now
    }
}

/// The PROCESSING records, in shards each behind its own lock.
struct Claims {
    hasher: Hasher,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    pending: HashMap<String, Pending, Hasher>,
    /// The size at which expired records are next swept out.
    sweep_at: usize,
}

impl Shard {
    /// The fewest records a shard holds before it is swept for expired ones.
    const MIN_SWEEP: usize = 64;

    /// The live PROCESSING record under `key`.
    fn live_record(&self, key: &str, now: Instant) -> Option<Record> {
        let p = self.pending.get(key).filter(|p| p.live(now))?;
        Some(Record::Processing {
            token: p.token.clone(),
            fingerprint: p.fingerprint.clone(),
        })
    }

    fn insert(&mut self, key: &str, pending: Pending, now: Instant) {
        // Every request completes or releases its claim, so expired records are rare (a
        // claim whose lock ran out, whose owner then completes nothing); sweep them out
        // when the shard has doubled since the last sweep.
        if self.pending.len() >= self.sweep_at.max(Self::MIN_SWEEP) {
            self.pending.retain(|_, p| p.live(now));
            self.sweep_at = self.pending.len() * 2;
        }
        match self.pending.get_mut(key) {
            Some(slot) => *slot = pending,
            None => {
                self.pending.insert(key.to_owned(), pending);
            }
        }
    }
}

impl Claims {
    fn new(hasher: Hasher) -> Self {
        Self {
            hasher,
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// The shard of `key`, locked.
    fn lock(&self, key: &str) -> MutexGuard<'_, Shard> {
        // Bits the maps' own bucket choice (low bits) and tag (top bits) do not use.
        let index = ((self.hasher.hash_one(key) >> 32) as usize) % self.shards.len();
        Self::locked(&self.shards[index])
    }

    /// A shard's map stays consistent whatever a panicking holder left half done (each
    /// change is one map operation), so a poisoned lock is taken over.
    fn locked(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
        shard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn live_count(&self) -> u64 {
        let now = Instant::now();
        self.shards
            .iter()
            .map(|shard| {
                let shard = Self::locked(shard);
                shard.pending.values().filter(|p| p.live(now)).count() as u64
            })
            .sum()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store holding at most [`DEFAULT_MAX_BYTES`] of completed records.
    pub fn new() -> Self {
        Self::with_max_bytes(DEFAULT_MAX_BYTES)
    }

    /// A store holding at most `max_bytes` of keys and stored responses (each completed
    /// record also counts a fixed 744 bytes for its structures and the cache's bookkeeping).
    pub fn with_max_bytes(max_bytes: u64) -> Self {
        let hasher = Hasher::default();
        Self {
            completed: completed_cache(max_bytes, hasher.clone()),
            claims: Arc::new(Claims::new(hasher)),
        }
    }

    /// The number of live records held, PROCESSING and completed (after pending evictions
    /// are applied).
    pub fn len(&self) -> u64 {
        self.completed.run_pending_tasks();
        self.completed.entry_count() + self.claims.live_count()
    }

    /// Whether the store holds no live record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of completed records held, as counted against the capacity (after pending
    /// evictions are applied).
    pub fn weighted_size(&self) -> u64 {
        self.completed.run_pending_tasks();
        self.completed.weighted_size()
    }

    /// The record under `key` (a [`StoreKey`]'s string form), if it is live.
    pub fn get(&self, key: &str) -> Option<Record> {
        let processing = self.claims.lock(key).live_record(key, Instant::now());
        processing.or_else(|| self.completed.get(key).map(Completed::record))
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn completed_in_memory(&self, key: &StoreKey) -> Option<Arc<StoredResponse>> {
        // A completed record never changes back: read it without a lock.
        self.completed
            .get(key.as_str())
            .map(|completed| completed.response)
    }

    fn waits_for_io(&self) -> bool {
        false
    }

    async fn claim(&self, key: &StoreKey, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        // The engine has looked for a completed record (`completed_in_memory`) just before;
        // one written since is found under the lock below.
        let key = key.as_str();
        let now = Instant::now();
        let mut shard = self.claims.lock(key);
        if let Some(processing) = shard.live_record(key, now) {
            return Ok(ClaimOutcome::Existing(processing));
        }
        // A completion stores its record under this lock before it removes its claim: if it
        // ran since the lookup above, its record is in the cache now.
        if self.completed.contains_key(key)
            && let Some(done) = self.completed.get(key)
        {
            return Ok(ClaimOutcome::Existing(done.record()));
        }
        shard.insert(
            key,
            Pending {
                token: claim.token.clone(),
                fingerprint: claim.fingerprint.clone(),
                expires_at: expiry(now, claim.lock_ttl),
            },
            now,
        );
        Ok(ClaimOutcome::Claimed)
    }

    async fn complete(
        &self,
        key: &StoreKey,
        token: &Token,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<Fence, StoreError> {
        let key = key.as_str();
        let now = Instant::now();
        let mut shard = self.claims.lock(key);
        match shard.pending.get(key) {
            // Ours, live or not: nobody took it over.
            Some(p) if p.token == *token => {}
            // Another claim's, live: it took the key over.
            Some(p) if p.live(now) => return Ok(Fence::Refused),
            // Absent (or an expired claim of another request): the key is free unless a
            // completed record is there.
            _ => {
                if self.completed.contains_key(key) {
                    return Ok(Fence::Refused);
                }
            }
        }
        self.completed.insert(
            key.to_owned(),
            Completed {
                response: Arc::new(response),
                ttl,
            },
        );
        shard.pending.remove(key);
        Ok(Fence::Applied)
    }

    async fn release(&self, key: &StoreKey, token: &Token) -> Result<Fence, StoreError> {
        let key = key.as_str();
        let mut shard = self.claims.lock(key);
        match shard.pending.get(key) {
            Some(p) if p.token == *token => {
                shard.pending.remove(key);
                Ok(Fence::Applied)
            }
            _ => Ok(Fence::Refused),
        }
    }

    async fn renew(
        &self,
        key: &StoreKey,
        token: &Token,
        lock_ttl: Duration,
    ) -> Result<Fence, StoreError> {
        let key = key.as_str();
        let now = Instant::now();
        let mut shard = self.claims.lock(key);
        match shard.pending.get_mut(key) {
            // Ours and still live: nobody can have taken it over.
            Some(p) if p.token == *token && p.live(now) => {
                p.expires_at = expiry(now, lock_ttl);
                Ok(Fence::Applied)
            }
            _ => Ok(Fence::Refused),
        }
    }
}

/// `now + ttl`, or "never" for a lifetime too long to represent.
fn expiry(now: Instant, ttl: Duration) -> Instant {
    now.checked_add(ttl).unwrap_or_else(far_future)
}

/// About 30 years from now: "never" for a lock, and always representable.
fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(30 * 365 * 24 * 3600))
        .unwrap_or(now)
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("completed", &self.completed.entry_count())
            .field("weighted_size", &self.completed.weighted_size())
            .finish_non_exhaustive()
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

    fn k(key: &str) -> StoreKey {
        StoreKey::new("t", None, key)
    }

    #[tokio::test]
    async fn claim_complete_replay() {
        let store = MemoryStore::new();
        let first = claim(Duration::from_secs(60));
        assert!(matches!(
            store.claim(&k("k"), &first).await.unwrap(),
            ClaimOutcome::Claimed
        ));
        let second = claim(Duration::from_secs(60));
        assert!(matches!(
            store.claim(&k("k"), &second).await.unwrap(),
            ClaimOutcome::Existing(Record::Processing { token, .. }) if token == first.token
        ));
        assert_eq!(
            store
                .complete(&k("k"), &second.token, response(), Duration::from_secs(60))
                .await
                .unwrap(),
            Fence::Refused
        );
        assert_eq!(
            store.release(&k("k"), &second.token).await.unwrap(),
            Fence::Refused
        );
        assert_eq!(
            store
                .complete(&k("k"), &first.token, response(), Duration::from_secs(60))
                .await
                .unwrap(),
            Fence::Applied
        );
        assert!(matches!(
            store.claim(&k("k"), &second).await.unwrap(),
            ClaimOutcome::Existing(Record::Completed(r)) if *r == response()
        ));
        // A completed record cannot be released.
        assert_eq!(
            store.release(&k("k"), &first.token).await.unwrap(),
            Fence::Refused
        );
    }

    #[tokio::test]
    async fn expired_lock_is_taken_over_and_fences_the_old_owner() {
        let store = MemoryStore::new();
        let old = claim(Duration::from_millis(20));
        assert!(matches!(
            store.claim(&k("k"), &old).await.unwrap(),
            ClaimOutcome::Claimed
        ));
        tokio::time::sleep(Duration::from_millis(40)).await;
        let new = claim(Duration::from_secs(60));
        assert!(matches!(
            store.claim(&k("k"), &new).await.unwrap(),
            ClaimOutcome::Claimed
        ));
        assert_eq!(
            store
                .complete(&k("k"), &old.token, response(), Duration::from_secs(60))
                .await
                .unwrap(),
            Fence::Refused
        );
        assert_eq!(
            store.release(&k("k"), &old.token).await.unwrap(),
            Fence::Refused
        );
        assert!(
            store
                .get("idempotency:t:k")
                .unwrap()
                .is_owned_by(&new.token)
        );
    }

    #[tokio::test]
    async fn late_finisher_stores_when_nobody_claimed_since() {
        let store = MemoryStore::new();
        let old = claim(Duration::from_millis(20));
        assert!(matches!(
            store.claim(&k("k"), &old).await.unwrap(),
            ClaimOutcome::Claimed
        ));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(
            store
                .complete(&k("k"), &old.token, response(), Duration::from_secs(60))
                .await
                .unwrap(),
            Fence::Applied
        );
        assert!(matches!(
            store.get("idempotency:t:k"),
            Some(Record::Completed(_))
        ));
    }

    #[tokio::test]
    async fn capacity_bounds_the_store() {
        let store = MemoryStore::with_max_bytes(64 * 1024);
        for i in 0..10_000 {
            let c = claim(Duration::from_secs(60));
            store.claim(&k(&format!("key-{i}")), &c).await.unwrap();
            store
                .complete(
                    &k(&format!("key-{i}")),
                    &c.token,
                    response(),
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_concurrent_claims_exactly_one_wins() {
        let store = MemoryStore::new();
        for round in 0..200 {
            let key = format!("race-{round}");
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let (store, key) = (store.clone(), key.clone());
                    tokio::spawn(async move {
                        let c = claim(Duration::from_secs(60));
                        matches!(store.claim(&k(&key), &c).await, Ok(ClaimOutcome::Claimed))
                    })
                })
                .collect();
            let mut winners = 0;
            for task in tasks {
                winners += usize::from(task.await.unwrap());
            }
            assert_eq!(winners, 1, "{key}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_claim_racing_the_completion_sees_the_key_taken() {
        let store = MemoryStore::new();
        for round in 0..500 {
            let key = format!("done-{round}");
            let owner = claim(Duration::from_secs(60));
            assert!(matches!(
                store.claim(&k(&key), &owner).await.unwrap(),
                ClaimOutcome::Claimed
            ));
            let claimers: Vec<_> = (0..3)
                .map(|_| {
                    let (store, key) = (store.clone(), key.clone());
                    tokio::spawn(async move {
                        let mut seen_completed = false;
                        // Claim until the completion is seen; none may find the key free.
                        while !seen_completed {
                            match store.claim(&k(&key), &claim(Duration::from_secs(60))).await {
                                Ok(ClaimOutcome::Existing(Record::Completed(_))) => {
                                    seen_completed = true;
                                }
                                Ok(ClaimOutcome::Existing(Record::Processing { .. })) => {
                                    tokio::task::yield_now().await;
                                }
                                other => panic!("{key}: {other:?}"),
                            }
                        }
                    })
                })
                .collect();
            assert_eq!(
                store
                    .complete(&k(&key), &owner.token, response(), Duration::from_secs(60))
                    .await
                    .unwrap(),
                Fence::Applied
            );
            for task in claimers {
                task.await.unwrap();
            }
        }
    }

    #[tokio::test]
    async fn expired_claims_are_swept_out() {
        let store = MemoryStore::new();
        for i in 0..10_000 {
            // Claims that nobody completes or releases, already expired.
            store
                .claim(&k(&format!("lost-{i}")), &claim(Duration::ZERO))
                .await
                .unwrap();
        }
        let held: usize = store
            .claims
            .shards
            .iter()
            .map(|s| s.lock().unwrap().pending.len())
            .sum();
        // Each shard is swept once it holds 64 records: at most 64 per shard remain.
        assert!(held <= SHARDS * Shard::MIN_SWEEP, "{held}");
        assert!(store.is_empty());
    }

    #[tokio::test]
    async fn when_full_the_oldest_records_make_room_for_the_newest() {
        let store = MemoryStore::with_max_bytes(64 * 1024);
        for i in 0..10_000 {
            let key = format!("key-{i}");
            let c = claim(Duration::from_secs(60));
            store.claim(&k(&key), &c).await.unwrap();
            store
                .complete(&k(&key), &c.token, response(), Duration::from_secs(60))
                .await
                .unwrap();
            store.completed.run_pending_tasks();
            // A retry soon after the first request must find its record, however full.
            assert!(
                matches!(store.get(k(&key).as_str()), Some(Record::Completed(_))),
                "{key} was not kept"
            );
        }
        assert!(
            store.get(k("key-0").as_str()).is_none(),
            "the oldest record was kept"
        );
    }

    #[tokio::test]
    async fn a_renewed_claim_outlives_its_first_lock_ttl_and_only_its_owner_renews() {
        let store = MemoryStore::new();
        let owner = claim(Duration::from_millis(50));
        assert!(matches!(
            store.claim(&k("k"), &owner).await.unwrap(),
            ClaimOutcome::Claimed
        ));
        let other = Token::generate();
        assert_eq!(
            store
                .renew(&k("k"), &other, Duration::from_secs(60))
                .await
                .unwrap(),
            Fence::Refused
        );
        assert_eq!(
            store
                .renew(&k("k"), &owner.token, Duration::from_secs(60))
                .await
                .unwrap(),
            Fence::Applied
        );
        // Past the first lock_ttl, the claim still holds.
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(matches!(
            store.claim(&k("k"), &claim(Duration::from_secs(60))).await.unwrap(),
            ClaimOutcome::Existing(Record::Processing { token, .. }) if token == owner.token
        ));
        // A lock that ran out is not brought back: another request may have seen it free.
        let lapsed = claim(Duration::ZERO);
        store.claim(&k("lapsed"), &lapsed).await.unwrap();
        assert_eq!(
            store
                .renew(&k("lapsed"), &lapsed.token, Duration::from_secs(60))
                .await
                .unwrap(),
            Fence::Refused
        );
    }
}

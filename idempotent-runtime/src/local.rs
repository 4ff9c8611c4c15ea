//! A cache, in the process, of the completed records it wrote or read: replays of them cost
//! no round trip to a networked store, and still answer while that store is down.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use moka::sync::Cache;

use crate::store::memory::{Completed, Hasher, completed_cache};
use crate::store::{StoreKey, StoredResponse};

/// Completed records by store key (prefix, scope and key: tenants stay apart), bounded by
/// bytes, each kept no longer than the record lives in the store. PROCESSING records are
/// never held: a conflict always asks the store.
#[derive(Clone)]
pub(crate) struct LocalCache {
    completed: Cache<String, Completed, Hasher>,
    max_bytes: u64,
}

impl std::fmt::Debug for LocalCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCache")
            .field("entries", &self.completed.entry_count())
            .field("weighted_size", &self.completed.weighted_size())
            .finish()
    }
}

impl LocalCache {
    pub(crate) fn new(max_bytes: u64) -> Self {
        LocalCache {
            completed: completed_cache(max_bytes, Hasher::default()),
            max_bytes,
        }
    }

    /// The completed record under `key`, if this process holds it and it is still live.
    pub(crate) fn get(&self, key: &StoreKey) -> Option<Arc<StoredResponse>> {
        self.completed
            .get(key.as_str())
            .map(|completed| completed.response)
    }

    /// Keep a record this process just completed, for the `ttl` it was stored with; one
    /// larger than the whole cache is not kept at all.
    pub(crate) fn completed(&self, key: &StoreKey, response: Arc<StoredResponse>, ttl: Duration) {
        if u64::from(Completed::weight(key.as_str(), &response)) > self.max_bytes {
            return;
        }
        self.completed
            .insert(key.as_str().to_owned(), Completed { response, ttl });
    }

    /// Keep a record read from the store, for what is left of its life: `ttl` (the route's)
    /// from when it was stored. A record that does not say when it was stored (written by
    /// another program) is not kept: its end is unknown.
    pub(crate) fn read(&self, key: &StoreKey, response: &Arc<StoredResponse>, ttl: Duration) {
        let Some(stored_at) = response.stored_at else {
            return;
        };
        let age = SystemTime::now()
            .duration_since(stored_at)
            .unwrap_or(Duration::ZERO);
        if let Some(left) = ttl.checked_sub(age).filter(|left| !left.is_zero()) {
            self.completed(key, response.clone(), left);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::StatusCode;

    fn response(stored_at: Option<SystemTime>) -> Arc<StoredResponse> {
        let mut response = StoredResponse::new(StatusCode::CREATED, None, Bytes::new(), None);
        response.stored_at = stored_at;
        Arc::new(response)
    }

    #[test]
    fn a_record_read_is_kept_for_what_is_left_of_its_life() {
        let cache = LocalCache::new(1 << 20);
        let hour = Duration::from_secs(3600);
        let fresh = StoreKey::new("orders", None, "fresh");
        cache.read(&fresh, &response(Some(SystemTime::now())), hour);
        assert!(cache.get(&fresh).is_some());
        let old = StoreKey::new("orders", None, "old");
        cache.read(&old, &response(Some(SystemTime::now() - 2 * hour)), hour);
        assert!(cache.get(&old).is_none(), "already expired in the store");
        let unknown = StoreKey::new("orders", None, "unknown");
        cache.read(&unknown, &response(None), hour);
        assert!(
            cache.get(&unknown).is_none(),
            "no stored_at: its end is unknown"
        );
        let tenant = StoreKey::new("orders", Some("tenant-b"), "fresh");
        assert!(cache.get(&tenant).is_none(), "scoped keys are apart");
    }
}

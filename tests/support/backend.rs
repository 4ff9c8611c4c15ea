//! The stores the behaviour suite runs on, each with a way to look inside it.

use std::sync::Arc;

use idempotent_runtime::Idempotency;
use idempotent_runtime::record::Record;
use idempotent_runtime::store::IdempotencyStore;
use idempotent_runtime::store::memory::MemoryStore;
use idempotent_runtime::store::redis::RedisStore;

use super::redis::RedisServer;

/// Which store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// The in-memory store.
    Memory,
    /// A Redis store on a private `redis-server` started for the test.
    Redis,
}

/// A store under test, kept alive (with its server) as long as this value.
pub struct Backend {
    store: Arc<dyn IdempotencyStore>,
    look: Look,
}

enum Look {
    Memory(MemoryStore),
    Redis(RedisServer),
}

impl Backend {
    /// A fresh, empty store of kind `kind`.
    pub async fn start(kind: Store) -> Backend {
        match kind {
            Store::Memory => {
                let store = MemoryStore::new();
                Backend {
                    store: Arc::new(store.clone()),
                    look: Look::Memory(store),
                }
            }
            Store::Redis => {
                let server = RedisServer::start();
                let store = RedisStore::connect(&server.url())
                    .await
                    .unwrap_or_else(|e| panic!("connect to {}: {e}", server.url()));
                Backend {
                    store: Arc::new(store),
                    look: Look::Redis(server),
                }
            }
        }
    }

    /// The store, to build an `Idempotency` or a wrapper on.
    pub fn store(&self) -> Arc<dyn IdempotencyStore> {
        self.store.clone()
    }

    /// An `Idempotency` over this store, with the default settings.
    pub fn idempotency(&self) -> Idempotency {
        Idempotency::from_arc(self.store())
    }

    /// The live record under `key` (a store key's string form), read directly.
    pub fn get(&self, key: &str) -> Option<Record> {
        match &self.look {
            Look::Memory(store) => store.get(key),
            Look::Redis(server) => server.get(key).map(|bytes| {
                Record::from_json(&bytes)
                    .unwrap_or_else(|e| panic!("the record under {key} does not decode: {e}"))
            }),
        }
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        match &self.look {
            Look::Memory(store) => store.is_empty(),
            Look::Redis(server) => server.dbsize() == 0,
        }
    }
}

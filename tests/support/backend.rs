//! The stores the behaviour suite runs on, each with a way to look inside it.

use std::sync::Arc;
use std::time::Duration;

use idempotent_runtime::Idempotency;
use idempotent_runtime::record::Record;
use idempotent_runtime::store::dynamodb::{DynamoOptions, DynamoStore};
use idempotent_runtime::store::memory::MemoryStore;
use idempotent_runtime::store::postgres::{PostgresOptions, PostgresStore};
use idempotent_runtime::store::redis::RedisStore;
use idempotent_runtime::store::{IdempotencyStore, StoreKey};

use super::dynamodb::{self as moto, MotoServer};
use super::postgres as pg;
use super::redis::RedisServer;

/// The store deadline of the DynamoDB backend. moto serves requests one after another in
/// Python, so that 32 concurrent claims can take longer than the engine's default 300 ms
/// deadline; the behaviour tests are about behaviour, and the deadline is tested against
/// moto in `tests/dynamodb_store.rs`.
const DYNAMODB_DEADLINE: Duration = super::dynamodb::PATIENT;
/// Which store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Store {
    /// The in-memory store.
    Memory,
    /// A Redis store on a private `redis-server` started for the test.
    Redis,
    /// A DynamoDB store in a fresh table of the test binary's shared moto server.
    DynamoDb,
    /// A PostgreSQL store in a fresh table of the test binary's shared private cluster.
    Postgres,
}

/// A store under test, kept alive (with its server) as long as this value.
pub struct Backend {
    store: Arc<dyn IdempotencyStore>,
    look: Look,
}

enum Look {
    Memory(MemoryStore),
    Redis(RedisServer),
    /// The shared server's endpoint and the table.
    DynamoDb {
        endpoint: String,
        table: String,
    },
    /// The shared cluster's URL and the table.
    Postgres {
        url: String,
        table: String,
    },
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
            Store::Postgres => {
                let server = pg::shared();
                let table = pg::table_name("behaviour");
                let store = postgres_store(server.pool().await, &table);
                store
                    .create_table()
                    .await
                    .unwrap_or_else(|e| panic!("create table {table}: {e}"));
                Backend {
                    store: Arc::new(store),
                    look: Look::Postgres {
                        url: server.url(),
                        table,
                    },
                }
            }
            Store::DynamoDb => {
                let server = moto::shared();
                let table = moto::table_name("behaviour");
                let options = DynamoOptions::default().timeout(DYNAMODB_DEADLINE);
                let store = DynamoStore::with_options(server.client(), &table, options)
                    .unwrap_or_else(|e| panic!("a store on {table}: {e}"));
                store
                    .create_table()
                    .await
                    .unwrap_or_else(|e| panic!("create table {table}: {e}"));
                Backend {
                    store: Arc::new(store),
                    look: Look::DynamoDb {
                        endpoint: server.endpoint(),
                        table,
                    },
                }
            }
        }
    }

    /// The store, to build an `Idempotency` or a wrapper on.
    pub fn store(&self) -> Arc<dyn IdempotencyStore> {
        self.store.clone()
    }

    /// An `Idempotency` over this store, with the default settings (but the DynamoDB
    /// backend's longer deadline).
    pub fn idempotency(&self) -> Idempotency {
        Idempotency::from_arc(self.store()).store_timeout(self.deadline())
    }

    /// The store deadline `idempotency` sets: the engine's default, and longer for moto.
    pub fn deadline(&self) -> Duration {
        match self.look {
            Look::DynamoDb { .. } => DYNAMODB_DEADLINE,
            _ => idempotent_runtime::DEFAULT_STORE_TIMEOUT,
        }
    }

    /// A store deadline short enough for a test to wait out a hung store, and long enough for
    /// this store's healthy calls on a loaded machine: 100 ms, and 1 s for moto (Python, one
    /// request at a time).
    pub fn short_deadline(&self) -> Duration {
        match self.look {
            Look::DynamoDb { .. } => Duration::from_secs(1),
            _ => Duration::from_millis(100),
        }
    }

    /// The live record under `key` (a store key's string form), read directly.
    pub fn get(&self, key: &str) -> Option<Record> {
        match &self.look {
            Look::Memory(store) => store.get(key),
            Look::Redis(server) => server.get(key).map(|bytes| {
                Record::from_json(&bytes)
                    .unwrap_or_else(|e| panic!("the record under {key} does not decode: {e}"))
            }),
            Look::DynamoDb { endpoint, table } => {
                let (endpoint, table) = (endpoint.clone(), table.clone());
                let key = StoreKey::parse(key).unwrap_or_else(|| panic!("{key} is no store key"));
                moto::on_own_runtime(move || async move {
                    let client = MotoServer::client_for(&endpoint);
                    DynamoStore::new(client, &table)
                        .get(&key)
                        .await
                        .unwrap_or_else(|e| panic!("reading {key} in {table}: {e}"))
                })
            }
            Look::Postgres { url, table } => {
                let (url, table) = (url.clone(), table.clone());
                let key = StoreKey::parse(key).unwrap_or_else(|| panic!("{key} is no store key"));
                moto::on_own_runtime(move || async move {
                    postgres_store(connect(&url).await, &table)
                        .get(&key)
                        .await
                        .unwrap_or_else(|e| panic!("reading {key} in {table}: {e}"))
                })
            }
        }
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        match &self.look {
            Look::Memory(store) => store.is_empty(),
            Look::Redis(server) => server.dbsize() == 0,
            // Any item, live or expired.
            Look::DynamoDb { endpoint, table } => {
                let (endpoint, table) = (endpoint.clone(), table.clone());
                moto::on_own_runtime(move || async move {
                    MotoServer::client_for(&endpoint)
                        .scan()
                        .table_name(&table)
                        .consistent_read(true)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("scanning {table}: {e}"))
                        .count
                        == 0
                })
            }
            // Any row, live or expired.
            Look::Postgres { url, table } => {
                let (url, table) = (url.clone(), table.clone());
                moto::on_own_runtime(move || async move {
                    let store = postgres_store(connect(&url).await, &table);
                    let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT count(*) FROM {table}"
                    )))
                    .fetch_one(store.pool())
                    .await
                    .unwrap_or_else(|e| panic!("counting the rows of {table}: {e}"));
                    rows == 0
                })
            }
        }
    }
}

/// A store on `table` over `pool`, without the background removal of expired rows.
fn postgres_store(pool: sqlx::PgPool, table: &str) -> PostgresStore {
    let options = PostgresOptions::default()
        .table(table)
        .cleanup_interval(None);
    PostgresStore::with_options(pool, options).unwrap_or_else(|e| panic!("a store on {table}: {e}"))
}

/// A connection of its own to the cluster at `url` (for a look from another runtime).
async fn connect(url: &str) -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"))
}

//! [`Idempotency`]: the app-wide handle, the store plus the settings every route shares.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use http::request::Parts;

use crate::local::LocalCache;
use crate::metrics::Metrics;
use crate::store::IdempotencyStore;
use crate::store::memory::MemoryStore;
use crate::throttle::{LogThrottle, Slots};

type ScopeFn = dyn Fn(&Parts) -> Option<String> + Send + Sync;

/// The idempotency store and the settings shared by every idempotent route of an app.
///
/// With the attribute, register it once, as a layer on the router; `#[idempotent]` handlers
/// find it in the request:
///
/// ```
/// use axum::{Router, routing::post};
/// use idempotent_runtime::{Idempotency, idempotent};
///
/// #[idempotent(key_prefix = "payments")]
/// async fn pay() -> &'static str {
///     "paid"
/// }
///
/// let app: Router = Router::new()
///     .route("/payments", post(pay))
///     .layer(Idempotency::memory());
/// ```
///
/// A `#[idempotent]` route whose app registered none answers 500 and logs an error that
/// names this fix. Without the attribute, [`layer`](Self::layer) makes the middleware that
/// runs the protocol for a [`Policy`](crate::Policy); it holds the store itself, so nothing
/// can be forgotten:
///
/// ```
/// use axum::{Router, routing::post};
/// use idempotent_runtime::{Idempotency, Policy};
///
/// async fn pay() -> &'static str {
///     "paid"
/// }
///
/// let idem = Idempotency::memory();
/// let app: Router = Router::new()
///     .route("/payments", post(pay).layer(idem.layer(Policy::new().key_prefix("payments"))));
/// ```
///
/// Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct Idempotency {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) store: Arc<dyn IdempotencyStore>,
    pub(crate) store_timeout: Duration,
    pub(crate) body_limit: usize,
    pub(crate) max_response_size: usize,
    pub(crate) replay_headers: Arc<[HeaderName]>,
    pub(crate) scope: Option<Arc<ScopeFn>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Completed records this process wrote or read, answered without a round trip.
    pub(crate) local: Option<LocalCache>,
    /// One outage warning per interval.
    pub(crate) outage_log: Arc<LogThrottle>,
    /// The background releases of claims that may land after their deadline.
    pub(crate) late_releases: Arc<Slots>,
}

/// The default deadline of one store call.
pub const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_millis(300);
/// The default limit on a request body read for hashing (`include_body = true`).
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// The default limit on a response kept for replay.
pub const DEFAULT_MAX_RESPONSE_SIZE: usize = 1024 * 1024;

/// At most one outage warning per this long.
const OUTAGE_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Headers that are never replayed, even if listed: cookies and hop-by-hop headers.
const NEVER_REPLAYED: [&str; 10] = [
    "set-cookie",
    "set-cookie2",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl Idempotency {
    /// An in-memory store for one process (see [`MemoryStore`] for its capacity).
    pub fn memory() -> Self {
        Self::new(MemoryStore::new())
    }

    /// Use any [`IdempotencyStore`].
    pub fn new(store: impl IdempotencyStore) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// Use a shared [`IdempotencyStore`].
    pub fn from_arc(store: Arc<dyn IdempotencyStore>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                store_timeout: DEFAULT_STORE_TIMEOUT,
                body_limit: DEFAULT_BODY_LIMIT,
                max_response_size: DEFAULT_MAX_RESPONSE_SIZE,
                replay_headers: Arc::from([
                    http::header::CONTENT_TYPE,
                    http::header::LOCATION,
                    http::header::ETAG,
                    http::header::CACHE_CONTROL,
                ]),
                scope: None,
                metrics: Arc::new(Metrics::default()),
                local: None,
                outage_log: Arc::new(LogThrottle::new(OUTAGE_WARNING_INTERVAL)),
                late_releases: Arc::new(Slots::default()),
            }),
        }
    }

    /// A Redis store at `url` (`redis://`, `rediss://`, `unix://`), shared by every process
    /// that uses the same server. See [`RedisStore`](crate::store::redis::RedisStore).
    #[cfg(feature = "redis")]
    pub async fn redis(url: &str) -> Result<Self, crate::store::StoreError> {
        Ok(Self::new(
            crate::store::redis::RedisStore::connect(url).await?,
        ))
    }

    /// A Redis Cluster store, given the addresses of some of its nodes. See
    /// [`RedisClusterStore`](crate::store::redis::RedisClusterStore).
    #[cfg(feature = "redis")]
    pub async fn redis_cluster(
        nodes: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, crate::store::StoreError> {
        Ok(Self::new(
            crate::store::redis::RedisClusterStore::connect(nodes).await?,
        ))
    }

    /// A DynamoDB store in `table`, over the app's SDK `client`, shared by every process
    /// that uses the same table. Checks that the table exists and has the expected key (one
    /// `DescribeTable`), so that an app that starts without its store finds out at once.
    /// See [`DynamoStore`](crate::store::dynamodb::DynamoStore).
    #[cfg(feature = "dynamodb")]
    pub async fn dynamodb(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
    ) -> Result<Self, crate::store::StoreError> {
        let store = crate::store::dynamodb::DynamoStore::new(client, table);
        store.check_table().await?;
        Ok(Self::new(store))
    }

    /// A PostgreSQL store in the table `idempotency_keys` of `pool`'s database, shared by
    /// every process that uses the same table. Creates the table if it is missing (so that an
    /// app that starts without its database finds out at once) and starts the removal of
    /// expired records in the background. See
    /// [`PostgresStore`](crate::store::postgres::PostgresStore) for other tables and settings,
    /// and [`Tx`](crate::store::postgres::Tx) for the same-transaction mode.
    #[cfg(feature = "postgres")]
    pub async fn postgres(pool: sqlx::PgPool) -> Result<Self, crate::store::StoreError> {
        let store = crate::store::postgres::PostgresStore::new(pool);
        store.create_table().await?;
        store.start_cleanup();
        Ok(Self::new(store))
    }

    fn inner_mut(&mut self) -> &mut Inner {
        Arc::make_mut(&mut self.inner)
    }

    /// Keep the completed records this process writes or reads in a cache of its own, of at
    /// most `max_bytes` (keys and responses; a record also counts 744 bytes for its
    /// structures and the cache's bookkeeping), in front of the store: a replay (or a 304,
    /// or a 422) of a record the process holds costs no round trip, and still answers while
    /// the store is down.
    ///
    /// For a networked store (Redis, PostgreSQL, DynamoDB); the in-memory store is one
    /// already. A record is kept no longer than it lives in the store (its `ttl` from when
    /// it was stored, by this process's clock; a record written by another program, which
    /// does not say when, is not kept), the least recently used first out when the cache is
    /// full. PROCESSING records are never kept, so a duplicate of a request still running
    /// always asks the store. Keys are kept with their prefix and scope, so tenants stay
    /// apart.
    ///
    /// What it trades: a record the store loses before its `ttl` (a Redis failover without
    /// the write, an eviction under `maxmemory`) is still replayed by the processes that
    /// hold it, which is what a retry wants; and so is a record deleted from the store by
    /// hand, until it would have expired.
    ///
    /// Recommended for networked stores: in a Redis Cluster failover under load, it kept
    /// every order this process had completed from running again while the failed master's
    /// replica took over (`RELIABILITY.md`). Off unless asked for, so that a store's round
    /// trips per request are the ones its documentation states.
    pub fn local_cache(mut self, max_bytes: u64) -> Self {
        self.inner_mut().local = Some(LocalCache::new(max_bytes));
        self
    }

    /// The deadline of each store call (default 300 ms). A call that misses it is an outage:
    /// the route fails open or closed as its `fail_open` says.
    pub fn store_timeout(mut self, timeout: Duration) -> Self {
        self.inner_mut().store_timeout = timeout;
        self
    }

    /// The largest request body read for hashing with `include_body = true` (default
    /// 2 MiB); a larger one is answered 413 without being buffered whole. Routes without
    /// `include_body` keep their own extractors' limits.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.inner_mut().body_limit = bytes;
        self
    }

    /// The largest response body kept for replay (default 1 MiB). A larger 2xx response is
    /// still returned, but not stored: the key is released and a warning logged.
    pub fn max_response_size(mut self, bytes: usize) -> Self {
        self.inner_mut().max_response_size = bytes;
        self
    }

    /// Also store and replay this response header (besides `Content-Type`, `Location`,
    /// `ETag` and `Cache-Control`). `Set-Cookie` and hop-by-hop headers are never replayed;
    /// listing one is ignored with a warning.
    pub fn replay_header(mut self, name: HeaderName) -> Self {
        if NEVER_REPLAYED.contains(&name.as_str()) {
            tracing::warn!(header = %name, "idempotency: header is never replayed; ignoring it");
            return self;
        }
        let inner = self.inner_mut();
        if !inner.replay_headers.contains(&name) {
            let mut headers = inner.replay_headers.to_vec();
            headers.push(name);
            inner.replay_headers = headers.into();
        }
        self
    }

    /// Scope keys by tenant: `scope` maps the request's parts (headers, extensions set by
    /// an authentication layer, ...) to a tenant id, and the same key sent by two tenants
    /// names two different records. Returning `None` leaves the key unscoped.
    ///
    /// ```
    /// # use idempotent_runtime::Idempotency;
    /// let idem = Idempotency::memory().scope(|parts| {
    ///     parts.headers.get("x-tenant").and_then(|v| v.to_str().ok()).map(str::to_owned)
    /// });
    /// # drop(idem);
    /// ```
    pub fn scope(
        mut self,
        scope: impl Fn(&Parts) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.inner_mut().scope = Some(Arc::new(scope));
        self
    }

    /// Counters of what the layer did, for dashboards and alerts.
    pub fn metrics(&self) -> crate::metrics::MetricsSnapshot {
        self.inner.metrics.snapshot()
    }
}

impl fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Idempotency")
            .field("store_timeout", &self.inner.store_timeout)
            .field("body_limit", &self.inner.body_limit)
            .field("max_response_size", &self.inner.max_response_size)
            .field("replay_headers", &self.inner.replay_headers)
            .field("scoped", &self.inner.scope.is_some())
            .finish_non_exhaustive()
    }
}

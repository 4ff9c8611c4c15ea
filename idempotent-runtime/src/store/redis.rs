//! [`RedisStore`] and [`RedisClusterStore`]: records shared by every process that talks to
//! the same Redis (feature `redis`).
//!
//! ```no_run
//! # async fn start() -> Result<(), idempotent_runtime::store::StoreError> {
//! use idempotent_runtime::Idempotency;
//!
//! // One server (or a primary behind a proxy / Sentinel-managed address):
//! let idem = Idempotency::redis("redis://127.0.0.1:6379").await?;
//! // A cluster, given some of its nodes:
//! let idem = Idempotency::redis_cluster(["redis://10.0.0.1:6379", "redis://10.0.0.2:6379"]).await?;
//! # drop(idem);
//! # Ok(())
//! # }
//! ```
//!
//! For TLS, a password or other connection settings, build a [`redis::Client`] (or a
//! [`ClusterClientBuilder`]) yourself, with the same `redis` major version (1.x), and hand
//! it over with [`RedisStore::from_client`] ([`RedisClusterStore::from_builder`]); to change
//! the timeouts, pass [`RedisOptions`]:
//!
//! ```no_run
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use idempotent_runtime::Idempotency;
//! use idempotent_runtime::store::redis::{RedisOptions, RedisStore};
//!
//! let client = redis::Client::open("rediss://:secret@cache.internal:6380")?;
//! let options = RedisOptions::default().timeout(Duration::from_millis(150));
//! let idem = Idempotency::new(RedisStore::from_client(client, options).await?);
//! # drop(idem);
//! # Ok(())
//! # }
//! ```
//!
//! # What is stored
//!
//! The key is the engine's store key, verbatim: `idempotency:{key_prefix}:{key}`. The value
//! is the record's JSON (see [`crate::record`]): a completed record is the Spring
//! `@Idempotent` aspect's `{"statusCode":…,"body":…,"bodyHash":…}` plus optional fields, so
//! a Spring service and a Rust service can share one Redis during a port, in both
//! directions. A record written by Spring (no `headers`) replays with
//! `Content-Type: application/json`. Completed records expire after the handler's `ttl`,
//! PROCESSING records (`{"state":"PROCESSING","token":…}`) after its `lock_ttl`, both with
//! `PX`; a PROCESSING record whose owner died therefore disappears by itself and the next
//! request claims the key.
//!
//! # Round trips
//!
//! Each store operation is one Redis command, so it is atomic in Redis and costs one round
//! trip: the claim is one `SET`, complete and release are each one Lua script sent with
//! `EVALSHA`:
//!
//! | request | commands |
//! |---|---|
//! | replay (key completed, same body) | 1: claim (`SET`), which returns the stored record |
//! | mismatch (different body) | 1: claim |
//! | conflict (key still PROCESSING) | 1: claim |
//! | first execution | 2: claim, then complete (or release, for a non-2xx answer: `EVALSHA`) |
//! | missing or invalid key | 0 |
//!
//! - **claim**: `SET key processing NX GET PX lock_ttl`. If a value is there, Redis returns
//!   it and writes nothing; otherwise it writes the PROCESSING record and returns nil. Of
//!   any number of concurrent claims, across processes, exactly one finds the key empty.
//! - **complete**: write the completed record with `PX ttl` if the key is absent (the lock
//!   expired and nobody claimed it since) or holds this claim's PROCESSING record;
//!   otherwise refuse ([`Fence::Refused`]).
//! - **release**: `DEL` only if the key holds this claim's PROCESSING record.
//! - **renew** (lease renewal, while a handler runs past half its `lock_ttl`): `PEXPIRE key
//!   lock_ttl` only if the key holds this claim's PROCESSING record: one `EVALSHA` per
//!   renewal, none for a handler that finishes within half its `lock_ttl`.
//!
//! `SET` with both `NX` and `GET` needs Redis 7.0 or later; Redis 6.2 and earlier answer it
//! with `ERR syntax error` and write nothing. On that answer the store makes the same claim
//! with a Lua script (`GET`; if a value is there, return it; otherwise `SET key processing
//! PX lock_ttl`), sent with `EVALSHA`, and keeps using the script for every later claim: one
//! extra round trip, once, logged at `info`. The switch follows the server's answer rather
//! than a version read at connect, so it also holds when a cluster in the middle of an
//! upgrade, or a failover, puts an older server behind the store.
//!
//! The scripts (the claim script included) are loaded (`SCRIPT LOAD`) when the store
//! connects. If Redis forgets them (a restart, `SCRIPT FLUSH`, a failover to a replica that
//! never saw them), the call that meets `NOSCRIPT` sends the script's source once with
//! `EVAL`, which also puts it back in Redis's script cache: one extra round trip, once.
//!
//! "This claim's PROCESSING record" is decided inside Redis, by the beginning of the value:
//! it must start with exactly `{"state":"PROCESSING","token":"<token>"`, which the store
//! builds from the claim's token as the record's JSON writes it (see [`crate::record`]).
//! The token is a random 128-bit value, the closing quote ends it and a completed record
//! starts with `{"statusCode"`, so only this claim's own PROCESSING record matches. The
//! scripts read the value with `GETRANGE key 0 len-1`, the length of that prefix: no JSON
//! is decoded, and no more of a (possibly large) completed record is read. (An empty range
//! is an absent key or an empty value; complete tells them apart with `EXISTS`, so that it
//! never overwrites a value that is not its own.)
//!
//! # Outages
//!
//! Every call is bounded by [`RedisOptions::timeout`] (250 ms by default), the connection
//! included; the engine adds its own deadline on top. A call that fails or times out is a
//! [`StoreError`], which the engine treats as an outage: with `fail_open = true` the
//! handler runs and nothing is written, with `fail_open = false` the request is answered
//! 503 with `Retry-After`.
//!
//! - Redis down (connection refused or reset): calls fail within the timeout, and the
//!   connection is re-established in the background with an exponential backoff capped at
//!   [`RedisOptions::reconnect_max_delay`] (500 ms, plus up to 100 % jitter), so
//!   idempotency resumes within about a second of Redis coming back, without a request
//!   having to fail first.
//! - Redis hung (no answer): each command times out after the timeout; the connection is
//!   kept and serves again as soon as Redis answers.
//! - A claim that fails after it was sent (a timeout, a connection lost while waiting for
//!   the answer) may still run once Redis answers again, leaving a PROCESSING record that
//!   the caller, told the claim failed, will never complete. Such a failure is marked
//!   [`StoreError::indeterminate`], and the engine releases the claim, fenced by its
//!   token, in the background; failing that, it expires after `lock_ttl`.
//! - A value under a key that is not a record this crate (or the Spring aspect) wrote, or
//!   a key of another Redis type, is also a [`StoreError`], not a panic and not "absent":
//!   treating it as absent would overwrite data the store does not own, and treating it as
//!   a conflict would block the key forever. The request fails open or closed as
//!   configured, and the value is left alone.
//!
//! [`ClusterClientBuilder`]: redis::cluster::ClusterClientBuilder

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, ErrorKind, RedisError, ServerErrorKind, Value};

use super::{
    Claim, ClaimOutcome, Fence, IdempotencyStore, Record, StoreError, StoreErrorKind, StoreKey,
    StoredResponse, Token,
};

/// Connection settings of a [`RedisStore`] or [`RedisClusterStore`].
///
/// ```
/// use std::time::Duration;
/// use idempotent_runtime::store::redis::RedisOptions;
///
/// let options = RedisOptions::default()
///     .timeout(Duration::from_millis(200))
///     .connection_timeout(Duration::from_millis(200))
///     .reconnect_max_delay(Duration::from_secs(1));
/// # drop(options);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisOptions {
    /// The longest one store call may take, waiting for a connection included; also the
    /// Redis response timeout. Default 250 ms.
    pub timeout: Duration,
    /// The longest one connection attempt may take (TCP, TLS and handshake). Default 250 ms.
    pub connection_timeout: Duration,
    /// The longest pause between two reconnection attempts while Redis is unreachable
    /// (each pause also gets up to 100 % random jitter). Default 500 ms.
    pub reconnect_max_delay: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(250),
            connection_timeout: Duration::from_millis(250),
            reconnect_max_delay: Duration::from_millis(500),
        }
    }
}

impl RedisOptions {
    /// Set [`timeout`](Self::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Set [`connection_timeout`](Self::connection_timeout).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// Set [`reconnect_max_delay`](Self::reconnect_max_delay).
    pub fn reconnect_max_delay(mut self, delay: Duration) -> Self {
        self.reconnect_max_delay = delay;
        self
    }
}

/// The first pause before reconnecting; it doubles up to `reconnect_max_delay`.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(50);
/// Reconnection attempts in one background run (one to two minutes at the default maximum
/// delay). After that, the next call starts a new run.
const RECONNECT_ATTEMPTS: usize = 100;

/// A store on one Redis server, over a [`ConnectionManager`]: one multiplexed connection
/// shared by every request, re-established by itself after a failure.
///
/// See the [module docs](self) for what is stored, the round trips and outage behaviour.
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct RedisStore {
    backend: Backend<ConnectionManager>,
}

impl RedisStore {
    /// Connect to `url` (`redis://`, `rediss://`, `unix://`, with optional user, password
    /// and database) with the default [`RedisOptions`].
    ///
    /// Fails if the URL is invalid or Redis does not answer within
    /// `connection_timeout + timeout`: an app that starts without its store finds out at
    /// once rather than on the first request.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, RedisOptions::default()).await
    }

    /// Connect to `url` with the given options. See [`connect`](Self::connect).
    pub async fn connect_with(url: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::with_source("redis: invalid connection URL", e))?;
        Self::from_client(client, options).await
    }

    /// Use a [`redis::Client`] you configured (TLS, credentials, protocol, database), with
    /// the given options. See [`connect`](Self::connect).
    pub async fn from_client(
        client: redis::Client,
        options: RedisOptions,
    ) -> Result<Self, StoreError> {
        let deadline = options.connection_timeout + options.timeout;
        // One plain attempt first: it loads the scripts and, if Redis is unreachable, fails
        // at once with the cause (the manager below would keep retrying until the deadline).
        let probe = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(options.connection_timeout))
            .set_response_timeout(Some(options.timeout));
        within(deadline, "redis: cannot connect", async {
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&probe)
                .await?;
            load_scripts(&mut conn).await
        })
        .await?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(options.timeout))
            .set_connection_timeout(Some(options.connection_timeout))
            .set_min_delay(RECONNECT_MIN_DELAY.min(options.reconnect_max_delay))
            .set_max_delay(options.reconnect_max_delay)
            .set_exponent_base(2.0)
            .set_number_of_retries(RECONNECT_ATTEMPTS);
        let conn = within(
            deadline,
            "redis: cannot connect",
            ConnectionManager::new_with_config(client, config),
        )
        .await?;
        tracing::info!("idempotency: connected to redis");
        Ok(Self {
            backend: Backend::new(conn, options.timeout),
        })
    }
}

/// A store on a Redis Cluster, over a [`ClusterConnection`]: it follows the slot map,
/// redirections and failovers by itself.
///
/// Every operation touches one key, so records spread over all slots and no hash tags are
/// needed. See the [module docs](self) for what is stored, the round trips and outage
/// behaviour. Cloning is cheap and shares the connections.
///
/// # Failover
///
/// While a master is down and until its replica takes over, calls for its slots fail within
/// the timeout, and routes fail open or closed as configured. With Redis's default
/// `cluster-require-full-coverage yes`, the other masters also refuse every command
/// (`CLUSTERDOWN`) from the moment the cluster marks the master failed until the replica is
/// promoted (the replica's election delay: 0.7 to 1.1 s measured), so for that time every
/// claim, on every slot, waits out the timeout and fails. Set `cluster-require-full-coverage
/// no` on the servers to keep the other masters' keys idempotent during a failover. A
/// [local cache](crate::Idempotency::local_cache) keeps replaying the records this process
/// completed or read, on every slot, throughout.
///
/// The cluster connection updates its slot map when a node answers with an error or closes
/// the connection, not when a call times out: a master that stops answering without closing
/// its connections (a hung process, a host gone from the network) keeps receiving the calls
/// for its slots, which time out, even after its replica has taken over.
#[derive(Clone)]
pub struct RedisClusterStore {
    backend: Backend<ClusterConnection>,
}

impl RedisClusterStore {
    /// Connect to the cluster that `nodes` (URLs of some of its nodes) belong to, with the
    /// default [`RedisOptions`].
    ///
    /// Fails if a URL is invalid or the cluster does not answer within
    /// `connection_timeout + timeout`.
    pub async fn connect(
        nodes: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Result<Self, StoreError> {
        Self::connect_with(nodes, RedisOptions::default()).await
    }

    /// Connect to the cluster with the given options. See [`connect`](Self::connect).
    pub async fn connect_with(
        nodes: impl IntoIterator<Item = impl AsRef<str>>,
        options: RedisOptions,
    ) -> Result<Self, StoreError> {
        let nodes: Vec<String> = nodes.into_iter().map(|n| n.as_ref().to_owned()).collect();
        if nodes.is_empty() {
            return Err(StoreError::new("redis cluster: no node given"));
        }
        Self::from_builder(redis::cluster::ClusterClient::builder(nodes), options).await
    }

    /// Use a [`ClusterClientBuilder`] you configured (TLS, credentials, retries); the
    /// options' `timeout` and `connection_timeout` are applied to it
    /// (`reconnect_max_delay` is not: the cluster connection reconnects to each node by
    /// itself, as the builder's retry settings say). See [`connect`](Self::connect).
    ///
    /// Keep the builder's retry waits (`min_retry_wait`, `max_retry_wait`) at their
    /// defaults: with waits shorter than the timeout, so that a call refused during a
    /// failover (`CLUSTERDOWN`) is retried within it, the cluster connection (redis 1.8)
    /// stopped answering any call once a master had been killed under load, and did not
    /// recover after its replica took over.
    pub async fn from_builder(
        builder: ClusterClientBuilder,
        options: RedisOptions,
    ) -> Result<Self, StoreError> {
        let client = builder
            .connection_timeout(options.connection_timeout)
            .response_timeout(options.timeout)
            .build()
            .map_err(|e| StoreError::with_source("redis cluster: invalid settings", e))?;
        let deadline = options.connection_timeout + options.timeout;
        let conn = within(deadline, "redis cluster: cannot connect", async {
            let mut conn = client.get_async_connection().await?;
            load_scripts(&mut conn).await?;
            Ok(conn)
        })
        .await?;
        tracing::info!("idempotency: connected to redis cluster");
        Ok(Self {
            backend: Backend::new(conn, options.timeout),
        })
    }
}

/// Both stores are a [`Backend`] over their connection type.
macro_rules! delegate_to_backend {
    ($($store:ty => $name:literal),*) => {$(
        impl std::fmt::Debug for $store {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($store))
                    .field("timeout", &self.backend.timeout)
                    .finish_non_exhaustive()
            }
        }

        #[async_trait]
        impl IdempotencyStore for $store {
            async fn claim(&self, key: &StoreKey, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
                self.backend.claim(key.as_str(), claim).await
            }

            async fn complete(
                &self,
                key: &StoreKey,
                token: &Token,
                response: StoredResponse,
                ttl: Duration,
            ) -> Result<Fence, StoreError> {
                self.backend.complete(key.as_str(), token, response, ttl).await
            }

            async fn release(&self, key: &StoreKey, token: &Token) -> Result<Fence, StoreError> {
                self.backend.release(key.as_str(), token).await
            }

            async fn renew(
                &self,
                key: &StoreKey,
                token: &Token,
                lock_ttl: Duration,
            ) -> Result<Fence, StoreError> {
                self.backend.renew(key.as_str(), token, lock_ttl).await
            }

            fn name(&self) -> &'static str {
                $name
            }
        }
    )*};
}

delegate_to_backend!(RedisStore => "redis", RedisClusterStore => "redis_cluster");

/// A Lua script and its SHA-1, for `EVALSHA`.
struct Lua {
    name: &'static str,
    source: &'static str,
    sha: String,
}

impl Lua {
    fn new(name: &'static str, source: &'static str) -> Self {
        Self {
            name,
            source,
            sha: redis::Script::new(source).get_hash().to_owned(),
        }
    }
}

/// The claim on servers that refuse `SET … NX GET` (before Redis 7.0): `KEYS[1]` the store
/// key, `ARGV[1]` the PROCESSING record, `ARGV[2]` `lock_ttl` in ms. Returns the value found,
/// or nil after writing the claim, as `SET … NX GET` does.
static CLAIM: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        "claim",
        r"local v = redis.call('GET', KEYS[1])
if v then return v end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false",
    )
});

/// Prepends `head(k, p)`: the first `#p` bytes of the value under `k` (`GETRANGE`, so no
/// more of a large completed record is read), `""` when the key is absent or its value
/// empty. The value is the PROCESSING record of the claim whose record starts with `p`
/// ([`Record::processing_prefix`] of its token) exactly when `head(k, p) == p`.
macro_rules! with_head {
    ($body:literal) => {
        concat!(
            "local function head(k, p)
  return redis.call('GETRANGE', k, 0, #p - 1)
end
",
            $body
        )
    };
}

/// `KEYS[1]` the store key, `ARGV[1]` the claim's PROCESSING prefix, `ARGV[2]` the completed
/// record, `ARGV[3]` `ttl` in ms. Returns 1 if written, 0 if refused.
static COMPLETE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        "complete",
        with_head!(
            "local v = head(KEYS[1], ARGV[1])
if v == '' then
  if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
elseif v ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1"
        ),
    )
});

/// `KEYS[1]` the store key, `ARGV[1]` the claim's PROCESSING prefix. Returns 1 if deleted, 0
/// if refused.
static RELEASE: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        "release",
        with_head!(
            "if head(KEYS[1], ARGV[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0"
        ),
    )
});

/// `KEYS[1]` the store key, `ARGV[1]` the claim's PROCESSING prefix, `ARGV[2]` the new
/// `lock_ttl` in ms. Returns 1 if the lease was extended, 0 if refused (the key no longer
/// holds this claim: it completed, was released, expired or was taken over).
static RENEW: LazyLock<Lua> = LazyLock::new(|| {
    Lua::new(
        "renew",
        with_head!(
            "if head(KEYS[1], ARGV[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0"
        ),
    )
});

/// A time in whole milliseconds for `PX`: at least 1 (Redis rejects 0), at most `i64::MAX`.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis())
        .unwrap_or(i64::MAX as u64)
        .clamp(1, i64::MAX as u64)
}

/// A failed call, and whether its command may still have run in Redis.
struct Failure {
    error: StoreError,
    maybe_applied: bool,
}

/// The store logic, generic over the two kinds of connection.
#[derive(Clone)]
struct Backend<C> {
    conn: C,
    timeout: Duration,
    /// Set once the server refused `SET … NX GET` (Redis before 7.0): claims run the
    /// [`CLAIM`] script from then on. Shared by clones.
    claim_by_script: Arc<AtomicBool>,
}

impl<C> Backend<C>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    fn new(conn: C, timeout: Duration) -> Self {
        Self {
            conn,
            timeout,
            claim_by_script: Arc::new(AtomicBool::new(false)),
        }
    }

    async fn claim(&self, key: &str, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        let record = claim.to_processing().to_json();
        let lock_ttl = millis(claim.lock_ttl).to_string();
        let found = match self
            .call("claim", || self.claim_once(key, &record, &lock_ttl))
            .await
        {
            Ok(found) => found,
            Err(failure) if failure.maybe_applied => return Err(failure.error.indeterminate()),
            Err(failure) => return Err(failure.error),
        };
        let bytes = match found {
            Value::Nil | Value::Boolean(false) => return Ok(ClaimOutcome::Claimed),
            Value::BulkString(bytes) => bytes,
            other => return Err(unexpected("claim", &other)),
        };
        match Record::from_json(&bytes) {
            // Only possible if this very claim reached Redis twice: it is ours.
            Ok(record) if record.is_owned_by(&claim.token) => Ok(ClaimOutcome::Claimed),
            Ok(record) => Ok(ClaimOutcome::Existing(record)),
            Err(e) => {
                tracing::debug!(error = %e, "idempotency: redis holds a value that is not an idempotency record under a store key");
                Err(StoreError::with_source(
                    "redis: the value under the key is not an idempotency record",
                    e,
                )
                .with_kind(StoreErrorKind::Undecodable))
            }
        }
    }

    async fn complete(
        &self,
        key: &str,
        token: &Token,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<Fence, StoreError> {
        let prefix = Record::processing_prefix(token);
        let record = Record::Completed(Arc::new(response)).to_json();
        let ttl = millis(ttl).to_string();
        self.fenced(
            &COMPLETE,
            key,
            &[prefix.as_bytes(), &record, ttl.as_bytes()],
        )
        .await
    }

    async fn release(&self, key: &str, token: &Token) -> Result<Fence, StoreError> {
        let prefix = Record::processing_prefix(token);
        self.fenced(&RELEASE, key, &[prefix.as_bytes()]).await
    }

    async fn renew(
        &self,
        key: &str,
        token: &Token,
        lock_ttl: Duration,
    ) -> Result<Fence, StoreError> {
        let prefix = Record::processing_prefix(token);
        let lock_ttl = millis(lock_ttl).to_string();
        self.fenced(&RENEW, key, &[prefix.as_bytes(), lock_ttl.as_bytes()])
            .await
    }

    /// Run a fenced write's `script` (1 if applied, 0 if refused).
    async fn fenced(&self, script: &Lua, key: &str, args: &[&[u8]]) -> Result<Fence, StoreError> {
        let done = self
            .call(script.name, || self.eval_once(script, key, args))
            .await
            .map_err(|f| f.error)?;
        fence(script.name, &done)
    }

    /// Run the operation `op`, which `send` sends once, bounded by the timeout; on failure,
    /// say whether it may still have run in Redis.
    async fn call<F, Fut>(&self, op: &'static str, send: F) -> Result<Value, Failure>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Value, RedisError>>,
    {
        let run = async {
            match send().await {
                // The connection could not be opened, so the command was never sent: a
                // reconnection has just been started; wait for it, within the deadline.
                Err(e) if e.is_connection_refusal() => send().await,
                other => other,
            }
        };
        match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                tracing::debug!(op, error = %e, "idempotency: redis call failed");
                // Redis answered with an error (the command did not write), or the command
                // was never sent; anything else (a timeout, a connection lost while waiting
                // for the answer) may still have run.
                let answered = matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension);
                Err(Failure {
                    maybe_applied: !answered && !e.is_connection_refusal(),
                    error: StoreError::with_source(format!("redis: {op} failed"), e),
                })
            }
            Err(_) => {
                tracing::debug!(op, timeout = ?self.timeout, "idempotency: redis call timed out");
                Err(Failure {
                    maybe_applied: true,
                    error: StoreError::new(format!(
                        "redis: {op} timed out after {:?}",
                        self.timeout
                    )),
                })
            }
        }
    }

    /// `SET key record NX GET PX lock_ttl`; on a server that refuses it (which wrote
    /// nothing), the [`CLAIM`] script, which is all later claims send.
    async fn claim_once(
        &self,
        key: &str,
        record: &[u8],
        lock_ttl: &str,
    ) -> Result<Value, RedisError> {
        if !self.claim_by_script.load(Ordering::Relaxed) {
            let mut cmd = redis::cmd("SET");
            cmd.arg(key)
                .arg(record)
                .arg("NX")
                .arg("GET")
                .arg("PX")
                .arg(lock_ttl);
            let mut conn = self.conn.clone();
            match cmd.query_async(&mut conn).await {
                Err(e) if refuses_set_nx_get(&e) => {
                    if !self.claim_by_script.swap(true, Ordering::Relaxed) {
                        tracing::info!(error = %e, "idempotency: redis refuses SET with both NX and GET (Redis before 7.0); claims use a Lua script from now on");
                    }
                }
                other => return other,
            }
        }
        self.eval_once(&CLAIM, key, &[record, lock_ttl.as_bytes()])
            .await
    }

    /// `EVALSHA`; on `NOSCRIPT`, `EVAL` (which also caches the script again).
    async fn eval_once(
        &self,
        script: &Lua,
        key: &str,
        args: &[&[u8]],
    ) -> Result<Value, RedisError> {
        let mut conn = self.conn.clone();
        match invocation("EVALSHA", &script.sha, key, args)
            .query_async(&mut conn)
            .await
        {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                tracing::debug!(
                    script = script.name,
                    "idempotency: redis lost the script; sending it again"
                );
                invocation("EVAL", script.source, key, args)
                    .query_async(&mut conn)
                    .await
            }
            other => other,
        }
    }
}

/// Whether `e` is a server's refusal of the options of `SET … NX GET`: Redis 6.2, which does
/// not allow `NX` with `GET`, and earlier versions, which lack `GET`, answer
/// `ERR syntax error`, having written nothing (an `ERR` that names an option counts too).
/// Any other answer (`WRONGTYPE` for a key of another type, out of memory, a read-only
/// replica…) and any failure to get an answer is not: it is the claim's result.
fn refuses_set_nx_get(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ResponseError)
        && e.detail().is_some_and(|detail| {
            let detail = detail.to_ascii_lowercase();
            detail.contains("syntax") || detail.contains("option")
        })
}

/// Load the scripts (on every node of a cluster), so that calls are one `EVALSHA` each.
async fn load_scripts(conn: &mut impl ConnectionLike) -> Result<(), RedisError> {
    for script in [&*CLAIM, &*COMPLETE, &*RELEASE, &*RENEW] {
        let mut cmd = redis::cmd("SCRIPT");
        cmd.arg("LOAD").arg(script.source);
        cmd.query_async::<Value>(conn).await?;
    }
    Ok(())
}

/// `work` bounded by `deadline`; its failure (or the deadline) as a `StoreError`.
async fn within<T>(
    deadline: Duration,
    what: &'static str,
    work: impl Future<Output = Result<T, RedisError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(deadline, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(StoreError::with_source(what, e)),
        Err(_) => Err(StoreError::new(format!(
            "{what}: no answer within {deadline:?}"
        ))),
    }
}

fn invocation(command: &str, script: &str, key: &str, args: &[&[u8]]) -> Cmd {
    let mut cmd = redis::cmd(command);
    cmd.arg(script).arg(1).arg(key);
    for arg in args {
        cmd.arg(*arg);
    }
    cmd
}

fn fence(op: &'static str, value: &Value) -> Result<Fence, StoreError> {
    match value {
        Value::Int(1) => Ok(Fence::Applied),
        Value::Int(0) => Ok(Fence::Refused),
        other => Err(unexpected(op, other)),
    }
}

/// A reply the operation `op` never gets. Only its type is reported: a stored value may
/// hold a response body, which has no place in logs.
fn unexpected(op: &'static str, value: &Value) -> StoreError {
    let kind = match value {
        Value::Nil => "nil",
        Value::Int(_) => "an integer",
        Value::BulkString(_) | Value::SimpleString(_) | Value::VerbatimString { .. } => "a string",
        Value::Array(_) | Value::Set(_) | Value::Map(_) => "a collection",
        _ => "another type",
    };
    StoreError::new(format!("redis: unexpected reply to {op}: {kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_is_a_valid_px() {
        assert_eq!(millis(Duration::ZERO), 1);
        assert_eq!(millis(Duration::from_micros(1500)), 1);
        assert_eq!(millis(Duration::from_secs(90)), 90_000);
        assert_eq!(millis(Duration::MAX), i64::MAX as u64);
    }

    #[test]
    fn scripts_share_the_ownership_test() {
        let head = with_head!("");
        for script in [&*COMPLETE, &*RELEASE, &*RENEW] {
            assert!(script.source.starts_with(head), "{}", script.name);
            // Only the prefix's length is read: never the whole value.
            assert!(!script.source.contains("'GET'"), "{}", script.name);
        }
        assert!(head.contains("'GETRANGE', k, 0, #p - 1"), "{head}");
        for script in [&*CLAIM, &*COMPLETE, &*RELEASE, &*RENEW] {
            assert!(!script.source.contains("cjson"), "{}", script.name);
            assert!(!script.source.contains("string.find"), "{}", script.name);
        }
        assert_eq!(CLAIM.sha.len(), 40);
        assert_ne!(COMPLETE.sha, RELEASE.sha);
        assert_ne!(RELEASE.sha, RENEW.sha);
    }

    /// A server's error reply, as the client library reads it off the wire.
    fn answer(reply: &str) -> RedisError {
        match redis::parse_redis_value(reply.as_bytes()).and_then(Value::extract_error) {
            Err(e) => e,
            Ok(value) => panic!("{reply:?} is not an error: {value:?}"),
        }
    }

    #[test]
    fn only_a_refusal_of_the_options_switches_claims_to_the_script() {
        // Redis 6.2 (NX with GET) and 6.0 (no GET) give this answer to `SET … NX GET`.
        assert!(refuses_set_nx_get(&answer("-ERR syntax error\r\n")));
        assert!(refuses_set_nx_get(&answer(
            "-ERR unsupported option 'GET'\r\n"
        )));
        for other in [
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
            "-READONLY You can't write against a read only replica.\r\n",
            "-NOPERM User has no permissions to run the 'set' command\r\n",
            "-LOADING Redis is loading the dataset in memory\r\n",
            "-MOVED 3999 127.0.0.1:6381\r\n",
            "-ERR max number of clients reached\r\n",
        ] {
            assert!(!refuses_set_nx_get(&answer(other)), "{other:?}");
        }
        let io = RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "syntax error",
        ));
        assert!(!refuses_set_nx_get(&io), "not an answer");
    }
}

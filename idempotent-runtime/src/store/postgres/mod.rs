//! [`PostgresStore`]: records in a PostgreSQL table, and the same-transaction mode, in which
//! a handler's own writes and its idempotency record commit together (feature `postgres`).
//!
//! The store runs over the app's sqlx pool:
//!
//! ```no_run
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! use idempotent_runtime::Idempotency;
//!
//! let pool = sqlx::PgPool::connect("postgres://app@127.0.0.1/app").await?;
//! // Creates the table `idempotency_keys` if it is missing, and starts the removal of
//! // expired records in the background.
//! let idem = Idempotency::postgres(pool).await?;
//! # drop(idem);
//! # Ok(())
//! # }
//! ```
//!
//! The feature builds sqlx without its query macros (no database is needed at build time)
//! and needs Rust 1.94 or later, sqlx's own minimum.
//!
//! # The table
//!
//! `idempotency_keys` by default ([`PostgresOptions::table`]). [`Idempotency::postgres`](crate::Idempotency::postgres)
//! and [`PostgresStore::create_table`] create it (and its index) if it is missing, under an
//! advisory lock so that processes starting together do not race; for teams that run
//! their own migrations, this is the schema ([`PostgresStore::schema`] prints it for any
//! table name):
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS "idempotency_keys" (
//!     key           text        PRIMARY KEY,
//!     state         text        NOT NULL CHECK (state IN ('processing', 'completed')),
//!     token         text        NOT NULL,
//!     fingerprint   text,
//!     status        smallint,
//!     header_names  text[],
//!     header_values bytea[],
//!     body          bytea,
//!     stored_at     timestamptz,
//!     expires_at    timestamptz NOT NULL
//! );
//! CREATE INDEX IF NOT EXISTS "idempotency_keys_expires_at_idx" ON "idempotency_keys" (expires_at);
//! ```
//!
//! One row per store key (`idempotency:{key_prefix}:{key}`), holding the record of
//! [`crate::record`]: its `state`, the claim's `token` (of a completed record, the claim that
//! completed it), the request's `fingerprint`, and for a completed record the response's
//! `status`, replayable headers (names, and values byte for byte) and `body`, and when it
//! was stored. A PROCESSING row expires after the handler's `lock_ttl`, a completed one
//! after its `ttl`; every statement compares `expires_at` with the database server's clock
//! (`statement_timestamp()`), so processes with skewed clocks agree.
//!
//! # Round trips
//!
//! One statement per store operation:
//!
//! | request | statements |
//! |---|---|
//! | replay (key completed, same body) | 1: the claim, which returns the stored record |
//! | mismatch (different body) | 1: the claim |
//! | conflict (key still PROCESSING) | 1: the claim |
//! | first execution | 2: the claim, then complete (or release, for a non-2xx answer) |
//! | missing or invalid key | 0 |
//!
//! - **claim**: one statement that inserts the PROCESSING row (`ON CONFLICT DO NOTHING`),
//!   or takes over the key's expired row, or else returns the live row. The primary key
//!   makes it atomic: of any number of concurrent claims, across processes, exactly one
//!   gets the key. A duplicate of a live record writes nothing: no dead tuple, no
//!   transaction id, no WAL, so a replay costs a read. When a concurrent claim commits
//!   between the statement's snapshot and its insert, the statement finds nothing it can
//!   answer with, and the store sends it again (a second round trip, under a race only).
//! - **complete**: an upsert of the completed row, applied over this claim's row or where
//!   the key is free, refused ([`Fence::Refused`]) where another live record is.
//! - **release**: a `DELETE` of this claim's PROCESSING row.
//! - **renew** (lease renewal, while a handler runs past half its `lock_ttl`): an `UPDATE`
//!   of this claim's live PROCESSING row's `expires_at`.
//!
//! The pool's own checks add round trips that are not statements:
//!
//! - sqlx's pool tests every connection given back to it with a round trip (a `Sync`
//!   message) before it hands it out again, whatever its settings: by default, each store
//!   operation takes a connection from the pool and gives it back, so it costs its
//!   statement and that test. [`PostgresOptions::keep_connections`] lets the store keep
//!   some of the pool's connections between its operations: an operation on a kept
//!   connection is its statement alone.
//! - with `test_before_acquire` (sqlx's default) every checkout pings the server first.
//!   Turn it off on a pool whose connections are used often
//!   (`PgPoolOptions::test_before_acquire`): a broken connection then fails one call (an
//!   outage, handled as such) and is replaced.
//!
//! # Expired records
//!
//! A background task deletes expired rows every [`PostgresOptions::cleanup_interval`]
//! (one minute by default), in batches of [`PostgresOptions::cleanup_batch`] rows (1000),
//! oldest first, until fewer than a batch are left. Each batch is one short statement that
//! locks only the rows it deletes, skips rows another transaction holds, and re-checks
//! each row's expiry as it locks it: a live record is never deleted, and no table-wide
//! lock is taken. Processes sharing the table share the work. [`PostgresStore::delete_expired`]
//! runs one batch on demand (for an app that schedules the removal itself and sets
//! `cleanup_interval(None)`).
//!
//! # Outages
//!
//! A call that fails is a [`StoreError`], which the engine treats as an outage
//! (`fail_open`): a connection that cannot be opened or handed out by the pool, or an error
//! answered by the server, is [`Unavailable`](StoreErrorKind::Unavailable); a connection
//! lost while waiting for an answer is [`Indeterminate`](StoreErrorKind::Indeterminate)
//! (for a claim, the engine then releases it, fenced, in the background); a row this store
//! cannot decode is [`Undecodable`](StoreErrorKind::Undecodable). A paused server is a
//! call that misses the engine's deadline. The pool replaces broken connections by itself,
//! so idempotency resumes when the server is back, without restarting the app.
//!
//! # The same-transaction mode
//!
//! A handler that writes to the same database can take the request's transaction with the
//! [`Tx`] extractor. The engine begins nothing until the handler asks; then it commits the
//! handler's writes and the completed record **in that one transaction** before answering:
//! see [`Tx`].

mod kept;
mod sql;
mod table;
mod tx;

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use sqlx::postgres::{PgArguments, PgPool, PgRow};
use sqlx::query::Query;
use sqlx::{Executor, Postgres, Row};

pub use tx::{Tx, TxRejection};

use self::kept::Kept;
use self::sql::Statements;
use self::table::TableName;
use super::{
    Claim, ClaimOutcome, Completion, Fence, IdempotencyStore, Record, StoreError, StoreErrorKind,
    StoreKey, StoredResponse, Token, UnitOfWork,
};

/// The table a store uses unless told otherwise.
pub const DEFAULT_TABLE: &str = "idempotency_keys";

/// How many times a claim is sent when concurrent claims of the same key keep racing it.
const CLAIM_ATTEMPTS: usize = 8;

/// Settings of a [`PostgresStore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    table: String,
    cleanup_interval: Option<Duration>,
    cleanup_batch: u32,
    keep_connections: u32,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            table: DEFAULT_TABLE.to_owned(),
            cleanup_interval: Some(Duration::from_secs(60)),
            cleanup_batch: 1000,
            keep_connections: 0,
        }
    }
}

impl PostgresOptions {
    /// The table, `name` or `schema.name` (default `idempotency_keys`). Each part is a plain
    /// identifier: ASCII letters, digits and `_`, not starting with a digit, at most 63
    /// bytes; it is quoted in every statement, so it is case-sensitive.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = table.into();
        self
    }

    /// How often the background task deletes expired rows (default one minute); `None`
    /// for no task (the app calls [`PostgresStore::delete_expired`] itself, or schedules a
    /// `DELETE` of its own).
    pub fn cleanup_interval(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.cleanup_interval = interval.into();
        self
    }

    /// How many expired rows one `DELETE` removes at most (default 1000; at least 1).
    pub fn cleanup_batch(mut self, rows: u32) -> Self {
        self.cleanup_batch = rows.max(1);
        self
    }

    /// How many of the pool's connections the store keeps for its claims, completions,
    /// releases and renewals between one and the next (default 0: each takes a connection
    /// from the pool and gives it back; at most the pool's `max_connections`).
    ///
    /// sqlx's pool tests every connection given back to it with a round trip before anyone
    /// can take it again, so an operation on a connection from the pool costs two round
    /// trips and two wake-ups of a server process; on a kept connection it costs one.
    ///
    /// - The store takes its connections from the pool as it needs them, up to `connections`,
    ///   and holds them: they count against the pool's `max_connections`, so size the pool
    ///   for the app's own queries (and [`Tx`] transactions) **plus** these. When all of them
    ///   are in use, a store operation waits for one (within the engine's store deadline)
    ///   rather than taking another from the pool.
    /// - A connection goes back to the pool, whose checks then run on it, when an operation
    ///   on it fails or is abandoned midway (the engine's deadline), and after the store has
    ///   held it for a minute (so that the pool's `max_lifetime` still applies, a little
    ///   late). Connections broken while kept (the server restarted) fail the one
    ///   operation that next uses one of them, an outage handled as such; that failure
    ///   gives every kept connection back to the pool, which tests them and replaces the
    ///   broken ones.
    /// - The connections stay with the store while the app is idle; they go back to the pool
    ///   when the store is dropped.
    /// - The same-transaction mode ([`Tx`]) runs the handler's transaction on a connection
    ///   of the pool, as without this setting.
    pub fn keep_connections(mut self, connections: u32) -> Self {
        self.keep_connections = connections;
        self
    }
}

/// Idempotency records in a PostgreSQL table (see the [module docs](self)).
///
/// Cheap to clone: clones share the pool and the background removal of expired rows, which
/// stops when the last clone is dropped.
#[derive(Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
}

struct Shared {
    pool: PgPool,
    /// The pool's connections the store keeps between its calls, if it keeps any.
    kept: Option<Kept>,
    table: TableName,
    statements: Arc<Statements>,
    options: PostgresOptions,
    /// The background removal of expired rows, stopped on drop.
    cleanup: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        let handle = self
            .cleanup
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            handle.abort();
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("table", &self.shared.table.to_string())
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

/// Run `$query.$method(executor)` (`fetch_optional`, `execute`) on a connection the store
/// keeps, when it keeps some, else on the pool; sqlx's result.
macro_rules! on_store_connection {
    ($shared:expr, $query:expr, $method:ident) => {{
        let shared: &Shared = $shared;
        let query = $query;
        match &shared.kept {
            None => query.$method(&shared.pool).await,
            Some(kept) => match kept.lend(&shared.pool).await {
                Ok(mut lent) => {
                    let answer = query.$method(lent.connection()).await;
                    if answer.is_ok() {
                        lent.done();
                    }
                    answer
                }
                Err(error) => Err(error),
            },
        }
    }};
}

impl PostgresStore {
    /// A store in the table `idempotency_keys` of `pool`'s database. Creates nothing and
    /// starts nothing: see [`create_table`](Self::create_table) and
    /// [`start_cleanup`](Self::start_cleanup), which
    /// [`Idempotency::postgres`](crate::Idempotency::postgres) both calls.
    pub fn new(pool: PgPool) -> Self {
        match Self::with_options(pool, PostgresOptions::default()) {
            Ok(store) => store,
            // The default table name is a valid identifier.
            Err(error) => unreachable!("the default table name is valid: {error}"),
        }
    }

    /// A store with `options`; an error if the table name is not a valid identifier.
    pub fn with_options(pool: PgPool, options: PostgresOptions) -> Result<Self, StoreError> {
        let table = TableName::parse(&options.table)?;
        let keep = options
            .keep_connections
            .min(pool.options().get_max_connections());
        let kept = (keep > 0).then(|| Kept::new(keep as usize, &pool));
        Ok(PostgresStore {
            shared: Arc::new(Shared {
                pool,
                kept,
                statements: Arc::new(Statements::new(&table)),
                table,
                options,
                cleanup: std::sync::Mutex::new(None),
            }),
        })
    }

    /// The pool the store runs on.
    pub fn pool(&self) -> &PgPool {
        &self.shared.pool
    }

    /// The table, quoted as the store writes it into its statements (`"idempotency_keys"`,
    /// `"billing"."keys"`), for a query of the app's own.
    pub fn table(&self) -> String {
        self.shared.table.to_string()
    }

    /// The SQL that creates the table `table` and its index (the
    /// [module docs](self#the-table) show it for the default name); an error if `table` is
    /// not a valid name.
    pub fn schema(table: &str) -> Result<String, StoreError> {
        Ok(sql::schema(&TableName::parse(table)?))
    }

    /// Create the table and its index if they are missing (idempotent; concurrent callers
    /// wait for each other on an advisory lock).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let creating = format!("creating the table {}", self.shared.table);
        let mut tx = self
            .shared
            .pool
            .begin()
            .await
            .map_err(|e| failure(&creating, e))?;
        // One lock for every table of this library: schema changes are rare and short.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('idempotent-runtime schema'))")
            .execute(&mut *tx)
            .await
            .map_err(|e| failure(&creating, e))?;
        tx.execute(sqlx::AssertSqlSafe(sql::schema(&self.shared.table)))
            .await
            .map_err(|e| failure(&creating, e))?;
        tx.commit().await.map_err(|e| failure(&creating, e))
    }

    /// Start the background removal of expired rows (see the [module docs](self#expired-records)),
    /// unless [`PostgresOptions::cleanup_interval`] is `None` or it runs already. Needs a
    /// Tokio runtime. It stops when the last clone of this store is dropped.
    pub fn start_cleanup(&self) {
        let Some(every) = self.shared.options.cleanup_interval else {
            return;
        };
        let mut slot = self
            .shared
            .cleanup
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.is_some() {
            return;
        }
        let shared = Arc::downgrade(&self.shared);
        *slot = Some(tokio::spawn(clean_up(shared, every)).abort_handle());
    }

    /// Delete at most [`PostgresOptions::cleanup_batch`] expired rows, oldest first, and
    /// return how many were deleted. Never deletes a live row, never waits for a row
    /// another transaction holds.
    pub async fn delete_expired(&self) -> Result<u64, StoreError> {
        let batch = i64::from(self.shared.options.cleanup_batch);
        sqlx::query(self.shared.statements.delete_expired.clone())
            .bind(batch)
            .execute(&self.shared.pool)
            .await
            .map(|done| done.rows_affected())
            .map_err(|e| failure("deleting expired records", e))
    }

    /// The live record under `key`, if any (one statement; for tests and inspection).
    pub async fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let row = sqlx::query(self.shared.statements.get.clone())
            .bind(key.as_str())
            .fetch_optional(&self.shared.pool)
            .await
            .map_err(|e| failure("reading a record", e))?;
        row.map(|row| decode(&row)).transpose()
    }

    async fn claim_once(&self, key: &StoreKey, claim: &Claim) -> Result<Answer, StoreError> {
        let query = sqlx::query(self.shared.statements.claim.clone())
            .bind(key.as_str())
            .bind(claim.token.as_str())
            .bind(claim.fingerprint.as_deref())
            .bind(millis(claim.lock_ttl));
        let row = on_store_connection!(&self.shared, query, fetch_optional)
            .map_err(|e| failure("claiming a key", e))?;
        let Some(row) = row else {
            return Ok(Answer::Raced);
        };
        if get::<bool>(&row, "claimed")? {
            return Ok(Answer::Claimed);
        }
        if !get::<bool>(&row, "live")? {
            // The expired row this statement saw was taken over meanwhile.
            return Ok(Answer::Raced);
        }
        Ok(Answer::Existing(decode(&row)?))
    }
}

/// What one claim statement answered.
enum Answer {
    Claimed,
    Existing(Record),
    /// A concurrent claim committed within this statement's run: ask again.
    Raced,
}

#[async_trait]
impl IdempotencyStore for PostgresStore {
    fn name(&self) -> &'static str {
        "postgres"
    }

    async fn claim(&self, key: &StoreKey, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        for _ in 0..CLAIM_ATTEMPTS {
            match self.claim_once(key, claim).await? {
                Answer::Claimed => return Ok(ClaimOutcome::Claimed),
                Answer::Existing(record) => return Ok(ClaimOutcome::Existing(record)),
                Answer::Raced => continue,
            }
        }
        Err(StoreError::new(format!(
            "PostgreSQL: the claim of a key raced concurrent claims {CLAIM_ATTEMPTS} times"
        )))
    }

    async fn complete(
        &self,
        key: &StoreKey,
        token: &Token,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<Fence, StoreError> {
        let completion = Completion::new(key.clone(), token.clone(), response, ttl);
        let query = complete_query(&self.shared.statements, &completion);
        let done = on_store_connection!(&self.shared, query, execute)
            .map_err(|e| failure("storing a response", e))?;
        Ok(fence(done.rows_affected()))
    }

    async fn release(&self, key: &StoreKey, token: &Token) -> Result<Fence, StoreError> {
        let query = sqlx::query(self.shared.statements.release.clone())
            .bind(key.as_str())
            .bind(token.as_str());
        let done = on_store_connection!(&self.shared, query, execute)
            .map_err(|e| failure("releasing a key", e))?;
        Ok(fence(done.rows_affected()))
    }

    async fn renew(
        &self,
        key: &StoreKey,
        token: &Token,
        lock_ttl: Duration,
    ) -> Result<Fence, StoreError> {
        let query = sqlx::query(self.shared.statements.renew.clone())
            .bind(key.as_str())
            .bind(token.as_str())
            .bind(millis(lock_ttl));
        let done = on_store_connection!(&self.shared, query, execute)
            .map_err(|e| failure("renewing a lease", e))?;
        Ok(fence(done.rows_affected()))
    }

    fn unit_of_work(&self) -> Option<Box<dyn UnitOfWork>> {
        Some(Box::new(tx::Unit::new(
            self.shared.pool.clone(),
            self.shared.statements.clone(),
        )))
    }
}

/// Write a completed record in a request's transaction.
async fn complete_on<'c, E>(
    executor: E,
    statements: &Statements,
    completion: &Completion,
) -> Result<Fence, StoreError>
where
    E: Executor<'c, Database = Postgres>,
{
    let done = complete_query(statements, completion)
        .execute(executor)
        .await
        .map_err(|e| failure("storing a response", e))?;
    Ok(fence(done.rows_affected()))
}

/// The statement that writes a completed record.
fn complete_query<'q>(
    statements: &Statements,
    completion: &'q Completion,
) -> Query<'q, Postgres, PgArguments> {
    let response = &completion.response;
    let (names, values): (Option<Vec<&str>>, Option<Vec<&[u8]>>) = match &response.headers {
        Some(headers) => (
            Some(headers.iter().map(|(name, _)| name.as_str()).collect()),
            Some(headers.iter().map(|(_, value)| value.as_bytes()).collect()),
        ),
        None => (None, None),
    };
    let stored_at = response.stored_at.map(epoch_millis);
    sqlx::query(statements.complete.clone())
        .bind(completion.key.as_str())
        .bind(completion.token.as_str())
        .bind(response.fingerprint.as_deref())
        .bind(i16::try_from(response.status.as_u16()).unwrap_or(i16::MAX))
        .bind(names)
        .bind(values)
        .bind(response.body.as_ref())
        .bind(stored_at)
        .bind(millis(completion.ttl))
}

fn fence(rows: u64) -> Fence {
    if rows == 0 {
        Fence::Refused
    } else {
        Fence::Applied
    }
}

/// Remove expired rows every `every`, until the store is dropped.
async fn clean_up(shared: Weak<Shared>, every: Duration) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is at once: a table left alone for a while is cleaned at start.
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let store = PostgresStore { shared };
        let mut removed = 0u64;
        loop {
            match store.delete_expired().await {
                Ok(rows) => {
                    removed += rows;
                    if rows < u64::from(store.shared.options.cleanup_batch) {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, table = %store.shared.table, "idempotency: deleting expired records failed; trying again later");
                    break;
                }
            }
        }
        if removed > 0 {
            tracing::debug!(removed, table = %store.shared.table, "idempotency: deleted expired records");
        }
    }
}

/// A duration in whole milliseconds, as the statements take it (at least 1).
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

fn epoch_millis(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>,
{
    row.try_get(column)
        .map_err(|e| failure(&format!("reading the column {column}"), e))
}

/// The record of a row read with the record's columns.
fn decode(row: &PgRow) -> Result<Record, StoreError> {
    let undecodable = |what: &str| {
        StoreError::new(format!(
            "PostgreSQL: a row this store cannot decode: {what}"
        ))
        .with_kind(StoreErrorKind::Undecodable)
    };
    let state = get::<Option<String>>(row, "state")?.unwrap_or_default();
    let token = get::<Option<String>>(row, "token")?
        .map(Token::from_string)
        .ok_or_else(|| undecodable("no token"))?;
    let fingerprint = get::<Option<String>>(row, "fingerprint")?;
    match state.as_str() {
        "processing" => Ok(Record::Processing { token, fingerprint }),
        "completed" => {
            let status = get::<Option<i16>>(row, "status")?
                .and_then(|code| u16::try_from(code).ok())
                .and_then(|code| StatusCode::from_u16(code).ok())
                .ok_or_else(|| undecodable("no HTTP status"))?;
            let names = get::<Option<Vec<String>>>(row, "header_names")?;
            let values = get::<Option<Vec<Vec<u8>>>>(row, "header_values")?;
            let headers = match (names, values) {
                (Some(names), Some(values)) if names.len() == values.len() => Some(
                    names
                        .into_iter()
                        .zip(values)
                        .map(|(name, value)| {
                            Ok((
                                HeaderName::from_bytes(name.as_bytes())
                                    .map_err(|_| undecodable("an invalid header name"))?,
                                HeaderValue::from_maybe_shared(Bytes::from(value))
                                    .map_err(|_| undecodable("an invalid header value"))?,
                            ))
                        })
                        .collect::<Result<Vec<_>, StoreError>>()?,
                ),
                (None, None) => None,
                _ => return Err(undecodable("header names and values do not pair up")),
            };
            let body = get::<Option<Vec<u8>>>(row, "body")?.unwrap_or_default();
            let stored_at = get::<Option<i64>>(row, "stored_at_ms")?
                .and_then(|ms| u64::try_from(ms).ok())
                .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)));
            let mut response = StoredResponse::new(status, headers, Bytes::from(body), fingerprint);
            response.stored_at = stored_at;
            response.token = Some(token);
            Ok(Record::Completed(Arc::new(response)))
        }
        other => Err(undecodable(&format!("unknown state {other:?}"))),
    }
}

/// A sqlx error as a store error of the kind the engine acts on.
fn failure(what: &str, error: sqlx::Error) -> StoreError {
    use sqlx::Error as E;
    let kind = match &error {
        // The connection broke while a statement was out: it may have run.
        E::Io(io) if io.kind() != std::io::ErrorKind::ConnectionRefused => {
            StoreErrorKind::Indeterminate
        }
        E::Protocol(_) | E::WorkerCrashed => StoreErrorKind::Indeterminate,
        E::ColumnDecode { .. }
        | E::Decode(_)
        | E::ColumnNotFound(_)
        | E::ColumnIndexOutOfBounds { .. }
        | E::TypeNotFound { .. } => StoreErrorKind::Undecodable,
        // Refused, not handed out by the pool, or answered with an error: nothing ran.
        _ => StoreErrorKind::Unavailable,
    };
    let hint = match &error {
        E::Database(db) if db.code().as_deref() == Some("42P01") => {
            " (the table does not exist: create it with `PostgresStore::create_table`, or with \
             the schema in the `idempotent_runtime::store::postgres` documentation)"
        }
        _ => "",
    };
    StoreError::with_source(format!("PostgreSQL: {what}{hint}"), error).with_kind(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_milliseconds_and_never_zero() {
        assert_eq!(millis(Duration::from_secs(3)), 3000);
        assert_eq!(millis(Duration::from_micros(10)), 1);
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }

    #[test]
    fn a_bad_table_name_is_an_error_naming_it() {
        let error = PostgresStore::schema("orders; DROP TABLE orders").unwrap_err();
        assert!(error.to_string().contains("orders; DROP TABLE orders"));
        let schema = PostgresStore::schema("billing.keys").unwrap_or_else(|e| panic!("{e}"));
        assert!(schema.starts_with("CREATE TABLE IF NOT EXISTS \"billing\".\"keys\" ("));
        assert!(schema.contains("CREATE INDEX IF NOT EXISTS \"keys_expires_at_idx\""));
    }
}

//! The same-transaction mode: the [`Tx`] extractor and the unit of work behind it.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Postgres, Transaction};

use super::sql::Statements;
use super::{complete_on, failure};
use crate::problem::{ProblemCode, problem, problem_retry_after};
use crate::store::{Completion, Fence, StoreError, UnitOfWork};

/// The request's database transaction, in which the handler's writes commit together with
/// its idempotency record (the PostgreSQL store's same-transaction mode).
///
/// A handler under `#[idempotent]` or an idempotency layer whose store is a
/// [`PostgresStore`](super::PostgresStore) extracts it and runs its statements on it
/// (`&mut *tx` is a `&mut PgConnection`). The transaction begins when the handler extracts
/// it, after the key was claimed. When the handler answers:
///
/// - **2xx**: the completed record is written in the same transaction (fenced by the
///   claim's token), and the transaction is committed **before** the response is sent. The
///   handler's writes and the record commit together or not at all.
/// - **any other status, a panic, or an error of the wrapped service**: the transaction is
///   rolled back and the key released, so a retry runs the handler again.
/// - **the commit fails**: the answer is 500 `idempotency_transaction_failed`
///   ([`ProblemCode::TransactionFailed`]) and the key is released: nothing was kept.
/// - **the key was taken over** (the claim's lock expired while the handler ran, and another
///   request claimed the key): the transaction is rolled back and the answer is 409
///   `idempotency_request_in_progress`; the retry gets the other request's response.
///
/// A process killed at any moment leaves both the writes and the record, or neither: the
/// retry then replays the response, or (once the PROCESSING record's `lock_ttl` has run out)
/// runs the handler again. Never an order without its record, never a record without its
/// order.
///
/// ```no_run
/// use axum::{Json, http::StatusCode};
/// use idempotent_runtime::idempotent;
/// use idempotent_runtime::store::postgres::Tx;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct NewTransfer { amount: i64 }
///
/// #[idempotent(key_prefix = "transfers", include_body = true)]
/// async fn create_transfer(mut tx: Tx, Json(t): Json<NewTransfer>) -> (StatusCode, String) {
///     let id: i64 = match sqlx::query_scalar("INSERT INTO transfers (amount) VALUES ($1) RETURNING id")
///         .bind(t.amount)
///         .fetch_one(&mut *tx)
///         .await
///     {
///         Ok(id) => id,
///         // Not a 2xx: rolled back, and the key released.
///         Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, String::new()),
///     };
///     (StatusCode::CREATED, format!("{{\"id\":{id}}}"))
/// }
/// # let _app: axum::Router = axum::Router::new()
/// #     .route("/transfers", axum::routing::post(create_transfer));
/// ```
///
/// # What it covers, and what it does not
///
/// Use it when the handler's effects live in the same PostgreSQL database as the store
/// (the same pool). Writes to other systems (a payment provider, a queue, an email) are not
/// in the transaction: record them in an **outbox** table in the same transaction, and let
/// a separate worker deliver them (at least once, with the idempotency key as the message's
/// deduplication key), so that the request's writes, its record and its messages commit
/// together.
///
/// # Details
///
/// - The transaction is the pool's (`READ COMMITTED` unless the database says otherwise);
///   beginning it takes a connection from the pool, so the pool needs one more connection
///   than the handlers that hold a transaction at once (the store's own statements run on
///   other connections).
/// - A request that owns no claim (no key on a route with `mandatory = false`, or a store
///   outage on a route with `fail_open = true`) gets a transaction too: it is committed on
///   a 2xx, without a record, and rolled back otherwise.
/// - Extract it once per request, and do not keep it past the handler: a transaction still
///   held elsewhere when the handler answers cannot be committed (500, rolled back).
/// - The engine writes the record and commits under the store deadline
///   ([`Idempotency::store_timeout`](crate::Idempotency::store_timeout)). If the commit's
///   answer is lost, the outcome is unknown: the answer is 500, and the retry either replays
///   (it committed) or runs again once the lock has run out (it did not).
/// - Beginning the transaction can fail (the database is down): the extractor then rejects
///   the request with 503 `idempotency_store_unavailable` and the key is released.
pub struct Tx {
    slot: Arc<Slot>,
    /// Always `Some` until dropped: `Drop` hands it back to the slot.
    tx: Option<Transaction<'static, Postgres>>,
}

impl Tx {
    fn transaction(&mut self) -> &mut Transaction<'static, Postgres> {
        match self.tx.as_mut() {
            Some(tx) => tx,
            None => unreachable!("a Tx holds its transaction until it is dropped"),
        }
    }
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").finish_non_exhaustive()
    }
}

impl Deref for Tx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        match self.tx.as_ref() {
            Some(tx) => tx,
            None => unreachable!("a Tx holds its transaction until it is dropped"),
        }
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.transaction()
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let mut state = self.slot.state();
            match *state {
                // Handed back for the engine to commit or roll back.
                State::Lent => *state = State::Returned(tx),
                // The engine is done with this request: dropping the transaction rolls it
                // back.
                _ => {
                    drop(state);
                    drop(tx);
                }
            }
        }
    }
}

/// Why [`Tx`] could not be extracted.
#[derive(Debug)]
#[non_exhaustive]
pub enum TxRejection {
    /// The route does not run under `#[idempotent]` or an idempotency layer over a
    /// [`PostgresStore`](super::PostgresStore): 500 `idempotency_not_configured`.
    NotConfigured,
    /// The handler extracts the transaction a second time while it still holds it: 500.
    AlreadyTaken,
    /// The transaction could not begin (the database is down or the pool has no connection
    /// to give): 503 `idempotency_store_unavailable`.
    Begin(StoreError),
}

impl std::fmt::Display for TxRejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TxRejection::NotConfigured => f.write_str(
                "the route does not run under an idempotency layer over the PostgreSQL store",
            ),
            TxRejection::AlreadyTaken => f.write_str("the request's transaction is taken"),
            TxRejection::Begin(error) => write!(f, "the transaction could not begin: {error}"),
        }
    }
}

impl std::error::Error for TxRejection {}

impl IntoResponse for TxRejection {
    fn into_response(self) -> Response {
        match self {
            TxRejection::NotConfigured => {
                tracing::error!(
                    "idempotency: a handler extracts `Tx`, but its route does not run under \
                     `#[idempotent]` or an idempotency layer whose store is PostgreSQL"
                );
                problem(
                    ProblemCode::NotConfigured,
                    "The idempotency layer is not configured for this route.",
                )
            }
            TxRejection::AlreadyTaken => {
                tracing::error!(
                    "idempotency: a handler extracts `Tx` twice; extract it once per request"
                );
                problem(
                    ProblemCode::TransactionFailed,
                    "The request's transaction is already taken.",
                )
            }
            TxRejection::Begin(error) => {
                tracing::warn!(%error, "idempotency: the request's transaction could not begin");
                problem_retry_after(
                    ProblemCode::StoreUnavailable,
                    "The database is unavailable; retry later with the same key.",
                    1,
                )
            }
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Tx {
    type Rejection = TxRejection;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let slot = parts
            .extensions
            .get::<Lent>()
            .map(|lent| lent.0.clone())
            .ok_or(TxRejection::NotConfigured)?;
        let returned = {
            let mut state = slot.state();
            match std::mem::replace(&mut *state, State::Lent) {
                State::Idle => None,
                State::Returned(tx) => Some(tx),
                other => {
                    *state = other;
                    return Err(TxRejection::AlreadyTaken);
                }
            }
        };
        let tx = match returned {
            Some(tx) => tx,
            None => match slot.pool.begin().await {
                Ok(tx) => tx,
                Err(error) => {
                    *slot.state() = State::Idle;
                    return Err(TxRejection::Begin(failure(
                        "beginning the request's transaction",
                        error,
                    )));
                }
            },
        };
        Ok(Tx { slot, tx: Some(tx) })
    }
}

/// What the request's extensions carry for the extractor.
#[derive(Clone)]
struct Lent(Arc<Slot>);

/// Where the request's transaction is between the handler and the engine.
struct Slot {
    pool: PgPool,
    state: Mutex<State>,
}

impl Slot {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

enum State {
    /// Not begun.
    Idle,
    /// Held by the handler's `Tx` (or being begun for it).
    Lent,
    /// Begun, and handed back when the handler's `Tx` was dropped.
    Returned(Transaction<'static, Postgres>),
    /// Committed or rolled back by the engine.
    Done,
}

/// The PostgreSQL store's [`UnitOfWork`].
pub(super) struct Unit {
    slot: Arc<Slot>,
    statements: Arc<Statements>,
}

impl Unit {
    pub(super) fn new(pool: PgPool, statements: Arc<Statements>) -> Self {
        Unit {
            slot: Arc::new(Slot {
                pool,
                state: Mutex::new(State::Idle),
            }),
            statements,
        }
    }

    /// The transaction, taken for good.
    fn take(&self) -> Result<Transaction<'static, Postgres>, StoreError> {
        match std::mem::replace(&mut *self.slot.state(), State::Done) {
            State::Returned(tx) => Ok(tx),
            State::Lent => Err(StoreError::new(
                "the handler still holds the request's transaction (`Tx`): it cannot be \
                 committed; it is rolled back when that `Tx` is dropped",
            )),
            State::Idle | State::Done => Err(StoreError::new(
                "the request's transaction was not begun, or is already finished",
            )),
        }
    }
}

#[async_trait]
impl UnitOfWork for Unit {
    fn lend(&self, extensions: &mut http::Extensions) {
        extensions.insert(Lent(self.slot.clone()));
    }

    fn begun(&self) -> bool {
        !matches!(*self.slot.state(), State::Idle)
    }

    async fn commit(&self, completion: Option<Completion>) -> Result<Fence, StoreError> {
        let mut tx = self.take()?;
        if let Some(completion) = completion {
            let written = complete_on(&mut *tx, &self.statements, &completion).await;
            match written {
                Ok(Fence::Applied) => {}
                refused_or_failed => {
                    if let Err(error) = tx.rollback().await {
                        tracing::debug!(%error, "idempotency: rolling back the request's transaction failed");
                    }
                    return refused_or_failed;
                }
            }
        }
        tx.commit()
            .await
            .map_err(|e| failure("committing the request's transaction", e))?;
        Ok(Fence::Applied)
    }

    async fn rollback(&self) {
        match self.take() {
            Ok(tx) => {
                if let Err(error) = tx.rollback().await {
                    tracing::warn!(%error, "idempotency: rolling back the request's transaction failed");
                }
            }
            Err(error) => tracing::warn!(%error, "idempotency: not rolling back"),
        }
    }
}

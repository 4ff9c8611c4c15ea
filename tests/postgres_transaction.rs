//! The same-transaction mode against a real PostgreSQL: a handler's writes and its
//! idempotency record commit together or not at all, through `#[idempotent]` and through
//! the layer; a failed commit, a takeover, a transaction kept past the handler, a request
//! without a claim, and the statements a transactional first run costs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::store::postgres::{PostgresOptions, PostgresStore, Tx};
use idempotent_runtime::{Idempotency, Policy, idempotent};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use support::app::{Probe, Server, client, eventually, problem_code};
use support::postgres::{self as pg, PostgresServer, verbs};

#[derive(Clone)]
struct TxState {
    probe: Probe,
    /// The table the handler writes to.
    moves: String,
    /// Released by the test: how long a `Tx` kept past the handler lives.
    leak_gate: std::sync::Arc<tokio::sync::Semaphore>,
}

/// What a test asks the handler to do, after it inserted its row.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Move {
    amount: i64,
    status: Option<u16>,
    hold: bool,
    panic: bool,
    /// Insert a row whose deferred foreign key fails at commit.
    violate: bool,
    /// Keep the transaction in a task of its own after answering.
    leak: bool,
}

async fn make_move(state: TxState, mut tx: Tx, cmd: Move) -> Response {
    state.probe.enter();
    let sql = format!(
        "INSERT INTO {} (amount, ref) VALUES ($1, $2) RETURNING id",
        state.moves
    );
    let id: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(cmd.amount)
        .bind(if cmd.violate { Some(999) } else { None::<i32> })
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    if cmd.hold {
        state.probe.hold().await;
    }
    if cmd.panic {
        panic!("the handler panics after its insert");
    }
    if cmd.leak {
        let gate = state.leak_gate.clone();
        tokio::spawn(async move {
            let _kept = tx;
            let _ = gate.acquire().await;
        });
    }
    let status = StatusCode::from_u16(cmd.status.unwrap_or(201)).unwrap();
    (status, Json(json!({ "id": id, "amount": cmd.amount }))).into_response()
}

#[idempotent(key_prefix = "moves", include_body = true)]
async fn moves(State(state): State<TxState>, tx: Tx, Json(cmd): Json<Move>) -> Response {
    make_move(state, tx, cmd).await
}

/// Without a fingerprint, so that a retry may carry another body (a takeover test).
#[idempotent(key_prefix = "unhashed_moves")]
async fn unhashed_moves(State(state): State<TxState>, tx: Tx, Json(cmd): Json<Move>) -> Response {
    make_move(state, tx, cmd).await
}

#[idempotent(key_prefix = "optional_moves", include_body = true, mandatory = false)]
async fn optional_moves(State(state): State<TxState>, tx: Tx, Json(cmd): Json<Move>) -> Response {
    make_move(state, tx, cmd).await
}

async fn layered_moves(State(state): State<TxState>, tx: Tx, Json(cmd): Json<Move>) -> Response {
    make_move(state, tx, cmd).await
}

struct Harness {
    server: Server,
    state: TxState,
    store: PostgresStore,
    pool: PgPool,
}

impl Harness {
    /// The routes over a fresh store table and a fresh table of moves on `server`.
    async fn on(server: &PostgresServer) -> Harness {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&server.url())
            .await
            .unwrap();
        let moves_table = pg::table_name("moves");
        let refs = pg::table_name("refs");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {refs} (id int PRIMARY KEY)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {moves_table} (id bigserial PRIMARY KEY, amount bigint NOT NULL, \
             ref int REFERENCES {refs} DEFERRABLE INITIALLY DEFERRED)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let options = PostgresOptions::default()
            .table(pg::table_name("keys"))
            .cleanup_interval(None);
        let store = PostgresStore::with_options(pool.clone(), options).unwrap();
        store.create_table().await.unwrap();
        let idem = Idempotency::new(store.clone());
        let state = TxState {
            probe: Probe::default(),
            moves: moves_table,
            leak_gate: std::sync::Arc::new(tokio::sync::Semaphore::new(0)),
        };
        let layered = Policy::new().key_prefix("layered").include_body(true);
        let app = Router::new()
            .route("/moves", post(moves))
            .route("/unhashed", post(unhashed_moves))
            .route("/optional", post(optional_moves))
            .route("/layered", post(layered_moves).layer(idem.layer(layered)))
            .layer(idem)
            .with_state(state.clone());
        Harness {
            server: Server::start(app).await,
            state,
            store,
            pool,
        }
    }

    async fn post(&self, route: &str, key: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = client().post(self.server.url(route)).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send().await.unwrap()
    }

    /// The committed rows of moves.
    async fn rows(&self) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {}",
            self.state.moves
        )))
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// The state of the record under `prefix`'s `key` (`None`: no record).
    async fn record(&self, prefix: &str, key: &str) -> Option<&'static str> {
        let key = idempotent_runtime::store::StoreKey::new(prefix, None, key);
        match self.store.get(&key).await.unwrap() {
            None => None,
            Some(idempotent_runtime::record::Record::Processing { .. }) => Some("processing"),
            Some(_) => Some("completed"),
        }
    }

    fn runs(&self) -> usize {
        self.state.probe.runs()
    }
}

async fn id_of(response: reqwest::Response) -> i64 {
    response.json::<Value>().await.unwrap()["id"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_commits_the_rows_and_the_record_together_on_both_paths() {
    let h = Harness::on(pg::shared()).await;
    for (route, prefix) in [("/moves", "moves"), ("/layered", "layered")] {
        let rows = h.rows().await;
        let first = h.post(route, Some("k-1"), json!({"amount": 5})).await;
        assert_eq!(first.status(), 201, "{route}");
        let id = id_of(first).await;
        assert_eq!(h.rows().await, rows + 1, "{route}: the row committed");
        assert_eq!(h.record(prefix, "k-1").await, Some("completed"));

        let replay = h.post(route, Some("k-1"), json!({"amount": 5})).await;
        assert_eq!(replay.headers()["idempotent-replayed"], "true");
        assert_eq!(id_of(replay).await, id, "{route}: the same row");
        assert_eq!(h.rows().await, rows + 1, "{route}: no second row");
    }
    assert_eq!(h.runs(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_2xx_or_a_panic_rolls_back_and_releases_on_both_paths() {
    let h = Harness::on(pg::shared()).await;
    for (route, prefix) in [("/moves", "moves"), ("/layered", "layered")] {
        let failed = h
            .post(route, Some("n-1"), json!({"amount": 5, "status": 409}))
            .await;
        assert_eq!(failed.status(), 409, "{route}");
        assert_eq!(h.rows().await, 0, "{route}: rolled back");
        assert_eq!(h.record(prefix, "n-1").await, None, "{route}: released");

        let (status, code, _) = problem_code(
            h.post(route, Some("p-1"), json!({"amount": 5, "panic": true}))
                .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (500, "idempotency_handler_panicked")
        );
        assert_eq!(h.rows().await, 0, "{route}: rolled back after a panic");
        assert_eq!(h.record(prefix, "p-1").await, None, "{route}: released");

        // The retry runs again, and commits.
        let retried = h
            .post(route, Some("p-1"), json!({"amount": 5, "panic": true}))
            .await;
        assert_eq!(retried.status(), 500);
        let fresh = h.post(route, Some("n-2"), json!({"amount": 6})).await;
        assert_eq!(fresh.status(), 201);
        assert_eq!(h.rows().await, 1, "{route}");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {}",
            h.state.moves
        )))
        .execute(&h.pool)
        .await
        .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_commit_is_a_500_problem_nothing_is_kept_and_the_key_is_released() {
    let h = Harness::on(pg::shared()).await;
    let body = json!({"amount": 5, "violate": true});
    let (status, code, _) = problem_code(h.post("/moves", Some("c-1"), body.clone()).await).await;
    assert_eq!(
        (status, code.as_str()),
        (500, "idempotency_transaction_failed")
    );
    assert_eq!(h.rows().await, 0, "the handler's row was not kept");
    assert_eq!(h.record("moves", "c-1").await, None, "nor the record");
    // Released: the retry runs the handler again (and fails the same way).
    let (status, _, _) = problem_code(h.post("/moves", Some("c-1"), body).await).await;
    assert_eq!(status, 500);
    assert_eq!(h.runs(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_key_was_taken_over_is_rolled_back_and_answered_409() {
    let h = Harness::on(pg::shared()).await;
    let first = tokio::spawn({
        let url = h.server.url("/unhashed");
        async move {
            client()
                .post(url)
                .header("Idempotency-Key", "t-1")
                .json(&json!({"amount": 1, "hold": true}))
                .send()
                .await
                .unwrap()
        }
    });
    h.state.probe.wait_started().await;
    // Its lock runs out (as if it had been paused past lock_ttl) and a retry takes over.
    let expired = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {} SET expires_at = statement_timestamp() - interval '1 second'",
        h.store.table()
    )))
    .execute(&h.pool)
    .await
    .unwrap();
    assert_eq!(expired.rows_affected(), 1);
    let second = h.post("/unhashed", Some("t-1"), json!({"amount": 2})).await;
    assert_eq!(second.status(), 201);
    let second_id = id_of(second).await;

    h.state.probe.open(1);
    let (status, code, _) = problem_code(first.await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (409, "idempotency_request_in_progress")
    );
    assert_eq!(h.rows().await, 1, "only the new owner's row");
    let replay = h.post("/unhashed", Some("t-1"), json!({"amount": 1})).await;
    assert_eq!(id_of(replay).await, second_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_kept_past_the_handler_is_not_committed() {
    let h = Harness::on(pg::shared()).await;
    let (status, code, _) = problem_code(
        h.post("/moves", Some("l-1"), json!({"amount": 5, "leak": true}))
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (500, "idempotency_transaction_failed")
    );
    assert_eq!(h.record("moves", "l-1").await, None, "released");
    // The kept transaction ends when it is dropped: rolled back.
    h.state.leak_gate.add_permits(1);
    eventually(
        "the kept transaction is rolled back",
        Duration::from_secs(10),
        || async {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'",
            )
            .fetch_one(&h.pool)
            .await
            .unwrap();
            open == 0
        },
    )
    .await;
    assert_eq!(h.rows().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_claim_the_transaction_commits_without_a_record() {
    let h = Harness::on(pg::shared()).await;
    let done = h.post("/optional", None, json!({"amount": 5})).await;
    assert_eq!(done.status(), 201);
    assert_eq!(h.rows().await, 1, "committed");
    let failed = h
        .post("/optional", None, json!({"amount": 5, "status": 422}))
        .await;
    assert_eq!(failed.status(), 422);
    assert_eq!(h.rows().await, 1, "rolled back");
    let keyed = h.post("/optional", Some("o-1"), json!({"amount": 5})).await;
    assert_eq!(keyed.status(), 201);
    assert_eq!(h.record("optional_moves", "o-1").await, Some("completed"));
    assert_eq!(h.rows().await, 2);
}

#[idempotent(key_prefix = "memory")]
async fn tx_on_memory(_tx: Tx) -> StatusCode {
    StatusCode::CREATED
}

#[tokio::test]
async fn tx_on_a_store_without_transactions_is_a_500_that_names_the_fix() {
    let app = Router::new()
        .route("/m", post(tx_on_memory))
        .layer(Idempotency::memory());
    let server = Server::start(app).await;
    for _ in 0..2 {
        let response = client()
            .post(server.url("/m"))
            .header("Idempotency-Key", "m-1")
            .send()
            .await
            .unwrap();
        let (status, code, _) = problem_code(response).await;
        // Rejected before the body runs, and released: the retry is refused the same way.
        assert_eq!((status, code.as_str()), (500, "idempotency_not_configured"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transactional_first_run_adds_one_statement_to_the_handlers_transaction() {
    let server = PostgresServer::start_with(&[("log_statement", "all")]);
    let h = Harness::on(&server).await;
    let mark = server.log_mark();
    assert_eq!(
        h.post("/moves", Some("s-1"), json!({"amount": 5}))
            .await
            .status(),
        201
    );
    let statements = server.statements_since(mark);
    assert_eq!(
        verbs(&statements),
        ["WITH", "BEGIN", "INSERT", "INSERT", "COMMIT"],
        "claim; the handler's transaction: its insert, the record, the commit: {statements:#?}"
    );
    assert!(statements[3].contains("'completed'"), "the record's upsert");
    let mark = server.log_mark();
    let replay = h.post("/moves", Some("s-1"), json!({"amount": 5})).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        server.statements_since(mark).len(),
        1,
        "a replay: the claim"
    );
}

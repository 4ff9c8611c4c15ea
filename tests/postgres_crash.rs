//! Exactly once when the process dies: the orders example, run as a child process over a
//! private PostgreSQL cluster with `DATABASE_URL`, is killed with SIGKILL while a transfer's
//! transaction is open (its row inserted, not committed), and right after a transfer
//! committed; then started again, it is retried with the same key.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::PgPool;
use support::app::{client, eventually};
use support::postgres::PostgresServer;
use support::redis::{free_port, signal};

/// The orders example's binary, which `cargo test` builds with the tests.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/<this test> -> target/<profile>/examples/orders
    let binary = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join("orders"))
        .unwrap();
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        binary.display()
    );
    binary
}

/// The example running as a child process; killed on drop.
struct Example {
    child: Child,
    base: String,
}

impl Example {
    /// Start it over `database_url`, with `TRANSFERS_DELAY_MS` if given, and wait until it
    /// answers.
    async fn start(database_url: &str, transfers_delay_ms: Option<u64>) -> Example {
        let bind = format!("127.0.0.1:{}", free_port());
        let mut command = Command::new(example_binary());
        command
            .env("DATABASE_URL", database_url)
            .env("BIND", &bind)
            .env("RUST_LOG", "warn")
            .env_remove("REDIS_URL")
            .env_remove("DYNAMODB_TABLE")
            .env_remove("TRANSFERS_DELAY_MS")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(ms) = transfers_delay_ms {
            command.env("TRANSFERS_DELAY_MS", ms.to_string());
        }
        let child = command.spawn().unwrap();
        let example = Example {
            child,
            base: format!("http://{bind}"),
        };
        let stats = example.url("/stats");
        eventually("the example answers", Duration::from_secs(30), || {
            let stats = stats.clone();
            async move { matches!(client().get(stats).send().await, Ok(r) if r.status() == 200) }
        })
        .await;
        example
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no destructor, no rollback, no goodbye to the database.
    fn kill(&mut self) {
        signal(self.child.id(), "-KILL");
        self.child.wait().unwrap();
    }

    async fn transfer(&self, key: &str, amount: i64) -> reqwest::Response {
        client()
            .post(self.url("/transfers"))
            .header("Idempotency-Key", key)
            .json(&json!({ "amount": amount }))
            .send()
            .await
            .unwrap()
    }

    /// A transfer sent on a task of its own, for a test that kills the example meanwhile.
    fn transfer_in_background(
        &self,
        key: &'static str,
        amount: i64,
    ) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
        let request = client()
            .post(self.url("/transfers"))
            .header("Idempotency-Key", key)
            .json(&json!({ "amount": amount }));
        tokio::spawn(request.send())
    }

    async fn stats(&self) -> Value {
        client()
            .get(self.url("/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

/// The state of the record of the transfer key `key`, and how many rows the key has.
async fn record(pool: &PgPool, key: &str) -> (Option<String>, i64) {
    let key = format!("idempotency:transfers:{key}");
    let state: Option<String> =
        sqlx::query_scalar("SELECT state FROM idempotency_keys WHERE key = $1")
            .bind(&key)
            .fetch_optional(pool)
            .await
            .unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM idempotency_keys WHERE key = $1")
        .bind(&key)
        .fetch_one(pool)
        .await
        .unwrap();
    (state, rows)
}

/// Backends with a transaction open on the transfers table (inserted, not committed).
async fn open_transfer_transactions(pool: &PgPool) -> i64 {
    scalar(
        pool,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE state LIKE 'idle in transaction%' AND query LIKE 'INSERT INTO transfers%'",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_before_the_commit_nothing_is_kept_and_the_retry_runs_once() {
    let server = PostgresServer::start();
    let pool = server.pool().await;
    // The handler sleeps a minute after its insert: the kill lands inside its transaction.
    let mut example = Example::start(&server.url(), Some(60_000)).await;
    let request = example.transfer_in_background("crash-1", 5);
    eventually(
        "the handler's insert is in its open transaction",
        Duration::from_secs(20),
        || async { open_transfer_transactions(&pool).await == 1 },
    )
    .await;
    example.kill();
    assert!(request.await.unwrap().is_err(), "nobody answered");

    // The server saw the connection go and rolled the transaction back.
    eventually(
        "the dead process's transaction is gone",
        Duration::from_secs(20),
        || async { open_transfer_transactions(&pool).await == 0 },
    )
    .await;
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM transfers").await,
        0,
        "no transfer row without its record"
    );
    assert_eq!(
        record(&pool, "crash-1").await,
        (Some("processing".into()), 1),
        "the claim of the dead process, until its lock_ttl runs out"
    );

    let restarted = Example::start(&server.url(), None).await;
    let killed_at = Instant::now();
    // Until the dead claim's lock_ttl (3 s) runs out, a retry is told to come back; then it
    // runs the handler, once.
    let mut conflicts = 0;
    let created = loop {
        let retry = restarted.transfer("crash-1", 5).await;
        match retry.status().as_u16() {
            409 => {
                conflicts += 1;
                assert!(retry.headers().contains_key("retry-after"));
                assert!(
                    killed_at.elapsed() < Duration::from_secs(30),
                    "the dead claim never expired"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            201 => break retry.json::<Value>().await.unwrap(),
            other => panic!("unexpected {other}: {}", retry.text().await.unwrap()),
        }
    };
    println!(
        "killed before the commit: {conflicts} retries answered 409 for {:?}, then 201 {created}",
        killed_at.elapsed()
    );
    let stats = restarted.stats().await;
    assert_eq!(
        stats["transfers"], 1,
        "the handler ran once after the crash"
    );
    assert_eq!(stats["transfer_rows"], 1);
    assert_eq!(
        record(&pool, "crash-1").await,
        (Some("completed".into()), 1)
    );
    let replay = restarted.transfer("crash-1", 5).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), created);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM transfers").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_right_after_the_commit_the_retry_replays_and_adds_no_row() {
    let server = PostgresServer::start();
    let pool = server.pool().await;
    // A short pause before the commit, so that the test is watching when it lands.
    let mut example = Example::start(&server.url(), Some(300)).await;
    let request = example.transfer_in_background("crash-2", 7);
    // Killed the moment the commit is visible: the row and its record together.
    let committed = Instant::now();
    loop {
        if record(&pool, "crash-2").await.0.as_deref() == Some("completed") {
            example.kill();
            break;
        }
        assert!(
            committed.elapsed() < Duration::from_secs(20),
            "the transfer never committed"
        );
    }
    let answered = request.await.unwrap().is_ok();
    let id = scalar(&pool, "SELECT min(id) FROM transfers").await;
    assert_eq!(scalar(&pool, "SELECT count(*) FROM transfers").await, 1);

    let restarted = Example::start(&server.url(), None).await;
    let retry = restarted.transfer("crash-2", 7).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(
        retry.json::<Value>().await.unwrap(),
        json!({"id": id, "amount": 7}),
        "the committed transfer, replayed"
    );
    let stats = restarted.stats().await;
    assert_eq!(stats["transfers"], 0, "the handler did not run again");
    assert_eq!(stats["transfer_rows"], 1, "no second row");
    assert_eq!(
        record(&pool, "crash-2").await,
        (Some("completed".into()), 1)
    );
    println!(
        "killed right after the commit (the first client {} its answer): the retry replayed \
         id {id}, one row",
        if answered { "got" } else { "did not get" }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_transfers_follow_the_contract() {
    let server = PostgresServer::start();
    let example = Example::start(&server.url(), None).await;
    let first = example.transfer("t-1", 42).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["amount"], 42);
    assert!(first["id"].as_i64().unwrap() >= 1);
    let replay = example.transfer("t-1", 42).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
    assert_eq!(example.transfer("t-1", 43).await.status(), 422);
    // amount <= 0: 400, nothing committed, not stored.
    assert_eq!(example.transfer("t-2", 0).await.status(), 400);
    assert_eq!(example.transfer("t-2", 0).await.status(), 400);
    let missing = client()
        .post(example.url("/transfers"))
        .json(&json!({"amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 400);
    let stats = example.stats().await;
    assert_eq!(stats["transfers"], 3, "runs: t-1 once, t-2 twice");
    assert_eq!(stats["transfer_rows"], 1);
    // The other routes run on the same store.
    let order = client()
        .post(example.url("/orders"))
        .header("Idempotency-Key", "o-1")
        .json(&json!({"amount": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), 201);
    let pool = server.pool().await;
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM idempotency_keys WHERE key = 'idempotency:orders:o-1'"
        )
        .await,
        1
    );
}

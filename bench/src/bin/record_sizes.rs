//! Bytes per stored record: in the memory store (the process's resident memory, and the
//! cache's own weighing), in Redis (`MEMORY USAGE` of one record, and `used_memory` over
//! all of them) and in PostgreSQL (the row, and the table with its indexes per row).
//!
//! ```text
//! cargo run --release -p idempotent-bench --bin record_sizes
//! REDIS_URL=redis://127.0.0.1:6390 DATABASE_URL=postgres://postgres@127.0.0.1:5433/postgres \
//!     cargo run --release -p idempotent-bench --bin record_sizes
//! ```
//!
//! Every record is the benchmark's: a key like `idempotency:bench:<uuid>`, the response
//! `201`, `content-type: application/json`, the body `{"id":<n>,"amount":100}`, and a
//! fingerprint. `RECORDS` sets how many (default 100,000). The stores must be empty and
//! private to the run.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, StatusCode, header};
use bytes::Bytes;
use idempotent_runtime::store::memory::MemoryStore;
use idempotent_runtime::store::{
    Claim, IdempotencyStore, StoreKey, StoredResponse, Token, postgres::PostgresStore,
    redis::RedisStore,
};

const HOUR: Duration = Duration::from_secs(3600);

fn key(n: usize) -> StoreKey {
    StoreKey::new(
        "bench",
        None,
        &format!("{:032x}", n as u128 * 0x9e37_79b9_7f4a_7c15),
    )
}

fn response(n: usize, token: &Token) -> StoredResponse {
    StoredResponse::new(
        StatusCode::CREATED,
        Some(vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )]),
        Bytes::from(format!("{{\"id\":{n},\"amount\":100}}")),
        Some("a".repeat(64)),
    )
    .stored(SystemTime::now(), token.clone())
}

/// Claim and complete `records` keys.
async fn fill(store: &dyn IdempotencyStore, records: usize) -> Result<(), String> {
    for n in 0..records {
        let claim = Claim::new(
            Token::generate(),
            Some("a".repeat(64)),
            Duration::from_secs(60),
        );
        let key = key(n);
        store.claim(&key, &claim).await.map_err(|e| e.to_string())?;
        store
            .complete(&key, &claim.token, response(n, &claim.token), HOUR)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The process's resident memory, in bytes.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let records: usize = std::env::var("RECORDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100_000);
    println!("{records} records of the load benchmark's response");

    let before = resident();
    let memory = MemoryStore::new();
    fill(&memory, records).await?;
    let after = resident();
    println!(
        "memory store: {} bytes per record resident, {} as the cache weighs them",
        (after.saturating_sub(before)) / records as u64,
        memory.weighted_size() / records as u64
    );
    drop(memory);

    if let Ok(url) = std::env::var("REDIS_URL") {
        let client = redis::Client::open(url.as_str())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let used = |info: String| -> u64 {
            info.lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let before: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut connection)
            .await?;
        let store = RedisStore::connect(&url).await?;
        fill(&store, records).await?;
        let after: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut connection)
            .await?;
        let one: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key(0).as_str())
            .query_async(&mut connection)
            .await?;
        println!(
            "Redis: MEMORY USAGE of one record {one} bytes; used_memory grew {} bytes per record",
            (used(after).saturating_sub(used(before))) / records as u64
        );
    }

    if let Ok(url) = std::env::var("DATABASE_URL") {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&url)
            .await?;
        let store = PostgresStore::new(pool.clone());
        store.create_table().await?;
        let store = Arc::new(store);
        fill(&*store, records).await?;
        sqlx::query("VACUUM ANALYZE idempotency_keys")
            .execute(&pool)
            .await?;
        let row: f64 =
            sqlx::query_scalar("SELECT avg(pg_column_size(t.*))::float8 FROM idempotency_keys t")
                .fetch_one(&pool)
                .await?;
        let (table, total): (i64, i64) = sqlx::query_as(
            "SELECT pg_relation_size('idempotency_keys'), \
             pg_total_relation_size('idempotency_keys')",
        )
        .fetch_one(&pool)
        .await?;
        println!(
            "PostgreSQL: a row {row:.0} bytes; the heap {} and the table with its indexes {} bytes per record",
            table / records as i64,
            total / records as i64
        );
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

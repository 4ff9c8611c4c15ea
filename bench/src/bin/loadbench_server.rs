//! The server that `scripts/bench.sh` drives: the routes of `idempotent_bench::app` over
//! HTTP.
//!
//! ```text
//! BIND=127.0.0.1:3100 cargo run --release -p idempotent-bench --bin loadbench_server
//! BIND=127.0.0.1:3100 REDIS_URL=redis://127.0.0.1:6390 cargo run --release -p idempotent-bench --bin loadbench_server
//! ```
//!
//! Environment: `BIND` (default `127.0.0.1:3100`), `REDIS_URL` (optional: serves `/redis`
//! and `/redis-cached` on that Redis), `DATABASE_URL` (optional: serves `/postgres` on that
//! PostgreSQL database, whose table `idempotency_keys` is created if missing), `WORKERS`
//! (tokio worker threads, default: one per core). Prints one line when ready.

use idempotent_runtime::Idempotency;

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let redis = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(
            Idempotency::redis(&url)
                .await
                .map_err(|e| format!("connecting to REDIS_URL={url}: {e}"))?,
        ),
        _ => None,
    };
    let postgres = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            // A pool as a service sizes it: no ping before each checkout.
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(16)
                .test_before_acquire(false)
                .connect(&url)
                .await
                .map_err(|e| format!("connecting to DATABASE_URL: {e}"))?;
            Some(
                Idempotency::postgres(pool)
                    .await
                    .map_err(|e| format!("DATABASE_URL: {e}"))?,
            )
        }
        _ => None,
    };
    let mut stores = vec!["memory"];
    if redis.is_some() {
        stores.push("redis");
    }
    if postgres.is_some() {
        stores.push("postgres");
    }
    let stores = stores.join(", ");
    let app = idempotent_bench::app_with(idempotent_bench::Stores { redis, postgres });
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3100".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| format!("binding {bind}: {e}"))?;
    println!(
        "loadbench server ready on {} (stores: {stores})",
        listener.local_addr()?
    );
    axum::serve(listener, app).await?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = std::env::var("WORKERS")
        .ok()
        .and_then(|w| w.parse::<usize>().ok())
    {
        runtime.worker_threads(workers);
    }
    runtime.build()?.block_on(serve())
}

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
//! PostgreSQL database, whose table `idempotency_keys` is created if missing, and
//! `/postgres-nosync`, the same over a second pool whose sessions commit with
//! `synchronous_commit = off`), `PG_KEEP` (how many of each pool's 16 connections the
//! PostgreSQL stores keep between their statements, `PostgresOptions::keep_connections`;
//! default 0), `DYNAMODB_ENDPOINT` (optional: serves `/dynamodb` on the DynamoDB API at that
//! plain-HTTP endpoint, a local one such as moto's server, in a table `idempotency-bench`
//! created if missing), `WORKERS` (tokio worker threads, default: one per core). Prints one
//! line when ready.
//!
//! `/postgres-nosync` and `/dynamodb` run the same handler under the same attribute as the
//! routes of `idempotent_bench::app`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::store::dynamodb::{DynamoOptions, DynamoStore};
use idempotent_runtime::store::postgres::{PostgresOptions, PostgresStore};
use idempotent_runtime::{Idempotency, idempotent};
use serde::Deserialize;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// The table `/dynamodb` keeps its records in.
const DYNAMODB_TABLE: &str = "idempotency-bench";
/// The DynamoDB store's timeout, and the engine's deadline around it, for `/dynamodb`: moto
/// serves one request at a time, so under the load run's 32 connections a call waits for
/// the others (a real table answers in milliseconds, within the 250 ms default).
const DYNAMODB_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone, Default)]
struct Orders {
    ids: Arc<AtomicU64>,
}

#[derive(Deserialize)]
struct NewOrder {
    amount: i64,
}

/// The handler of `idempotent_bench::app`'s idempotent routes.
#[idempotent(key_prefix = "bench", ttl = "1h", include_body = true)]
async fn order(State(orders): State<Orders>, Json(order): Json<NewOrder>) -> Response {
    let id = orders.ids.fetch_add(1, Ordering::Relaxed) + 1;
    (
        StatusCode::CREATED,
        Json(json!({ "id": id, "amount": order.amount })),
    )
        .into_response()
}

/// A PostgreSQL store over a pool of 16 connections (as a service sizes it: no ping before
/// each checkout), keeping `keep` of them between its statements.
async fn postgres(options: PgConnectOptions, keep: u32) -> Result<Idempotency, String> {
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .map_err(|e| format!("connecting to DATABASE_URL: {e}"))?;
    let store =
        PostgresStore::with_options(pool, PostgresOptions::default().keep_connections(keep))
            .map_err(|e| format!("a PostgreSQL store: {e}"))?;
    store
        .create_table()
        .await
        .map_err(|e| format!("DATABASE_URL: {e}"))?;
    store.start_cleanup();
    Ok(Idempotency::new(store))
}

/// A DynamoDB store on the plain-HTTP endpoint `endpoint`, in [`DYNAMODB_TABLE`].
async fn dynamodb(endpoint: &str) -> Result<Idempotency, String> {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("bench", "bench", None, None, "loadbench"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let store = DynamoStore::with_options(
        client,
        DYNAMODB_TABLE,
        DynamoOptions::default().timeout(DYNAMODB_TIMEOUT),
    )
    .map_err(|e| format!("a DynamoDB store: {e}"))?;
    store.create_table().await.map_err(|e| {
        format!("creating the table {DYNAMODB_TABLE} at DYNAMODB_ENDPOINT={endpoint}: {e}")
    })?;
    Ok(Idempotency::new(store).store_timeout(DYNAMODB_TIMEOUT + Duration::from_secs(1)))
}

/// `route`, under `#[idempotent]` on `idem`.
fn idempotent_route(route: &str, idem: Idempotency) -> Router {
    Router::new()
        .route(route, post(order))
        .layer(idem)
        .with_state(Orders::default())
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let redis = match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(
            Idempotency::redis(&url)
                .await
                .map_err(|e| format!("connecting to REDIS_URL={url}: {e}"))?,
        ),
        _ => None,
    };
    let keep = match std::env::var("PG_KEEP") {
        Ok(keep) if !keep.is_empty() => keep
            .parse::<u32>()
            .map_err(|e| format!("PG_KEEP={keep}: {e}"))?,
        _ => 0,
    };
    let (postgres, postgres_nosync) = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            let options: PgConnectOptions = url
                .parse()
                .map_err(|e| format!("DATABASE_URL={url}: {e}"))?;
            let nosync = options.clone().options([("synchronous_commit", "off")]);
            (
                Some(postgres(options, keep).await?),
                Some(postgres(nosync, keep).await?),
            )
        }
        _ => (None, None),
    };
    let dynamo = match std::env::var("DYNAMODB_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(dynamodb(&endpoint).await?),
        _ => None,
    };
    let mut stores = vec!["memory"];
    if redis.is_some() {
        stores.push("redis");
    }
    if postgres.is_some() {
        stores.push("postgres");
    }
    if dynamo.is_some() {
        stores.push("dynamodb");
    }
    let stores = stores.join(", ");
    let mut app = idempotent_bench::app_with(idempotent_bench::Stores { redis, postgres });
    if let Some(nosync) = postgres_nosync {
        app = app.merge(idempotent_route("/postgres-nosync", nosync));
    }
    if let Some(dynamo) = dynamo {
        app = app.merge(idempotent_route("/dynamodb", dynamo));
    }
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

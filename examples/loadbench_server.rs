//! The server that `scripts/bench.sh` drives: one order handler served bare, under
//! `#[idempotent]` on the in-memory store and on Redis, and under the `axum-idempotent`
//! crate (with the session layer it needs), so that every path runs the same handler.
//!
//! ```text
//! BIND=127.0.0.1:3100 cargo run --release --example loadbench_server
//! BIND=127.0.0.1:3100 REDIS_URL=redis://127.0.0.1:6390 cargo run --release --example loadbench_server
//! ```
//!
//! Routes (all `POST`, body `{"amount": <integer>}`, answer 201 `{"id": <n>, "amount": <amount>}`):
//!
//! - `/bare`: the handler alone, no idempotency.
//! - `/memory`: `#[idempotent(key_prefix = "bench", include_body = true)]`, in-memory store.
//! - `/redis`: the same on `Idempotency::redis(REDIS_URL)` (only when `REDIS_URL` is set).
//! - `/peer`: the handler under `axum-idempotent` 0.6 in its `Idempotency-Key` header
//!   mode, with a `ruts` session layer on its in-memory (moka) store and the cookie layer,
//!   as its README sets it up. It caches only for a request that carries a session cookie
//!   (`session=<22 base64url characters>`).
//!
//! Environment: `BIND` (default `127.0.0.1:3100`), `REDIS_URL` (optional), `WORKERS`
//! (tokio worker threads, default: one per core). Prints one line when ready.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use axum_idempotent::{IdempotentLayer, IdempotentOptions};
use idempotent_runtime::{Idempotency, idempotent};
use ruts::store::moka::MokaStore;
use ruts::{CookieOptions, SessionLayer};
use serde::Deserialize;
use serde_json::json;
use tower_cookies::CookieManagerLayer;

#[derive(Clone, Default)]
struct AppState {
    ids: Arc<AtomicU64>,
}

#[derive(Deserialize)]
struct NewOrder {
    amount: i64,
}

/// The business logic every path runs.
fn place_order(state: &AppState, order: &NewOrder) -> Response {
    let id = state.ids.fetch_add(1, Ordering::Relaxed) + 1;
    (
        StatusCode::CREATED,
        Json(json!({ "id": id, "amount": order.amount })),
    )
        .into_response()
}

async fn bare(State(state): State<AppState>, Json(order): Json<NewOrder>) -> Response {
    place_order(&state, &order)
}

#[idempotent(key_prefix = "bench", ttl = "1h", include_body = true)]
async fn idempotent_order(State(state): State<AppState>, Json(order): Json<NewOrder>) -> Response {
    place_order(&state, &order)
}

fn peer_routes() -> Router<AppState> {
    let sessions = Arc::new(MokaStore::builder().build());
    let options = IdempotentOptions::default()
        .use_idempotency_key_header(Some("Idempotency-Key"), true)
        .expire_after(3600);
    Router::new()
        .route("/peer", post(bare))
        .layer(IdempotentLayer::<MokaStore>::new(options))
        .layer(
            SessionLayer::new(sessions).with_cookie_options(
                CookieOptions::build()
                    .name("session")
                    .max_age(3600)
                    .path("/"),
            ),
        )
        .layer(CookieManagerLayer::new())
}

/// Every route: `/bare`, `/memory`, `/peer`, and `/redis` when a Redis store is given.
pub(crate) fn app(redis: Option<Idempotency>) -> Router {
    let mut app = Router::new()
        .route("/bare", post(bare))
        .merge(
            Router::new()
                .route("/memory", post(idempotent_order))
                .layer(Idempotency::memory()),
        )
        .merge(peer_routes());
    if let Some(redis) = redis {
        app = app.merge(
            Router::new()
                .route("/redis", post(idempotent_order))
                .layer(redis),
        );
    }
    app.with_state(AppState::default())
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
    let stores = if redis.is_some() {
        "memory, redis"
    } else {
        "memory"
    };
    let app = app(redis);
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

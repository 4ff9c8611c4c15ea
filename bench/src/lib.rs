//! The routes the benchmarks measure: one order handler served bare, under `#[idempotent]`
//! on the in-memory store and on Redis, and under the `axum-idempotent` crate (with the
//! session layer it needs), so that every path runs the same handler. The load server
//! (`src/bin/loadbench_server.rs`, driven by `scripts/bench.sh`) serves them over HTTP;
//! `benches/request.rs` sends requests to them in process.
//!
//! Routes (all `POST`, body `{"amount": <integer>}`, answer 201 `{"id": <n>, "amount": <amount>}`):
//!
//! - `/bare`: the handler alone, no idempotency.
//! - `/memory`: `#[idempotent(key_prefix = "bench", include_body = true)]`, in-memory store.
//! - `/redis`: the same on a Redis store (only when one is given), and `/redis-cached` on it
//!   behind a local cache of completed records.
//! - `/postgres`: the same on a PostgreSQL store (only when one is given).
//! - `/peer`: the handler under `axum-idempotent` 0.6 in its `Idempotency-Key` header
//!   mode, with a `ruts` session layer on its in-memory (moka) store and the cookie layer,
//!   as its README sets it up. It caches only for a request that carries a session cookie
//!   (`session=<22 base64url characters>`).

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

/// The local cache of `/redis-cached`: room for every record a load run writes.
const LOCAL_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// The networked stores a load run measures, each optional.
#[derive(Default)]
pub struct Stores {
    /// Serves `/redis` and `/redis-cached`.
    pub redis: Option<Idempotency>,
    /// Serves `/postgres`.
    pub postgres: Option<Idempotency>,
}

/// Every route: `/bare`, `/memory`, `/peer`, and when a Redis store is given `/redis` and
/// `/redis-cached` (the same store behind a local cache of completed records).
pub fn app(redis: Option<Idempotency>) -> Router {
    app_with(Stores {
        redis,
        postgres: None,
    })
}

/// Every route of [`app`], and `/postgres` when a PostgreSQL store is given.
pub fn app_with(stores: Stores) -> Router {
    let Stores { redis, postgres } = stores;
    let mut app = Router::new()
        .route("/bare", post(bare))
        .merge(
            Router::new()
                .route("/memory", post(idempotent_order))
                .layer(Idempotency::memory()),
        )
        .merge(peer_routes());
    if let Some(redis) = redis {
        let cached = redis.clone().local_cache(LOCAL_CACHE_BYTES);
        app = app
            .merge(
                Router::new()
                    .route("/redis", post(idempotent_order))
                    .layer(redis),
            )
            .merge(
                Router::new()
                    .route("/redis-cached", post(idempotent_order))
                    .layer(cached),
            );
    }
    if let Some(postgres) = postgres {
        app = app.merge(
            Router::new()
                .route("/postgres", post(idempotent_order))
                .layer(postgres),
        );
    }
    app.with_state(AppState::default())
}

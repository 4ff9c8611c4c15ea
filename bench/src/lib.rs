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
//!
//! The cost-growth benchmarks (`benches/growth.rs`) add [`large_body_app`] (an order of many
//! lines, bare and under `#[idempotent]` with and without `include_body`, on the in-memory
//! store) and [`memory_app`] (`/memory` on a store the caller fills).

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

/// An order of many lines: the body of the body-size benchmarks.
#[derive(Deserialize)]
struct LargeOrder {
    amount: i64,
    lines: Vec<OrderLine>,
}

#[derive(Deserialize)]
struct OrderLine {
    sku: String,
    quantity: u32,
    unit_price: i64,
}

/// The business logic of the body-size routes: the lines totalled, a small answer whatever
/// the body's size.
fn place_large_order(state: &AppState, order: &LargeOrder) -> Response {
    let id = state.ids.fetch_add(1, Ordering::Relaxed) + 1;
    let total: i64 = order
        .lines
        .iter()
        .map(|line| i64::from(line.quantity) * line.unit_price)
        .sum();
    let last = order.lines.last().map(|line| line.sku.as_str());
    (
        StatusCode::CREATED,
        Json(json!({ "id": id, "amount": order.amount, "total": total, "last_sku": last })),
    )
        .into_response()
}

async fn large_bare(State(state): State<AppState>, Json(order): Json<LargeOrder>) -> Response {
    place_large_order(&state, &order)
}

#[idempotent(key_prefix = "growth-body", ttl = "1h", include_body = true)]
async fn large_include_body(
    State(state): State<AppState>,
    Json(order): Json<LargeOrder>,
) -> Response {
    place_large_order(&state, &order)
}

#[idempotent(key_prefix = "growth-no-body", ttl = "1h", include_body = false)]
async fn large_no_body(State(state): State<AppState>, Json(order): Json<LargeOrder>) -> Response {
    place_large_order(&state, &order)
}

/// The body-size routes (all `POST`, body [`large_order_body`], answer 201 `{"id", "amount",
/// "total", "last_sku"}`): `/large/bare` the handler alone, `/large/include-body` under
/// `#[idempotent(include_body = true)]` and `/large/no-body` under `include_body = false`,
/// both on one in-memory store with the default body limit (2 MiB, as axum's own).
pub fn large_body_app() -> Router {
    Router::new()
        .route("/large/bare", post(large_bare))
        .merge(
            Router::new()
                .route("/large/include-body", post(large_include_body))
                .route("/large/no-body", post(large_no_body))
                .layer(Idempotency::memory()),
        )
        .with_state(AppState::default())
}

/// A compact JSON order of exactly `size` bytes (at least 64): `{"amount":100,"lines":[…],
/// "note":"…"}`, order lines of about 50 bytes each, then padding in the note. Compact, with
/// integers and plain ASCII strings only, as most clients send JSON.
pub fn large_order_body(size: usize) -> Vec<u8> {
    const HEAD: &str = r#"{"amount":100,"lines":["#;
    const NOTE: &str = r#"],"note":""#;
    const TAIL: &str = r#""}"#;
    let mut body = String::with_capacity(size);
    body.push_str(HEAD);
    let room = size.saturating_sub(HEAD.len() + NOTE.len() + TAIL.len());
    for i in 0u64.. {
        let line = format!(
            r#"{}{{"sku":"SKU-{i:06}","quantity":{},"unit_price":{}}}"#,
            if i == 0 { "" } else { "," },
            i % 7 + 1,
            1999 + i,
        );
        if body.len() + line.len() > HEAD.len() + room {
            break;
        }
        body.push_str(&line);
    }
    body.push_str(NOTE);
    let pad = size.saturating_sub(body.len() + TAIL.len());
    body.extend(std::iter::repeat_n('x', pad));
    body.push_str(TAIL);
    body.into_bytes()
}

/// `/memory` alone, as [`app`] serves it (`#[idempotent(key_prefix = "bench", ttl = "1h",
/// include_body = true)]`, the load benchmark's handler), on the given store.
pub fn memory_app(idempotency: Idempotency) -> Router {
    Router::new()
        .route("/memory", post(idempotent_order))
        .layer(idempotency)
        .with_state(AppState::default())
}

//! The test service: one handler body behind routes with different options. A request's
//! JSON body tells the handler what to do (answer a status, wait at the probe's gate, panic).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::idempotent;
use serde::Deserialize;
use serde_json::json;

use super::app::Probe;

#[derive(Clone, Default)]
pub struct AppState {
    pub probe: Probe,
    pub ids: Arc<AtomicU64>,
}

/// What a test asks the handler to do.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Command {
    status: Option<u16>,
    hold: bool,
    panic: bool,
    pad: usize,
    #[allow(dead_code)]
    note: Option<String>,
}

pub async fn behave(state: &AppState, cmd: Command) -> Response {
    state.probe.enter();
    if cmd.hold {
        state.probe.hold().await;
    }
    if cmd.panic {
        panic!("handler panics on purpose");
    }
    let id = state.ids.fetch_add(1, Ordering::SeqCst) + 1;
    let status = StatusCode::from_u16(cmd.status.unwrap_or(201)).unwrap_or(StatusCode::CREATED);
    (
        status,
        [
            ("location", format!("/orders/{id}")),
            ("set-cookie", "session=secret".to_owned()),
            ("x-not-replayed", "1".to_owned()),
        ],
        Json(json!({ "id": id, "pad": "x".repeat(cmd.pad) })),
    )
        .into_response()
}

#[idempotent(key_prefix = "orders", ttl = "24h", include_body = true)]
pub async fn orders(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(key_prefix = "optional", include_body = true, mandatory = false)]
pub async fn optional(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(key_prefix = "unhashed")]
pub async fn unhashed(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(key_prefix = "closed", include_body = true, fail_open = false)]
pub async fn closed(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(key_prefix = "billing", header = "X-Idempotency-Key")]
pub async fn billing(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(key_prefix = "short", include_body = true, lock_ttl = "300ms")]
pub async fn short_lock(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(
    key_prefix = "wait",
    include_body = true,
    on_conflict = "wait",
    max_wait = "10s"
)]
pub async fn waiting(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(key_prefix = "impatient", on_conflict = "wait", max_wait = "100ms")]
pub async fn impatient(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

/// Every route, each with the options its name says.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orders", post(orders))
        .route("/optional", post(optional))
        .route("/unhashed", post(unhashed))
        .route("/closed", post(closed))
        .route("/billing", post(billing))
        .route("/short", post(short_lock))
        .route("/wait", post(waiting))
        .route("/impatient", post(impatient))
}

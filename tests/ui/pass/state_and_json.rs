use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::{Idempotency, idempotent};
use serde::Deserialize;

#[derive(Clone)]
struct Db;

#[derive(Deserialize)]
struct NewOrder {
    amount: i64,
}

/// Creates an order.
#[idempotent(
    key_prefix = "orders",
    ttl = "24h",
    include_body = true,
    mandatory = true
)]
pub async fn create_order(State(_db): State<Db>, Json(req): Json<NewOrder>) -> impl IntoResponse {
    (
        StatusCode::CREATED,
        Json(serde_json::json!({ "id": 1, "amount": req.amount })),
    )
}

fn main() {
    let _app: Router = Router::new()
        .route("/orders", post(create_order))
        .layer(Idempotency::memory())
        .with_state(Db);
}

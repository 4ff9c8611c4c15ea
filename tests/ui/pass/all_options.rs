use axum::routing::post;
use axum::extract::State;
use axum::{Json, Router};
use idempotent_runtime::{Idempotency, idempotent};

#[idempotent(
    key_prefix = "billing",
    ttl = "1h 30m",
    include_body = true,
    mandatory = false,
    header = "X-Idempotency-Key",
    lock_ttl = "30s",
    fail_open = false,
    on_conflict = "wait",
    max_wait = "5s",
    crate = "::idempotent_runtime"
)]
async fn charge(Json(body): Json<serde_json::Value>) -> Json<serde_json::Value> {
    Json(body)
}

#[idempotent(on_conflict = "reject", lock_ttl = "1m")]
async fn refund(body: String) -> String {
    body
}

#[idempotent(key_prefix = "reports", cache_control = "max-age=3600, public", etag = true)]
async fn report() -> &'static str {
    "report"
}

#[derive(serde::Serialize, serde::Deserialize)]
struct NewCharge {
    amount: i64,
    currency: Option<String>,
}

#[idempotent(include_body = true, fingerprint = "typed")]
async fn typed(State(n): State<u8>, Json(charge): Json<NewCharge>) -> String {
    format!("{n} {}", charge.amount)
}

#[idempotent(include_body = true, fingerprint = "canonical")]
async fn canonical(body: String) -> String {
    body
}

#[idempotent(etag = true)]
async fn tagged() -> &'static str {
    "tagged"
}

fn main() {
    let _app: Router = Router::new()
        .route("/charges", post(charge))
        .route("/refunds", post(refund))
        .route("/reports", axum::routing::get(report))
        .route("/tagged", axum::routing::get(tagged))
        .route("/typed", post(typed))
        .route("/canonical", post(canonical))
        .layer(Idempotency::memory())
        .with_state(7u8);
}

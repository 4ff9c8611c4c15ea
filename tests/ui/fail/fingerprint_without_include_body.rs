use axum::Json;
use idempotent_runtime::idempotent;

#[idempotent(fingerprint = "typed")]
async fn handler(Json(body): Json<serde_json::Value>) -> Json<serde_json::Value> {
    Json(body)
}

fn main() {}

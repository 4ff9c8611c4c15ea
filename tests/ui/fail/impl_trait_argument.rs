use axum::Json;
use idempotent_runtime::idempotent;

#[idempotent]
async fn handler(Json(body): Json<impl serde::de::DeserializeOwned>) {
    let _ = body;
}

fn main() {}

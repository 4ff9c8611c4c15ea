use axum::Router;
use axum::routing::post;
use idempotent_runtime::{Idempotency, idempotent};

struct NotAResponse;

#[idempotent]
async fn handler(body: String) -> NotAResponse {
    let _ = body;
    NotAResponse
}

fn main() {
    let _app: Router = Router::new()
        .route("/", post(handler))
        .layer(Idempotency::memory());
}

use axum::Router;
use axum::routing::post;
use idempotent_runtime::{Idempotency, idempotent};

struct NotAnExtractor;

#[idempotent]
async fn handler(_value: NotAnExtractor, body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new()
        .route("/", post(handler))
        .layer(Idempotency::memory());
}

use axum::Router;
use axum::routing::post;
use idempotent_runtime::{Idempotency, idempotent};

#[idempotent]
async fn ping() -> &'static str {
    "pong"
}

#[idempotent(mandatory = false)]
async fn nothing() {}

fn main() {
    let _app: Router = Router::new()
        .route("/ping", post(ping))
        .route("/nothing", post(nothing))
        .layer(Idempotency::memory());
}

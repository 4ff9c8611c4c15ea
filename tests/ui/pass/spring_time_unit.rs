use axum::Router;
use axum::routing::post;
use idempotent_runtime::{Idempotency, idempotent};

// As ported from Spring's `@Idempotent(keyPrefix = "orders", ttl = 24, timeUnit = TimeUnit.HOURS)`.
#[idempotent(key_prefix = "orders", ttl = 24, time_unit = "HOURS")]
async fn create_order(body: String) -> String {
    body
}

// Any case, and an integer `ttl` alone is in seconds.
#[idempotent(ttl = 500, time_unit = "milliseconds")]
async fn quick(body: String) -> String {
    body
}

#[idempotent(ttl = 3600)]
async fn hourly(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new()
        .route("/orders", post(create_order))
        .route("/quick", post(quick))
        .route("/hourly", post(hourly))
        .layer(Idempotency::memory());
}

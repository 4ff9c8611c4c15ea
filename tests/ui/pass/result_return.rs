use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::{Idempotency, idempotent};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Payment {
    amount: i64,
}

#[derive(Serialize)]
struct Receipt {
    id: u64,
}

#[idempotent(key_prefix = "payments")]
async fn pay(Json(payment): Json<Payment>) -> Result<Json<Receipt>, (StatusCode, String)> {
    if payment.amount <= 0 {
        return Err((
            StatusCode::BAD_REQUEST,
            "amount must be positive".to_owned(),
        ));
    }
    Ok(Json(Receipt { id: 1 }))
}

fn main() {
    let _app: Router = Router::new()
        .route("/payments", post(pay))
        .layer(Idempotency::memory());
}

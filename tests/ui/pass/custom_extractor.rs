use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::post;
use idempotent_runtime::{Idempotency, idempotent};

/// A value read from the request head.
struct Tenant(String);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = (StatusCode, &'static str);

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .headers
            .get("x-tenant")
            .and_then(|value| value.to_str().ok())
            .map(|tenant| Self(tenant.to_owned()))
            .ok_or((StatusCode::BAD_REQUEST, "missing tenant"))
    }
}

/// A value read from the whole request.
struct Upper(String);

impl<S: Send + Sync> FromRequest<S> for Upper {
    type Rejection = StatusCode;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let text = String::from_request(request, state)
            .await
            .map_err(|_| StatusCode::BAD_REQUEST)?;
        Ok(Self(text.to_uppercase()))
    }
}

#[idempotent(key_prefix = "shout")]
async fn shout(Tenant(tenant): Tenant, Upper(text): Upper) -> String {
    format!("{tenant}: {text}")
}

fn main() {
    let _app: Router = Router::new()
        .route("/shout", post(shout))
        .layer(Idempotency::memory());
}

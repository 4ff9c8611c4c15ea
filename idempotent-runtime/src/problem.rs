//! RFC 9457 `application/problem+json` responses for the errors of this layer.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// The `code` of every problem this layer answers with, and its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProblemCode {
    /// 400: a mandatory key is missing.
    KeyMissing,
    /// 400: the key is malformed.
    KeyInvalid,
    /// 413: the request body is over the limit for hashing.
    BodyTooLarge,
    /// 422: the key was used with a different request body.
    KeyReused,
    /// 409: the first request with this key is still running.
    RequestInProgress,
    /// 503: the store is unavailable and the route fails closed.
    StoreUnavailable,
    /// 500: the handler panicked.
    HandlerPanicked,
    /// 500: no store is registered for the app.
    NotConfigured,
}

impl ProblemCode {
    /// The machine-readable `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::KeyMissing => "idempotency_key_missing",
            ProblemCode::KeyInvalid => "idempotency_key_invalid",
            ProblemCode::BodyTooLarge => "idempotency_body_too_large",
            ProblemCode::KeyReused => "idempotency_key_reused",
            ProblemCode::RequestInProgress => "idempotency_request_in_progress",
            ProblemCode::StoreUnavailable => "idempotency_store_unavailable",
            ProblemCode::HandlerPanicked => "idempotency_handler_panicked",
            ProblemCode::NotConfigured => "idempotency_not_configured",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ProblemCode::KeyMissing | ProblemCode::KeyInvalid => StatusCode::BAD_REQUEST,
            ProblemCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::RequestInProgress => StatusCode::CONFLICT,
            ProblemCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::HandlerPanicked | ProblemCode::NotConfigured => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn title(self) -> &'static str {
        match self {
            ProblemCode::KeyMissing => "Idempotency key missing",
            ProblemCode::KeyInvalid => "Idempotency key invalid",
            ProblemCode::BodyTooLarge => "Request body too large",
            ProblemCode::KeyReused => "Idempotency key reused",
            ProblemCode::RequestInProgress => "Request in progress",
            ProblemCode::StoreUnavailable => "Idempotency store unavailable",
            ProblemCode::HandlerPanicked => "Internal server error",
            ProblemCode::NotConfigured => "Internal server error",
        }
    }
}

/// A problem response: `type`, `title`, `status`, `detail` and `code`.
pub(crate) fn problem(code: ProblemCode, detail: &str) -> Response {
    let status = code.status();
    let body = serde_json::json!({
        "type": format!("https://docs.rs/idempotent-runtime/latest/idempotent_runtime/problem/enum.ProblemCode.html#{}", code.as_str()),
        "title": code.title(),
        "status": status.as_u16(),
        "detail": detail,
        "code": code.as_str(),
    });
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    response
}

/// A problem response with a `Retry-After` header (seconds).
pub(crate) fn problem_retry_after(code: ProblemCode, detail: &str, seconds: u64) -> Response {
    let mut response = problem(code, detail);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

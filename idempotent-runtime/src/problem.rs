//! RFC 9457 `application/problem+json` responses for the errors of this layer.
//!
//! Every error of this layer is a problem document with `type`, `title`, `status`,
//! `detail` and a machine-readable `code`:
//!
//! ```json
//! {"type":"https://docs.rs/idempotent-runtime/latest/idempotent_runtime/problem/enum.ProblemCode.html#variant.KeyReused",
//!  "title":"Idempotency key reused","status":422,
//!  "detail":"Idempotency key 'k-1' was already used with a different request body",
//!  "code":"idempotency_key_reused"}
//! ```
//!
//! The `type` of each problem is the address of its [`ProblemCode`] variant in these docs,
//! which says what happened and what a client should do.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

/// The `code` of every problem this layer answers with, and its HTTP status.
///
/// Each variant's documentation is the page its problem's `type` points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemCode {
    /// 400 `idempotency_key_missing`: the route requires an idempotency key and the request
    /// has none. Send the header (default `Idempotency-Key`) with a unique value per logical
    /// request, e.g. a UUID, and the same value on every retry of it.
    KeyMissing,
    /// 400 `idempotency_key_invalid`: the key is empty, longer than 255 bytes, has
    /// characters outside printable ASCII, is a badly quoted RFC 8941 string, or the header
    /// appears more than once. The `detail` says which.
    KeyInvalid,
    /// 413 `idempotency_body_too_large`: the request body is over the limit this route reads
    /// to fingerprint it (`include_body = true`). Nothing was run or stored.
    BodyTooLarge,
    /// 400 `idempotency_request_body_unreadable`: the request body could not be read (the
    /// client sent a malformed or truncated body). Nothing was run or stored; retrying with
    /// the same key is safe.
    RequestBodyUnreadable,
    /// 422 `idempotency_key_reused`: the key was already used with a different request body.
    /// A key names one logical request: use a new key for a new request.
    KeyReused,
    /// 409 `idempotency_request_in_progress`: the first request with this key is still
    /// running. Retry after the `Retry-After` delay, with the same key and body: you will
    /// get its response.
    RequestInProgress,
    /// 503 `idempotency_store_unavailable`: the idempotency store cannot be reached and the
    /// route refuses to run without it (`fail_open = false`). Nothing was run. Retry after the
    /// `Retry-After` delay with the same key.
    StoreUnavailable,
    /// 500 `idempotency_handler_panicked`: the handler failed. Nothing was stored, so a retry
    /// with the same key runs it again.
    HandlerPanicked,
    /// 500 `idempotency_response_body_unreadable`: the handler's response body failed while
    /// it was read for storing. Nothing was stored, so a retry with the same key runs the
    /// handler again.
    ResponseBodyUnreadable,
    /// 500 `idempotency_not_configured`: the server has an `#[idempotent]` route but no store
    /// registered (a bug of the server: `.layer(Idempotency::memory())` or another store is
    /// missing on its router).
    NotConfigured,
}

/// The address of the page that explains `ProblemCode::$variant`.
macro_rules! type_uri {
    ($variant:ident) => {
        concat!(
            "https://docs.rs/idempotent-runtime/latest/idempotent_runtime/problem/enum.ProblemCode.html#variant.",
            stringify!($variant)
        )
    };
}

impl ProblemCode {
    /// Every code, in the order of the documentation.
    pub const ALL: [ProblemCode; 10] = [
        ProblemCode::KeyMissing,
        ProblemCode::KeyInvalid,
        ProblemCode::BodyTooLarge,
        ProblemCode::RequestBodyUnreadable,
        ProblemCode::KeyReused,
        ProblemCode::RequestInProgress,
        ProblemCode::StoreUnavailable,
        ProblemCode::HandlerPanicked,
        ProblemCode::ResponseBodyUnreadable,
        ProblemCode::NotConfigured,
    ];

    /// The machine-readable `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::KeyMissing => "idempotency_key_missing",
            ProblemCode::KeyInvalid => "idempotency_key_invalid",
            ProblemCode::BodyTooLarge => "idempotency_body_too_large",
            ProblemCode::RequestBodyUnreadable => "idempotency_request_body_unreadable",
            ProblemCode::KeyReused => "idempotency_key_reused",
            ProblemCode::RequestInProgress => "idempotency_request_in_progress",
            ProblemCode::StoreUnavailable => "idempotency_store_unavailable",
            ProblemCode::HandlerPanicked => "idempotency_handler_panicked",
            ProblemCode::ResponseBodyUnreadable => "idempotency_response_body_unreadable",
            ProblemCode::NotConfigured => "idempotency_not_configured",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ProblemCode::KeyMissing
            | ProblemCode::KeyInvalid
            | ProblemCode::RequestBodyUnreadable => StatusCode::BAD_REQUEST,
            ProblemCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::RequestInProgress => StatusCode::CONFLICT,
            ProblemCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::HandlerPanicked
            | ProblemCode::ResponseBodyUnreadable
            | ProblemCode::NotConfigured => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem's `type`: the address of this variant's documentation, which explains it.
    pub fn type_uri(self) -> &'static str {
        match self {
            ProblemCode::KeyMissing => type_uri!(KeyMissing),
            ProblemCode::KeyInvalid => type_uri!(KeyInvalid),
            ProblemCode::BodyTooLarge => type_uri!(BodyTooLarge),
            ProblemCode::RequestBodyUnreadable => type_uri!(RequestBodyUnreadable),
            ProblemCode::KeyReused => type_uri!(KeyReused),
            ProblemCode::RequestInProgress => type_uri!(RequestInProgress),
            ProblemCode::StoreUnavailable => type_uri!(StoreUnavailable),
            ProblemCode::HandlerPanicked => type_uri!(HandlerPanicked),
            ProblemCode::ResponseBodyUnreadable => type_uri!(ResponseBodyUnreadable),
            ProblemCode::NotConfigured => type_uri!(NotConfigured),
        }
    }

    /// The problem's `title`.
    pub fn title(self) -> &'static str {
        match self {
            ProblemCode::KeyMissing => "Idempotency key missing",
            ProblemCode::KeyInvalid => "Idempotency key invalid",
            ProblemCode::BodyTooLarge => "Request body too large",
            ProblemCode::RequestBodyUnreadable => "Request body unreadable",
            ProblemCode::KeyReused => "Idempotency key reused",
            ProblemCode::RequestInProgress => "Request in progress",
            ProblemCode::StoreUnavailable => "Idempotency store unavailable",
            ProblemCode::HandlerPanicked
            | ProblemCode::ResponseBodyUnreadable
            | ProblemCode::NotConfigured => "Internal server error",
        }
    }
}

/// A problem response: `type`, `title`, `status`, `detail` and `code`.
pub(crate) fn problem(code: ProblemCode, detail: &str) -> Response {
    let status = code.status();
    let body = serde_json::json!({
        "type": code.type_uri(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_the_anchor_of_its_variant_and_every_code_is_distinct() {
        let mut codes = std::collections::HashSet::new();
        for code in ProblemCode::ALL {
            // Rustdoc gives each enum variant the anchor `#variant.<Name>`.
            assert_eq!(
                code.type_uri(),
                format!(
                    "https://docs.rs/idempotent-runtime/latest/idempotent_runtime/problem/enum.ProblemCode.html#variant.{code:?}"
                )
            );
            assert!(code.as_str().starts_with("idempotency_"));
            assert!(codes.insert(code.as_str()), "{} twice", code.as_str());
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }
}

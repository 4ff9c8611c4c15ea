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
//! which says what happened and what a client should do. [`ProblemCode`] and the body,
//! [`ProblemDetails`], come from `idempotent-protocol`, which `idempotent-client` reads them
//! back with.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

// Defined in `idempotent-protocol`, which clients share; documented here too, where every
// problem's `type` points.
#[doc(inline)]
pub use idempotent_protocol::{ProblemCode, ProblemDetails};

/// A problem response: `type`, `title`, `status`, `detail` and `code`.
pub(crate) fn problem(code: ProblemCode, detail: &str) -> Response {
    // Serialising strings and a number into a `Vec` cannot fail; were it to, the status and
    // the content type would still say what happened.
    let body = serde_json::to_vec(&ProblemDetails::new(code, detail)).unwrap_or_default();
    let mut response = (code.status(), body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(idempotent_protocol::PROBLEM_JSON),
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

//! The Idempotency-Key protocol, as both ends of it see it: the header names, the rules a key
//! must follow, the problem codes and the `application/problem+json` body the server answers
//! its errors with, and the request fingerprint.
//!
//! The server side is `idempotent-runtime` (axum), the client side `idempotent-client`
//! (reqwest); both build on this crate, which depends on neither: only `http`, `serde` and a
//! SHA-256.
//!
//! ```
//! use idempotent_protocol::{IDEMPOTENCY_KEY, ProblemCode, ProblemDetails, fingerprint, key};
//!
//! // A client checks its key before sending it, with the server's own rules.
//! let mut headers = http::HeaderMap::new();
//! headers.insert(IDEMPOTENCY_KEY, http::HeaderValue::from_static("8e03978e"));
//! assert_eq!(key::from_headers(&headers, &IDEMPOTENCY_KEY).as_deref(), Ok("8e03978e"));
//!
//! // A server answers a reused key with this body; a client reads the code back.
//! let problem = ProblemDetails::new(ProblemCode::KeyReused, "Idempotency key '8e03978e' was already used with a different request body");
//! assert_eq!(problem.status, Some(422));
//! assert_eq!(problem.problem_code(), Some(ProblemCode::KeyReused));
//!
//! // Whitespace does not change a JSON body's fingerprint.
//! headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
//! assert_eq!(
//!     fingerprint::fingerprint(&headers, br#"{"amount": 100}"#),
//!     fingerprint::fingerprint(&headers, br#"{"amount":100}"#),
//! );
//! ```
//!
//! # The protocol in brief
//!
//! A client sends one key per logical request in [`IDEMPOTENCY_KEY`], and the same key and
//! body on every retry of it. The server runs the request once, stores its 2xx response and
//! replays it to the retries with [`IDEMPOTENT_REPLAYED`]`: true`. A retry while the first
//! still runs gets 409 ([`ProblemCode::RequestInProgress`], with `Retry-After`); the same key
//! with a different body gets 422 ([`ProblemCode::KeyReused`]). [`ProblemCode`] lists every
//! error, with its status and what a client should do about it.

mod header;

pub mod fingerprint;
pub mod key;
pub mod problem;

pub use header::{IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED};
pub use problem::{PROBLEM_JSON, ProblemCode, ProblemDetails, UnknownProblemCode};

//! Send HTTP requests that are safe to retry, and retry them: one `Idempotency-Key` per
//! logical request, the same key and body on every attempt, exponential backoff with jitter,
//! and the server's `Retry-After` honoured.
//!
//! The client side of the protocol that `idempotent-runtime` serves: a server that runs each
//! key once and replays its response makes a retry after a lost answer safe, and this crate
//! makes the retries.
//!
//! ```no_run
//! use std::time::Duration;
//! use idempotent_client::{ProblemCode, RequestBuilderExt, RetryPolicy};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let http = reqwest::Client::new();
//! let policy = RetryPolicy::new().base(Duration::from_millis(500));
//!
//! let sent = http
//!     .post("http://127.0.0.1:3000/orders")
//!     .header("content-type", "application/json")
//!     .body(r#"{"amount": 100}"#)
//!     .idempotent()              // a new key (a UUID), kept for every attempt
//!     .policy(policy)
//!     .send()
//!     .await;
//! match sent {
//!     Ok(outcome) => {
//!         println!("{} after {} attempt(s), key {}", outcome.status(), outcome.attempts(), outcome.key());
//!         let order = outcome.into_response().text().await?;
//!     }
//!     Err(error) if error.problem_code() == Some(ProblemCode::KeyReused) => {
//!         // Never retried: the key belongs to another request body.
//!     }
//!     Err(error) => return Err(error.into()),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # What is retried
//!
//! | the attempt got | retried? |
//! |---|---|
//! | no response: connection refused, reset or closed before the answer, a timeout | yes |
//! | 409 (the first request with this key is still running), 429, 502, 503, 504 | yes |
//! | 2xx, 3xx | no: an [`Outcome`] |
//! | 400, 401, 403, 404, 413, 422, any other 4xx, 500 and other 5xx | no: an [`Error`] |
//!
//! Retry `n` (0 for the first) waits `min(cap, base * 2^n) + random(0, base)`, or what the
//! response's `Retry-After` asks (seconds or an HTTP date), up to `cap`: see
//! [`RetryPolicy`] (defaults: base 1 s, cap 8 s, 5 attempts). A request whose body cannot be
//! sent twice (a stream) is sent once. The [`Outcome`] or [`Error`] says how many attempts
//! it took, and with which key; an [`Error`] with a response carries its RFC 9457 problem
//! document, read with `idempotent-protocol`'s [`ProblemDetails`].
//!
//! # TLS, HTTP/2
//!
//! This crate uses `reqwest` without its default features, so it adds no TLS stack of its
//! own. Enable the ones you want on your own `reqwest` dependency (for example
//! `reqwest = { version = "0.13", features = ["rustls"] }`): Cargo builds one `reqwest`
//! with the features of both.

mod error;
mod outcome;
mod policy;
mod request;

pub use error::{Error, ErrorKind, ErrorResponse};
pub use outcome::Outcome;
pub use policy::{
    DEFAULT_BASE, DEFAULT_CAP, DEFAULT_MAX_ATTEMPTS, RetryPolicy, is_retryable_status, retry_after,
};
pub use request::{IdempotentRequest, RequestBuilderExt};

pub use idempotent_protocol::{
    IDEMPOTENCY_KEY, IDEMPOTENT_REPLAYED, ProblemCode, ProblemDetails, key::KeyError,
};

//! The header names of the protocol.

use http::HeaderName;

/// `Idempotency-Key`: the request header that names one logical request. A client sends the
/// same value on every retry of that request; a server runs it once and replays its response
/// to the retries.
///
/// ```
/// assert_eq!(idempotent_protocol::IDEMPOTENCY_KEY, "idempotency-key");
/// ```
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// `Idempotent-Replayed`: the response header, with the value `true`, on a response that a
/// server replayed from its store rather than produced by running the request again.
///
/// ```
/// assert_eq!(idempotent_protocol::IDEMPOTENT_REPLAYED, "idempotent-replayed");
/// ```
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

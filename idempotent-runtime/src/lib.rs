//! Make an axum handler safe to retry with one attribute.
//!
//! ```
//! use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::post};
//! use idempotent_runtime::{Idempotency, idempotent};
//! use serde::Deserialize;
//!
//! #[derive(Clone, Default)]
//! struct Db;
//!
//! #[derive(Deserialize)]
//! struct NewOrder {
//!     amount: i64,
//! }
//!
//! #[idempotent(key_prefix = "orders", ttl = "24h", include_body = true, mandatory = true)]
//! async fn create_order(State(_db): State<Db>, Json(req): Json<NewOrder>) -> impl IntoResponse {
//!     (StatusCode::CREATED, Json(serde_json::json!({ "id": 1, "amount": req.amount })))
//! }
//!
//! let app: Router = Router::new()
//!     .route("/orders", post(create_order))
//!     .layer(Idempotency::memory())
//!     .with_state(Db);
//! # drop(app);
//! ```
//!
//! A request carries an `Idempotency-Key` header. The first request with a key claims it
//! atomically in the store, runs the handler once (detached from the connection, so a
//! client that hangs up does not cut it short) and stores a 2xx response under
//! `idempotency:{key_prefix}:{key}` for `ttl`. A retry with the same key gets the stored
//! response back with `Idempotent-Replayed: true`; a retry with a different body
//! (`include_body = true`) gets 422; a retry while the first still runs gets 409. Errors of
//! this layer are RFC 9457 `application/problem+json` with a machine-readable `code` (see
//! [`problem::ProblemCode`]).
//!
//! # What the attribute generates
//!
//! `#[idempotent]` keeps the function an ordinary axum handler, routed as before. It moves
//! the body into an inner function and takes the whole request, so the key is checked and
//! the body hashed before any extractor consumes it. Roughly:
//!
//! ```ignore
//! fn create_order<S, M>(input: Input<S, M>) -> impl Future<Output = Response>
//! where
//!     State<Db>: FromRequestParts<S>,
//!     Json<NewOrder>: FromRequest<S, M>,
//! {
//!     async fn create_order(State(db): State<Db>, Json(req): Json<NewOrder>) -> impl IntoResponse {
//!         /* your body, unchanged */
//!     }
//!     static OPTIONS: Options = /* the attribute's options, checked at compile time */;
//!     run(input, &OPTIONS, |request, state| async move {
//!         // run the extractors on `request`, then call the inner function
//!     })
//! }
//! ```
//!
//! `run` reads the key (400 if missing or malformed), reads and hashes the body when
//! `include_body = true` (413 over the limit), claims the key, and only then runs the
//! extractors and the body, detached from the connection (polled in place, and moved onto a task of its own if the client goes away). A generic handler keeps its own type
//! parameters first and is routed as `post(handler::<MyRepo, _, _>)`.
//!
//! # Stores
//!
//! [`Idempotency::memory`] (one process) and, with the `redis` feature,
//! [`Idempotency::redis`] / [`Idempotency::redis_cluster`] (shared by many processes). Any
//! type implementing [`store::IdempotencyStore`] can be used with [`Idempotency::new`].

#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(hidden)]
pub mod __private;
mod engine;
mod extract;
pub mod fingerprint;
mod idempotency;
pub mod key;
pub mod layer;
pub mod metrics;
mod policy;
pub mod problem;
pub mod record;
pub mod store;
mod throttle;

pub use extract::{IdempotencyClaim, IdempotencyKey, MissingExtension};
pub use idempotency::{
    DEFAULT_BODY_LIMIT, DEFAULT_MAX_RESPONSE_SIZE, DEFAULT_STORE_TIMEOUT, Idempotency,
};
pub use layer::{IdempotencyLayer, IdempotencyService};
pub use policy::{
    DEFAULT_HEADER, DEFAULT_LOCK_TTL, DEFAULT_MAX_WAIT, DEFAULT_TTL, OnConflict, Policy,
};

/// Re-exported for implementors of [`store::IdempotencyStore`].
pub use async_trait::async_trait;

#[doc(inline)]
pub use idempotent_macros::idempotent;

//! Make an axum handler safe to retry with one attribute, or any tower service with one
//! layer.
//!
//! New here? The [guide] explains the protocol, the stores, outages, porting from Spring,
//! the same-transaction mode, the middleware and the client, chapter by chapter.
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
//! # Without the macro
//!
//! The same protocol is middleware: [`Idempotency::layer`] with a [`Policy`] (the
//! attribute's options as a value) wraps one route, a nested router, or a proxy in front of
//! another service (`examples/gateway.rs`). Same responses, same records, same metrics; the
//! layer holds the store, so a route cannot be left without one:
//!
//! ```
//! use axum::{Router, http::StatusCode, routing::post};
//! use idempotent_runtime::{Idempotency, Policy};
//!
//! async fn refund() -> (StatusCode, &'static str) {
//!     (StatusCode::CREATED, "refunded")
//! }
//!
//! let idem = Idempotency::memory();
//! let refunds = Policy::new().key_prefix("refunds").include_body(true);
//! let app: Router = Router::new().route("/refunds", post(refund).layer(idem.layer(refunds)));
//! # drop(app);
//! ```
//!
//! The attribute's documentation ([`idempotent`]) shows the two side by side: what the
//! attribute generates is this layer around one handler, with its options checked at
//! compile time.
//!
//! # What a handler can see
//!
//! [`IdempotencyKey`] (the key, unquoted) and [`IdempotencyClaim`] (the store key and the
//! token of the claim the handler runs under) are extractors, on both paths.
//!
//! # Slow handlers
//!
//! A handler that runs past half its `lock_ttl` keeps its claim: the engine renews the
//! PROCESSING record's lease every half `lock_ttl`, fenced by the claim's token, so a retry
//! meets 409 rather than a second run. `lock_ttl` only matters when the owner dies. A store
//! that cannot renew ([`store::IdempotencyStore::renew`]'s default) keeps the lock for
//! `lock_ttl`, and a late completion stays fenced.
//!
//! # Keyed reads and HTTP caches
//!
//! With `cache_control` (and `etag`, on by default with it), a keyed `GET` gets a strong
//! `ETag` from its stored body, `Cache-Control` and `Vary: Idempotency-Key`, and a
//! revalidation whose `If-None-Match` matches is answered `304 Not Modified` from the record
//! without running the handler: browsers and CDNs cache per key, and revalidate for the
//! price of a replay. See [`Policy::cache_control`] and [`Policy::etag`].
//!
//! # Stores
//!
//! [`Idempotency::memory`] (one process) and, with the `redis` feature,
//! [`Idempotency::redis`] / [`Idempotency::redis_cluster`] (shared by many processes). Any
//! type implementing [`store::IdempotencyStore`] can be used with [`Idempotency::new`].
//!
//! With the `dynamodb` feature, [`Idempotency::dynamodb`] keeps records in a DynamoDB table,
//! over the app's AWS SDK client (see [`store::dynamodb`]).
//!
//! With the `postgres` feature, [`Idempotency::postgres`] keeps records in a PostgreSQL
//! table over the app's sqlx pool, and a handler can take the request's transaction with
//! [`store::postgres::Tx`]: its writes and its idempotency record then commit together, so
//! that a process killed at any moment leaves both or neither (see [`store::postgres`]).
//!
//! # OpenAPI
//!
//! With the `utoipa` feature, [`openapi::document`] gives a keyed route's operation in a
//! utoipa `OpenApi` document the key header parameter, the replay headers and the layer's
//! `application/problem+json` responses, from the route's [`Policy`].

#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc(hidden)]
pub mod __private;
mod engine;
mod etag;
mod extract;
/// A guide to this crate, chapter by chapter: start here.
pub mod guide;
mod idempotency;
pub mod layer;
mod local;
pub mod metrics;
#[cfg(feature = "utoipa")]
pub mod openapi;
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

// The key's rules and the fingerprint are `idempotent-protocol`'s, which clients share.
#[doc(inline)]
pub use idempotent_protocol::{fingerprint, key};

/// Re-exported for implementors of [`store::IdempotencyStore`].
pub use async_trait::async_trait;

#[doc(inline)]
pub use idempotent_macros::idempotent;

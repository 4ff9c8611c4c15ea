//! The protocol as tower middleware: [`IdempotencyLayer`] around any
//! `Service<http::Request<_>>`.
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
//! let policy = Policy::new().key_prefix("refunds").include_body(true);
//! let app: Router = Router::new().route("/refunds", post(refund).layer(idem.layer(policy)));
//! ```
//!
//! The same layer wraps a nested router (`Router::layer`) or a proxy to another service
//! (see `examples/gateway.rs`): it runs the whole protocol of the attribute (same
//! responses, same records, same metrics) around whatever it wraps. The wrapped service
//! takes `http::Request<axum::body::Body>` (the layer reads the body to fingerprint it and
//! hands it on); its response body may be any `http_body::Body`.
//!
//! Registering [`Idempotency`] itself as a layer (`.layer(idem)`) is what `#[idempotent]`
//! handlers need: it puts the store into each request, where they find it
//! ([`AddIdempotency`]).

mod future;
mod service;

use std::sync::Arc;

use tower_layer::Layer;

pub use self::future::ResponseFuture;
pub use self::service::{AddIdempotency, IdempotencyService};
use crate::idempotency::{Idempotency, Inner};
use crate::policy::Policy;

/// Runs the protocol of one [`Policy`] around a service; made by [`Idempotency::layer`].
///
/// Cloning is cheap (two `Arc`s).
#[derive(Clone)]
pub struct IdempotencyLayer {
    inner: Arc<Inner>,
    policy: Arc<Policy>,
}

impl std::fmt::Debug for IdempotencyLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyLayer")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Idempotency {
    /// The middleware that runs the protocol with `policy` around a service, with this
    /// store and settings: the attribute's behaviour without the attribute.
    pub fn layer(&self, policy: Policy) -> IdempotencyLayer {
        IdempotencyLayer {
            inner: self.inner.clone(),
            policy: Arc::new(policy),
        }
    }
}

impl IdempotencyLayer {
    /// The policy this layer applies.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = IdempotencyService<S>;

    fn layer(&self, service: S) -> Self::Service {
        IdempotencyService::new(service, self.inner.clone(), self.policy.clone())
    }
}

impl<S> Layer<S> for Idempotency {
    type Service = AddIdempotency<S>;

    fn layer(&self, service: S) -> Self::Service {
        AddIdempotency::new(service, self.clone())
    }
}

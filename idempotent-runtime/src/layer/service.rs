//! The services: [`IdempotencyService`], which runs the protocol, and [`AddIdempotency`],
//! which makes the store reachable from `#[idempotent]` handlers.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use tower_service::Service;

use super::future::ResponseFuture;
use crate::engine;
use crate::idempotency::{Idempotency, Inner};
use crate::policy::{Policy, PolicyRef};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The service of [`IdempotencyLayer`](super::IdempotencyLayer): runs the protocol of its
/// [`Policy`] around the wrapped service.
///
/// The wrapped service is called only when the protocol says the request runs: with a new
/// key it claimed, without a key on a route where the key is optional, or when the store is
/// down and the policy fails open. It is called on a clone taken when it was ready (as
/// axum's `from_fn` does), detached from the connection: if the client goes away, the call
/// runs to its end and its response is stored for the retry. An error of the wrapped
/// service releases the key and is passed on.
#[derive(Clone)]
pub struct IdempotencyService<S> {
    service: S,
    inner: Arc<Inner>,
    policy: Arc<Policy>,
}

impl<S> IdempotencyService<S> {
    pub(super) fn new(service: S, inner: Arc<Inner>, policy: Arc<Policy>) -> Self {
        Self {
            service,
            inner,
            policy,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.service
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for IdempotencyService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdempotencyService")
            .field("service", &self.service)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for IdempotencyService<S>
where
    S: Service<http::Request<Body>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body<Data = Bytes> + Send + 'static,
    ReqBody::Error: Into<BoxError>,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // The service that was polled ready is the one to call; leave a clone in its place.
        let clone = self.service.clone();
        let mut ready = std::mem::replace(&mut self.service, clone);
        let future = engine::run(
            self.inner.clone(),
            PolicyRef::Shared(self.policy.clone()),
            request.map(Body::new),
            move |request| async move {
                let response = ready.call(request).await?;
                Ok(response.map(Body::new))
            },
        );
        ResponseFuture {
            inner: Box::pin(future),
        }
    }
}

/// The service of [`Idempotency`] used as a layer: puts the store into each request's
/// extensions, where `#[idempotent]` handlers find it.
#[derive(Clone, Debug)]
pub struct AddIdempotency<S> {
    service: S,
    idempotency: Idempotency,
}

impl<S> AddIdempotency<S> {
    pub(super) fn new(service: S, idempotency: Idempotency) -> Self {
        Self {
            service,
            idempotency,
        }
    }
}

impl<S, B> Service<http::Request<B>> for AddIdempotency<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.idempotency.clone());
        self.service.call(request)
    }
}

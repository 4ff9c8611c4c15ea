//! What a handler can extract of the engine's decision: the key, and the claim it runs under.

use std::convert::Infallible;
use std::fmt;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;

use crate::problem::{ProblemCode, problem};
use crate::store::{StoreKey, Token};

/// The request's idempotency key, parsed and validated (unquoted if it was an RFC 8941
/// string).
///
/// The engine puts it in the request's extensions before the handler runs, whenever the
/// request has a valid key (also when the store is down and the route fails open). Extract
/// `Option<IdempotencyKey>` on a route with `mandatory = false`.
///
/// ```
/// use idempotent_runtime::IdempotencyKey;
///
/// async fn create(key: IdempotencyKey) -> String {
///     format!("created under {}", key.as_str())
/// }
/// # let _ = create;
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(pub(crate) String);

impl IdempotencyKey {
    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IdempotencyKey").field(&self.0).finish()
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The claim a handler runs under: the store key and the token that fences it.
///
/// The engine puts it in the request's extensions when it claimed the key and runs the
/// handler as the key's owner (not when the route fails open, nor without a key). A handler
/// that writes to the same database as the store can use it to commit its work and the
/// completed record together.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdempotencyClaim {
    /// The key the record is stored under.
    pub key: StoreKey,
    /// The token of this claim: complete, release and renew are fenced by it.
    pub token: Token,
}

impl IdempotencyClaim {
    /// A claim of `key` by `token`.
    pub fn new(key: StoreKey, token: Token) -> Self {
        Self { key, token }
    }
}

/// Why [`IdempotencyKey`] or [`IdempotencyClaim`] could not be extracted: the route does not
/// run under the protocol, or this request has no key (or no claim). A 500: the route and
/// the handler do not match.
#[derive(Debug)]
pub struct MissingExtension(&'static str);

impl IntoResponse for MissingExtension {
    fn into_response(self) -> Response {
        tracing::error!(
            extractor = self.0,
            "idempotency: a handler extracts {} but the request has none: route it under \
             `#[idempotent]` or an idempotency layer, or extract `Option<{}>`",
            self.0,
            self.0
        );
        problem(
            ProblemCode::NotConfigured,
            "The idempotency layer is not configured for this route.",
        )
    }
}

impl fmt::Display for MissingExtension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request has no {}", self.0)
    }
}

impl std::error::Error for MissingExtension {}

/// What the engine decided for a request, put into its extensions once (one entry for both
/// extractors).
#[derive(Clone)]
pub(crate) struct Decision {
    pub(crate) key: IdempotencyKey,
    pub(crate) claim: Option<std::sync::Arc<IdempotencyClaim>>,
}

impl Decision {
    fn of(parts: &Parts) -> Option<&Decision> {
        parts.extensions.get::<Decision>()
    }
}

macro_rules! from_decision {
    ($type:ident, $get:expr) => {
        impl<S: Send + Sync> FromRequestParts<S> for $type {
            type Rejection = MissingExtension;

            async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
                Decision::of(parts)
                    .and_then($get)
                    .ok_or(MissingExtension(stringify!($type)))
            }
        }

        impl<S: Send + Sync> OptionalFromRequestParts<S> for $type {
            type Rejection = Infallible;

            async fn from_request_parts(
                parts: &mut Parts,
                _: &S,
            ) -> Result<Option<Self>, Self::Rejection> {
                Ok(Decision::of(parts).and_then($get))
            }
        }
    };
}

from_decision!(IdempotencyKey, |d: &Decision| Some(d.key.clone()));
from_decision!(IdempotencyClaim, |d: &Decision| d.claim.as_deref().cloned());

/// A body the typed fingerprint read as its type, waiting for the handler's extractor (the
/// attribute's generated code takes it, so that the body is deserialised once).
#[derive(Clone)]
pub(crate) struct TypedValue(
    pub(crate) std::sync::Arc<std::sync::Mutex<Option<Box<dyn std::any::Any + Send + Sync>>>>,
);

impl TypedValue {
    pub(crate) fn new(value: Box<dyn std::any::Any + Send + Sync>) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(Some(value))))
    }

    /// The value, if it is still there and of type `T`.
    pub(crate) fn take<T: 'static>(extensions: &mut http::Extensions) -> Option<T> {
        let stash = extensions.remove::<TypedValue>()?;
        let value = stash
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()?;
        value.downcast::<T>().ok().map(|value| *value)
    }
}

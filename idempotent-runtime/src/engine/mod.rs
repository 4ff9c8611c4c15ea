//! The one state machine of the behaviour table: key, body, claim, run, complete or release.
//!
//! Both ways in, the attribute (`__private`) and the middleware (`layer`), call [`run`].

mod body;
mod call;
mod detach;
mod lease;
mod reconcile;
pub(crate) mod replay;
mod unit;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use futures_util::FutureExt as _;
use tokio::time::Instant;
use tracing::Instrument as _;

use self::body::Collected;
use self::call::{release, within_deadline};
use crate::extract::{Decision, IdempotencyClaim, IdempotencyKey, TypedValue};
use crate::fingerprint::{Fingerprint, fingerprint, fingerprint_in, is_json};
use crate::idempotency::Inner;
use crate::key::{self, KeyError};
use crate::metrics::{Operation, Outcome};
use crate::policy::{OnConflict, PolicyRef};
use crate::problem::{ProblemCode, problem, problem_retry_after};
use crate::store::{
    Claim, ClaimOutcome, Fence, Record, StoreError, StoreErrorKind, StoreKey, StoredResponse,
    Token, UnitOfWork,
};

/// The largest pause between two polls of a running duplicate (`on_conflict = "wait"`).
const MAX_WAIT_BACKOFF: Duration = Duration::from_millis(250);
/// The first pause between two polls of a running duplicate.
const FIRST_WAIT_BACKOFF: Duration = Duration::from_millis(10);

/// The claim this request holds on a key, its request's fingerprint, and what HTTP caching
/// asks of its answer.
struct Owner {
    /// Shared with the request's extensions, where the handler may extract it.
    claim: Arc<IdempotencyClaim>,
    fingerprint: Option<String>,
    /// The request's body and whether it was hashed as JSON, when small enough to keep
    /// beside the record (default fingerprint mode only).
    request: Option<(bytes::Bytes, bool)>,
    caching: Option<Box<replay::Caching>>,
}

/// One request on its way through the protocol: what it runs, under which settings.
struct Job<H> {
    inner: Arc<Inner>,
    policy: PolicyRef,
    request: Request,
    handler: H,
}

/// Run `handler` (the user's extractors and body, or the wrapped service) for `request`
/// under the protocol. The handler's own error is passed through, after the key is released.
///
/// The request runs in a `tracing` span `idempotency` (at `DEBUG`, as tower-http's request
/// spans: a service logging at `INFO` pays a level check per request, nothing more) with the
/// route's `key_prefix`, its `outcome` (see [`Outcome`]) once known, and the answer's
/// `status`.
pub(crate) async fn run<H, Fut, E>(
    inner: Arc<Inner>,
    policy: PolicyRef,
    request: Request,
    handler: H,
) -> Result<Response, E>
where
    H: FnOnce(Request) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response, E>> + Send + 'static,
    E: Send + 'static,
{
    // Only where a subscriber wants it: a disabled span still costs its enter and exit on
    // every poll (and a `log` record check when a dependency turns on tracing's `log`).
    if !tracing::span_enabled!(tracing::Level::DEBUG) {
        return decide(inner, policy, request, handler).await;
    }
    let span = tracing::debug_span!(
        "idempotency",
        key_prefix = &*policy.key_prefix,
        outcome = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let answered = decide(inner, policy, request, handler)
        .instrument(span.clone())
        .await;
    if let Ok(response) = &answered {
        span.record("status", response.status().as_u16());
    }
    answered
}

/// [`run`], inside the request's span.
async fn decide<H, Fut, E>(
    inner: Arc<Inner>,
    policy: PolicyRef,
    request: Request,
    handler: H,
) -> Result<Response, E>
where
    H: FnOnce(Request) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response, E>> + Send + 'static,
    E: Send + 'static,
{
    let (mut parts, body) = request.into_parts();

    // 1. The key.
    let key = match key::from_headers(&parts.headers, &policy.header) {
        Ok(key) => key.into_owned(),
        Err(KeyError::Missing) if !policy.mandatory => {
            inner
                .metrics
                .record(&policy.key_prefix, Outcome::MissingKey);
            let job = Job {
                inner,
                policy,
                request: Request::from_parts(parts, body),
                handler,
            };
            return job.execute(None).await;
        }
        Err(KeyError::Missing) => {
            inner
                .metrics
                .record(&policy.key_prefix, Outcome::MissingKey);
            return Ok(problem(
                ProblemCode::KeyMissing,
                &format!(
                    "Missing required idempotency header: {}",
                    display_header(&policy.header)
                ),
            ));
        }
        // `KeyError::Invalid`, and whatever else a newer protocol may refuse a key for.
        Err(invalid) => {
            inner
                .metrics
                .record(&policy.key_prefix, Outcome::InvalidKey);
            return Ok(problem(
                ProblemCode::KeyInvalid,
                &format!(
                    "Invalid idempotency header {}: {invalid}",
                    display_header(&policy.header)
                ),
            ));
        }
    };

    tracing::debug!(key = key.as_str(), "idempotency: the request's key");

    // 2. The body.
    let (body, bytes) = if policy.include_body {
        match body::read_request(&parts.headers, body, inner.body_limit).await {
            Ok(bytes) => (Body::from(bytes.clone()), Some(bytes)),
            Err(response) => {
                if response.status() == http::StatusCode::PAYLOAD_TOO_LARGE {
                    inner
                        .metrics
                        .record(&policy.key_prefix, Outcome::BodyTooLarge);
                }
                return Ok(response);
            }
        }
    } else {
        (body, None)
    };

    // 3. The store.
    let scope = inner.scope.as_ref().and_then(|scope| scope(&parts));
    let store_key = StoreKey::new(&policy.key_prefix, scope.as_deref(), &key);
    let caching = replay::Caching::of(&policy, &parts).map(Box::new);
    // A completed record this process holds answers without a claim (and, in front of a
    // networked store, without a round trip, and while the store is down); a retry that
    // sends the bytes of the request that produced it needs no fingerprint either.
    let held = held(&inner, &store_key);
    let same_request = matches!(
        (&held, &bytes, policy.fingerprint),
        (Some(stored), Some(bytes), Fingerprint::Json)
            if stored.same_request(bytes, || is_json(&parts.headers))
    );
    // The same request needs no fingerprint: there is nothing to compare, it replays.
    let fingerprint = match &bytes {
        Some(bytes) if !same_request => Some(match policy.fingerprint {
            Fingerprint::Typed(typed) => match typed.read(bytes) {
                Some(read) => {
                    parts.extensions.insert(TypedValue::new(read.value));
                    read.fingerprint
                }
                None => fingerprint(&parts.headers, bytes),
            },
            mode => fingerprint_in(mode, &parts.headers, bytes),
        }),
        _ => None,
    };
    if let Some(stored) = &held {
        return Ok(answer_completed(
            &inner,
            &policy,
            &key,
            fingerprint.as_deref(),
            stored,
            caching.as_deref(),
        ));
    }
    // The request's bytes, kept beside its record if it completes, so that a retry with the
    // same bytes is recognised without hashing them.
    let request = match (&bytes, policy.fingerprint) {
        (Some(bytes), Fingerprint::Json) if bytes.len() <= StoredResponse::KEEP_REQUEST_UP_TO => {
            Some(bytes.clone())
        }
        _ => None,
    };
    drop(bytes);
    let wait_until = match policy.on_conflict {
        OnConflict::Wait(max_wait) => Some(Instant::now() + max_wait),
        OnConflict::Reject => None,
    };
    let mut backoff = FIRST_WAIT_BACKOFF;
    let mut waited = false;
    let mut claim = Claim::new(Token::generate(), fingerprint, policy.lock_ttl);
    loop {
        let outcome = within_deadline(
            &inner,
            Operation::Claim,
            inner.store.claim(&store_key, &claim),
        )
        .await;
        let record = match outcome {
            Ok(ClaimOutcome::Claimed) => {
                let json = request.is_some() && is_json(&parts.headers);
                let claimed = Arc::new(IdempotencyClaim::new(store_key, claim.token));
                parts.extensions.insert(Decision {
                    key: IdempotencyKey(key),
                    claim: Some(claimed.clone()),
                });
                let job = Job {
                    inner,
                    policy,
                    request: Request::from_parts(parts, body),
                    handler,
                };
                let owner = Owner {
                    claim: claimed,
                    fingerprint: claim.fingerprint,
                    request: request.map(|bytes| (bytes, json)),
                    caching,
                };
                return job.execute(Some(owner)).await;
            }
            Ok(ClaimOutcome::Existing(record)) => record,
            Err(error) => {
                if error.is_indeterminate() {
                    // The claim may still land once the store answers: release it then.
                    let late = IdempotencyClaim::new(store_key, claim.token);
                    reconcile::release_late_claim(&inner, late, policy.lock_ttl);
                }
                parts.extensions.insert(Decision {
                    key: IdempotencyKey(key),
                    claim: None,
                });
                let job = Job {
                    inner,
                    policy,
                    request: Request::from_parts(parts, body),
                    handler,
                };
                return job.outage(&error).await;
            }
        };
        match record {
            Record::Completed(stored) => {
                if let Some(local) = &inner.local {
                    local.read(&store_key, &stored, policy.ttl);
                }
                return Ok(answer_completed(
                    &inner,
                    &policy,
                    &key,
                    claim.fingerprint.as_deref(),
                    &stored,
                    caching.as_deref(),
                ));
            }
            Record::Processing { fingerprint, .. }
                if differs(claim.fingerprint.as_deref(), fingerprint.as_deref()) =>
            {
                return Ok(mismatch(&inner, &policy, &key));
            }
            Record::Processing { .. } => {
                if let Some(until) = wait_until
                    && Instant::now() + backoff < until
                {
                    if !waited {
                        waited = true;
                        inner.metrics.record(&policy.key_prefix, Outcome::Waited);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_WAIT_BACKOFF);
                    // A new claim: the last one may yet land after a lost answer.
                    claim.token = Token::generate();
                    continue;
                }
                inner.metrics.record(&policy.key_prefix, Outcome::Conflict);
                return Ok(problem_retry_after(
                    ProblemCode::RequestInProgress,
                    &format!("A request with idempotency key '{key}' is still being processed"),
                    1,
                ));
            }
        }
    }
}

impl<H, Fut, E> Job<H>
where
    H: FnOnce(Request) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Response, E>> + Send + 'static,
    E: Send + 'static,
{
    /// The store could not answer: run without idempotency, or refuse.
    async fn outage(self, error: &StoreError) -> Result<Response, E> {
        let inner = &self.inner;
        inner
            .metrics
            .record(&self.policy.key_prefix, Outcome::StoreError);
        let fail_open = self.policy.fail_open;
        if let Some(suppressed) = inner.outage_log.permit() {
            tracing::warn!(
                key_prefix = &*self.policy.key_prefix,
                fail_open,
                suppressed,
                error = %error,
                kind = %error.kind(),
                "idempotency store unavailable; {}",
                if fail_open {
                    "running the handler without idempotency (fail_open = true)"
                } else {
                    "answering 503 (fail_open = false)"
                }
            );
        }
        if fail_open {
            inner
                .metrics
                .record(&self.policy.key_prefix, Outcome::FailOpen);
            self.execute(None).await
        } else {
            inner
                .metrics
                .record(&self.policy.key_prefix, Outcome::FailClosed);
            Ok(problem_retry_after(
                ProblemCode::StoreUnavailable,
                "The idempotency store is unavailable; retry later with the same key.",
                1,
            ))
        }
    }

    /// Run the handler, detached from the connection and with its panics caught, whether
    /// or not the request owns a claim; then complete or release the claim (and commit or
    /// roll back the handler's transaction, if the store lent it one and it took it).
    async fn execute(self, owner: Option<Owner>) -> Result<Response, E> {
        let Job {
            inner,
            policy,
            mut request,
            handler,
        } = self;
        if owner.is_some() {
            inner.metrics.record(&policy.key_prefix, Outcome::Executed);
        }
        let unit = inner.store.unit_of_work();
        if let Some(unit) = &unit {
            unit.lend(request.extensions_mut());
        }
        detach::Detached::new(Box::pin(async move {
            // Pinned where it is made: the handler's future can be large, and is not moved again.
            let mut running = std::pin::pin!(AssertUnwindSafe(handler(request)).catch_unwind());
            let outcome = match &owner {
                Some(owner) => {
                    lease::renewing(&inner, &owner.claim, policy.lock_ttl, running.as_mut()).await
                }
                None => running.await,
            };
            // The handler's transaction, if it took one.
            let unit = unit.filter(|unit| unit.begun());
            let response = match outcome {
                Ok(Ok(response)) => response,
                Ok(Err(error)) => {
                    abandon(&inner, unit, owner.as_ref()).await;
                    return Err(error);
                }
                Err(_) => {
                    tracing::error!(
                        key_prefix = &*policy.key_prefix,
                        "idempotency: the handler panicked"
                    );
                    abandon(&inner, unit, owner.as_ref()).await;
                    return Ok(problem(
                        ProblemCode::HandlerPanicked,
                        "The request handler failed.",
                    ));
                }
            };
            if !response.status().is_success() {
                abandon(&inner, unit, owner.as_ref()).await;
                return Ok(response);
            }
            match (owner, unit) {
                (Some(owner), unit) => Ok(complete(&inner, &policy, owner, response, unit).await),
                (None, Some(unit)) => {
                    Ok(unit::commit_unowned(&inner, &policy, unit, response).await)
                }
                (None, None) => Ok(response),
            }
        }))
        .await
    }
}

/// Roll back the handler's transaction, if it took one, and release the claim, if the
/// request owns one: nothing of the request is kept, so a retry runs it again.
async fn abandon(inner: &Inner, unit: Option<Box<dyn UnitOfWork>>, owner: Option<&Owner>) {
    if let Some(unit) = unit {
        unit::roll_back(inner, &*unit).await;
    }
    if let Some(owner) = owner {
        release(inner, &owner.claim).await;
    }
}

/// Store a 2xx response for replay and return it. With the handler's transaction, the
/// record is written in it and committed with the handler's writes; if that fails, nothing
/// was kept and the answer says so.
async fn complete(
    inner: &Inner,
    policy: &PolicyRef,
    owner: Owner,
    response: Response,
    unit: Option<Box<dyn UnitOfWork>>,
) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match body::collect_limited(body, inner.max_response_size).await {
        Collected::Whole(bytes) => bytes,
        Collected::TooLarge(body) => {
            inner
                .metrics
                .record(&policy.key_prefix, Outcome::OversizedResponse);
            tracing::warn!(
                key_prefix = &*policy.key_prefix,
                limit = inner.max_response_size,
                "idempotency: response too large to store; the key is released{}",
                if unit.is_some() {
                    " and the request's transaction rolled back"
                } else {
                    ""
                }
            );
            let transactional = unit.is_some();
            abandon(inner, unit, Some(&owner)).await;
            if transactional {
                return problem(
                    ProblemCode::TransactionFailed,
                    "The response is too large to be stored with the request's transaction; \
                     nothing was kept.",
                );
            }
            return Response::from_parts(parts, body);
        }
        Collected::Failed(error) => {
            tracing::error!(%error, key_prefix = &*policy.key_prefix, "idempotency: reading the handler's response body failed");
            abandon(inner, unit, Some(&owner)).await;
            return problem(
                ProblemCode::ResponseBodyUnreadable,
                "The response could not be read.",
            );
        }
    };
    if let Some(caching) = &owner.caching {
        caching.before_storing(&mut parts.headers, &bytes);
    }
    let headers = replay::replayable_headers(&parts.headers, &inner.replay_headers);
    let mut stored = StoredResponse::new(
        parts.status,
        Some(headers),
        bytes.clone(),
        owner.fingerprint,
    )
    .stored(SystemTime::now(), owner.claim.token.clone());
    if let Some((request, json)) = &owner.request {
        stored = stored.with_request(request, *json);
    }
    // A copy for the local cache, kept once the record is written.
    let keep = inner.local.as_ref().map(|local| (local, stored.clone()));
    let written = if let Some(unit) = unit {
        if let Err(failed) = unit::commit_owned(inner, policy, &owner.claim, &*unit, stored).await {
            return failed;
        }
        true
    } else {
        let written = within_deadline(
            inner,
            Operation::Complete,
            inner
                .store
                .complete(&owner.claim.key, &owner.claim.token, stored, policy.ttl),
        )
        .await;
        match written {
            Ok(Fence::Applied) => true,
            Ok(_) => {
                inner.metrics.record(&policy.key_prefix, Outcome::Fenced);
                tracing::warn!(
                    key_prefix = &*policy.key_prefix,
                    "idempotency: not storing the response: the key was claimed by another request \
                     after this one's lock_ttl ran out"
                );
                false
            }
            Err(error) if error.kind() == StoreErrorKind::TooLarge => {
                inner
                    .metrics
                    .record(&policy.key_prefix, Outcome::OversizedResponse);
                tracing::warn!(%error, key_prefix = &*policy.key_prefix, "idempotency: the store cannot hold a record this large; the key is released");
                release(inner, &owner.claim).await;
                false
            }
            Err(error) => {
                inner
                    .metrics
                    .record(&policy.key_prefix, Outcome::StoreError);
                tracing::warn!(%error, key_prefix = &*policy.key_prefix, "idempotency: storing the response failed");
                release(inner, &owner.claim).await;
                false
            }
        }
    };
    if written && let Some((local, stored)) = keep {
        local.completed(&owner.claim.key, Arc::new(stored), policy.ttl);
    }
    let response = Response::from_parts(parts, Body::from(bytes));
    match &owner.caching {
        Some(caching) => caching.answer_fresh(response),
        None => response,
    }
}

/// The completed record under `key` that this process holds: in the local cache in front
/// of a networked store, or in an in-memory store.
fn held(inner: &Inner, key: &StoreKey) -> Option<Arc<StoredResponse>> {
    if let Some(local) = &inner.local
        && let Some(stored) = local.get(key)
    {
        return Some(stored);
    }
    inner.store.completed_in_memory(key)
}

/// The answer to a request whose key holds a completed record: its replay (or 304), or 422
/// when the request's body differs.
fn answer_completed(
    inner: &Inner,
    policy: &PolicyRef,
    key: &str,
    fingerprint: Option<&str>,
    stored: &StoredResponse,
    caching: Option<&replay::Caching>,
) -> Response {
    if differs(fingerprint, stored.fingerprint.as_deref()) {
        return mismatch(inner, policy, key);
    }
    let response = replay::replay(stored, caching);
    let outcome = if response.status() == http::StatusCode::NOT_MODIFIED {
        Outcome::NotModified
    } else {
        Outcome::Replayed
    };
    inner.metrics.record(&policy.key_prefix, outcome);
    response
}

/// 422: the key was used with another body.
fn mismatch(inner: &Inner, policy: &PolicyRef, key: &str) -> Response {
    inner.metrics.record(&policy.key_prefix, Outcome::Mismatch);
    problem(
        ProblemCode::KeyReused,
        &format!("Idempotency key '{key}' was already used with a different request body"),
    )
}

fn differs(ours: Option<&str>, theirs: Option<&str>) -> bool {
    matches!((ours, theirs), (Some(a), Some(b)) if a != b)
}

/// `Idempotency-Key` for `idempotency-key`: header names as users write them.
fn display_header(name: &http::HeaderName) -> String {
    name.as_str()
        .split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join("-")
}

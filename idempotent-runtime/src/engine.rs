//! The one state machine of the behaviour table: key, body, claim, run, complete or release.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt as _;
use tokio::time::Instant;

use crate::__private::Options;
use crate::config::{Idempotency, Inner};
use crate::fingerprint::fingerprint;
use crate::key::{self, KeyError};
use crate::metrics::Metrics;
use crate::problem::{ProblemCode, problem, problem_retry_after};
use crate::store::{Claim, ClaimOutcome, Fence, Record, StoreError, StoredResponse, Token};

/// The claim this request holds on a key.
struct Owner {
    key: String,
    token: Token,
}

/// The user's extractors and body, with the request and state they will run on.
struct Call<S, F> {
    request: Request,
    state: S,
    handler: F,
}

/// The largest pause between two polls of a running duplicate (`on_conflict = "wait"`).
const MAX_WAIT_BACKOFF: Duration = Duration::from_millis(250);
/// The first pause between two polls of a running duplicate.
const FIRST_WAIT_BACKOFF: Duration = Duration::from_millis(10);

pub(crate) async fn run<S, F, Fut>(
    request: Request,
    state: S,
    options: &'static Options,
    handler: F,
) -> Response
where
    S: Send + 'static,
    F: FnOnce(Request, S) -> Fut + Send + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let (mut parts, body) = request.into_parts();
    let Some(idem) = parts.extensions.remove::<Idempotency>() else {
        tracing::error!(
            key_prefix = options.key_prefix,
            "idempotency: no store is registered for this app; add `.layer(Idempotency::memory())` \
             (or another store) to the router that serves this `#[idempotent]` handler"
        );
        return problem(
            ProblemCode::NotConfigured,
            "The idempotency layer is not configured.",
        );
    };
    let inner = idem.inner;

    // 1. The key.
    let key = match key::from_headers(&parts.headers, &options.header) {
        Ok(key) => key.into_owned(),
        Err(KeyError::Missing) if !options.mandatory => {
            return (handler)(Request::from_parts(parts, body), state).await;
        }
        Err(KeyError::Missing) => {
            return problem(
                ProblemCode::KeyMissing,
                &format!(
                    "Missing required idempotency header: {}",
                    display_header(&options.header)
                ),
            );
        }
        Err(KeyError::Invalid(why)) => {
            return problem(
                ProblemCode::KeyInvalid,
                &format!(
                    "Invalid idempotency header {}: {why}",
                    display_header(&options.header)
                ),
            );
        }
    };

    // 2. The body.
    let (body, fingerprint) = if options.include_body {
        match read_body(&parts.headers, body, inner.body_limit).await {
            Ok(bytes) => {
                let fp = fingerprint(&parts.headers, &bytes);
                (Body::from(bytes), Some(fp))
            }
            Err(response) => return response,
        }
    } else {
        (body, None)
    };

    // 3. The store.
    let scope = inner.scope.as_ref().and_then(|scope| scope(&parts));
    let store_key = key::store_key(options.key_prefix, scope.as_deref(), &key);
    let call = Call {
        request: Request::from_parts(parts, body),
        state,
        handler,
    };
    let wait_until = options.max_wait.map(|wait| Instant::now() + wait);
    let mut backoff = FIRST_WAIT_BACKOFF;
    let mut waited = false;
    let mut claim = Claim::new(Token::generate(), fingerprint, options.lock_ttl);
    loop {
        let outcome = within_deadline(&inner, "claim", inner.store.claim(&store_key, &claim)).await;
        let record = match outcome {
            Ok(ClaimOutcome::Claimed) => {
                let owner = Owner {
                    key: store_key,
                    token: claim.token,
                };
                return call
                    .execute(inner, options, Some((owner, claim.fingerprint)))
                    .await;
            }
            Ok(ClaimOutcome::Existing(record)) => record,
            Err(error) => {
                if error.is_indeterminate() {
                    // The claim may still land once the store answers: release it then.
                    release_late_claim(&inner, store_key.clone(), claim.token, options.lock_ttl);
                }
                return call.outage(inner, options, &error).await;
            }
        };
        if differs(claim.fingerprint.as_deref(), record.fingerprint()) {
            return reused(&inner, &key);
        }
        match record {
            Record::Completed(stored) => {
                Metrics::bump(&inner.metrics.replays);
                return replay(stored);
            }
            Record::Processing { .. } => {
                if let Some(until) = wait_until
                    && Instant::now() + backoff < until
                {
                    if !waited {
                        waited = true;
                        Metrics::bump(&inner.metrics.waits);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_WAIT_BACKOFF);
                    // A new claim: the last one may yet land after a lost answer.
                    claim.token = Token::generate();
                    continue;
                }
                Metrics::bump(&inner.metrics.conflicts);
                return problem_retry_after(
                    ProblemCode::RequestInProgress,
                    &format!("A request with idempotency key '{key}' is still being processed"),
                    1,
                );
            }
        }
    }
}

impl<S, F, Fut> Call<S, F>
where
    S: Send + 'static,
    F: FnOnce(Request, S) -> Fut + Send + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    /// The store could not answer: run without idempotency, or refuse.
    async fn outage(
        self,
        inner: Arc<Inner>,
        options: &'static Options,
        error: &StoreError,
    ) -> Response {
        Metrics::bump(&inner.metrics.store_errors);
        let fail_open = options.fail_open;
        if let Some(suppressed) = inner.metrics.outage_warning_permit() {
            tracing::warn!(
                key_prefix = options.key_prefix,
                fail_open,
                suppressed,
                error = %error,
                "idempotency store unavailable; {}",
                if fail_open {
                    "running the handler without idempotency (fail_open = true)"
                } else {
                    "answering 503 (fail_open = false)"
                }
            );
        }
        if fail_open {
            Metrics::bump(&inner.metrics.fail_open_runs);
            self.execute(inner, options, None).await
        } else {
            Metrics::bump(&inner.metrics.fail_closed_rejections);
            problem_retry_after(
                ProblemCode::StoreUnavailable,
                "The idempotency store is unavailable; retry later with the same key.",
                1,
            )
        }
    }

    /// Run the handler detached from the connection; then complete or release the claim.
    async fn execute(
        self,
        inner: Arc<Inner>,
        options: &'static Options,
        owner: Option<(Owner, Option<String>)>,
    ) -> Response {
        let Call {
            request,
            state,
            handler,
        } = self;
        if owner.is_some() {
            Metrics::bump(&inner.metrics.executions);
        }
        let task = Detached::new(async move {
            let outcome = AssertUnwindSafe(handler(request, state))
                .catch_unwind()
                .await;
            let response = match outcome {
                Ok(response) => response,
                Err(_) => {
                    tracing::error!(
                        key_prefix = options.key_prefix,
                        "idempotency: the handler panicked"
                    );
                    if let Some((owner, _)) = owner {
                        release(&inner, &owner).await;
                    }
                    return problem(ProblemCode::HandlerPanicked, "The request handler failed.");
                }
            };
            let Some((owner, fingerprint)) = owner else {
                return response;
            };
            if response.status().is_success() {
                complete(&inner, options, owner, fingerprint, response).await
            } else {
                release(&inner, &owner).await;
                response
            }
        });
        task.await
    }
}

/// Store a 2xx response for replay and return it.
async fn complete(
    inner: &Inner,
    options: &'static Options,
    owner: Owner,
    fingerprint: Option<String>,
    response: Response,
) -> Response {
    let (parts, body) = response.into_parts();
    let bytes = match collect_limited(body, inner.max_response_size).await {
        Collected::Whole(bytes) => bytes,
        Collected::TooLarge(body) => {
            Metrics::bump(&inner.metrics.oversized_responses);
            tracing::warn!(
                key_prefix = options.key_prefix,
                limit = inner.max_response_size,
                "idempotency: response too large to store; the key is released"
            );
            release(inner, &owner).await;
            return Response::from_parts(parts, body);
        }
        Collected::Failed(error) => {
            tracing::error!(%error, "idempotency: reading the handler's response body failed");
            release(inner, &owner).await;
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut headers = Vec::with_capacity(inner.replay_headers.len());
    for name in inner.replay_headers.iter() {
        for value in parts.headers.get_all(name) {
            headers.push((name.clone(), value.clone()));
        }
    }
    let stored = StoredResponse::new(parts.status, Some(headers), bytes.clone(), fingerprint);
    let written = within_deadline(
        inner,
        "storing the response",
        inner
            .store
            .complete(&owner.key, &owner.token, &stored, options.ttl),
    )
    .await;
    match written {
        Ok(Fence::Applied) => {}
        Ok(_) => {
            Metrics::bump(&inner.metrics.fenced_writes);
            tracing::warn!(
                key_prefix = options.key_prefix,
                "idempotency: not storing the response: the key was claimed by another request \
                 after this one's lock_ttl ran out"
            );
        }
        Err(error) => {
            Metrics::bump(&inner.metrics.store_errors);
            tracing::warn!(%error, key_prefix = options.key_prefix, "idempotency: storing the response failed");
            release(inner, &owner).await;
        }
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Delete our PROCESSING record so a retry runs again. Best effort: if the store cannot be
/// reached, the record expires after `lock_ttl`.
async fn release(inner: &Inner, owner: &Owner) {
    let released = within_deadline(
        inner,
        "releasing the key",
        inner.store.release(&owner.key, &owner.token),
    )
    .await;
    match released {
        Ok(Fence::Applied) => {}
        Ok(_) => {
            Metrics::bump(&inner.metrics.fenced_writes);
            tracing::warn!("idempotency: not releasing the key: another request owns it now");
        }
        Err(error) => {
            Metrics::bump(&inner.metrics.store_errors);
            tracing::warn!(%error, "idempotency: releasing the key failed; it stays locked until lock_ttl");
        }
    }
}

/// A store call bounded by the store deadline. A call that misses it is an error whose
/// outcome is unknown: it was sent and may still take effect.
async fn within_deadline<T>(
    inner: &Inner,
    what: &str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(inner.store_timeout, call)
        .await
        .unwrap_or_else(|_| {
            Err(
                StoreError::new(format!("{what} timed out after {:?}", inner.store_timeout))
                    .indeterminate(),
            )
        })
}

/// A claim that timed out may land in the store later, and would then block the key's
/// retries until `lock_ttl`. Keep trying a fenced release in the background: until it is
/// applied, or the store has answered a few times (a claim stuck on an abandoned connection
/// can still be processed shortly after the store resumes), or the lock would have expired
/// anyway.
fn release_late_claim(inner: &Arc<Inner>, key: String, token: Token, lock_ttl: Duration) {
    const ANSWERS: u32 = 3;
    // During a long outage every request lands here; past this many pending releases, leave
    // the rest to expire after `lock_ttl`.
    const MAX_PENDING: usize = 10_000;
    let Some(pending) = inner.metrics.late_release_slot(MAX_PENDING) else {
        return;
    };
    let inner = inner.clone();
    tokio::spawn(async move {
        let _pending = pending;
        let give_up = Instant::now() + lock_ttl;
        let mut pause = Duration::from_millis(100);
        let mut answers = 0;
        loop {
            let released = within_deadline(
                &inner,
                "releasing a late claim",
                inner.store.release(&key, &token),
            )
            .await;
            if let Ok(fence) = released {
                if fence == Fence::Applied {
                    Metrics::bump(&inner.metrics.late_claims_released);
                    tracing::info!(
                        "idempotency: released a claim that reached the store after its deadline"
                    );
                    return;
                }
                answers += 1;
                if answers >= ANSWERS {
                    return;
                }
            }
            if Instant::now() + pause >= give_up {
                return;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    });
}

fn differs(ours: Option<&str>, theirs: Option<&str>) -> bool {
    matches!((ours, theirs), (Some(a), Some(b)) if a != b)
}

fn reused(inner: &Inner, key: &str) -> Response {
    Metrics::bump(&inner.metrics.mismatches);
    problem(
        ProblemCode::KeyReused,
        &format!("Idempotency key '{key}' was already used with a different request body"),
    )
}

fn replay(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = stored.status;
    let headers = response.headers_mut();
    match stored.headers {
        Some(list) => {
            for (name, value) in list {
                headers.append(name, value);
            }
        }
        None => {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    headers.insert(REPLAYED.clone(), HeaderValue::from_static("true"));
    response
}

static REPLAYED: http::HeaderName = http::HeaderName::from_static("idempotent-replayed");

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

/// Read a request body for hashing, up to `limit` bytes.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Response> {
    let too_large = || {
        problem(
            ProblemCode::BodyTooLarge,
            &format!("The request body is larger than {limit} bytes."),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(error) => {
            tracing::debug!(%error, "idempotency: reading the request body failed");
            Err((StatusCode::BAD_REQUEST, "Failed to read the request body").into_response())
        }
    }
}

enum Collected {
    Whole(Bytes),
    TooLarge(Body),
    Failed(axum::Error),
}

/// Buffer a response body up to `limit` bytes; past it, hand back a body that yields what
/// was read and then the rest.
async fn collect_limited(mut body: Body, limit: usize) -> Collected {
    // Most bodies are one chunk: keep it as it is, and gather only when a second comes.
    let mut first: Option<Bytes> = None;
    let mut more: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(error)) => return Collected::Failed(error),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len();
                    if first.is_none() {
                        first = Some(data);
                    } else {
                        more.push(data);
                    }
                    if total > limit {
                        let head = futures_util::stream::iter(
                            first.into_iter().chain(more).map(Ok::<_, axum::Error>),
                        );
                        let rest = body.into_data_stream();
                        return Collected::TooLarge(Body::from_stream(
                            futures_util::StreamExt::chain(head, rest),
                        ));
                    }
                }
            }
        }
    }
    Collected::Whole(match first {
        None => Bytes::new(),
        Some(only) if more.is_empty() => only,
        Some(first) => {
            let mut all = bytes::BytesMut::with_capacity(total);
            all.extend_from_slice(&first);
            for chunk in more {
                all.extend_from_slice(&chunk);
            }
            all.freeze()
        }
    })
}

/// A future polled in place by the request, and moved onto a task of its own if the request
/// is dropped before it finishes (the client went away), so that it still runs to the end.
struct Detached<F: Future<Output = Response> + Send + 'static> {
    future: Option<std::pin::Pin<Box<F>>>,
}

impl<F: Future<Output = Response> + Send + 'static> Detached<F> {
    fn new(future: F) -> Self {
        Self {
            future: Some(Box::pin(future)),
        }
    }
}

impl<F: Future<Output = Response> + Send + 'static> Future for Detached<F> {
    type Output = Response;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Response> {
        let Some(future) = self.future.as_mut() else {
            return std::task::Poll::Pending;
        };
        let response = std::task::ready!(future.as_mut().poll(cx));
        self.future = None;
        std::task::Poll::Ready(response)
    }
}

impl<F: Future<Output = Response> + Send + 'static> Drop for Detached<F> {
    fn drop(&mut self) {
        if let Some(future) = self.future.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(future);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: &[&'static str]) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    async fn all_of(body: Body) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_gathered_whole() {
        for chunks in [&[][..], &["one"], &["one", "two", "three"]] {
            match collect_limited(chunked(chunks), 100).await {
                Collected::Whole(bytes) => assert_eq!(bytes, chunks.concat()),
                _ => panic!("{chunks:?} was not gathered whole"),
            }
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_handed_back_in_full() {
        for (chunks, limit) in [(&["0123456789"][..], 5), (&["012", "345", "6789"], 5)] {
            match collect_limited(chunked(chunks), limit).await {
                Collected::TooLarge(body) => assert_eq!(all_of(body).await, chunks.concat()),
                _ => panic!("{chunks:?} was not over the limit of {limit}"),
            }
        }
    }
}

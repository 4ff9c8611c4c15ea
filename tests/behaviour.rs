//! Every row of the README's behaviour table over real HTTP, on every store (memory, Redis
//! on a private `redis-server`, DynamoDB on a moto server shared by the file's tests, a
//! table each, and PostgreSQL on a private cluster shared by the file's tests, a table each) and on both paths: `#[idempotent]` and the middleware
//! with a `Policy` (see `every_store_and_path!` below).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use idempotent_runtime::fingerprint::sha256_hex;
use idempotent_runtime::store::{
    Claim, ClaimOutcome, Fence, IdempotencyStore, Record, StoreError, StoreKey, StoredResponse,
    Token,
};
use idempotent_runtime::{Idempotency, async_trait};
use serde_json::{Value, json};
use support::app::{Server, client, eventually, problem_code};
use support::backend::{Backend, Store};
use support::orders::{AppState, Path, routes};

struct Harness {
    server: Server,
    state: AppState,
    http: reqwest::Client,
}

impl Harness {
    async fn new(idem: Idempotency, path: Path) -> Harness {
        let state = AppState::default();
        let app = path.app(idem).with_state(state.clone());
        Harness {
            server: Server::start(app).await,
            state,
            http: client(),
        }
    }

    /// The test service on a fresh store of kind `store`, reached by `path`.
    async fn start(path: Path, store: Store) -> (Harness, Backend) {
        let backend = Backend::start(store).await;
        (Harness::new(backend.idempotency(), path).await, backend)
    }

    fn runs(&self) -> usize {
        self.state.probe.runs()
    }

    fn post(&self, path: &str, key: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
        let mut request = self.http.post(self.server.url(path)).json(body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request
    }

    /// A keyed `POST` of `body` as it is written, as JSON.
    async fn send_raw(&self, path: &str, key: &str, body: &str) -> reqwest::Response {
        self.http
            .post(self.server.url(path))
            .header("Idempotency-Key", key)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request")
    }

    async fn send(&self, path: &str, key: Option<&str>, body: Value) -> reqwest::Response {
        self.post(path, key, &body).send().await.expect("request")
    }
}

impl Harness {
    /// A keyed `GET` (or `HEAD`) of `path`, with the given `If-None-Match`.
    async fn read(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        if_none_match: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, self.server.url(path))
            .header("Idempotency-Key", key);
        if let Some(tags) = if_none_match {
            request = request.header("If-None-Match", tags);
        }
        request.send().await.expect("request")
    }

    async fn get(&self, path: &str, key: &str, if_none_match: Option<&str>) -> reqwest::Response {
        self.read(reqwest::Method::GET, path, key, if_none_match)
            .await
    }
}

fn header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("an ASCII header"))
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

async fn new_key_runs_once_and_retries_replay_the_stored_response(path: Path, kind: Store) {
    let (h, store) = Harness::start(path, kind).await;
    let first = h.send("/orders", Some("k-1"), json!({"note": "a"})).await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    assert_eq!(first.headers()["location"], "/orders/1");
    assert_eq!(first.headers()["set-cookie"], "session=secret");
    let first_body = json_of(first).await;

    for _ in 0..3 {
        let retry = h.send("/orders", Some("k-1"), json!({"note": "a"})).await;
        assert_eq!(retry.status(), 201);
        assert_eq!(retry.headers()["idempotent-replayed"], "true");
        assert_eq!(retry.headers()["location"], "/orders/1");
        assert_eq!(retry.headers()["content-type"], "application/json");
        assert!(
            retry.headers().get("set-cookie").is_none(),
            "Set-Cookie is never replayed"
        );
        assert!(retry.headers().get("x-not-replayed").is_none());
        assert_eq!(json_of(retry).await, first_body);
    }
    assert_eq!(h.runs(), 1);
    let Some(Record::Completed(stored)) = store.get("idempotency:orders:k-1") else {
        panic!("a completed record under the Spring-format key")
    };
    assert_eq!(stored.status, 201);
    assert!(stored.fingerprint.as_deref().is_some_and(|f| f.len() == 64));
}

async fn json_whitespace_does_not_change_the_fingerprint(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    let compact = h
        .http
        .post(h.server.url("/orders"))
        .header("Idempotency-Key", "ws")
        .header("content-type", "application/json")
        .body(r#"{"note":"a","pad":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(compact.status(), 201);
    let spaced = h
        .http
        .post(h.server.url("/orders"))
        .header("Idempotency-Key", "ws")
        .header("content-type", "application/json")
        .body("{\n  \"note\" : \"a\",\n  \"pad\" : 1\n}")
        .send()
        .await
        .unwrap();
    assert_eq!(spaced.status(), 201);
    assert_eq!(spaced.headers()["idempotent-replayed"], "true");
    assert_eq!(h.runs(), 1);
}

/// The same bytes are the same request only under the same reading: pretty-printed JSON is
/// hashed compact as JSON and as it is otherwise, so sent again as `text/plain` it is
/// another request, and sent again as JSON it is the same one.
async fn the_same_bytes_under_another_content_type_are_another_request(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    let pretty = "{\n  \"note\" : \"a\"\n}";
    let send = |content_type: &'static str| {
        h.http
            .post(h.server.url("/orders"))
            .header("Idempotency-Key", "ct")
            .header("content-type", content_type)
            .body(pretty)
            .send()
    };
    assert_eq!(send("application/json").await.unwrap().status(), 201);
    let (status, code, _) = problem_code(send("text/plain").await.unwrap()).await;
    assert_eq!((status, code.as_str()), (422, "idempotency_key_reused"));
    let again = send("application/json").await.unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(h.runs(), 1);
}

async fn same_key_with_a_different_body_is_422(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    assert_eq!(
        h.send("/orders", Some("k-2"), json!({"note": "a"}))
            .await
            .status(),
        201
    );
    let reused = h.send("/orders", Some("k-2"), json!({"note": "b"})).await;
    let (status, code, detail) = problem_code(reused).await;
    assert_eq!((status, code.as_str()), (422, "idempotency_key_reused"));
    assert_eq!(
        detail,
        "Idempotency key 'k-2' was already used with a different request body"
    );
    assert_eq!(h.runs(), 1);
}

async fn missing_key_on_a_mandatory_route_is_400_and_runs_nothing(path: Path, kind: Store) {
    let (h, store) = Harness::start(path, kind).await;
    let (status, code, detail) = problem_code(h.send("/orders", None, json!({})).await).await;
    assert_eq!((status, code.as_str()), (400, "idempotency_key_missing"));
    assert_eq!(
        detail,
        "Missing required idempotency header: Idempotency-Key"
    );

    let (_, _, detail) = problem_code(h.send("/billing", None, json!({})).await).await;
    assert_eq!(
        detail,
        "Missing required idempotency header: X-Idempotency-Key"
    );
    assert_eq!(h.runs(), 0);
    assert!(store.is_empty());
}

async fn configured_header_name_is_the_one_read(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    let send = || {
        h.http
            .post(h.server.url("/billing"))
            .header("X-Idempotency-Key", "b-1")
            .json(&json!({}))
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 201);
    assert_eq!(
        send().await.unwrap().headers()["idempotent-replayed"],
        "true"
    );
    assert_eq!(h.runs(), 1);
}

async fn missing_key_on_an_optional_route_runs_the_handler_every_time(path: Path, kind: Store) {
    let (h, store) = Harness::start(path, kind).await;
    for _ in 0..2 {
        assert_eq!(h.send("/optional", None, json!({})).await.status(), 201);
    }
    assert_eq!(h.runs(), 2);
    assert!(store.is_empty());
}

async fn malformed_keys_are_400_and_run_nothing(path: Path, kind: Store) {
    let (h, store) = Harness::start(path, kind).await;
    let long = "k".repeat(256);
    let quoted_long = format!("\"{long}\"");
    let bad: Vec<&[u8]> = vec![
        b"",
        long.as_bytes(),
        quoted_long.as_bytes(),
        "caf\u{e9}".as_bytes(),
        b"\"unbalanced",
        b"\"bad\\escape\"",
        b"\"\"",
        b"\"abc\"tail",
    ];
    for raw in bad {
        let response = h
            .http
            .post(h.server.url("/orders"))
            .header(
                "Idempotency-Key",
                reqwest::header::HeaderValue::from_bytes(raw).unwrap(),
            )
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let (status, code, _) = problem_code(response).await;
        assert_eq!(
            (status, code.as_str()),
            (400, "idempotency_key_invalid"),
            "key {:?}",
            String::from_utf8_lossy(raw)
        );
    }
    assert_eq!(h.runs(), 0);
    assert!(store.is_empty());
}

async fn a_quoted_key_is_the_bare_key(path: Path, kind: Store) {
    let (h, store) = Harness::start(path, kind).await;
    let max = "q".repeat(255);
    assert_eq!(
        h.send("/orders", Some("\"abc\""), json!({})).await.status(),
        201
    );
    let bare = h.send("/orders", Some("abc"), json!({})).await;
    assert_eq!(bare.headers()["idempotent-replayed"], "true");
    assert_eq!(
        h.send("/orders", Some(r#""a\"b\\c""#), json!({}))
            .await
            .status(),
        201
    );
    assert!(store.get(r#"idempotency:orders:a"b\c"#).is_some());
    assert_eq!(
        h.send("/orders", Some(&format!("\"{max}\"")), json!({}))
            .await
            .status(),
        201
    );
    assert_eq!(h.runs(), 3);
}

async fn a_non_2xx_answer_releases_the_key(path: Path, kind: Store) {
    let (h, store) = Harness::start(path, kind).await;
    let failed = h.send("/orders", Some("k-3"), json!({"status": 400})).await;
    assert_eq!(failed.status(), 400);
    assert!(store.get("idempotency:orders:k-3").is_none());
    let retried = h.send("/orders", Some("k-3"), json!({"status": 400})).await;
    assert_eq!(retried.status(), 400);
    assert!(retried.headers().get("idempotent-replayed").is_none());
    assert_eq!(h.runs(), 2);
}

async fn an_extractor_rejection_releases_the_key_and_does_not_run_the_body(
    path: Path,
    kind: Store,
) {
    let (h, store) = Harness::start(path, kind).await;
    let rejected = h
        .http
        .post(h.server.url("/orders"))
        .header("Idempotency-Key", "k-4")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert!(rejected.status().is_client_error(), "{}", rejected.status());
    assert_eq!(h.runs(), 0);
    assert!(store.get("idempotency:orders:k-4").is_none());
}

async fn a_panicking_handler_is_500_and_releases_the_key(path: Path, kind: Store) {
    let (h, store) = Harness::start(path, kind).await;
    let (status, code, _) =
        problem_code(h.send("/orders", Some("k-5"), json!({"panic": true})).await).await;
    assert_eq!(
        (status, code.as_str()),
        (500, "idempotency_handler_panicked")
    );
    assert!(store.get("idempotency:orders:k-5").is_none());
    // The same request runs again (and panics again), proving the key was released.
    let again = h.send("/orders", Some("k-5"), json!({"panic": true})).await;
    assert_eq!(again.status(), 500);
    assert_eq!(h.runs(), 2);
}

async fn thirty_two_concurrent_requests_run_the_handler_exactly_once(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    let h = Arc::new(h);
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let h = h.clone();
        requests.spawn(async move {
            let response = h
                .send("/orders", Some("storm"), json!({"hold": true}))
                .await;
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").cloned();
            (
                status,
                retry_after,
                response.text().await.unwrap_or_default(),
            )
        });
    }
    // While the one handler is held, every other request must come back 409.
    let mut conflicts = 0;
    while conflicts < 31 {
        let (status, retry_after, body) =
            tokio::time::timeout(Duration::from_secs(10), requests.join_next())
                .await
                .expect("31 requests should be answered while the handler is held")
                .expect("a request")
                .expect("a request task");
        assert_eq!(status, 409, "{body}");
        assert!(retry_after.is_some(), "409 carries Retry-After");
        assert!(body.contains("idempotency_request_in_progress"));
        conflicts += 1;
    }
    h.state.probe.open(1);
    let (status, _, _) = requests
        .join_next()
        .await
        .expect("the first")
        .expect("task");
    assert_eq!(status, 201);
    assert_eq!(h.runs(), 1);
}

async fn in_progress_with_a_different_body_is_422(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    let h = Arc::new(h);
    let first = {
        let h = h.clone();
        tokio::spawn(async move {
            h.send("/orders", Some("k-6"), json!({"hold": true}))
                .await
                .status()
        })
    };
    h.state.probe.wait_started().await;
    let (status, code, _) = problem_code(
        h.send("/orders", Some("k-6"), json!({"note": "other"}))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "idempotency_key_reused"));
    h.state.probe.open(1);
    assert_eq!(first.await.unwrap(), 201);
    assert_eq!(h.runs(), 1);
}

async fn a_client_that_disconnects_does_not_cut_the_handler_short(path: Path, kind: Store) {
    let (h, store) = Harness::start(path, kind).await;
    let h = Arc::new(h);
    let request = {
        let h = h.clone();
        tokio::spawn(async move { h.send("/orders", Some("k-7"), json!({"hold": true})).await })
    };
    h.state.probe.wait_started().await;
    request.abort();
    assert!(request.await.is_err(), "the client went away");
    h.state.probe.open(1);
    eventually(
        "the detached handler's response is stored",
        Duration::from_secs(10),
        || async {
            matches!(
                store.get("idempotency:orders:k-7"),
                Some(Record::Completed(_))
            )
        },
    )
    .await;
    let retry = h.send("/orders", Some("k-7"), json!({"hold": true})).await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(h.runs(), 1);
}

async fn a_record_without_fingerprint_replays_whatever_the_body(path: Path, kind: Store) {
    let (h, store) = Harness::start(path, kind).await;
    // Written with include_body = false: any body replays.
    assert_eq!(
        h.send("/unhashed", Some("u-1"), json!({"note": "a"}))
            .await
            .status(),
        201
    );
    let other = h.send("/unhashed", Some("u-1"), json!({"note": "b"})).await;
    assert_eq!(other.headers()["idempotent-replayed"], "true");
    assert_eq!(h.runs(), 1);

    // Written by Spring without includeBody (no fingerprint, no headers): replayed as JSON.
    let spring = StoredResponse::new(StatusCode::OK, None, bytes_of(r#"{"from":"spring"}"#), None);
    let fence = store
        .store()
        .complete(
            &StoreKey::new("orders", None, "spring-1"),
            &Token::generate(),
            spring,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    assert_eq!(fence, Fence::Applied);
    let replayed = h
        .send("/orders", Some("spring-1"), json!({"note": "anything"}))
        .await;
    assert_eq!(replayed.status(), 200);
    assert_eq!(replayed.headers()["content-type"], "application/json");
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(replayed).await, json!({"from": "spring"}));
    assert_eq!(h.runs(), 1);
}

fn bytes_of(text: &'static str) -> axum::body::Bytes {
    axum::body::Bytes::from_static(text.as_bytes())
}

async fn body_over_the_limit_is_413_after_the_key_check(path: Path, kind: Store) {
    let store = Backend::start(kind).await;
    let h = Harness::new(store.idempotency().body_limit(1024), path).await;
    let big = json!({"note": "x".repeat(4096)});
    // The key is checked first.
    let (status, _, _) = problem_code(h.send("/orders", None, big.clone()).await).await;
    assert_eq!(status, 400);
    // With Content-Length.
    let (status, code, _) = problem_code(h.send("/orders", Some("big"), big.clone()).await).await;
    assert_eq!((status, code.as_str()), (413, "idempotency_body_too_large"));
    // Chunked, without Content-Length.
    let chunks =
        futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512])));
    let streamed = h
        .http
        .post(h.server.url("/orders"))
        .header("Idempotency-Key", "big")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
    assert_eq!(h.runs(), 0);
    assert!(store.is_empty());
}

async fn a_response_over_the_storage_limit_is_returned_but_not_stored(path: Path, kind: Store) {
    let store = Backend::start(kind).await;
    let idem = store.idempotency().max_response_size(100);
    let h = Harness::new(idem.clone(), path).await;
    let first = h.send("/orders", Some("huge"), json!({"pad": 1000})).await;
    assert_eq!(first.status(), 201);
    assert_eq!(
        json_of(first).await["pad"].as_str().map(str::len),
        Some(1000)
    );
    assert!(store.get("idempotency:orders:huge").is_none());
    assert_eq!(
        h.send("/orders", Some("huge"), json!({"pad": 1000}))
            .await
            .status(),
        201
    );
    assert_eq!(h.runs(), 2);
    assert_eq!(idem.metrics().oversized_responses, 2);
}

async fn tenants_never_see_each_others_responses(path: Path, kind: Store) {
    let store = Backend::start(kind).await;
    let idem = store.idempotency().scope(|parts| {
        parts
            .headers
            .get("x-tenant")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    });
    let h = Harness::new(idem, path).await;
    let send = |tenant: &'static str| {
        h.post("/orders", Some("shared-key"), &json!({}))
            .header("x-tenant", tenant)
            .send()
    };
    let a = json_of(send("alice").await.unwrap()).await;
    let b = json_of(send("bob").await.unwrap()).await;
    assert_ne!(a["id"], b["id"]);
    let a_again = send("alice").await.unwrap();
    assert_eq!(a_again.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(a_again).await, a);
    assert_eq!(h.runs(), 2);
    assert!(store.get("idempotency:orders|alice:shared-key").is_some());
}

#[tokio::test]
async fn an_app_without_a_store_answers_500_naming_the_fix() {
    let state = AppState::default();
    let server = Server::start(routes().with_state(state.clone())).await;
    let response = client()
        .post(server.url("/orders"))
        .header("Idempotency-Key", "k")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, code, _) = problem_code(response).await;
    assert_eq!((status, code.as_str()), (500, "idempotency_not_configured"));
    assert_eq!(state.probe.runs(), 0);
}

async fn an_expired_lock_is_taken_over_and_the_old_owner_is_fenced(path: Path, kind: Store) {
    // A store that cannot renew leases: the lock of a running handler expires after lock_ttl
    // (on a store that renews, see `a_handler_running_past_its_lock_ttl_keeps_its_claim`).
    let backend = Backend::start(kind).await;
    let store = FaultyStore::over(&backend);
    let idem = Idempotency::new(store.clone()).store_timeout(backend.deadline());
    let h = Arc::new(Harness::new(idem.clone(), path).await);
    let first = {
        let h = h.clone();
        tokio::spawn(async move {
            json_of(h.send("/short", Some("t-1"), json!({"hold": true})).await).await
        })
    };
    h.state.probe.wait_started().await;
    // The PROCESSING record lives for lock_ttl (300ms); outlive it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = {
        let h = h.clone();
        tokio::spawn(async move {
            json_of(h.send("/short", Some("t-1"), json!({"hold": true})).await).await
        })
    };
    h.state.probe.wait_started().await;
    assert_eq!(
        h.runs(),
        2,
        "the second request took over the dead owner's key"
    );
    // The old owner finishes first: its completion is refused by the fence.
    h.state.probe.open(1);
    let old = first.await.unwrap();
    h.state.probe.open(1);
    let new = second.await.unwrap();
    assert_eq!(idem.metrics().fenced_writes, 1);
    let replay = json_of(h.send("/short", Some("t-1"), json!({"hold": true})).await).await;
    assert_eq!(replay, new);
    assert_ne!(replay, old);
}

async fn waiting_duplicates_replay_the_first_response(path: Path, kind: Store) {
    let store = Backend::start(kind).await;
    let idem = store.idempotency();
    let h = Arc::new(Harness::new(idem.clone(), path).await);
    let first = {
        let h = h.clone();
        tokio::spawn(async move {
            let r = h.send("/wait", Some("w-1"), json!({"hold": true})).await;
            (r.status(), json_of(r).await)
        })
    };
    h.state.probe.wait_started().await;
    let duplicate = {
        let h = h.clone();
        tokio::spawn(async move {
            let r = h.send("/wait", Some("w-1"), json!({"hold": true})).await;
            (
                r.status(),
                r.headers().get("idempotent-replayed").cloned(),
                json_of(r).await,
            )
        })
    };
    eventually(
        "the duplicate is waiting",
        Duration::from_secs(10),
        || async { idem.metrics().waits == 1 },
    )
    .await;
    h.state.probe.open(1);
    let (status, body) = first.await.unwrap();
    let (dup_status, replayed, dup_body) = duplicate.await.unwrap();
    assert_eq!(
        (status, dup_status),
        (StatusCode::CREATED, StatusCode::CREATED)
    );
    assert_eq!(replayed.as_ref().map(|v| v.as_bytes()), Some(&b"true"[..]));
    assert_eq!(body, dup_body);
    assert_eq!(h.runs(), 1);
}

async fn a_wait_that_runs_out_is_409(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    let h = Arc::new(h);
    let first = {
        let h = h.clone();
        tokio::spawn(async move {
            h.send("/impatient", Some("w-2"), json!({"hold": true}))
                .await
                .status()
        })
    };
    h.state.probe.wait_started().await;
    let (status, code, _) = problem_code(h.send("/impatient", Some("w-2"), json!({})).await).await;
    assert_eq!(
        (status, code.as_str()),
        (409, "idempotency_request_in_progress")
    );
    h.state.probe.open(1);
    assert_eq!(first.await.unwrap(), 201);
    assert_eq!(h.runs(), 1);
}

/// A store a test can take down or hang, wrapping the store under test.
#[derive(Clone)]
struct FaultyStore {
    inner: Arc<dyn IdempotencyStore>,
    mode: Arc<AtomicU8>,
}

const HEALTHY: u8 = 0;
const DOWN: u8 = 1;
const HUNG: u8 = 2;

impl FaultyStore {
    fn over(backend: &Backend) -> FaultyStore {
        FaultyStore {
            inner: backend.store(),
            mode: Arc::default(),
        }
    }

    async fn fault(&self) -> Result<(), StoreError> {
        match self.mode.load(Ordering::SeqCst) {
            DOWN => Err(StoreError::new("connection refused")),
            HUNG => std::future::pending().await,
            _ => Ok(()),
        }
    }
}

/// It does not renew leases (the trait's default): a store that cannot renew.
#[async_trait]
impl IdempotencyStore for FaultyStore {
    async fn claim(&self, key: &StoreKey, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        self.fault().await?;
        self.inner.claim(key, claim).await
    }
    async fn complete(
        &self,
        key: &StoreKey,
        token: &Token,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<Fence, StoreError> {
        self.fault().await?;
        self.inner.complete(key, token, response, ttl).await
    }
    async fn release(&self, key: &StoreKey, token: &Token) -> Result<Fence, StoreError> {
        self.fault().await?;
        self.inner.release(key, token).await
    }
}

async fn store_outage_fails_open_or_closed_per_route(path: Path, kind: Store) {
    let backend = Backend::start(kind).await;
    let store = FaultyStore::over(&backend);
    let idem = Idempotency::new(store.clone()).store_timeout(backend.short_deadline());
    let h = Harness::new(idem.clone(), path).await;
    for mode in [DOWN, HUNG] {
        store.mode.store(mode, Ordering::SeqCst);
        let before = h.runs();
        // fail_open = true: the handler runs, nothing is written.
        let open = h.send("/orders", Some("o-1"), json!({})).await;
        assert_eq!(open.status(), 201);
        assert_eq!(h.runs(), before + 1);
        // fail_open = false: 503 with Retry-After, the handler does not run.
        let refused = h.send("/closed", Some("c-1"), json!({})).await;
        assert!(refused.headers().get("retry-after").is_some());
        let (status, code, _) = problem_code(refused).await;
        assert_eq!(
            (status, code.as_str()),
            (503, "idempotency_store_unavailable")
        );
        assert_eq!(h.runs(), before + 1);
    }
    assert!(backend.is_empty(), "nothing is written during an outage");
    let metrics = idem.metrics();
    assert_eq!(
        (metrics.fail_open_runs, metrics.fail_closed_rejections),
        (2, 2)
    );
    assert!(metrics.store_errors >= 4);

    // Back up: idempotency resumes.
    store.mode.store(HEALTHY, Ordering::SeqCst);
    assert_eq!(
        h.send("/orders", Some("o-2"), json!({})).await.status(),
        201
    );
    let replay = h.send("/orders", Some("o-2"), json!({})).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
}

async fn a_handler_running_past_its_lock_ttl_keeps_its_claim(path: Path, kind: Store) {
    // Every store here renews leases: the running handler's lock (300 ms) is extended every
    // 150 ms, so a retry long after the first lock_ttl still finds the key taken.
    let store = Backend::start(kind).await;
    let idem = store.idempotency();
    let h = Arc::new(Harness::new(idem.clone(), path).await);
    let first = {
        let h = h.clone();
        tokio::spawn(async move {
            let r = h
                .send("/short", Some("slow-1"), json!({"hold": true}))
                .await;
            (r.status(), json_of(r).await)
        })
    };
    h.state.probe.wait_started().await;
    // Three lock_ttls pass while the handler runs: the passing of time is what is tested.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let (status, code, _) = problem_code(
        h.send("/short", Some("slow-1"), json!({"hold": true}))
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (409, "idempotency_request_in_progress")
    );
    assert!(idem.metrics().lease_renewals >= 2, "{:?}", idem.metrics());
    h.state.probe.open(1);
    let (status, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::CREATED);
    let replay = h
        .send("/short", Some("slow-1"), json!({"hold": true}))
        .await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(replay).await, body);
    assert_eq!(h.runs(), 1);
    assert_eq!(idem.metrics().fenced_writes, 0);
}

async fn the_handler_can_extract_its_key_and_the_claim_it_runs_under(path: Path, kind: Store) {
    let (h, store) = Harness::start(path, kind).await;
    let told = json_of(h.send("/told", Some("\"who\""), json!({})).await).await;
    assert_eq!(told["key"], "who");
    assert_eq!(told["store_key"], "idempotency:told:who");
    let token = told["token"].as_str().expect("a token").to_owned();
    let Some(Record::Completed(stored)) = store.get("idempotency:told:who") else {
        panic!("a completed record")
    };
    assert_eq!(
        stored.token.as_ref().map(Token::as_str),
        Some(token.as_str())
    );
    // Without a key (the route's key is optional): neither.
    let told = json_of(h.send("/told", None, json!({})).await).await;
    assert_eq!(told, json!({"key": null, "store_key": null, "token": null}));
}

async fn a_handler_without_a_key_on_an_optional_route_is_still_caught_when_it_panics(
    path: Path,
    kind: Store,
) {
    let (h, store) = Harness::start(path, kind).await;
    let (status, code, _) =
        problem_code(h.send("/optional", None, json!({"panic": true})).await).await;
    assert_eq!(
        (status, code.as_str()),
        (500, "idempotency_handler_panicked")
    );
    assert_eq!(h.runs(), 1);
    assert!(store.is_empty());
}

async fn a_handler_without_a_key_on_an_optional_route_runs_to_the_end_when_the_client_goes(
    path: Path,
    kind: Store,
) {
    let (h, _store) = Harness::start(path, kind).await;
    let h = Arc::new(h);
    let request = {
        let h = h.clone();
        tokio::spawn(async move { h.send("/optional", None, json!({"hold": true})).await })
    };
    h.state.probe.wait_started().await;
    request.abort();
    assert!(request.await.is_err(), "the client went away");
    h.state.probe.open(1);
    // The handler took its id after the gate: a later request sees the next one.
    eventually(
        "the detached handler finished",
        Duration::from_secs(10),
        || async { h.state.ids.load(Ordering::SeqCst) == 1 },
    )
    .await;
}

async fn a_keyed_read_carries_an_etag_cache_control_and_vary_and_replays_them(
    path: Path,
    kind: Store,
) {
    let (h, _store) = Harness::start(path, kind).await;
    let first = h.get("/reports/q1", "r-1", None).await;
    assert_eq!(first.status(), 200);
    let etag = header(&first, "etag").expect("an ETag").to_owned();
    assert_eq!(header(&first, "cache-control"), Some("max-age=3600"));
    assert_eq!(header(&first, "vary"), Some("idempotency-key"));
    let body = first.bytes().await.unwrap();
    // A strong tag from the SHA-256 of the body.
    assert_eq!(etag, format!("\"{}\"", sha256_hex(&body)));

    let replay = h.get("/reports/q1", "r-1", None).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(header(&replay, "idempotent-replayed"), Some("true"));
    assert_eq!(header(&replay, "etag"), Some(etag.as_str()));
    assert_eq!(header(&replay, "cache-control"), Some("max-age=3600"));
    assert_eq!(header(&replay, "vary"), Some("idempotency-key"));
    assert_eq!(replay.bytes().await.unwrap(), body);
    assert_eq!(h.runs(), 1);
}

async fn a_matching_if_none_match_is_304_and_runs_nothing(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    let first = h.get("/reports/q2", "r-2", None).await;
    let etag = header(&first, "etag").unwrap().to_owned();
    let opaque = etag.trim_matches('"').to_owned();
    for matching in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"other\", {etag}"),
        format!(" W/\"x\" ,, W/{etag} "),
        "*".to_owned(),
    ] {
        let revalidated = h.get("/reports/q2", "r-2", Some(&matching)).await;
        assert_eq!(revalidated.status(), 304, "If-None-Match: {matching}");
        assert_eq!(header(&revalidated, "etag"), Some(etag.as_str()));
        assert_eq!(header(&revalidated, "cache-control"), Some("max-age=3600"));
        assert_eq!(header(&revalidated, "vary"), Some("idempotency-key"));
        assert_eq!(header(&revalidated, "idempotent-replayed"), Some("true"));
        assert!(revalidated.bytes().await.unwrap().is_empty());
    }
    for other in [
        "\"nope\"".to_owned(),
        format!("\"{}\"", opaque.to_uppercase()),
        "not a tag".to_owned(),
    ] {
        let full = h.get("/reports/q2", "r-2", Some(&other)).await;
        assert_eq!(full.status(), 200, "If-None-Match: {other}");
        assert_eq!(header(&full, "idempotent-replayed"), Some("true"));
        assert!(!full.bytes().await.unwrap().is_empty());
    }
    assert_eq!(h.runs(), 1);
}

async fn a_first_run_is_answered_304_when_the_tag_it_makes_matches(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    let first = h.get("/reports/q3", "r-3", Some("*")).await;
    assert_eq!(first.status(), 304, "`*` matches the response just made");
    assert!(header(&first, "etag").is_some());
    assert!(
        header(&first, "idempotent-replayed").is_none(),
        "the handler ran"
    );
    assert!(first.bytes().await.unwrap().is_empty());
    // The response was stored all the same.
    let replay = h.get("/reports/q3", "r-3", None).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(json_of(replay).await["report"], "q3");
    assert_eq!(h.runs(), 1);
}

async fn head_answers_like_get_without_a_body_through_the_same_record(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    let head = h
        .read(reqwest::Method::HEAD, "/reports/q4", "r-4", None)
        .await;
    assert_eq!(head.status(), 200);
    let etag = header(&head, "etag").expect("an ETag").to_owned();
    assert_eq!(header(&head, "vary"), Some("idempotency-key"));
    assert!(head.bytes().await.unwrap().is_empty());
    let get = h.get("/reports/q4", "r-4", None).await;
    assert_eq!(header(&get, "idempotent-replayed"), Some("true"));
    assert_eq!(header(&get, "etag"), Some(etag.as_str()));
    assert_eq!(json_of(get).await["report"], "q4");
    let revalidated = h
        .read(reqwest::Method::HEAD, "/reports/q4", "r-4", Some(&etag))
        .await;
    assert_eq!(revalidated.status(), 304);
    assert_eq!(h.runs(), 1);
}

async fn the_handlers_own_etag_and_cache_control_are_kept(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    let first = h.get("/reports/q5?tagged", "r-5", None).await;
    assert_eq!(header(&first, "etag"), Some("W/\"own-tag\""));
    assert_eq!(header(&first, "cache-control"), Some("private, max-age=5"));
    let revalidated = h
        .get("/reports/q5?tagged", "r-5", Some("\"own-tag\""))
        .await;
    assert_eq!(revalidated.status(), 304, "weak comparison");
    assert_eq!(header(&revalidated, "etag"), Some("W/\"own-tag\""));
    assert_eq!(
        header(&revalidated, "cache-control"),
        Some("private, max-age=5")
    );
    assert_eq!(h.runs(), 1);
}

async fn routes_without_the_options_get_no_etag_or_vary(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    for _ in 0..2 {
        let response = h.send("/orders", Some("plain-1"), json!({})).await;
        assert_eq!(response.status(), 201);
        for name in ["etag", "vary", "cache-control"] {
            assert!(
                header(&response, name).is_none(),
                "{name} on a POST route without the options"
            );
        }
    }
}

async fn a_record_stored_without_a_tag_gets_one_on_replay(path: Path, kind: Store) {
    let (h, store) = Harness::start(path, kind).await;
    // Written by the Spring aspect: no headers, no ETag.
    let spring = StoredResponse::new(StatusCode::OK, None, bytes_of(r#"{"report":"old"}"#), None);
    store
        .store()
        .complete(
            &StoreKey::new("reports", None, "spring-r"),
            &Token::generate(),
            spring,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let replay = h.get("/reports/old", "spring-r", None).await;
    let expected = format!("\"{}\"", sha256_hex(br#"{"report":"old"}"#));
    assert_eq!(header(&replay, "etag"), Some(expected.as_str()));
    let revalidated = h.get("/reports/old", "spring-r", Some(&expected)).await;
    assert_eq!(revalidated.status(), 304);
    assert_eq!(h.runs(), 0);
}

async fn a_typed_fingerprint_ignores_key_order_and_undeclared_fields(path: Path, kind: Store) {
    let (h, store) = Harness::start(path, kind).await;
    let send = |body: &'static str| h.send_raw("/charges", "typed-1", body);
    let first = send(r#"{"currency":"EUR","amount":100}"#).await;
    assert_eq!(first.status(), 201);
    let first = json_of(first).await;
    for same in [
        r#"{"amount":100,"currency":"EUR"}"#,
        r#"{ "amount": 100, "note": "not declared", "currency": "EUR" }"#,
    ] {
        let replay = send(same).await;
        assert_eq!(replay.headers()["idempotent-replayed"], "true", "{same}");
        assert_eq!(json_of(replay).await, first);
    }
    for other in [r#"{"amount":100}"#, r#"{"amount":101,"currency":"EUR"}"#] {
        assert_eq!(send(other).await.status(), 422, "{other}");
    }
    // The fingerprint is the value as Jackson writes it.
    let Some(Record::Completed(stored)) = store.get("idempotency:charges:typed-1") else {
        panic!("a completed record")
    };
    assert_eq!(
        stored.fingerprint.as_deref(),
        Some(sha256_hex(br#"{"amount":100,"currency":"EUR"}"#).as_str())
    );
    // A body that does not deserialise: the extractor's rejection, the key released.
    let bad = h
        .send_raw("/charges", "typed-2", r#"{"amount":"many"}"#)
        .await;
    assert!(bad.status().is_client_error());
    assert!(store.get("idempotency:charges:typed-2").is_none());
    assert_eq!(h.runs(), 1);
}

async fn a_canonical_fingerprint_ignores_key_order(path: Path, kind: Store) {
    let (h, _store) = Harness::start(path, kind).await;
    let send = |body: &'static str| {
        h.http
            .post(h.server.url("/canonical"))
            .header("Idempotency-Key", "canon-1")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(
        send(r#"{"currency":"EUR","amount":100}"#)
            .await
            .unwrap()
            .status(),
        201
    );
    let replay = send(r#"{"amount":1e2,"currency":"EUR"}"#).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        send(r#"{"amount":100,"currency":"USD"}"#)
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(h.runs(), 1);
}

/// Each test above on every store, once through `#[idempotent]` and once through the
/// middleware.
macro_rules! every_store_and_path {
    ($($name:ident),* $(,)?) => {
        every_store_and_path!(@on memory_by_macro, Memory, Macro; $($name),*);
        every_store_and_path!(@on memory_by_layer, Memory, Layer; $($name),*);
        every_store_and_path!(@on redis_by_macro, Redis, Macro; $($name),*);
        every_store_and_path!(@on redis_by_layer, Redis, Layer; $($name),*);
        every_store_and_path!(@on dynamodb_by_macro, DynamoDb, Macro; $($name),*);
        every_store_and_path!(@on dynamodb_by_layer, DynamoDb, Layer; $($name),*);
        every_store_and_path!(@on postgres_by_macro, Postgres, Macro; $($name),*);
        every_store_and_path!(@on postgres_by_layer, Postgres, Layer; $($name),*);
    };
    (@on $module:ident, $store:ident, $path:ident; $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Path::$path, super::Store::$store).await
                }
            )*
        }
    };
}

every_store_and_path!(
    a_typed_fingerprint_ignores_key_order_and_undeclared_fields,
    a_canonical_fingerprint_ignores_key_order,
    a_keyed_read_carries_an_etag_cache_control_and_vary_and_replays_them,
    a_matching_if_none_match_is_304_and_runs_nothing,
    a_first_run_is_answered_304_when_the_tag_it_makes_matches,
    head_answers_like_get_without_a_body_through_the_same_record,
    the_handlers_own_etag_and_cache_control_are_kept,
    routes_without_the_options_get_no_etag_or_vary,
    a_record_stored_without_a_tag_gets_one_on_replay,
    new_key_runs_once_and_retries_replay_the_stored_response,
    json_whitespace_does_not_change_the_fingerprint,
    the_same_bytes_under_another_content_type_are_another_request,
    same_key_with_a_different_body_is_422,
    missing_key_on_a_mandatory_route_is_400_and_runs_nothing,
    configured_header_name_is_the_one_read,
    missing_key_on_an_optional_route_runs_the_handler_every_time,
    malformed_keys_are_400_and_run_nothing,
    a_quoted_key_is_the_bare_key,
    a_non_2xx_answer_releases_the_key,
    an_extractor_rejection_releases_the_key_and_does_not_run_the_body,
    a_panicking_handler_is_500_and_releases_the_key,
    thirty_two_concurrent_requests_run_the_handler_exactly_once,
    in_progress_with_a_different_body_is_422,
    a_client_that_disconnects_does_not_cut_the_handler_short,
    a_record_without_fingerprint_replays_whatever_the_body,
    body_over_the_limit_is_413_after_the_key_check,
    a_response_over_the_storage_limit_is_returned_but_not_stored,
    tenants_never_see_each_others_responses,
    an_expired_lock_is_taken_over_and_the_old_owner_is_fenced,
    waiting_duplicates_replay_the_first_response,
    a_wait_that_runs_out_is_409,
    store_outage_fails_open_or_closed_per_route,
    a_handler_running_past_its_lock_ttl_keeps_its_claim,
    the_handler_can_extract_its_key_and_the_claim_it_runs_under,
    a_handler_without_a_key_on_an_optional_route_is_still_caught_when_it_panics,
    a_handler_without_a_key_on_an_optional_route_runs_to_the_end_when_the_client_goes,
);

//! The gateway example in front of a real upstream HTTP server started by the test.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

#[allow(dead_code)]
#[path = "../examples/gateway.rs"]
mod gateway;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use idempotent_runtime::Idempotency;
use idempotent_runtime::fingerprint::sha256_hex;
use idempotent_runtime::store::memory::MemoryStore;
use serde_json::{Value, json};
use support::app::{Server, client};

/// The upstream: counts the requests that reach it.
#[derive(Clone, Default)]
struct Upstream {
    calls: Arc<AtomicU64>,
}

impl Upstream {
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn create(State(up): State<Upstream>, body: Bytes) -> impl IntoResponse {
    let n = up.calls.fetch_add(1, Ordering::SeqCst) + 1;
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/items/{n}")),
            (
                header::HeaderName::from_static("x-upstream"),
                "yes".to_owned(),
            ),
        ],
        axum::Json(json!({"n": n, "len": body.len(), "sha": sha256_hex(&body)})),
    )
}

async fn count(State(up): State<Upstream>) -> impl IntoResponse {
    let n = up.calls.fetch_add(1, Ordering::SeqCst) + 1;
    axum::Json(json!({ "n": n }))
}

async fn fail(State(up): State<Upstream>) -> impl IntoResponse {
    up.calls.fetch_add(1, Ordering::SeqCst);
    (StatusCode::INTERNAL_SERVER_ERROR, "upstream failed")
}

/// 3 MiB in 64 KiB chunks.
async fn big(State(up): State<Upstream>) -> impl IntoResponse {
    up.calls.fetch_add(1, Ordering::SeqCst);
    let chunks = (0..48u8).map(|i| Ok::<_, std::io::Error>(Bytes::from(vec![i; 64 * 1024])));
    Body::from_stream(futures_util::stream::iter(chunks))
}

fn upstream_app(up: Upstream) -> Router {
    Router::new()
        .route("/items", post(create).get(count))
        .route(
            "/items/{id}",
            post(create).put(count).patch(count).delete(count),
        )
        .route("/fail", post(fail))
        .route("/big", get(big).post(big))
        .with_state(up)
}

struct Gateway {
    server: Server,
    store: MemoryStore,
}

async fn gateway_to(upstream: SocketAddr) -> Gateway {
    let store = MemoryStore::new();
    let idem = Idempotency::new(store.clone());
    let up = gateway::Upstream::new(&format!("http://{upstream}")).unwrap();
    Gateway {
        server: Server::start(gateway::app(&idem, up, Duration::from_secs(60))).await,
        store,
    }
}

async fn both() -> (Server, Upstream, Gateway) {
    let up = Upstream::default();
    let upstream = Server::start(upstream_app(up.clone())).await;
    let gateway = gateway_to(upstream.addr).await;
    (upstream, up, gateway)
}

fn replayed(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

#[tokio::test]
async fn a_keyed_post_reaches_the_upstream_once_and_retries_replay_it() {
    let (_upstream, up, gw) = both().await;
    let http = client();
    let send = |body: &'static str| {
        http.post(gw.server.url("/items?x=1"))
            .header("Idempotency-Key", "g-1")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let first = send(r#"{"amount": 5}"#).await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(!replayed(&first));
    assert_eq!(first.headers()["location"], "/items/1");
    assert_eq!(
        first.headers()["x-upstream"],
        "yes",
        "the upstream's headers are kept"
    );
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["len"], 13, "the body reached the upstream whole");

    // Whitespace differs, the JSON is the same: a replay.
    let retry = send(r#"{"amount":5}"#).await.unwrap();
    assert_eq!(retry.status(), 201);
    assert!(replayed(&retry));
    assert_eq!(retry.headers()["location"], "/items/1");
    assert!(
        retry.headers().get("x-upstream").is_none(),
        "only replayable headers"
    );
    assert_eq!(retry.json::<Value>().await.unwrap(), first);

    let reused = send(r#"{"amount": 6}"#).await.unwrap();
    assert_eq!(reused.status(), 422);
    assert_eq!(up.calls(), 1);
    assert!(gw.store.get("idempotency:gateway:g-1").is_some());
}

#[tokio::test]
async fn put_patch_and_delete_with_a_key_are_idempotent_too() {
    let (_upstream, up, gw) = both().await;
    let http = client();
    for (i, method) in [
        reqwest::Method::PUT,
        reqwest::Method::PATCH,
        reqwest::Method::DELETE,
    ]
    .into_iter()
    .enumerate()
    {
        let key = format!("m-{i}");
        for attempt in 0..2 {
            let response = http
                .request(method.clone(), gw.server.url("/items/7"))
                .header("Idempotency-Key", &key)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{method}");
            assert_eq!(
                replayed(&response),
                attempt == 1,
                "{method} attempt {attempt}"
            );
        }
    }
    assert_eq!(up.calls(), 3);
}

#[tokio::test]
async fn reads_and_requests_without_a_key_pass_through_untouched() {
    let (_upstream, up, gw) = both().await;
    let http = client();
    for _ in 0..2 {
        let read = http
            .get(gw.server.url("/items"))
            .header("Idempotency-Key", "read-1")
            .send()
            .await
            .unwrap();
        assert_eq!(read.status(), 200);
        assert!(!replayed(&read));
        let unkeyed = http
            .post(gw.server.url("/items"))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(unkeyed.status(), 201);
        assert!(!replayed(&unkeyed));
    }
    assert_eq!(up.calls(), 4);
    assert!(
        gw.store.is_empty(),
        "nothing stored for pass-through requests"
    );
}

#[tokio::test]
async fn a_non_2xx_answer_of_the_upstream_is_relayed_and_not_stored() {
    let (_upstream, up, gw) = both().await;
    let http = client();
    for _ in 0..2 {
        let failed = http
            .post(gw.server.url("/fail"))
            .header("Idempotency-Key", "f-1")
            .send()
            .await
            .unwrap();
        assert_eq!(failed.status(), 500);
        assert_eq!(failed.text().await.unwrap(), "upstream failed");
    }
    assert_eq!(up.calls(), 2, "the retry reached the upstream again");
}

#[tokio::test]
async fn bodies_stream_both_ways() {
    let (_upstream, up, gw) = both().await;
    let http = client();
    // A response larger than the store keeps (1 MiB): streamed through, not stored.
    let big = http
        .post(gw.server.url("/big"))
        .header("Idempotency-Key", "big-1")
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 200);
    let body = big.bytes().await.unwrap();
    assert_eq!(body.len(), 48 * 64 * 1024);
    assert!(
        body.chunks(64 * 1024)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| usize::from(*b) == i))
    );
    assert!(gw.store.get("idempotency:gateway:big-1").is_none());
    // A request body sent in chunks, without a length, reaches the upstream whole.
    let chunks = (0..16).map(|i| Ok::<_, std::io::Error>(vec![i as u8; 32 * 1024]));
    let sent = http
        .post(gw.server.url("/items"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), 201);
    let expected: Vec<u8> = (0..16).flat_map(|i| vec![i as u8; 32 * 1024]).collect();
    let told: Value = sent.json().await.unwrap();
    assert_eq!(told["len"], expected.len());
    assert_eq!(told["sha"], sha256_hex(&expected));
    assert_eq!(up.calls(), 2);
}

#[tokio::test]
async fn an_unreachable_upstream_is_502_and_releases_the_key() {
    // A port that nobody listens on, then the upstream started on it.
    let probe = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = probe.local_addr().unwrap();
    drop(probe);
    let gw = gateway_to(addr).await;
    let http = client();
    let send = || {
        http.post(gw.server.url("/items"))
            .header("Idempotency-Key", "down-1")
            .body("order")
            .send()
    };
    let down = send().await.unwrap();
    assert_eq!(down.status(), 502);
    assert!(
        gw.store.get("idempotency:gateway:down-1").is_none(),
        "the key is released"
    );

    let up = Upstream::default();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let app = upstream_app(up.clone());
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });
    let back = send().await.unwrap();
    assert_eq!(back.status(), 201);
    assert!(!replayed(&back), "the retry reached the upstream");
    assert_eq!(up.calls(), 1);
    serving.abort();
}

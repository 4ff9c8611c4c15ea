//! The local cache of completed records in front of a networked store (here a private
//! `redis-server`, its commands counted with `MONITOR`): a replay of a record the process
//! holds costs no command and answers while Redis is down; a conflict still asks the store;
//! entries live no longer than their records; tenants stay apart; the cache is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing;
use idempotent_runtime::{Idempotency, idempotent};
use support::app::{Probe, Server, client, eventually};
use support::redis::{Monitor, RedisServer};

#[derive(Clone, Default)]
struct Counter {
    probe: Probe,
}

#[idempotent(key_prefix = "orders", include_body = true)]
async fn orders(State(c): State<Counter>, body: String) -> impl IntoResponse {
    let n = c.probe.enter();
    if body.contains("hold") {
        c.probe.hold().await;
    }
    (
        StatusCode::CREATED,
        format!("{{\"id\":{n},\"pad\":\"{body}\"}}"),
    )
}

#[idempotent(key_prefix = "brief", ttl = "1s")]
async fn brief(State(c): State<Counter>) -> impl IntoResponse {
    let n = c.probe.enter();
    (StatusCode::CREATED, format!("{{\"id\":{n}}}"))
}

async fn app(idem: Idempotency) -> (Server, Counter) {
    let counter = Counter::default();
    let router = Router::new()
        .route("/orders", routing::post(orders))
        .route("/brief", routing::post(brief))
        .layer(idem)
        .with_state(counter.clone());
    (Server::start(router).await, counter)
}

/// An `Idempotency` over `server` with a local cache of `bytes`, whose tenant is the
/// `x-tenant` header.
async fn cached(server: &RedisServer, bytes: u64) -> Idempotency {
    Idempotency::redis(&server.url())
        .await
        .unwrap()
        .local_cache(bytes)
        .scope(|parts| {
            parts
                .headers
                .get("x-tenant")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
}

async fn post(server: &Server, route: &str, key: &str, body: &str) -> reqwest::Response {
    client()
        .post(server.url(route))
        .header("Idempotency-Key", key)
        .header("content-type", "text/plain")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

fn replayed(response: &reqwest::Response) -> bool {
    response.headers().get("idempotent-replayed").is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_of_a_record_the_process_holds_costs_no_command() {
    let redis = RedisServer::start();
    let mut monitor = Monitor::start(&redis).await;
    let (server, counter) = app(cached(&redis, 1 << 20).await).await;

    let (first, seen) = monitor
        .commands_during(post(&server, "/orders", "k-1", "a"))
        .await;
    assert_eq!(first.status(), 201);
    assert_eq!(seen.len(), 2, "first run: claim, complete: {seen:?}");

    let (replay, seen) = monitor
        .commands_during(post(&server, "/orders", "k-1", "a"))
        .await;
    assert!(replayed(&replay));
    assert_eq!(replay.text().await.unwrap(), r#"{"id":1,"pad":"a"}"#);
    assert!(seen.is_empty(), "a replay from the local cache: {seen:?}");

    let (mismatch, seen) = monitor
        .commands_during(post(&server, "/orders", "k-1", "b"))
        .await;
    assert_eq!(mismatch.status(), 422);
    assert!(seen.is_empty(), "a mismatch from the local cache: {seen:?}");

    // A record written by another process is read from the store once, then held.
    let other = Idempotency::redis(&redis.url()).await.unwrap();
    let (elsewhere, _) = app(other).await;
    post(&elsewhere, "/orders", "k-2", "c").await;
    let (_, seen) = monitor
        .commands_during(post(&server, "/orders", "k-2", "c"))
        .await;
    assert_eq!(seen.len(), 1, "read from the store once: {seen:?}");
    let (again, seen) = monitor
        .commands_during(post(&server, "/orders", "k-2", "c"))
        .await;
    assert!(replayed(&again));
    assert!(seen.is_empty(), "then held: {seen:?}");
    assert_eq!(counter.probe.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_still_running_is_never_answered_from_the_cache() {
    let redis = RedisServer::start();
    let mut monitor = Monitor::start(&redis).await;
    let (server, counter) = app(cached(&redis, 1 << 20).await).await;
    let held = tokio::spawn({
        let url = server.url("/orders");
        async move {
            client()
                .post(url)
                .header("Idempotency-Key", "p-1")
                .body("hold")
                .send()
                .await
                .unwrap()
        }
    });
    counter.probe.wait_started().await;
    let (conflict, seen) = monitor
        .commands_during(post(&server, "/orders", "p-1", "hold"))
        .await;
    assert_eq!(conflict.status(), 409);
    assert_eq!(seen.len(), 1, "a conflict asks the store: {seen:?}");
    counter.probe.open(1);
    assert_eq!(held.await.unwrap().status(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_records_replay_while_the_store_is_down() {
    let mut redis = RedisServer::start();
    let (server, counter) = app(cached(&redis, 1 << 20).await).await;
    assert_eq!(post(&server, "/orders", "d-1", "a").await.status(), 201);
    redis.kill();
    let replay = post(&server, "/orders", "d-1", "a").await;
    assert!(replayed(&replay), "answered from the local cache");
    // A new key fails open (the default): it runs, without idempotency.
    assert_eq!(post(&server, "/orders", "d-2", "a").await.status(), 201);
    assert_eq!(counter.probe.runs(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_stay_apart_and_entries_expire_with_their_records() {
    let redis = RedisServer::start();
    let mut monitor = Monitor::start(&redis).await;
    let (server, counter) = app(cached(&redis, 1 << 20).await).await;
    let tenant = |name: &'static str| {
        client()
            .post(server.url("/orders"))
            .header("Idempotency-Key", "t-1")
            .header("x-tenant", name)
            .header("content-type", "text/plain")
            .body("a")
            .send()
    };
    assert_eq!(tenant("a").await.unwrap().status(), 201);
    let b = tenant("b").await.unwrap();
    assert!(!replayed(&b), "tenant b never sees tenant a's record");
    assert_eq!(counter.probe.runs(), 2);

    // A record stored for one second is not answered from the cache after it.
    assert_eq!(post(&server, "/brief", "e-1", "").await.status(), 201);
    let (_, seen) = monitor
        .commands_during(post(&server, "/brief", "e-1", ""))
        .await;
    assert!(seen.is_empty(), "held while it lives");
    eventually(
        "the record expires in Redis and in the cache",
        Duration::from_secs(10),
        || async { !replayed(&post(&server, "/brief", "e-1", "").await) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_bounded_by_bytes() {
    let redis = RedisServer::start();
    let mut monitor = Monitor::start(&redis).await;
    // Room for a small record, not for a 64 KiB one.
    let (server, _) = app(cached(&redis, 16 * 1024).await).await;
    let big = "x".repeat(64 * 1024);
    assert_eq!(post(&server, "/orders", "b-1", &big).await.status(), 201);
    let (replay, seen) = monitor
        .commands_during(post(&server, "/orders", "b-1", &big))
        .await;
    assert!(replayed(&replay));
    assert_eq!(
        seen.len(),
        1,
        "too big to hold: read from the store: {seen:?}"
    );
}

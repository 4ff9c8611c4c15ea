//! Reliability on a real Redis: a takeover after a dead owner is fenced, and a claim that
//! reached Redis after its deadline is released once Redis answers again.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::store::redis::RedisStore;
use idempotent_runtime::{Idempotency, idempotent};
use serde_json::{Value, json};
use support::app::{Probe, Server, WithoutRenewal, client, eventually};
use support::redis::RedisServer;

#[derive(Clone, Default)]
struct AppState {
    probe: Probe,
    ids: Arc<AtomicU64>,
}

async fn work(state: &AppState, hold: bool) -> (StatusCode, Json<Value>) {
    state.probe.enter();
    if hold {
        state.probe.hold().await;
    }
    let id = state.ids.fetch_add(1, Ordering::SeqCst) + 1;
    (StatusCode::CREATED, Json(json!({ "id": id })))
}

#[idempotent(key_prefix = "short", include_body = true, lock_ttl = "300ms")]
async fn short_lock(
    State(state): State<AppState>,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    work(&state, body["hold"].as_bool().unwrap_or(false)).await
}

#[idempotent(key_prefix = "late", lock_ttl = "60s")]
async fn long_lock(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    work(&state, false).await
}

async fn start(
    redis: &RedisServer,
    idem: impl FnOnce(Idempotency) -> Idempotency,
) -> (Server, AppState, Idempotency) {
    serve(idem(Idempotency::redis(&redis.url()).await.unwrap())).await
}

async fn serve(idem: Idempotency) -> (Server, AppState, Idempotency) {
    let state = AppState::default();
    let app = Router::new()
        .route("/short", post(short_lock))
        .route("/late", post(long_lock))
        .layer(idem.clone())
        .with_state(state.clone());
    (Server::start(app).await, state, idem)
}

#[tokio::test]
async fn a_takeover_after_lock_ttl_fences_the_old_owner() {
    let redis = RedisServer::start();
    // A store that cannot renew leases: the lock of the held handler expires after
    // lock_ttl, as when its owner has died (lease renewal is tested in redis_http.rs).
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let (server, state, idem) = serve(Idempotency::new(WithoutRenewal(store))).await;
    let server = Arc::new(server);
    let send = |server: Arc<Server>| async move {
        client()
            .post(server.url("/short"))
            .header("Idempotency-Key", "t-1")
            .json(&json!({"hold": true}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    };
    let first = tokio::spawn(send(server.clone()));
    state.probe.wait_started().await;
    // The PROCESSING record lives for lock_ttl (300ms) in Redis; outlive it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = tokio::spawn(send(server.clone()));
    state.probe.wait_started().await;
    assert_eq!(
        state.probe.runs(),
        2,
        "the second request took over the expired lock"
    );
    state.probe.open(1);
    let old = first.await.unwrap();
    state.probe.open(1);
    let new = second.await.unwrap();
    assert_eq!(
        idem.metrics().fenced_writes,
        1,
        "the old owner's completion was refused"
    );
    let replay = send(server.clone()).await;
    assert_eq!(replay, new);
    assert_ne!(replay, old);
    assert_eq!(state.probe.runs(), 2);
}

#[tokio::test]
async fn a_claim_that_lands_after_its_deadline_is_released() {
    let redis = RedisServer::start();
    let (server, state, idem) =
        start(&redis, |i| i.store_timeout(Duration::from_millis(100))).await;
    let http = client();
    let send = || {
        http.post(server.url("/late"))
            .header("Idempotency-Key", "l-1")
            .send()
    };

    redis.pause();
    // The claim is sent, Redis does not answer: fail-open runs the handler.
    let during = send().await.unwrap();
    assert_eq!(during.status(), 201);
    assert_eq!(idem.metrics().fail_open_runs, 1);
    redis.resume();

    // Redis now processes the queued claim, which writes a PROCESSING record locking the key
    // for 60 s; the background release must remove it.
    eventually(
        "the late claim is released",
        Duration::from_secs(10),
        || std::future::ready(idem.metrics().late_claims_released == 1),
    )
    .await;
    let exists: bool = redis::cmd("EXISTS")
        .arg("idempotency:late:l-1")
        .query(&mut redis.connection())
        .unwrap();
    assert!(!exists);
    let retry = send().await.unwrap();
    assert_eq!(
        retry.status(),
        201,
        "the retry runs instead of waiting out lock_ttl"
    );
    assert!(retry.headers().get("idempotent-replayed").is_none());
    assert_eq!(state.probe.runs(), 2);
}

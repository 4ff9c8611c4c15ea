//! Spring parity, measured against real Jackson: the typed fingerprint agrees with the
//! `@Idempotent` aspect's `SHA-256(writeValueAsString(dto))`, and a Spring service and this
//! library share one Redis both ways (completed records replayed across, a record in flight
//! read by the aspect as a 409, never as a null status).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

#[allow(dead_code)]
#[path = "../examples/orders.rs"]
mod orders;
mod support;

use std::time::Duration;

use axum::http::HeaderMap;
use idempotent_runtime::Idempotency;
use idempotent_runtime::fingerprint::{TypedFingerprint, canonical, fingerprint, sha256_hex};
use idempotent_runtime::store::redis::RedisStore;
use idempotent_runtime::store::{Claim, IdempotencyStore, StoreKey, Token};
use serde_json::{Value, json};
use support::app::{Server, client, get_json};
use support::redis::RedisServer;
use support::spring;

/// The example's charge, as the Rust service declares it (the same fields, in the same order,
/// as the Java DTO).
#[derive(serde::Serialize, serde::Deserialize)]
struct NewCharge {
    amount: i64,
    currency: Option<String>,
}

fn typed(body: &str) -> Option<String> {
    TypedFingerprint::of::<NewCharge>()
        .read(body.as_bytes())
        .map(|read| read.fingerprint)
}

fn json_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers
}

#[test]
fn the_typed_fingerprint_is_the_aspects_for_every_case() {
    let agree = [
        // The client sent the DTO's fields in another order.
        r#"{"currency":"EUR","amount":100}"#,
        // A field the DTO does not declare: Jackson drops it.
        r#"{"amount":100,"currency":"EUR","note":"not in the DTO"}"#,
        // A field the client left out: Jackson writes null.
        r#"{"amount":100}"#,
        // A control character: Jackson escapes it in upper-case hex.
        r#"{"amount":1,"currency":"E\u001fUR"}"#,
        // Quotes, backslashes, short escapes and non-ASCII.
        r#"{"amount":-7,"currency":"€ \"q\" \\ \n\t"}"#,
        // Whitespace (one body a line: the Java side reads lines).
        "{ \"amount\" : 3 ,\t \"currency\" : null }",
    ];
    let jackson = spring::fingerprints(&agree);
    for (body, java) in agree.iter().zip(&jackson) {
        let (java_hash, java_json) = java.clone().expect("Jackson reads it");
        assert_eq!(
            typed(body).as_deref(),
            Some(java_hash.as_str()),
            "typed fingerprint of {body} (Jackson wrote {java_json})"
        );
        println!("agrees: {body} -> {java_json}");
    }
    // Why the typed mode exists: the default hashes the request as sent.
    let (reordered, _) = jackson[0].clone().unwrap();
    assert_ne!(
        fingerprint(&json_headers(), agree[0].as_bytes()),
        reordered,
        "the default JSON mode keeps the client's order"
    );
}

#[test]
fn where_the_typed_fingerprint_cannot_agree_the_handler_refuses_the_request() {
    // Jackson coerces 100.0 into a `long`; serde does not, so `Json<NewCharge>` answers 422
    // and the request never runs: no fingerprint is compared.
    let jackson = spring::fingerprints(&[r#"{"amount":100.0}"#]);
    let (java_hash, java_json) = jackson[0].clone().unwrap();
    assert_eq!(java_json, r#"{"amount":100,"currency":null}"#);
    assert_eq!(typed(r#"{"amount":100.0}"#), None);
    assert_eq!(java_hash, sha256_hex(java_json.as_bytes()));
}

#[test]
fn the_canonical_fingerprint_is_the_aspects_only_when_every_field_is_sent() {
    // This DTO declares its fields in alphabetical order, so a body with every field has the
    // same canonical form as Jackson's output; a missing field is where they part.
    let bodies = [r#"{"currency":"EUR","amount":100}"#, r#"{"amount":100}"#];
    let jackson = spring::fingerprints(&bodies);
    assert_eq!(
        canonical(&json_headers(), bodies[0].as_bytes()),
        jackson[0].clone().unwrap().0
    );
    assert_ne!(
        canonical(&json_headers(), bodies[1].as_bytes()),
        jackson[1].clone().unwrap().0
    );
}

async fn charges_on(redis: &RedisServer) -> Server {
    let idem = Idempotency::redis(&redis.url()).await.unwrap();
    Server::start(orders::app(idem, orders::AppState::default())).await
}

#[tokio::test]
async fn a_record_written_here_is_replayed_by_the_aspect_and_one_written_by_the_aspect_here() {
    let redis = RedisServer::start();
    let server = charges_on(&redis).await;
    let http = client();
    let charge = |key: &'static str, body: &'static str| {
        http.post(server.url("/charges"))
            .header("Idempotency-Key", key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    // Rust writes; the aspect, receiving the same request in its own field order, finds a
    // record whose bodyHash is its own fingerprint: it replays instead of answering 422.
    let created = charge("rust-1", r#"{"currency":"EUR","amount":100,"via":"rust"}"#)
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let seen = spring::read_record(redis.port(), "idempotency:charges:rust-1");
    let (aspect_hash, _) = spring::fingerprints(&[r#"{"amount":100,"currency":"EUR"}"#])[0]
        .clone()
        .unwrap();
    assert_eq!(seen["statusCode"], 201);
    assert_eq!(seen["bodyHash"], aspect_hash.as_str());
    assert_eq!(
        serde_json::from_str::<Value>(seen["body"].as_str().unwrap()).unwrap(),
        created
    );

    // The aspect writes; Rust, receiving the request with the fields in another order and an
    // extra one, replays the aspect's response and does not run the handler.
    spring::write_record(
        redis.port(),
        "idempotency:charges:spring-1",
        r#"{"amount":7,"currency":"USD"}"#,
        60_000,
    );
    let replayed = charge(
        "spring-1",
        r#"{"currency":"USD","note":"retry","amount":7}"#,
    )
    .await
    .unwrap();
    assert_eq!(replayed.status(), 201);
    assert_eq!(replayed.headers()["idempotent-replayed"], "true");
    assert_eq!(replayed.headers()["content-type"], "application/json");
    assert_eq!(
        replayed.json::<Value>().await.unwrap(),
        json!({"id": "from-spring"})
    );
    // And a different charge under the aspect's key is a mismatch, as the aspect would say.
    let reused = charge("spring-1", r#"{"amount":8,"currency":"USD"}"#)
        .await
        .unwrap();
    assert_eq!(reused.status(), 422);
    let stats = get_json(&server.url("/stats")).await;
    assert_eq!(stats["charges"], 1, "only the Rust-written charge ran here");
}

#[tokio::test]
async fn a_record_in_flight_reads_as_a_409_to_the_aspect_never_a_null_status() {
    let redis = RedisServer::start();
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let fingerprint = typed(r#"{"amount":5,"currency":"EUR"}"#);
    let claim = Claim::new(
        Token::generate(),
        fingerprint.clone(),
        Duration::from_secs(60),
    );
    store
        .claim(&StoreKey::new("charges", None, "in-flight"), &claim)
        .await
        .unwrap();
    let seen = spring::read_record(redis.port(), "idempotency:charges:in-flight");
    assert_eq!(seen["statusCode"], 409, "{seen}");
    assert_eq!(seen["bodyHash"].as_str(), fingerprint.as_deref());
    let problem: Value = serde_json::from_str(seen["body"].as_str().unwrap()).unwrap();
    assert_eq!(problem["code"], "idempotency_request_in_progress");
}

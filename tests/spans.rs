//! The `tracing` span of each request through the layer: `idempotency` at DEBUG, with the
//! route's key prefix, the outcome and the status; never a body, and the key only in the
//! layer's DEBUG event; nothing of it at INFO.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

#[allow(dead_code)]
#[path = "../examples/orders.rs"]
mod orders;
mod support;

use idempotent_runtime::Idempotency;
use serde_json::{Value, json};
use support::app::{Server, client};
use support::logs::Sink;

/// Logs and span closes up to `level`, captured on this thread while the guard lives.
fn capture(level: tracing::Level) -> (Sink, tracing::subscriber::DefaultGuard) {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    (sink, tracing::subscriber::set_default(subscriber))
}

/// The orders example on the in-memory store.
async fn example() -> Server {
    Server::start(orders::app(
        Idempotency::memory(),
        orders::AppState::default(),
    ))
    .await
}

#[tokio::test]
async fn each_request_runs_in_an_idempotency_span_with_its_prefix_outcome_and_status() {
    let (sink, _guard) = capture(tracing::Level::DEBUG);
    let server = example().await;
    let http = client();
    let secret_key = "key-SECRET-77";
    for amount in [5, 5, 6] {
        http.post(server.url("/orders"))
            .header("Idempotency-Key", secret_key)
            .json(&json!({ "amount": amount, "note": "BODY-SECRET-88" }))
            .send()
            .await
            .unwrap();
    }
    let stats: Value = http
        .get(server.url("/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["orders"], 1);

    let logs = sink.text();
    let closed: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("idempotency{") && line.contains("close"))
        .collect();
    assert_eq!(closed.len(), 3, "one span per request:\n{logs}");
    for (line, (outcome, status)) in
        closed
            .iter()
            .zip([("executed", 201), ("replayed", 201), ("mismatch", 422)])
    {
        assert!(line.contains("key_prefix=\"orders\""), "{line}");
        assert!(line.contains(&format!("outcome=\"{outcome}\"")), "{line}");
        assert!(line.contains(&format!("status={status}")), "{line}");
    }
    // No body; the key only in the layer's own DEBUG event.
    assert!(!logs.contains("BODY-SECRET"), "a body leaked:\n{logs}");
    for line in logs.lines().filter(|line| line.contains(secret_key)) {
        assert!(
            line.contains("DEBUG") && line.contains("the request's key"),
            "the key outside the layer's DEBUG event: {line}"
        );
    }
}

#[tokio::test]
async fn at_info_the_layer_adds_nothing_to_the_logs() {
    let (sink, _guard) = capture(tracing::Level::INFO);
    let server = example().await;
    let response = client()
        .post(server.url("/orders"))
        .header("Idempotency-Key", "quiet-1")
        .json(&json!({ "amount": 5 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let logs = sink.text();
    assert!(!logs.contains("idempotency{"), "no span at INFO:\n{logs}");
    assert!(!logs.contains("quiet-1"), "no key at INFO:\n{logs}");
}

//! The `tracing` span of each request through the layer: `idempotency`, with the route's
//! key prefix, the outcome and the status; neither the key nor the body at INFO.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

#[allow(dead_code)]
#[path = "../examples/orders.rs"]
mod orders;
mod support;

use idempotent_runtime::Idempotency;
use serde_json::{Value, json};
use support::app::{Server, client};
use support::logs::Sink;

#[tokio::test]
async fn each_request_runs_in_an_idempotency_span_with_its_prefix_outcome_and_status() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Server::start(orders::app(
        Idempotency::memory(),
        orders::AppState::default(),
    ))
    .await;
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
    // At INFO, neither the key nor the body reaches the logs.
    assert!(
        !logs.contains(secret_key),
        "the key leaked at INFO:\n{logs}"
    );
    assert!(!logs.contains("BODY-SECRET"), "a body leaked:\n{logs}");
}

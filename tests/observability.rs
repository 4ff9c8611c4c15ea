//! What the layer tells operators: the metrics the orders example serves at `/metrics`
//! (through the `metrics` facade and the Prometheus recorder, which is global: this file
//! has one test, so that no other request is counted), and the `metrics()` snapshot built
//! on the same events. The `idempotency` span of each request: tests/spans.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

#[allow(dead_code)]
#[path = "../examples/orders.rs"]
mod orders;
mod support;

use std::sync::OnceLock;

use idempotent_runtime::Idempotency;
use idempotent_runtime::metrics::Outcome;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use support::app::{Server, client};

/// The process's recorder, installed once (a recorder is global).
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| orders::install_metrics().unwrap())
        .clone()
}

/// The value of the sample `name{labels}` in a Prometheus text exposition (0 if absent).
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            if metric != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[tokio::test]
async fn the_example_serves_the_outcomes_and_store_durations_at_metrics() {
    let handle = prometheus();
    let idem = Idempotency::memory();
    let state = orders::AppState::default().with_metrics(handle);
    let server = Server::start(orders::app(idem.clone(), state)).await;
    let http = client();
    let order = |key: Option<&'static str>, amount: i64| {
        let mut request = http
            .post(server.url("/orders"))
            .json(&json!({ "amount": amount }));
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send()
    };
    assert_eq!(order(Some("m-1"), 5).await.unwrap().status(), 201);
    assert_eq!(order(Some("m-1"), 5).await.unwrap().status(), 201);
    assert_eq!(order(Some("m-1"), 6).await.unwrap().status(), 422);
    assert_eq!(order(None, 5).await.unwrap().status(), 400);
    let invalid = http
        .post(server.url("/orders"))
        .header("Idempotency-Key", "")
        .json(&json!({"amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 400);
    let report = || {
        http.get(server.url("/reports/daily"))
            .header("Idempotency-Key", "r-1")
    };
    let first = report().send().await.unwrap();
    let etag = first.headers()["etag"].clone();
    let revalidated = report().header("If-None-Match", etag).send().await.unwrap();
    assert_eq!(revalidated.status(), 304);

    let metrics = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "the Prometheus text format"
    );
    let text = metrics.text().await.unwrap();
    let outcome = |prefix: &str, outcome: Outcome| {
        sample(
            &text,
            "idempotency_requests_total",
            &[("key_prefix", prefix), ("outcome", outcome.as_str())],
        )
    };
    assert_eq!(outcome("orders", Outcome::Executed), 1.0, "{text}");
    assert_eq!(outcome("orders", Outcome::Replayed), 1.0);
    assert_eq!(outcome("orders", Outcome::Mismatch), 1.0);
    assert_eq!(outcome("orders", Outcome::MissingKey), 1.0);
    assert_eq!(outcome("orders", Outcome::InvalidKey), 1.0);
    assert_eq!(outcome("reports", Outcome::Executed), 1.0);
    assert_eq!(outcome("reports", Outcome::NotModified), 1.0);
    assert!(
        text.contains("# TYPE idempotency_requests_total counter"),
        "{text}"
    );
    // Every claim and completion timed, by operation and store.
    let claims = sample(
        &text,
        "idempotency_store_duration_seconds_count",
        &[("operation", "claim"), ("store", "memory")],
    );
    // Two claims: the replay, the 422 and the 304 were answered from the records the memory
    // store holds, read without a claim.
    assert_eq!(claims, 2.0, "two requests claimed a key: {text}");
    let completes = sample(
        &text,
        "idempotency_store_duration_seconds_count",
        &[("operation", "complete"), ("store", "memory")],
    );
    assert_eq!(completes, 2.0);
    assert!(
        text.contains("idempotency_store_duration_seconds_bucket{"),
        "a histogram with buckets: {text}"
    );

    // The snapshot counts the same events.
    let snapshot = idem.metrics();
    assert_eq!(
        (
            snapshot.executions,
            snapshot.replays,
            snapshot.not_modified,
            snapshot.mismatches,
            snapshot.missing_keys,
            snapshot.invalid_keys,
        ),
        (2, 1, 1, 1, 1, 1)
    );
}

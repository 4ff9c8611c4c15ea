//! Hostile input over the whole stack: arbitrary key headers never crash a request, and
//! request and response bodies never reach the logs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use idempotent_runtime::store::memory::MemoryStore;
use idempotent_runtime::{Idempotency, idempotent};
use proptest::prelude::*;
use support::logs::Sink;
use tower::ServiceExt as _;

#[idempotent(key_prefix = "p", include_body = true)]
async fn echo(body: String) -> (StatusCode, String) {
    if body.contains("FAIL") {
        return (StatusCode::BAD_REQUEST, format!("rejected {body}"));
    }
    if body.contains("PANIC") {
        panic!("handler panics on purpose");
    }
    (StatusCode::CREATED, format!("created {body}"))
}

fn app(idem: Idempotency) -> Router {
    Router::new().route("/", post(echo)).layer(idem)
}

fn request(key: Option<&[u8]>, body: &str) -> Request<Body> {
    let mut builder = Request::post("/").header("content-type", "text/plain");
    if let Some(key) = key {
        builder = builder.header("idempotency-key", key);
    }
    builder
        .body(Body::from(body.to_owned()))
        .expect("a valid request")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn any_header_value_gets_201_or_400_never_a_crash(
        raw in prop::collection::vec(
            prop_oneof![
                Just(b'\t'),
                0x20u8..=0x7e,
                0x80u8..=0xff,
                prop::sample::select(b"\"\\:*{} ".to_vec()),
            ],
            0..300,
        ),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let status = runtime.block_on(async {
            app(Idempotency::memory())
                .oneshot(request(Some(&raw), "hello"))
                .await
                .map(|r| r.status())
        });
        let status = status.unwrap();
        prop_assert!(
            status == StatusCode::CREATED || status == StatusCode::BAD_REQUEST,
            "{status} for {:?}", String::from_utf8_lossy(&raw)
        );
        prop_assert_eq!(
            status == StatusCode::CREATED,
            idempotent_runtime::key::parse(&raw).is_ok()
        );
    }
}

#[tokio::test]
async fn logs_never_contain_bodies() {
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let store = MemoryStore::new();
    // A small response limit so the oversized path logs too.
    let app = app(Idempotency::new(store).max_response_size(64));
    let secret = "SECRET-BODY-4242";
    let cases: [(&[u8], String); 6] = [
        (b"k1", secret.to_owned()),                      // runs, stored
        (b"k1", secret.to_owned()),                      // replayed
        (b"k1", format!("{secret} other")),              // 422
        (b"k2", format!("FAIL {secret}")),               // non-2xx, released
        (b"k3", format!("PANIC {secret}")),              // panics, released
        (b"k4", format!("{secret}{}", "x".repeat(100))), // too large to store
    ];
    let mut statuses = Vec::new();
    for (key, body) in cases {
        let response = app
            .clone()
            .oneshot(request(Some(key), &body))
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 422, 400, 500, 201]);
    let logs = sink.text();
    assert!(logs.contains("panicked"), "the logs were captured: {logs}");
    assert!(logs.contains("too large"), "the logs were captured: {logs}");
    assert!(
        !logs.contains(secret),
        "a body leaked into the logs:\n{logs}"
    );
}

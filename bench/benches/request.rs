//! One whole request through the router, in process (no sockets): the bare handler, a fresh
//! key and a replay under `#[idempotent]` on the in-memory store, and the same under the
//! `axum-idempotent` crate. The load benchmark (`scripts/bench.sh`) measures the same
//! paths over HTTP; these figures isolate the middleware from the network stack and are
//! what a profiler should look at.
//!
//! ```text
//! cargo bench -p idempotent-bench --bench request
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

/// The load benchmark's routes and handler.
fn app() -> Router {
    idempotent_bench::app(None)
}

/// The request every path gets, as the load benchmark sends it.
fn request(path: &str, key: &str, session: u64) -> Request {
    Request::post(path)
        .header("host", "127.0.0.1:3100")
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .header("cookie", format!("session=s{session:020}A"))
        .body(Body::from(r#"{"amount":100}"#))
        .unwrap()
}

async fn send(app: &Router, request: Request) -> (StatusCode, bool) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed")
        || response.headers().contains_key("idempotency-replayed");
    let body = response.into_body().collect().await.unwrap();
    assert!(!body.to_bytes().is_empty());
    (status, replayed)
}

fn requests(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let app = app();
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("request");

    for (name, path) in [("bare", "/bare"), ("memory", "/memory"), ("peer", "/peer")] {
        if path != "/bare" {
            // The replayed key, and a check that the path does replay.
            rt.block_on(async {
                assert_eq!(
                    send(&app, request(path, "replay-0", 0)).await,
                    (StatusCode::CREATED, false)
                );
                assert_eq!(
                    send(&app, request(path, "replay-0", 0)).await,
                    (StatusCode::CREATED, true)
                );
            });
        }
        let fresh = if path == "/bare" {
            name.to_owned()
        } else {
            format!("{name}_fresh_key")
        };
        group.bench_function(fresh, |b| {
            b.to_async(&rt).iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let request = request(path, &format!("key-{n}"), n % 1024);
                let app = &app;
                async move { send(app, request).await }
            })
        });
        if path != "/bare" {
            group.bench_function(format!("{name}_replay"), |b| {
                b.to_async(&rt).iter(|| {
                    let request = request(path, "replay-0", 0);
                    let app = &app;
                    async move { send(app, request).await }
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, requests);
criterion_main!(benches);

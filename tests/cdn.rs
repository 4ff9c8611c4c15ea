//! The keyed-read flow with a real HTTP cache playing the CDN: Varnish in front of the
//! example service. A miss runs the handler; a hit does not reach the origin; once the cached
//! copy is stale, Varnish revalidates it with `If-None-Match` and the origin answers 304 from
//! the idempotency record, without running the handler.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

#[allow(dead_code)]
#[path = "../examples/orders.rs"]
mod orders;
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::middleware::{self, Next};
use idempotent_runtime::Idempotency;
use serde_json::Value;
use support::app::{Server, client, eventually, get_json};
use support::varnish::Varnish;

/// What reached the origin: the request's `If-None-Match`, and the status it answered.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    path: String,
    if_none_match: Option<String>,
    status: u16,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cdn_caches_per_key_and_revalidates_with_304_without_running_the_handler() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = {
        let seen = seen.clone();
        move |request: Request, next: Next| {
            let seen = seen.clone();
            async move {
                let path = request.uri().path().to_owned();
                let if_none_match = request
                    .headers()
                    .get("if-none-match")
                    .map(|v| v.to_str().unwrap().to_owned());
                let response = next.run(request).await;
                seen.lock().unwrap().push(Seen {
                    path,
                    if_none_match,
                    status: response.status().as_u16(),
                });
                response
            }
        }
    };
    let app = orders::app(Idempotency::memory(), orders::AppState::default())
        .layer(middleware::from_fn(record));
    let origin = Server::start(app).await;
    let varnish = Varnish::start(origin.addr, 1);
    let http = client();
    let get = |key: &'static str| {
        http.get(varnish.url("/reports/daily"))
            .header("Idempotency-Key", key)
            .send()
    };
    let reports_run = || async {
        get_json(&origin.url("/stats")).await["reports"]
            .as_u64()
            .unwrap()
    };
    let reached = |path: &str| {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect::<Vec<_>>()
    };

    // A miss: through to the origin, which runs the handler.
    let miss = get("cdn-1").await.unwrap();
    assert_eq!(miss.status(), 200);
    let etag = miss.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(miss.headers()["cache-control"], "max-age=3600");
    let body: Value = miss.json().await.unwrap();
    assert_eq!(reached("/reports/daily").len(), 1);
    assert_eq!(reports_run().await, 1);

    // A hit: the origin is not reached.
    let hit = get("cdn-1").await.unwrap();
    assert_eq!(hit.status(), 200);
    assert_eq!(hit.json::<Value>().await.unwrap(), body);
    assert_eq!(
        reached("/reports/daily").len(),
        1,
        "a hit does not reach the origin"
    );

    // Another key is another cache entry, and another run.
    let other = get("cdn-2").await.unwrap();
    assert_ne!(other.json::<Value>().await.unwrap(), body);
    assert_eq!(reports_run().await, 2);

    // Once the copy is stale (its TTL is 1 s), Varnish revalidates it: the origin gets the
    // tag in If-None-Match and answers 304 from the record.
    eventually(
        "Varnish revalidates the stale copy with If-None-Match",
        Duration::from_secs(20),
        || async {
            let again = get("cdn-1").await.unwrap();
            assert_eq!(again.status(), 200, "the client still gets the full answer");
            assert_eq!(again.json::<Value>().await.unwrap(), body);
            reached("/reports/daily")
                .iter()
                .any(|s| s.if_none_match.as_deref() == Some(etag.as_str()))
        },
    )
    .await;
    let revalidations: Vec<Seen> = reached("/reports/daily")
        .into_iter()
        .filter(|s| s.if_none_match.is_some())
        .collect();
    assert!(
        revalidations.iter().all(|s| s.status == 304),
        "{revalidations:?}"
    );
    assert_eq!(
        reports_run().await,
        2,
        "a revalidation does not run the handler"
    );
}

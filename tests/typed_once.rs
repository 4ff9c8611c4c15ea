//! With `fingerprint = "typed"`, the attribute deserialises the body once: the value read for
//! the fingerprint is the one the handler's `Json<T>` receives.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::fingerprint::{Fingerprint, TypedFingerprint};
use idempotent_runtime::{Idempotency, Policy, idempotent};
use serde::{Deserialize, Deserializer, Serialize};
use support::app::{Server, client};

/// How many times a `Counted` was deserialised (this file holds one test, so nothing else
/// counts at the same time).
static DESERIALISED: AtomicUsize = AtomicUsize::new(0);

#[derive(Serialize)]
struct Counted {
    amount: i64,
}

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Plain {
            amount: i64,
        }
        DESERIALISED.fetch_add(1, Ordering::SeqCst);
        Plain::deserialize(deserializer).map(|plain| Counted {
            amount: plain.amount,
        })
    }
}

#[idempotent(key_prefix = "once", include_body = true, fingerprint = "typed")]
async fn by_macro(Json(counted): Json<Counted>) -> String {
    counted.amount.to_string()
}

async fn plain(Json(counted): Json<Counted>) -> String {
    counted.amount.to_string()
}

#[tokio::test]
async fn the_attribute_deserialises_the_body_once_and_the_layer_twice() {
    let idem = Idempotency::memory();
    let policy = Policy::new()
        .key_prefix("twice")
        .include_body(true)
        .fingerprint(Fingerprint::Typed(TypedFingerprint::of::<Counted>()));
    let app = Router::new()
        .route("/macro", post(by_macro))
        .route("/layer", post(plain).layer(idem.layer(policy)))
        .layer(idem.clone());
    let server = Server::start(app).await;
    let http = client();
    let send = |path: &str, key: &str| {
        http.post(server.url(path))
            .header("Idempotency-Key", key)
            .header("content-type", "application/json")
            .body(r#"{"amount":42}"#)
            .send()
    };

    let answer = send("/macro", "k-1").await.unwrap();
    assert_eq!(answer.text().await.unwrap(), "42");
    assert_eq!(DESERIALISED.load(Ordering::SeqCst), 1, "a first run: once");
    let replay = send("/macro", "k-1").await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(
        DESERIALISED.load(Ordering::SeqCst),
        2,
        "a replay: once, for the fingerprint"
    );

    // Without the attribute, the layer reads the body for the fingerprint and the handler's
    // extractor reads it again.
    DESERIALISED.store(0, Ordering::SeqCst);
    assert_eq!(
        send("/layer", "k-2").await.unwrap().text().await.unwrap(),
        "42"
    );
    assert_eq!(DESERIALISED.load(Ordering::SeqCst), 2);
}

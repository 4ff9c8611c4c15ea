//! The orders example, driven over HTTP exactly as its clients drive it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

#[allow(dead_code)]
#[path = "../examples/orders.rs"]
mod orders;
mod support;

use idempotent_runtime::Idempotency;
use serde_json::{Value, json};
use support::app::{Server, client, get_json};

async fn start() -> Server {
    Server::start(orders::app(
        Idempotency::memory(),
        orders::AppState::default(),
    ))
    .await
}

async fn stats(server: &Server) -> Value {
    get_json(&server.url("/stats")).await
}

#[tokio::test]
async fn orders_are_created_once_and_replayed() {
    let server = start().await;
    let http = client();
    let post = |key: &'static str, body: Value| {
        http.post(server.url("/orders"))
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = post("o-1", json!({"amount": 42})).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first, json!({"id": 1, "amount": 42}));

    let replay = post("o-1", json!({"amount": 42})).await.unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);

    assert_eq!(
        post("o-1", json!({"amount": 43})).await.unwrap().status(),
        422
    );
    // amount <= 0 is a 400 that is not cached: the retry runs again.
    assert_eq!(
        post("o-2", json!({"amount": 0})).await.unwrap().status(),
        400
    );
    assert_eq!(
        post("o-2", json!({"amount": 0})).await.unwrap().status(),
        400
    );
    // Rejected before the body runs: missing key, and a body the extractor refuses.
    let no_key = http
        .post(server.url("/orders"))
        .json(&json!({"amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status(), 400);
    let bad_body = post("o-3", json!({"amount": "many"})).await.unwrap();
    assert!(bad_body.status().is_client_error());

    assert_eq!(stats(&server).await["orders"], 3);
}

#[tokio::test]
async fn payments_and_notifications() {
    let server = start().await;
    let http = client();
    let pay = || {
        http.post(server.url("/payments"))
            .header("Idempotency-Key", "p-1")
            .send()
    };
    let first = pay().await.unwrap();
    assert_eq!(first.status(), 201);
    let id = first.json::<Value>().await.unwrap()["id"].clone();
    let again = pay().await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["id"], id);
    assert_eq!(
        http.post(server.url("/payments"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );

    // Notifications: the key is optional.
    for _ in 0..2 {
        let sent = http
            .post(server.url("/notifications"))
            .send()
            .await
            .unwrap();
        assert_eq!(sent.status(), 200);
    }
    let keyed = || {
        http.post(server.url("/notifications"))
            .header("Idempotency-Key", "n-1")
            .send()
    };
    assert_eq!(keyed().await.unwrap().status(), 200);
    assert_eq!(
        keyed().await.unwrap().headers()["idempotent-replayed"],
        "true"
    );

    // Transfers need PostgreSQL (`DATABASE_URL`): without it there is no such route, and
    // `/stats` has no `transfer_rows` (tests/postgres_crash.rs runs them).
    let transfer = http
        .post(server.url("/transfers"))
        .header("Idempotency-Key", "t-1")
        .json(&json!({"amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(transfer.status(), 404);

    assert_eq!(
        stats(&server).await,
        json!({
            "orders": 0, "payments": 1, "notifications": 3, "refunds": 0,
            "transfers": 0, "reports": 0, "charges": 0,
        })
    );
}

#[tokio::test]
async fn refunds_run_the_same_protocol_without_the_macro() {
    let server = start().await;
    let http = client();
    let post = |key: Option<&'static str>, body: Value| {
        let mut request = http.post(server.url("/refunds")).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send()
    };
    let first = post(Some("r-1"), json!({"amount": 7})).await.unwrap();
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["amount"], 7);
    assert!(first["id"].is_u64());

    let replay = post(Some("r-1"), json!({"amount": 7})).await.unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);

    let reused = post(Some("r-1"), json!({"amount": 8})).await.unwrap();
    assert_eq!(reused.status(), 422);
    assert_eq!(reused.headers()["content-type"], "application/problem+json");
    let missing = post(None, json!({"amount": 7})).await.unwrap();
    assert_eq!(missing.status(), 400);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["code"],
        "idempotency_key_missing"
    );
    // amount <= 0 is a 400 that is not stored: the retry runs again.
    for _ in 0..2 {
        let refused = post(Some("r-2"), json!({"amount": 0})).await.unwrap();
        assert_eq!(refused.status(), 400);
    }
    assert_eq!(stats(&server).await["refunds"], 3);
}

#[tokio::test]
async fn reports_are_cacheable_keyed_reads() {
    let server = start().await;
    let http = client();
    let get = |key: &'static str, if_none_match: Option<String>| {
        let mut request = http
            .get(server.url("/reports/daily"))
            .header("Idempotency-Key", key);
        if let Some(tag) = if_none_match {
            request = request.header("If-None-Match", tag);
        }
        request.send()
    };
    let first = get("rep-1", None).await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "max-age=3600");
    assert_eq!(first.headers()["vary"], "idempotency-key");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["report"], "daily");
    assert!(body["id"].is_u64());
    let not_modified = get("rep-1", Some(etag)).await.unwrap();
    assert_eq!(not_modified.status(), 304);
    assert_eq!(not_modified.headers()["idempotent-replayed"], "true");
    let missing = http.get(server.url("/reports/daily")).send().await.unwrap();
    assert_eq!(missing.status(), 400);
    assert_eq!(stats(&server).await["reports"], 1);
}

#[tokio::test]
async fn charges_are_fingerprinted_as_their_type() {
    let server = start().await;
    let http = client();
    let post = |key: &'static str, body: &'static str| {
        http.post(server.url("/charges"))
            .header("Idempotency-Key", key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let first = post("c-1", r#"{"amount":100,"currency":"EUR"}"#)
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(
        (first["amount"].clone(), first["currency"].clone()),
        (json!(100), json!("EUR"))
    );
    // Another order, and a field the type does not declare: the same charge.
    let again = post("c-1", r#"{"note":"retry","currency":"EUR","amount":100}"#)
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    let other = post("c-1", r#"{"amount":100}"#).await.unwrap();
    assert_eq!(
        other.status(),
        422,
        "a missing currency is null: another charge"
    );
    let none = post("c-2", r#"{"amount":5}"#).await.unwrap();
    assert_eq!(none.json::<Value>().await.unwrap()["currency"], Value::Null);
    assert_eq!(stats(&server).await["charges"], 2);
}

#[tokio::test]
async fn the_store_is_chosen_by_the_environment_and_an_unreachable_one_is_a_clear_error() {
    let with = |set: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            set.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let chosen = orders::shared::store_from(with(&[])).await.unwrap();
    assert_eq!(chosen.name, "memory");
    // PostgreSQL comes first: a run that names it never gets another store. Its URL may
    // carry a password, so the error names the variable only.
    let Err(error) = orders::shared::store_from(with(&[
        ("DATABASE_URL", "postgres://app:secret@127.0.0.1:1/x"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
    ]))
    .await
    else {
        panic!("an unreachable DATABASE_URL is an error");
    };
    assert!(error.contains("DATABASE_URL"), "{error}");
    assert!(!error.contains("secret"), "{error}");
    // A store named but unreachable is an error that names its variable (exit code 1).
    let Err(error) =
        orders::shared::store_from(with(&[("REDIS_URL", "redis://127.0.0.1:1")])).await
    else {
        panic!("an unreachable Redis is an error");
    };
    assert!(error.contains("REDIS_URL=redis://127.0.0.1:1"), "{error}");
}

//! The DynamoDB store against moto's DynamoDB (a real server process, `moto_server`):
//! the items it writes, fences, expiry checked in conditions and on read, atomicity across
//! clients, requests counted per operation and per HTTP request, the item size limit,
//! undecodable items, the table helpers, and outages (kill, SIGSTOP) with recovery.
//!
//! The tests share one moto server, a table each; the outage tests start their own.
//! Timings are printed; run with `--nocapture` to see them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use axum::body::Bytes;
use axum::http::{self, HeaderValue, StatusCode};
use idempotent_runtime::Idempotency;
use idempotent_runtime::store::dynamodb::{DynamoOptions, DynamoStore};
use idempotent_runtime::store::{
    ClaimOutcome, Fence, IdempotencyStore, Record, StoreErrorKind, StoredResponse, Token,
};
use serde_json::json;
use support::app::{Server, client, problem_code};
use support::dynamodb::{
    self as moto, MotoServer, PATIENT, store_in_fresh_table, store_in_fresh_table_with,
};
use support::orders::{AppState, Path};
use support::store_contract::{
    HOUR, MINUTE, claim, hashed_claim, is_claimed, processing_token, race, refuses, response, sk,
};

/// What a loaded machine may add to a bound under test.
const SLACK: Duration = Duration::from_secs(2);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

type Item = HashMap<String, AttributeValue>;

/// The item under `key`, read directly.
async fn raw_get(store: &DynamoStore, key: &str) -> Option<Item> {
    moto::shared()
        .client()
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

/// Write `item` directly, unconditionally.
async fn raw_put(store: &DynamoStore, item: Item) {
    moto::shared()
        .client()
        .put_item()
        .table_name(store.table())
        .set_item(Some(item))
        .send()
        .await
        .unwrap();
}

fn number(item: &Item, name: &str) -> u64 {
    item[name].as_n().unwrap().parse().unwrap()
}

fn text<'a>(item: &'a Item, name: &str) -> &'a str {
    item[name].as_s().unwrap()
}

#[tokio::test]
async fn claim_complete_replay_and_the_items_written() {
    let store = store_in_fresh_table(moto::shared().client(), "basic").await;
    let key = "idempotency:orders:first";
    let fingerprint = "ab".repeat(32);

    let first = hashed_claim(&fingerprint);
    let before = now_ms();
    assert!(is_claimed(&store.claim(&sk(key), &first).await.unwrap()));
    let item = raw_get(&store, key).await.unwrap();
    assert_eq!(text(&item, "state"), "PROCESSING");
    assert_eq!(text(&item, "token"), first.token.as_str());
    assert_eq!(text(&item, "fingerprint"), fingerprint);
    let expires = number(&item, "expires_at_ms");
    assert!(
        (before + 60_000..=now_ms() + 60_000).contains(&expires),
        "PROCESSING expires after lock_ttl: {expires}"
    );
    assert_eq!(number(&item, "expires_at"), expires.div_ceil(1000));
    assert!(!item.contains_key("status") && !item.contains_key("body"));

    let second = hashed_claim(&fingerprint);
    match store.claim(&sk(key), &second).await.unwrap() {
        ClaimOutcome::Existing(Record::Processing {
            token,
            fingerprint: fp,
        }) => {
            assert_eq!(token, first.token);
            assert_eq!(fp.as_deref(), Some(fingerprint.as_str()));
        }
        other => panic!("expected the first claim's PROCESSING record, got {other:?}"),
    }

    let done = StoredResponse::new(
        StatusCode::CREATED,
        Some(vec![
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                http::header::LOCATION,
                HeaderValue::from_static("/orders/42"),
            ),
        ]),
        Bytes::from_static(br#"{"id":42}"#),
        Some(fingerprint.clone()),
    )
    // Stored to the millisecond, as the record keeps it.
    .stored(
        SystemTime::UNIX_EPOCH + Duration::from_millis(now_ms()),
        first.token.clone(),
    );
    assert_eq!(
        store
            .complete(&sk(key), &first.token, done.clone(), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
    let item = raw_get(&store, key).await.unwrap();
    assert_eq!(text(&item, "state"), "COMPLETED");
    assert_eq!(number(&item, "status"), 201);
    assert_eq!(item["body"].as_b().unwrap().as_ref(), br#"{"id":42}"#);
    let headers = item["headers"].as_l().unwrap();
    assert_eq!(headers.len(), 2);
    assert_eq!(headers[1].as_l().unwrap()[0].as_s().unwrap(), "location");
    assert_eq!(
        headers[1].as_l().unwrap()[1].as_b().unwrap().as_ref(),
        b"/orders/42"
    );
    let expires = number(&item, "expires_at_ms");
    assert!(
        expires > now_ms() + HOUR.as_millis() as u64 - 60_000,
        "a completed record expires after ttl: {expires}"
    );
    assert_eq!(number(&item, "expires_at"), expires.div_ceil(1000));

    match store
        .claim(&sk(key), &hashed_claim(&fingerprint))
        .await
        .unwrap()
    {
        ClaimOutcome::Existing(Record::Completed(stored)) => assert_eq!(*stored, done),
        other => panic!("expected the completed record, got {other:?}"),
    }
    assert_eq!(
        store.get(&sk(key)).await.unwrap(),
        Some(Record::Completed(Arc::new(done)))
    );
}

#[tokio::test]
async fn complete_release_and_renew_are_fenced_by_the_token() {
    let store = store_in_fresh_table(moto::shared().client(), "fence").await;
    let key = "idempotency:orders:fenced";
    let owner = claim(MINUTE);
    let stranger = Token::generate();
    assert!(is_claimed(&store.claim(&sk(key), &owner).await.unwrap()));

    refuses(&store, key, &stranger).await;
    assert_eq!(
        store.renew(&sk(key), &stranger, HOUR).await.unwrap(),
        Fence::Refused
    );
    let untouched = raw_get(&store, key).await.unwrap();
    assert_eq!(text(&untouched, "token"), owner.token.as_str());

    // The owner renews: the lease now runs for the new lock_ttl from now.
    let before = now_ms();
    assert_eq!(
        store.renew(&sk(key), &owner.token, HOUR).await.unwrap(),
        Fence::Applied
    );
    let renewed = raw_get(&store, key).await.unwrap();
    let expires = number(&renewed, "expires_at_ms");
    assert!(expires >= before + HOUR.as_millis() as u64, "{expires}");
    assert_eq!(number(&renewed, "expires_at"), expires.div_ceil(1000));
    assert_eq!(text(&renewed, "state"), "PROCESSING");

    assert_eq!(
        store
            .complete(&sk(key), &owner.token, response("{}"), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
    // Completed: nobody renews or releases it, its own claim included.
    assert_eq!(
        store.renew(&sk(key), &owner.token, HOUR).await.unwrap(),
        Fence::Refused
    );
    assert_eq!(
        store.release(&sk(key), &owner.token).await.unwrap(),
        Fence::Refused
    );
    assert_eq!(
        text(&raw_get(&store, key).await.unwrap(), "state"),
        "COMPLETED"
    );

    // Released: the key is free, and a release of nothing is refused.
    let other = "idempotency:orders:released";
    let released = claim(MINUTE);
    assert!(is_claimed(
        &store.claim(&sk(other), &released).await.unwrap()
    ));
    assert_eq!(
        store.release(&sk(other), &released.token).await.unwrap(),
        Fence::Applied
    );
    assert!(raw_get(&store, other).await.is_none());
    assert_eq!(
        store.release(&sk(other), &released.token).await.unwrap(),
        Fence::Refused
    );
    assert_eq!(
        store
            .renew(&sk(other), &released.token, HOUR)
            .await
            .unwrap(),
        Fence::Refused,
        "renewing a key that is gone does not create it"
    );
    assert!(raw_get(&store, other).await.is_none());
}

#[tokio::test]
async fn an_expired_lock_is_taken_over_and_fences_its_old_owner() {
    let store = store_in_fresh_table(moto::shared().client(), "expired-lock").await;
    let key = "idempotency:orders:slow";
    let old = claim(Duration::from_millis(300));
    assert!(is_claimed(&store.claim(&sk(key), &old).await.unwrap()));
    // The passing of lock_ttl is what is tested; the item stays (nothing deletes it).
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(raw_get(&store, key).await.is_some(), "still in the table");
    assert_eq!(store.get(&sk(key)).await.unwrap(), None, "but expired");
    assert_eq!(
        store.renew(&sk(key), &old.token, MINUTE).await.unwrap(),
        Fence::Refused,
        "an expired lease is not renewed"
    );

    let new = claim(MINUTE);
    assert!(is_claimed(&store.claim(&sk(key), &new).await.unwrap()));
    assert_eq!(
        store
            .complete(&sk(key), &old.token, response(r#"{"old":1}"#), HOUR)
            .await
            .unwrap(),
        Fence::Refused
    );
    assert_eq!(
        store.release(&sk(key), &old.token).await.unwrap(),
        Fence::Refused
    );
    assert_eq!(
        processing_token(&store.claim(&sk(key), &claim(MINUTE)).await.unwrap()),
        Some(&new.token)
    );
}

#[tokio::test]
async fn a_late_finisher_stores_if_nobody_claimed_since() {
    let store = store_in_fresh_table(moto::shared().client(), "late").await;
    let key = "idempotency:orders:late";
    let late = claim(Duration::from_millis(300));
    assert!(is_claimed(&store.claim(&sk(key), &late).await.unwrap()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        store
            .complete(&sk(key), &late.token, response(r#"{"late":1}"#), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
    // And when the key is absent altogether (released, or deleted by TTL).
    let gone = "idempotency:orders:gone";
    assert_eq!(
        store
            .complete(&sk(gone), &Token::generate(), response("{}"), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
    assert!(matches!(
        store.get(&sk(gone)).await.unwrap(),
        Some(Record::Completed(_))
    ));
}

#[tokio::test]
async fn an_expired_item_that_is_still_there_counts_as_absent() {
    let (client, requests) = moto::shared().counting_client();
    let store = store_in_fresh_table(client, "expired-item").await;
    let past = now_ms() - 1_000;
    let expired = |key: &str, state: &str| {
        Item::from([
            ("pk".to_owned(), AttributeValue::S(key.to_owned())),
            ("state".to_owned(), AttributeValue::S(state.to_owned())),
            (
                "token".to_owned(),
                AttributeValue::S(Token::generate().as_str().to_owned()),
            ),
            ("status".to_owned(), AttributeValue::N("201".to_owned())),
            (
                "expires_at_ms".to_owned(),
                AttributeValue::N(past.to_string()),
            ),
            (
                "expires_at".to_owned(),
                AttributeValue::N((past / 1000).to_string()),
            ),
        ])
    };
    for (key, state) in [
        ("idempotency:orders:done-long-ago", "COMPLETED"),
        ("idempotency:orders:owner-died", "PROCESSING"),
    ] {
        // As DynamoDB's TTL leaves it: expired, not deleted yet.
        raw_put(&store, expired(key, state)).await;
        assert_eq!(store.get(&sk(key)).await.unwrap(), None, "{state}");
        let fresh = claim(MINUTE);
        requests.clear();
        assert!(
            is_claimed(&store.claim(&sk(key), &fresh).await.unwrap()),
            "an expired {state} item is taken over"
        );
        assert_eq!(requests.take(), ["PutItem"], "in one request");
        let item = raw_get(&store, key).await.unwrap();
        assert_eq!(text(&item, "token"), fresh.token.as_str());
        assert_eq!(text(&item, "state"), "PROCESSING");
    }
    // Complete and release see it the same way: a stranger may complete over an expired
    // record (the key is free), not release it.
    let key = "idempotency:orders:expired-again";
    raw_put(&store, expired(key, "PROCESSING")).await;
    assert_eq!(
        store.release(&sk(key), &Token::generate()).await.unwrap(),
        Fence::Refused
    );
    assert_eq!(
        store
            .complete(&sk(key), &Token::generate(), response("{}"), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_32_concurrent_claims_wins() {
    let server = moto::shared();
    let table = moto::table_name("race");
    // moto answers one request at a time: 32 at once may take longer than the default
    // timeout, which is not what is tested here.
    let options = DynamoOptions::default().timeout(PATIENT);
    let one = DynamoStore::with_options(server.client(), &table, options.clone()).unwrap();
    assert!(one.create_table().await.unwrap());
    let other = DynamoStore::with_options(server.client(), &table, options).unwrap();
    let one: Arc<dyn IdempotencyStore> = Arc::new(one);
    let other: Arc<dyn IdempotencyStore> = Arc::new(other);
    let start = Instant::now();
    for round in 0..5 {
        race(
            std::slice::from_ref(&one),
            &format!("idempotency:race:one-{round}"),
        )
        .await;
        race(
            &[one.clone(), other.clone()],
            &format!("idempotency:race:two-{round}"),
        )
        .await;
    }
    println!("10 races of 32 claims: {:?}", start.elapsed());
}

#[tokio::test]
async fn each_operation_is_one_request() {
    let (client, requests) = moto::shared().counting_client();
    let store = store_in_fresh_table(client, "counted").await;
    let key = "idempotency:orders:counted";
    let first = hashed_claim(&"ab".repeat(32));

    requests.clear();
    assert!(is_claimed(&store.claim(&sk(key), &first).await.unwrap()));
    assert_eq!(requests.take(), ["PutItem"], "claim of a fresh key");

    let conflict = store
        .claim(&sk(key), &hashed_claim(&"ab".repeat(32)))
        .await
        .unwrap();
    assert_eq!(processing_token(&conflict), Some(&first.token));
    assert_eq!(
        requests.take(),
        ["PutItem"],
        "conflict: the record comes back with the failed condition"
    );

    let mismatch = store
        .claim(&sk(key), &hashed_claim(&"cd".repeat(32)))
        .await
        .unwrap();
    assert!(processing_token(&mismatch).is_some());
    assert_eq!(
        requests.take(),
        ["PutItem"],
        "mismatch (decided by the caller on the record returned)"
    );

    assert_eq!(
        store.renew(&sk(key), &first.token, MINUTE).await.unwrap(),
        Fence::Applied
    );
    assert_eq!(requests.take(), ["UpdateItem"], "renew");

    assert_eq!(
        store
            .complete(&sk(key), &first.token, response("{}"), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
    assert_eq!(requests.take(), ["PutItem"], "complete");

    let replay = store.claim(&sk(key), &claim(MINUTE)).await.unwrap();
    assert!(matches!(
        replay,
        ClaimOutcome::Existing(Record::Completed(_))
    ));
    assert_eq!(
        requests.take(),
        ["PutItem"],
        "claim of a completed key (replay)"
    );

    let other = claim(MINUTE);
    store
        .claim(&sk("idempotency:orders:released"), &other)
        .await
        .unwrap();
    requests.clear();
    assert_eq!(
        store
            .release(&sk("idempotency:orders:released"), &other.token)
            .await
            .unwrap(),
        Fence::Applied
    );
    assert_eq!(requests.take(), ["DeleteItem"], "release");
    println!(
        "claim, conflict, mismatch, replay: 1 request each (PutItem); complete 1 (PutItem), \
         release 1 (DeleteItem), renew 1 (UpdateItem)"
    );
}

/// The orders app over `store` on the macro path, and what its store sent per request.
async fn app_over(store: DynamoStore) -> (Server, AppState, Idempotency) {
    let idem = Idempotency::new(store).store_timeout(PATIENT);
    let state = AppState::default();
    let app = Path::Macro.app(idem.clone()).with_state(state.clone());
    (Server::start(app).await, state, idem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_cost_what_the_contract_says() {
    let (client, requests) = moto::shared().counting_client();
    let store = store_in_fresh_table(client, "http-counted").await;
    let (server, state, _idem) = app_over(store).await;
    let http = self::client();
    let send = |key: Option<&'static str>, body: serde_json::Value| {
        let mut request = http.post(server.url("/orders")).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send()
    };

    requests.clear();
    let first = send(Some("h-1"), json!({"note": "a"})).await.unwrap();
    assert_eq!(first.status(), 201);
    assert_eq!(
        requests.take(),
        ["PutItem", "PutItem"],
        "first run: claim, complete"
    );

    let replay = send(Some("h-1"), json!({"note": "a"})).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(requests.take(), ["PutItem"], "replay");

    let (status, code, _) =
        problem_code(send(Some("h-1"), json!({"note": "b"})).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (422, "idempotency_key_reused"));
    assert_eq!(requests.take(), ["PutItem"], "mismatch");

    let (status, code, _) = problem_code(send(None, json!({})).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "idempotency_key_missing"));
    assert!(requests.take().is_empty(), "missing key: no request");

    let held = tokio::spawn(send(Some("h-2"), json!({"hold": true})));
    state.probe.wait_started().await;
    requests.clear();
    let (status, code, _) =
        problem_code(send(Some("h-2"), json!({"hold": true})).await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (409, "idempotency_request_in_progress")
    );
    assert_eq!(requests.take(), ["PutItem"], "conflict");
    state.probe.open(1);
    assert_eq!(held.await.unwrap().unwrap().status(), 201);
    assert_eq!(
        requests.take(),
        ["PutItem"],
        "the held request's completion"
    );

    let failed = send(Some("h-3"), json!({"status": 400})).await.unwrap();
    assert_eq!(failed.status(), 400);
    assert_eq!(
        requests.take(),
        ["PutItem", "DeleteItem"],
        "a non-2xx first run: claim, release"
    );
    println!("HTTP: first run 2 requests, replay 1, mismatch 1, conflict 1, missing key 0");
}

#[tokio::test]
async fn a_record_over_the_item_limit_is_too_large_and_never_an_outage() {
    let (client, requests) = moto::shared().counting_client();
    let store = store_in_fresh_table(client, "too-large").await;
    let key = "idempotency:orders:huge";
    let owner = claim(MINUTE);
    assert!(is_claimed(&store.claim(&sk(key), &owner).await.unwrap()));

    // Over 400 KB: refused before sending.
    let huge = StoredResponse::new(
        StatusCode::OK,
        None,
        Bytes::from(vec![b'x'; 500 * 1024]),
        None,
    );
    requests.clear();
    let error = store
        .complete(&sk(key), &owner.token, huge, HOUR)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::TooLarge, "{error}");
    assert!(requests.take().is_empty(), "not sent: {error}");
    let item = raw_get(&store, key).await.unwrap();
    assert_eq!(text(&item, "state"), "PROCESSING", "nothing stored");

    // Under DynamoDB's 409,600 bytes but over moto's own limit (405,000): the service's
    // size refusal is the same error.
    let refused = StoredResponse::new(StatusCode::OK, None, Bytes::from(vec![b'x'; 406_000]), None);
    let error = store
        .complete(&sk(key), &owner.token, refused, HOUR)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), StoreErrorKind::TooLarge, "{error}");
    assert_eq!(requests.take(), ["PutItem"], "sent and refused: {error}");
    assert_eq!(
        text(&raw_get(&store, key).await.unwrap(), "state"),
        "PROCESSING"
    );

    // Just under every limit: stored.
    let fits = StoredResponse::new(StatusCode::OK, None, Bytes::from(vec![b'x'; 400_000]), None);
    assert_eq!(
        store
            .complete(&sk(key), &owner.token, fits, HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_item_limit_is_returned_unstored_and_the_key_released() {
    let store = store_in_fresh_table(moto::shared().client(), "too-large-http").await;
    let reader = store.clone();
    let (server, state, idem) = app_over(store).await;
    let http = client();
    let send = || {
        http.post(server.url("/orders"))
            .header("Idempotency-Key", "big")
            .json(&json!({"pad": 450_000}))
            .send()
    };
    for run in 1..=2 {
        let response = send().await.unwrap();
        assert_eq!(response.status(), 201);
        assert!(response.headers().get("idempotent-replayed").is_none());
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["pad"].as_str().map(str::len), Some(450_000));
        assert_eq!(
            state.probe.runs(),
            run,
            "the key was released: the retry runs"
        );
        assert_eq!(
            reader.get(&sk("idempotency:orders:big")).await.unwrap(),
            None
        );
    }
    let metrics = idem.metrics();
    assert_eq!(metrics.oversized_responses, 2, "{metrics:?}");
    assert_eq!(metrics.store_errors, 0, "not an outage: {metrics:?}");
}

#[tokio::test]
async fn undecodable_items_are_store_errors_and_stay_untouched() {
    let store = store_in_fresh_table(moto::shared().client(), "undecodable").await;
    let far = (now_ms() + 3_600_000).to_string();
    let cases = [
        (
            "idempotency:x:no-state",
            vec![("token", AttributeValue::S("t".into()))],
        ),
        (
            "idempotency:x:bad-state",
            vec![
                ("state", AttributeValue::S("DONE".into())),
                ("token", AttributeValue::S("t".into())),
            ],
        ),
        (
            "idempotency:x:status-text",
            vec![
                ("state", AttributeValue::S("COMPLETED".into())),
                ("token", AttributeValue::S("t".into())),
                ("status", AttributeValue::S("201".into())),
            ],
        ),
    ];
    for (key, attributes) in cases {
        let mut item = Item::from([
            ("pk".to_owned(), AttributeValue::S(key.to_owned())),
            ("expires_at_ms".to_owned(), AttributeValue::N(far.clone())),
        ]);
        item.extend(attributes.into_iter().map(|(k, v)| (k.to_owned(), v)));
        raw_put(&store, item.clone()).await;
        let error = store.claim(&sk(key), &claim(MINUTE)).await.unwrap_err();
        assert_eq!(error.kind(), StoreErrorKind::Undecodable, "{key}: {error}");
        assert_eq!(raw_get(&store, key).await, Some(item), "{key} untouched");
    }
}

#[tokio::test]
async fn the_table_helpers_create_check_and_refuse_clearly() {
    let server = moto::shared();
    let table = moto::table_name("helpers");
    let missing = Idempotency::dynamodb(server.client(), &table)
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("does not exist"), "{missing}");

    let store = DynamoStore::new(server.client(), &table);
    assert!(store.create_table().await.unwrap(), "created");
    assert!(!store.create_table().await.unwrap(), "already there");
    store.check_table().await.unwrap();
    Idempotency::dynamodb(server.client(), &table)
        .await
        .unwrap();
    let ttl = server
        .client()
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description.unwrap();
    assert_eq!(
        ttl.attribute_name(),
        Some("expires_at"),
        "TTL on the expiry"
    );

    // A table keyed otherwise.
    let options = DynamoOptions::default().partition_key("id");
    let other_key = DynamoStore::with_options(server.client(), &table, options).unwrap();
    let error = other_key.check_table().await.unwrap_err();
    assert!(error.to_string().contains("partition key `id`"), "{error}");

    // Attribute names that the record uses.
    for options in [
        DynamoOptions::default().partition_key("token"),
        DynamoOptions::default().expiry_attribute("expires_at_ms"),
        DynamoOptions::default()
            .partition_key("x")
            .expiry_attribute("x"),
        DynamoOptions::default().partition_key(""),
    ] {
        assert!(
            DynamoStore::with_options(server.client(), &table, options.clone()).is_err(),
            "{options:?}"
        );
    }
    // Another key and expiry attribute, used throughout.
    let table = moto::table_name("renamed");
    let options = DynamoOptions::default()
        .partition_key("id")
        .expiry_attribute("ttl")
        .timeout(PATIENT);
    let store = DynamoStore::with_options(server.client(), &table, options).unwrap();
    assert!(store.create_table().await.unwrap());
    let key = "idempotency:orders:renamed";
    let owner = claim(MINUTE);
    assert!(is_claimed(&store.claim(&sk(key), &owner).await.unwrap()));
    assert_eq!(
        store.renew(&sk(key), &owner.token, HOUR).await.unwrap(),
        Fence::Applied
    );
    let item = server
        .client()
        .get_item()
        .table_name(&table)
        .key("id", AttributeValue::S(key.to_owned()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        number(&item, "ttl"),
        number(&item, "expires_at_ms").div_ceil(1000)
    );
    assert!(!item.contains_key("expires_at"));
}

const RESUMES_WITHIN: Duration = Duration::from_secs(20);

/// Claims fresh keys until one succeeds; returns how long that took. Fails the test if the
/// store has not resumed within `within`.
async fn time_to_resume(store: &DynamoStore, within: Duration) -> (Duration, usize) {
    let start = Instant::now();
    let mut failures = 0;
    loop {
        let key = format!("idempotency:resume:{}", Token::generate().as_str());
        match store.claim(&sk(&key), &claim(MINUTE)).await {
            Ok(outcome) => {
                assert!(is_claimed(&outcome));
                return (start.elapsed(), failures);
            }
            Err(_) => failures += 1,
        }
        assert!(
            start.elapsed() < within,
            "the store did not resume within {within:?}"
        );
        // Not a stand-in for a signal: a pause between probes of a server that is starting.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_killed_server_is_an_error_within_the_timeout_and_the_store_resumes() {
    let mut server = MotoServer::start();
    // The default timeout: it is what is tested.
    let store =
        store_in_fresh_table_with(server.client(), "killed", DynamoOptions::default()).await;
    let timeout = DynamoOptions::default().timeout;
    assert!(is_claimed(
        &store
            .claim(&sk("idempotency:k:warm"), &claim(MINUTE))
            .await
            .unwrap()
    ));

    server.kill();
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let start = Instant::now();
        let result = store
            .claim(&sk(&format!("idempotency:k:down-{i}")), &claim(MINUTE))
            .await;
        let elapsed = start.elapsed();
        let error = result.expect_err("the server is gone");
        println!("killed: claim {i} failed after {elapsed:?}: {error}");
        assert_eq!(
            error.kind(),
            StoreErrorKind::Unavailable,
            "a refused connection never sent the claim: {error}"
        );
        slowest = slowest.max(elapsed);
    }
    println!("killed: slowest failing claim {slowest:?} (timeout {timeout:?})");
    // The behaviour under test: a call to a dead server fails within the store's timeout
    // instead of hanging; the margin is for a loaded machine.
    assert!(
        slowest < timeout + SLACK,
        "slowest failing claim: {slowest:?}"
    );

    // Back on the same port (empty: moto keeps nothing), with its table made again: the
    // same store object resumes, nothing rebuilt.
    server.restart();
    assert!(store.create_table().await.unwrap());
    let (resumed, failures) = time_to_resume(&store, RESUMES_WITHIN).await;
    println!("killed: resumed {resumed:?} after the restart ({failures} failed claims meanwhile)");
    assert_eq!(failures, 0, "the first claim after the restart succeeds");
}

#[tokio::test]
async fn a_frozen_server_times_out_and_the_store_resumes_when_it_thaws() {
    let server = MotoServer::start();
    let (client, requests) = server.counting_client();
    // The default timeout: it is what is tested.
    let store = store_in_fresh_table_with(client, "frozen", DynamoOptions::default()).await;
    let timeout = DynamoOptions::default().timeout;
    let warm = claim(MINUTE);
    assert!(is_claimed(
        &store.claim(&sk("idempotency:f:warm"), &warm).await.unwrap()
    ));

    server.pause();
    let late = claim(MINUTE);
    let start = Instant::now();
    let result = store.claim(&sk("idempotency:f:late"), &late).await;
    let elapsed = start.elapsed();
    let error = result.expect_err("a frozen server answers nothing");
    println!("SIGSTOP: claim failed after {elapsed:?}: {error}");
    assert!(
        error.is_indeterminate(),
        "a claim sent but unanswered may still land: {error}"
    );
    // The behaviour under test: the call waits out its timeout (the lower bound) and then
    // fails rather than hanging (the upper bound, with a margin for a loaded machine).
    assert!(
        elapsed >= timeout && elapsed < timeout + SLACK,
        "{elapsed:?}"
    );
    let start = Instant::now();
    let completed = store
        .complete(&sk("idempotency:f:warm"), &warm.token, response("{}"), HOUR)
        .await;
    println!("SIGSTOP: complete failed after {:?}", start.elapsed());
    assert!(completed.unwrap_err().is_indeterminate());

    server.resume();
    // The same store object resumes by itself once the server thaws.
    let (resumed, failures) = time_to_resume(&store, RESUMES_WITHIN).await;
    println!("SIGCONT: resumed {resumed:?} after the thaw ({failures} failed claims meanwhile)");
    // The claim that timed out was in the server's socket: it ran once the server thawed,
    // and holds the key until the engine's fenced release (or lock_ttl).
    let late_item = raw_item(&server, &store, "idempotency:f:late").await;
    assert_eq!(
        late_item.as_ref().map(|i| text(i, "token")),
        Some(late.token.as_str()),
        "the late claim landed"
    );
    requests.clear();
    assert_eq!(
        store
            .release(&sk("idempotency:f:late"), &late.token)
            .await
            .unwrap(),
        Fence::Applied
    );
    assert_eq!(requests.take(), ["DeleteItem"]);
    assert!(is_claimed(
        &store
            .claim(&sk("idempotency:f:late"), &claim(MINUTE))
            .await
            .unwrap()
    ));
    // The completion sent while frozen ran too, and completed the warm claim.
    assert!(matches!(
        store
            .claim(&sk("idempotency:f:warm"), &claim(MINUTE))
            .await
            .unwrap(),
        ClaimOutcome::Existing(Record::Completed(_))
    ));
}

async fn raw_item(server: &MotoServer, store: &DynamoStore, key: &str) -> Option<Item> {
    server
        .client()
        .get_item()
        .table_name(store.table())
        .key("pk", AttributeValue::S(key.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

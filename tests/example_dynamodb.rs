//! The examples' DynamoDB store, as `DYNAMODB_TABLE` sets it up, against moto: the table is
//! created when missing, the orders example replays from it, and a DynamoDB that cannot be
//! reached is an error that says so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

#[allow(dead_code)]
#[path = "../examples/orders.rs"]
mod orders;
mod support;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use orders::shared;
use serde_json::{Value, json};
use support::app::{Server, client};
use support::dynamodb::{self as moto, MotoServer};

/// What `aws_config` reads from the environment for a local endpoint, given directly.
async fn sdk_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(shared::https_client())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

#[tokio::test]
async fn the_table_is_created_when_missing_and_orders_replay_from_it() {
    let server = moto::shared();
    let config = sdk_config(&server.endpoint()).await;
    let table = moto::table_name("example");
    let idem = shared::dynamodb(&config, &table).await.unwrap();
    let tables = server.client().list_tables().send().await.unwrap();
    assert!(tables.table_names().contains(&table), "{table} created");
    // Started again on the same table: it is used as it is.
    shared::dynamodb(&config, &table).await.unwrap();

    let app = Server::start(orders::app(idem, orders::AppState::default())).await;
    let post = |body: Value| {
        client()
            .post(app.url("/orders"))
            .header("Idempotency-Key", "example-1")
            .json(&body)
            .send()
    };
    let first = post(json!({"amount": 42})).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let replay = post(json!({"amount": 42})).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
    assert_eq!(post(json!({"amount": 7})).await.unwrap().status(), 422);
}

#[tokio::test]
async fn a_dynamodb_that_cannot_be_reached_is_a_clear_error() {
    let mut server = MotoServer::start();
    let endpoint = server.endpoint();
    server.kill();
    let config = sdk_config(&endpoint).await;
    let error = shared::dynamodb(&config, "orders").await.unwrap_err();
    println!("{error}");
    assert!(error.contains("cannot use the table"), "{error}");
    assert!(error.contains("Connection refused"), "the cause: {error}");

    let no_region = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(shared::https_client())
        .build();
    let error = shared::dynamodb(&no_region, "orders").await.unwrap_err();
    assert!(error.contains("AWS_REGION"), "{error}");
}

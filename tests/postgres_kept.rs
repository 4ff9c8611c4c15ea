//! The PostgreSQL store keeping some of the pool's connections between its operations
//! (`PostgresOptions::keep_connections`), against real, private PostgreSQL clusters: the
//! store's contract over the kept connections, how many of the pool's connections it
//! holds, an operation abandoned midway, and a restart of the server.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use idempotent_runtime::store::postgres::{PostgresOptions, PostgresStore};
use idempotent_runtime::store::{ClaimOutcome, Fence, IdempotencyStore, Record, Token};
use sqlx::PgPool;
use support::postgres::{self as pg, PostgresServer};
use support::store_contract::{HOUR, MINUTE, claim, race, refuses, response, sk};

/// A store in a fresh table of `pool`'s database, keeping `keep` of its connections.
async fn keeping(pool: PgPool, keep: u32, what: &str) -> PostgresStore {
    let options = PostgresOptions::default()
        .table(pg::table_name(what))
        .cleanup_interval(None)
        .keep_connections(keep);
    let store = PostgresStore::with_options(pool, options).unwrap();
    store.create_table().await.unwrap();
    store
}

/// The pool's connections in use (by the store or anyone else), once the pool has settled:
/// sqlx gives a connection back on a task of its own.
async fn in_use(pool: &PgPool) -> u32 {
    tokio::time::sleep(Duration::from_millis(100)).await;
    pool.size() - u32::try_from(pool.num_idle()).unwrap()
}

#[tokio::test]
async fn over_kept_connections_a_key_is_claimed_completed_replayed_and_fenced() {
    let pool = pg::shared().pool().await; // at most 4 connections
    let store = keeping(pool.clone(), 2, "kept_contract").await;

    let first = claim(MINUTE);
    let outcome = store.claim(&sk("idempotency:k:1"), &first).await.unwrap();
    assert!(matches!(outcome, ClaimOutcome::Claimed));
    refuses(&store, "idempotency:k:1", &Token::generate()).await;
    let fence = store
        .complete(
            &sk("idempotency:k:1"),
            &first.token,
            response("{\"id\":1}"),
            HOUR,
        )
        .await
        .unwrap();
    assert_eq!(fence, Fence::Applied);
    match store
        .claim(&sk("idempotency:k:1"), &claim(MINUTE))
        .await
        .unwrap()
    {
        ClaimOutcome::Existing(Record::Completed(stored)) => {
            assert_eq!(&stored.body[..], b"{\"id\":1}");
        }
        other => panic!("expected the completed record, got {other:?}"),
    }

    // 32 claims at once over the store's 2 connections: they wait for them in turn.
    race(
        &[Arc::new(store.clone()) as Arc<dyn IdempotencyStore>],
        "idempotency:k:race",
    )
    .await;

    // The store holds at most its 2; the pool lends the others to the app.
    assert!(
        in_use(&pool).await <= 2,
        "the store holds at most 2 connections"
    );
    let mut app_connections = Vec::new();
    for _ in 0..2 {
        app_connections.push(pool.acquire().await.unwrap());
    }
    let outcome = store
        .claim(&sk("idempotency:k:2"), &claim(MINUTE))
        .await
        .unwrap();
    assert!(matches!(outcome, ClaimOutcome::Claimed));
    drop(app_connections);

    // Dropped with the store, they go back to the pool.
    drop(store);
    assert_eq!(in_use(&pool).await, 0, "the store's connections are back");
}

#[tokio::test]
async fn an_operation_abandoned_midway_gives_its_connection_back_to_the_pool() {
    let pool = pg::shared().pool().await;
    let store = keeping(pool.clone(), 1, "kept_abandoned").await;
    // Another transaction inserts the key and holds it: a claim of it waits for that
    // transaction to end.
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {} (key, state, token, expires_at) \
         VALUES ('idempotency:k:held', 'processing', 'other', now() + interval '1 minute')",
        store.table()
    )))
    .execute(&mut *blocker)
    .await
    .unwrap();
    let abandoned = tokio::time::timeout(
        Duration::from_millis(300),
        store.claim(&sk("idempotency:k:held"), &claim(MINUTE)),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the claim waits for the other transaction"
    );
    blocker.rollback().await.unwrap();

    // The abandoned connection went back to the pool (which waited for its answer); the
    // store takes another and carries on, its claims answered one by one.
    for i in 0..3 {
        let outcome = store
            .claim(&sk(&format!("idempotency:k:after-{i}")), &claim(MINUTE))
            .await
            .unwrap();
        assert!(matches!(outcome, ClaimOutcome::Claimed));
    }
    // The abandoned statement still ran, once the other transaction had ended (the engine
    // releases such a claim, fenced, in the background).
    let outcome = store
        .claim(&sk("idempotency:k:held"), &claim(MINUTE))
        .await
        .unwrap();
    assert!(
        matches!(outcome, ClaimOutcome::Existing(Record::Processing { .. })),
        "{outcome:?}"
    );
    assert!(
        in_use(&pool).await <= 1,
        "the store holds at most 1 connection"
    );
}

#[tokio::test]
async fn a_kept_connection_broken_by_a_restart_fails_one_operation_and_is_replaced() {
    let mut server = PostgresServer::start();
    let pool = server.pool().await;
    let store = keeping(pool.clone(), 3, "kept_restart").await;
    // Three claims at once: the store takes (and then keeps) three connections.
    let (a, b, c) = (claim(MINUTE), claim(MINUTE), claim(MINUTE));
    let (ka, kb, kc) = (
        sk("idempotency:k:before-a"),
        sk("idempotency:k:before-b"),
        sk("idempotency:k:before-c"),
    );
    let outcomes = tokio::join!(
        store.claim(&ka, &a),
        store.claim(&kb, &b),
        store.claim(&kc, &c)
    );
    for outcome in [outcomes.0, outcomes.1, outcomes.2] {
        assert!(matches!(outcome.unwrap(), ClaimOutcome::Claimed));
    }
    assert_eq!(in_use(&pool).await, 3, "the store keeps three connections");

    // The restart keeps the table (same data directory).
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut failures = 0;
    loop {
        match store
            .claim(&sk("idempotency:k:after"), &claim(MINUTE))
            .await
        {
            Ok(outcome) => {
                assert!(matches!(outcome, ClaimOutcome::Claimed));
                break;
            }
            Err(error) => {
                failures += 1;
                assert!(Instant::now() < deadline, "still failing: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    // The first failure gives every kept connection back to the pool, which tests them:
    // one failed operation, not one per broken connection.
    assert!(
        failures <= 1,
        "{failures} operations failed after the restart"
    );
}

//! The PostgreSQL store against real, private PostgreSQL clusters started by the tests:
//! the rows it writes, its fences, the atomic claim, the statements each operation costs
//! (counted in the server's own statement log), a duplicate that writes nothing, the
//! batched removal of expired rows, and outages (a refused connection, a killed, a paused
//! server, a pool with no connection to give) with the recovery after them.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode};
use idempotent_runtime::Idempotency;
use idempotent_runtime::store::postgres::{PostgresOptions, PostgresStore};
use idempotent_runtime::store::{
    ClaimOutcome, Fence, IdempotencyStore, Record, StoreErrorKind, StoredResponse, Token,
};
use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use support::app::{Server, client, eventually, problem_code};
use support::orders::{AppState, Path};
use support::postgres::{self as pg, PostgresServer, verbs};
use support::store_contract::{
    HOUR, MINUTE, claim, hashed_claim, is_claimed, processing_token, race, refuses, response, sk,
};

/// A store in a fresh table of `pool`'s database, created.
async fn store_on(pool: PgPool, what: &str) -> PostgresStore {
    let options = PostgresOptions::default()
        .table(pg::table_name(what))
        .cleanup_interval(None);
    let store = PostgresStore::with_options(pool, options).unwrap();
    store.create_table().await.unwrap();
    store
}

/// A store in a fresh table of the shared server.
async fn fresh_store(what: &str) -> PostgresStore {
    store_on(pg::shared().pool().await, what).await
}

/// Run `sql` on `store`'s pool, with `{t}` standing for its table.
async fn exec(store: &PostgresStore, sql: &str) -> u64 {
    let sql = sql.replace("{t}", &store.table());
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(store.pool())
        .await
        .unwrap()
        .rows_affected()
}

/// One value of the row under `key`, as text (`None`: no such row).
async fn column(store: &PostgresStore, key: &str, expr: &str) -> Option<Option<String>> {
    let sql = format!(
        "SELECT ({expr})::text FROM {} WHERE key = $1",
        store.table()
    );
    sqlx::query_scalar::<_, Option<String>>(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .fetch_optional(store.pool())
        .await
        .unwrap()
}

/// How long the row under `key` has left, in whole seconds.
async fn seconds_left(store: &PostgresStore, key: &str) -> i64 {
    let left = column(
        store,
        key,
        "round(extract(epoch FROM expires_at - statement_timestamp()))",
    )
    .await;
    left.flatten()
        .unwrap_or_else(|| panic!("{key} has a row"))
        .parse()
        .unwrap()
}

/// Make the row under `key` expired, as if its time had run out.
async fn expire(store: &PostgresStore, key: &str) {
    let sql = format!(
        "UPDATE {} SET expires_at = statement_timestamp() - interval '1 second' WHERE key = $1",
        store.table()
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(key)
        .execute(store.pool())
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1, "{key} has a row to expire");
}

#[tokio::test]
async fn claim_complete_replay_and_the_rows_written() {
    let store = fresh_store("rows").await;
    let key = "idempotency:orders:k-1";
    let first = hashed_claim("f1");
    assert!(is_claimed(&store.claim(&sk(key), &first).await.unwrap()));
    assert_eq!(
        column(&store, key, "state").await,
        Some(Some("processing".into()))
    );
    assert_eq!(
        column(&store, key, "token").await,
        Some(Some(first.token.as_str().to_owned()))
    );
    assert_eq!(
        column(&store, key, "fingerprint").await,
        Some(Some("f1".into()))
    );
    assert_eq!(
        seconds_left(&store, key).await,
        60,
        "the lock lives lock_ttl"
    );

    // A duplicate sees the PROCESSING record with the owner's token and fingerprint.
    let again = store.claim(&sk(key), &hashed_claim("f1")).await.unwrap();
    assert_eq!(processing_token(&again), Some(&first.token));
    assert_eq!(
        match &again {
            ClaimOutcome::Existing(record) => record.fingerprint(),
            _ => None,
        },
        Some("f1")
    );

    let mut stored = response(r#"{"id":1}"#);
    stored.fingerprint = Some("f1".into());
    stored.headers.as_mut().unwrap().push((
        "x-raw".parse().unwrap(),
        HeaderValue::from_bytes(b"caf\xe9 \x80").unwrap(),
    ));
    let stored = stored.stored(std::time::SystemTime::now(), first.token.clone());
    assert_eq!(
        store
            .complete(&sk(key), &first.token, stored.clone(), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
    assert_eq!(
        column(&store, key, "state").await,
        Some(Some("completed".into()))
    );
    assert_eq!(
        column(&store, key, "status").await,
        Some(Some("201".into()))
    );
    assert_eq!(
        column(&store, key, "header_names").await,
        Some(Some("{content-type,x-raw}".into()))
    );
    assert_eq!(
        seconds_left(&store, key).await,
        3600,
        "the record lives ttl"
    );

    let ClaimOutcome::Existing(Record::Completed(replayed)) =
        store.claim(&sk(key), &claim(MINUTE)).await.unwrap()
    else {
        panic!("a completed record replays");
    };
    assert_eq!(replayed.status, StatusCode::CREATED);
    assert_eq!(replayed.headers, stored.headers, "every header byte kept");
    assert_eq!(replayed.body, stored.body);
    assert_eq!(replayed.fingerprint.as_deref(), Some("f1"));
    assert_eq!(replayed.token.as_ref(), Some(&first.token));
    let at = |r: &StoredResponse| {
        r.stored_at
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    };
    assert_eq!(at(&replayed), at(&stored), "stored_at, to the millisecond");

    // A record stored without headers (as another writer may) reads back without them.
    let bare = claim(MINUTE);
    let key2 = "idempotency::k-2";
    assert!(is_claimed(&store.claim(&sk(key2), &bare).await.unwrap()));
    let mut no_headers = response("binary");
    no_headers.headers = None;
    no_headers.body = axum::body::Bytes::from_static(b"\x00\xff");
    store
        .complete(&sk(key2), &bare.token, no_headers, HOUR)
        .await
        .unwrap();
    let Some(Record::Completed(read)) = store.get(&sk(key2)).await.unwrap() else {
        panic!("completed");
    };
    assert_eq!(
        (read.headers.as_ref(), &read.body[..]),
        (None, &b"\x00\xff"[..])
    );
}

#[tokio::test]
async fn complete_release_and_renew_are_fenced_by_the_token() {
    let store = fresh_store("fences").await;
    let key = "idempotency:orders:f-1";
    let owner = claim(MINUTE);
    store.claim(&sk(key), &owner).await.unwrap();
    let stranger = Token::generate();

    refuses(&store, key, &stranger).await;
    assert_eq!(
        store.renew(&sk(key), &stranger, HOUR).await.unwrap(),
        Fence::Refused
    );
    assert_eq!(
        column(&store, key, "token").await,
        Some(Some(owner.token.as_str().to_owned()))
    );

    assert_eq!(
        store.renew(&sk(key), &owner.token, HOUR).await.unwrap(),
        Fence::Applied
    );
    let lock = column(
        &store,
        key,
        "round(extract(epoch FROM expires_at - statement_timestamp()))",
    )
    .await;
    assert_eq!(
        lock,
        Some(Some("3600".into())),
        "renewed to the new lock_ttl"
    );

    assert_eq!(
        store.release(&sk(key), &owner.token).await.unwrap(),
        Fence::Applied
    );
    assert_eq!(column(&store, key, "state").await, None, "released: gone");
    assert_eq!(
        store.release(&sk(key), &owner.token).await.unwrap(),
        Fence::Refused,
        "nothing left to release"
    );
    assert_eq!(
        store.renew(&sk(key), &owner.token, HOUR).await.unwrap(),
        Fence::Refused,
        "nothing left to renew"
    );

    // A completed record is not released, nor renewed, even by its own token.
    let done = claim(MINUTE);
    store.claim(&sk(key), &done).await.unwrap();
    store
        .complete(&sk(key), &done.token, response("{}"), HOUR)
        .await
        .unwrap();
    assert_eq!(
        store.release(&sk(key), &done.token).await.unwrap(),
        Fence::Refused
    );
    assert_eq!(
        store.renew(&sk(key), &done.token, MINUTE).await.unwrap(),
        Fence::Refused
    );
}

#[tokio::test]
async fn an_expired_lock_is_taken_over_and_fences_its_old_owner() {
    let store = fresh_store("takeover").await;
    let key = "idempotency:orders:t-1";
    let old = claim(MINUTE);
    store.claim(&sk(key), &old).await.unwrap();
    expire(&store, key).await;
    assert_eq!(
        store.renew(&sk(key), &old.token, MINUTE).await.unwrap(),
        Fence::Refused,
        "an expired lock is not renewed"
    );

    let new = hashed_claim("f2");
    assert!(is_claimed(&store.claim(&sk(key), &new).await.unwrap()));
    assert_eq!(
        column(&store, key, "token").await,
        Some(Some(new.token.as_str().to_owned()))
    );
    assert_eq!(
        column(&store, key, "fingerprint").await,
        Some(Some("f2".into()))
    );
    refuses(&store, key, &old.token).await;

    // An expired completed record is taken over the same way, and its response is gone.
    store
        .complete(&sk(key), &new.token, response("{}"), HOUR)
        .await
        .unwrap();
    expire(&store, key).await;
    assert!(
        store.get(&sk(key)).await.unwrap().is_none(),
        "expired: absent"
    );
    let third = claim(MINUTE);
    assert!(is_claimed(&store.claim(&sk(key), &third).await.unwrap()));
    assert_eq!(column(&store, key, "body").await, Some(None));
    assert_eq!(column(&store, key, "status").await, Some(None));
}

#[tokio::test]
async fn a_late_finisher_stores_if_nobody_claimed_since() {
    let store = fresh_store("late").await;
    let key = "idempotency:orders:l-1";
    let late = claim(MINUTE);
    store.claim(&sk(key), &late).await.unwrap();
    expire(&store, key).await;
    assert_eq!(
        store
            .complete(&sk(key), &late.token, response(r#"{"late":1}"#), HOUR)
            .await
            .unwrap(),
        Fence::Applied,
        "its expired row is still its own"
    );

    // Its row already removed by the cleanup: the key is free, and the write lands.
    let gone = claim(MINUTE);
    let key2 = "idempotency:orders:l-2";
    store.claim(&sk(key2), &gone).await.unwrap();
    expire(&store, key2).await;
    assert_eq!(store.delete_expired().await.unwrap(), 1);
    assert_eq!(
        store
            .complete(&sk(key2), &gone.token, response(r#"{"late":2}"#), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
    assert!(matches!(
        store.get(&sk(key2)).await.unwrap(),
        Some(Record::Completed(_))
    ));

    // Another expired claim's row counts as absent too.
    let key3 = "idempotency:orders:l-3";
    let mine = claim(MINUTE);
    store.claim(&sk(key3), &claim(MINUTE)).await.unwrap();
    expire(&store, key3).await;
    assert_eq!(
        store
            .complete(&sk(key3), &mine.token, response("{}"), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exactly_one_of_32_concurrent_claims_wins_fresh_or_expired() {
    let first = fresh_store("race").await;
    let table = first.table().trim_matches('"').to_owned();
    // Four stores over four pools: as four processes would claim.
    let mut stores: Vec<Arc<dyn IdempotencyStore>> = vec![Arc::new(first.clone())];
    for _ in 0..3 {
        let options = PostgresOptions::default()
            .table(&table)
            .cleanup_interval(None);
        let pool = pg::shared().pool().await;
        stores.push(Arc::new(
            PostgresStore::with_options(pool, options).unwrap(),
        ));
    }
    for round in 0..5 {
        let key = format!("idempotency:race:r-{round}");
        race(&stores, &key).await;
        // The same key again, once its lock has expired: the takeovers race.
        expire(&first, &key).await;
        race(&stores, &key).await;
    }
}

#[tokio::test]
async fn a_missing_table_is_a_clear_error_and_creating_it_is_idempotent() {
    let pool = pg::shared().pool().await;
    let table = pg::table_name("missing");
    let options = PostgresOptions::default()
        .table(&table)
        .cleanup_interval(None);
    let store = PostgresStore::with_options(pool.clone(), options).unwrap();
    let Err(error) = store.claim(&sk("idempotency::m"), &claim(MINUTE)).await else {
        panic!("no table: an error");
    };
    assert_eq!(error.kind(), StoreErrorKind::Unavailable);
    assert!(
        error.to_string().contains("create_table"),
        "says how to fix it: {error}"
    );

    // Several processes starting at once: each creates it if missing, none fails.
    let creating: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create_table().await })
        })
        .collect();
    for task in creating {
        task.await.unwrap().unwrap();
    }
    assert!(is_claimed(
        &store
            .claim(&sk("idempotency::m"), &claim(MINUTE))
            .await
            .unwrap()
    ));

    // What `schema` prints for the default table is what the documentation shows, and
    // what `create_table` runs.
    let schema = PostgresStore::schema("idempotency_keys").unwrap();
    assert!(schema.starts_with("CREATE TABLE IF NOT EXISTS \"idempotency_keys\" (\n"));
    let docs = include_str!("../idempotent-runtime/src/store/postgres/mod.rs");
    let documented: String = docs
        .lines()
        .skip_while(|line| !line.starts_with("//! CREATE TABLE IF NOT EXISTS"))
        .take_while(|line| !line.starts_with("//! ```"))
        .map(|line| line.strip_prefix("//! ").unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(
        documented, schema,
        "the documented schema is the shipped one"
    );

    for bad in ["", "drop table x", "a.b.c", "1keys"] {
        let options = PostgresOptions::default().table(bad);
        let error = PostgresStore::with_options(pool.clone(), options)
            .err()
            .unwrap_or_else(|| panic!("{bad:?} accepted"));
        assert!(error.to_string().contains("table name"), "{error}");
    }
}

#[tokio::test]
async fn undecodable_rows_are_store_errors_and_stay_untouched() {
    let store = fresh_store("undecodable").await;
    exec(
        &store,
        "INSERT INTO {t} (key, state, token, status, expires_at) VALUES \
         ('idempotency::bad', 'completed', 't', NULL, now() + interval '1 hour'), \
         ('idempotency::neg', 'completed', 't', -5, now() + interval '1 hour')",
    )
    .await;
    for key in ["idempotency::bad", "idempotency::neg"] {
        let error = store
            .claim(&sk(key), &claim(MINUTE))
            .await
            .err()
            .unwrap_or_else(|| panic!("{key} decoded"));
        assert_eq!(error.kind(), StoreErrorKind::Undecodable, "{error}");
        assert_eq!(column(&store, key, "token").await, Some(Some("t".into())));
    }
}

/// The statements a server logged while `work` ran (executions: a statement that is
/// prepared on its first use on a connection is logged once, when it runs).
async fn statements_of<F, Fut>(server: &PostgresServer, work: F) -> Vec<String>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mark = server.log_mark();
    work().await;
    server.statements_since(mark)
}

#[tokio::test]
async fn each_operation_is_one_statement() {
    let server = PostgresServer::start_with(&[("log_statement", "all")]);
    let pool = service_pool(&server, 1).await;
    let store = store_on(pool, "counted").await;
    let key = sk("idempotency:orders:c-1");
    let owner = claim(MINUTE);
    let fresh = statements_of(&server, || async {
        assert!(is_claimed(&store.claim(&key, &owner).await.unwrap()));
    })
    .await;
    assert_eq!(verbs(&fresh), ["WITH"], "claim of a free key");
    let conflict = statements_of(&server, || async {
        store.claim(&key, &claim(MINUTE)).await.unwrap();
    })
    .await;
    assert_eq!(verbs(&conflict), ["WITH"], "claim of a held key");
    let renew = statements_of(&server, || async {
        store.renew(&key, &owner.token, MINUTE).await.unwrap();
    })
    .await;
    assert_eq!(verbs(&renew), ["UPDATE"], "renew");
    let complete = statements_of(&server, || async {
        store
            .complete(&key, &owner.token, response("{}"), MINUTE)
            .await
            .unwrap();
    })
    .await;
    assert_eq!(verbs(&complete), ["INSERT"], "complete");
    let replay = statements_of(&server, || async {
        store.claim(&key, &claim(MINUTE)).await.unwrap();
    })
    .await;
    assert_eq!(verbs(&replay), ["WITH"], "claim of a completed key");
    let other = sk("idempotency:orders:c-2");
    let second = claim(MINUTE);
    store.claim(&other, &second).await.unwrap();
    let release = statements_of(&server, || async {
        store.release(&other, &second.token).await.unwrap();
    })
    .await;
    assert_eq!(verbs(&release), ["DELETE"], "release");
    println!("claim (free, held, completed key): 1 statement each; complete 1; release 1; renew 1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_requests_cost_what_the_contract_says() {
    let server = PostgresServer::start_with(&[("log_statement", "all")]);
    let pool = service_pool(&server, 2).await;
    let store = store_on(pool, "http").await;
    let state = AppState::default();
    let app = Path::Macro
        .app(Idempotency::new(store))
        .with_state(state.clone());
    let app = Server::start(app).await;
    let http = client();
    let send = |key: Option<&'static str>, body: serde_json::Value| {
        let mut request = http.post(app.url("/orders")).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request.send()
    };
    // (The log has executions only: a statement prepared on first use counts once too.)
    let mark = server.log_mark();
    assert_eq!(
        send(Some("h-1"), json!({"note": "a"}))
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        verbs(&server.statements_since(mark)),
        ["WITH", "INSERT"],
        "first run: claim, complete"
    );
    let mark = server.log_mark();
    let replay = send(Some("h-1"), json!({"note": "a"})).await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(verbs(&server.statements_since(mark)), ["WITH"], "replay");
    let mark = server.log_mark();
    let (status, code, _) =
        problem_code(send(Some("h-1"), json!({"note": "b"})).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (422, "idempotency_key_reused"));
    assert_eq!(verbs(&server.statements_since(mark)), ["WITH"], "mismatch");
    let mark = server.log_mark();
    let (status, code, _) = problem_code(send(None, json!({})).await.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "idempotency_key_missing"));
    assert!(
        server.statements_since(mark).is_empty(),
        "missing key: no statement"
    );

    let held = tokio::spawn(send(Some("h-2"), json!({"hold": true})));
    state.probe.wait_started().await;
    let mark = server.log_mark();
    let (status, code, _) =
        problem_code(send(Some("h-2"), json!({"hold": true})).await.unwrap()).await;
    assert_eq!(
        (status, code.as_str()),
        (409, "idempotency_request_in_progress")
    );
    assert_eq!(verbs(&server.statements_since(mark)), ["WITH"], "conflict");
    state.probe.open(1);
    assert_eq!(held.await.unwrap().unwrap().status(), 201);

    let mark = server.log_mark();
    let failed = send(Some("h-3"), json!({"status": 400})).await.unwrap();
    assert_eq!(failed.status(), 400);
    assert_eq!(
        verbs(&server.statements_since(mark)),
        ["WITH", "DELETE"],
        "a non-2xx first run: claim, release"
    );
    println!("HTTP: first run 2 statements, replay 1, mismatch 1, conflict 1, missing key 0");
}

/// The row's physical identity: where it is, and which transactions wrote or locked it.
async fn row_version(store: &PostgresStore, key: &str) -> String {
    column(
        store,
        key,
        "ctid::text || ' ' || xmin::text || ' ' || xmax::text",
    )
    .await
    .flatten()
    .unwrap_or_else(|| panic!("{key} has a row"))
}

#[tokio::test]
async fn a_duplicate_claim_writes_nothing() {
    let store = fresh_store("untouched").await;
    let done = "idempotency:orders:d-1";
    let owner = hashed_claim("f");
    store.claim(&sk(done), &owner).await.unwrap();
    store
        .complete(&sk(done), &owner.token, response("{}"), HOUR)
        .await
        .unwrap();
    let running = "idempotency:orders:d-2";
    store.claim(&sk(running), &hashed_claim("f")).await.unwrap();
    let before = (
        row_version(&store, done).await,
        row_version(&store, running).await,
    );
    for _ in 0..10 {
        // Replay, mismatch, conflict, conflict with another body.
        store.claim(&sk(done), &hashed_claim("f")).await.unwrap();
        store.claim(&sk(done), &hashed_claim("g")).await.unwrap();
        store.claim(&sk(running), &hashed_claim("f")).await.unwrap();
        store.claim(&sk(running), &hashed_claim("g")).await.unwrap();
    }
    let after = (
        row_version(&store, done).await,
        row_version(&store, running).await,
    );
    assert_eq!(
        before, after,
        "no new row version (no dead tuple) and no row lock (xmax) from a duplicate"
    );
    println!("rows after 40 duplicate claims: {after:?} (unchanged)");
}

#[tokio::test]
async fn expired_rows_are_deleted_in_batches_and_live_ones_never() {
    let pool = pg::shared().pool().await;
    let options = PostgresOptions::default()
        .table(pg::table_name("cleanup"))
        .cleanup_interval(None)
        .cleanup_batch(1000);
    let store = PostgresStore::with_options(pool.clone(), options).unwrap();
    store.create_table().await.unwrap();
    exec(
        &store,
        "INSERT INTO {t} (key, state, token, expires_at) \
         SELECT 'idempotency::old-' || g, 'processing', 't', \
                statement_timestamp() - g * interval '1 second' \
         FROM generate_series(1, 2500) g",
    )
    .await;
    exec(
        &store,
        "INSERT INTO {t} (key, state, token, expires_at) \
         SELECT 'idempotency::live-' || g, 'processing', 't', \
                statement_timestamp() + interval '1 hour' \
         FROM generate_series(1, 10) g",
    )
    .await;
    // One expired row held by another transaction: skipped, not waited for.
    let mut holder = pool.begin().await.unwrap();
    let sql = format!(
        "SELECT key FROM {} WHERE key = 'idempotency::old-1' FOR UPDATE",
        store.table()
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .execute(&mut *holder)
        .await
        .unwrap();

    let mut batches = Vec::new();
    loop {
        let deleted = tokio::time::timeout(Duration::from_secs(30), store.delete_expired())
            .await
            .expect("a batch never waits for a held row")
            .unwrap();
        batches.push(deleted);
        if deleted < 1000 {
            break;
        }
    }
    assert_eq!(
        batches,
        [1000, 1000, 499],
        "bounded batches, the held row skipped"
    );
    let count = |sql: &'static str| {
        let sql = sql.replace("{t}", &store.table());
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT count(*) FROM {t} WHERE key LIKE 'idempotency::live-%'").await,
        10
    );
    holder.rollback().await.unwrap();
    assert_eq!(
        store.delete_expired().await.unwrap(),
        1,
        "released: deleted"
    );

    // The background task does the same by itself, and stops with the store.
    exec(
        &store,
        "INSERT INTO {t} (key, state, token, expires_at) \
         SELECT 'idempotency::bg-' || g, 'processing', 't', statement_timestamp() \
         FROM generate_series(1, 1500) g",
    )
    .await;
    let table = store.table().trim_matches('"').to_owned();
    let background = PostgresStore::with_options(
        pool.clone(),
        PostgresOptions::default()
            .table(table)
            .cleanup_interval(Duration::from_millis(50)),
    )
    .unwrap();
    background.start_cleanup();
    eventually(
        "the expired rows are removed",
        Duration::from_secs(20),
        || {
            let count = count("SELECT count(*) FROM {t}");
            async move { count.await == 10 }
        },
    )
    .await;
    assert_eq!(
        count("SELECT count(*) FROM {t} WHERE key LIKE 'idempotency::live-%'").await,
        10,
        "live rows kept"
    );
}

/// An app whose store is `pool`'s, with a short deadline so that outages are quick to see.
async fn outage_app(pool: PgPool, what: &str) -> (Server, AppState) {
    let store = store_on(pool, what).await;
    let idem = Idempotency::new(store).store_timeout(Duration::from_millis(300));
    let state = AppState::default();
    let app = Path::Macro.app(idem).with_state(state.clone());
    (Server::start(app).await, state)
}

/// A pool of `connections` as a service would configure it (see the example).
async fn service_pool(server: &PostgresServer, connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(2))
        .test_before_acquire(false)
        .connect(&server.url())
        .await
        .unwrap()
}

/// A keyed `POST` of `{}` to `route`, and its status; with how long it took.
async fn post(app: &Server, route: &str, key: &str) -> (u16, Duration) {
    let started = Instant::now();
    let response = client()
        .post(app.url(route))
        .header("Idempotency-Key", key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), started.elapsed())
}

/// Send fresh keys until one is stored and replayed again: how long that took, in how
/// many tries.
async fn time_to_resume(app: &Server, within: Duration) -> (Duration, usize) {
    let started = Instant::now();
    let mut tries = 0;
    loop {
        tries += 1;
        let key = format!("resume-{tries}");
        if post(app, "/closed", &key).await.0 == 201 && replays(app, "/closed", &key).await {
            return (started.elapsed(), tries);
        }
        assert!(
            started.elapsed() < within,
            "idempotency did not resume within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a keyed `POST` of `{}` to `route` is answered with a replay.
async fn replays(app: &Server, route: &str, key: &str) -> bool {
    let response = client()
        .post(app.url(route))
        .header("Idempotency-Key", key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    response.headers().get("idempotent-replayed").is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_is_an_outage_and_idempotency_resumes_after_a_restart() {
    let mut server = PostgresServer::start();
    let (app, state) = outage_app(service_pool(&server, 4).await, "killed").await;
    assert_eq!(post(&app, "/orders", "before").await.0, 201);

    server.kill();
    // fail_open (default): the handler runs without idempotency; fail_open = false: 503.
    let (open, open_took) = post(&app, "/orders", "during").await;
    assert_eq!(open, 201);
    let (closed, closed_took) = post(&app, "/closed", "during").await;
    assert_eq!(closed, 503);
    println!("server killed: fail open answered in {open_took:?}, fail closed in {closed_took:?}");
    // Each within the deadline and a margin for a loaded machine.
    assert!(open_took < Duration::from_millis(300) + Duration::from_secs(2));
    assert!(closed_took < Duration::from_millis(300) + Duration::from_secs(2));
    let runs = state.probe.runs();

    server.restart();
    let (took, tries) = time_to_resume(&app, Duration::from_secs(30)).await;
    println!("restarted: idempotency resumed after {took:?} ({tries} tries)");
    // The record written before the kill survived it.
    assert!(replays(&app, "/orders", "before").await);
    assert!(state.probe.runs() > runs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_is_an_outage_within_the_deadline_and_resumes_when_thawed() {
    let server = PostgresServer::start();
    let (app, _state) = outage_app(service_pool(&server, 4).await, "paused").await;
    assert_eq!(post(&app, "/orders", "before").await.0, 201);

    server.pause();
    let (open, open_took) = post(&app, "/orders", "during").await;
    let (closed, closed_took) = post(&app, "/closed", "during").await;
    server.resume();
    assert_eq!((open, closed), (201, 503));
    println!("server paused: fail open answered in {open_took:?}, fail closed in {closed_took:?}");
    assert!(
        open_took >= Duration::from_millis(300),
        "waited for the deadline"
    );
    assert!(open_took < Duration::from_millis(300) + Duration::from_secs(2));
    assert!(closed_took < Duration::from_millis(300) + Duration::from_secs(2));

    let (took, tries) = time_to_resume(&app, Duration::from_secs(30)).await;
    println!("thawed: idempotency resumed after {took:?} ({tries} tries)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_and_an_exhausted_pool_are_outages() {
    // Nobody listens: every connection attempt is refused.
    let nobody = support::redis::free_port();
    let refused = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{nobody}/postgres"))
        .unwrap();
    let store =
        PostgresStore::with_options(refused, PostgresOptions::default().cleanup_interval(None))
            .unwrap();
    let idem = Idempotency::new(store).store_timeout(Duration::from_millis(300));
    let state = AppState::default();
    let app = Server::start(Path::Macro.app(idem).with_state(state.clone())).await;
    let (open, _) = post(&app, "/orders", "refused").await;
    let (closed, closed_took) = post(&app, "/closed", "refused").await;
    assert_eq!((open, closed), (201, 503));
    println!("connection refused: fail closed answered in {closed_took:?}");

    // A pool of one connection, held elsewhere: the checkout misses the deadline.
    let server = pg::shared();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect(&server.url())
        .await
        .unwrap();
    let (app, _state) = outage_app(pool.clone(), "exhausted").await;
    let held = pool.acquire().await.unwrap();
    let (open, _) = post(&app, "/orders", "exhausted").await;
    let (closed, closed_took) = post(&app, "/closed", "exhausted").await;
    assert_eq!((open, closed), (201, 503));
    println!("pool exhausted: fail closed answered in {closed_took:?}");
    assert!(closed_took < Duration::from_millis(300) + Duration::from_secs(2));
    drop(held);
    let (took, tries) = time_to_resume(&app, Duration::from_secs(30)).await;
    println!("connection back: idempotency resumed after {took:?} ({tries} tries)");
}

//! The Redis stores against real `redis-server` processes: claims, fences, expiry, atomicity
//! across connections, Spring records, undecodable values, round trips counted with
//! `MONITOR`, the claim script for servers that refuse `SET … NX GET`, outages (kill,
//! SIGSTOP) and recovery, and a 3-master cluster.
//!
//! Timings are printed; run with `--nocapture` to see them.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{self, HeaderValue, StatusCode};
use idempotent_runtime::store::redis::{RedisClusterStore, RedisOptions, RedisStore};
use idempotent_runtime::store::{
    Claim, ClaimOutcome, Fence, IdempotencyStore, Record, StoredResponse, Token,
};
use support::redis::{Monitor, Redis62Proxy, RedisCluster, RedisServer};
use support::store_contract::{
    HOUR, MINUTE, claim, hashed_claim, is_claimed, processing_token, race, refuses, response, sk,
};

async fn connect(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url())
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", server.url()))
}

#[tokio::test]
async fn claim_complete_replay() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let key = "idempotency:orders:first";
    let fingerprint = "ab".repeat(32);

    let first = hashed_claim(&fingerprint);
    assert!(is_claimed(&store.claim(&sk(key), &first).await.unwrap()));
    let stored = server.get(key).unwrap();
    assert_eq!(
        stored,
        first.to_processing().to_json(),
        "the PROCESSING record is stored verbatim"
    );
    let pttl = server.pttl(key);
    assert!(
        pttl > 0 && pttl <= 60_000,
        "PROCESSING expires after lock_ttl: PTTL {pttl}"
    );

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
    );
    assert_eq!(
        store
            .complete(&sk(key), &first.token, done.clone(), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );

    // What Spring reads: its three fields, with their types.
    let stored = server.get(key).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(json["statusCode"], 201);
    assert_eq!(json["body"], r#"{"id":42}"#);
    assert_eq!(json["bodyHash"], fingerprint.as_str());
    let pttl = server.pttl(key);
    assert!(
        pttl > HOUR.as_millis() as i64 - 60_000,
        "completed record expires after ttl: PTTL {pttl}"
    );

    match store
        .claim(&sk(key), &hashed_claim(&fingerprint))
        .await
        .unwrap()
    {
        ClaimOutcome::Existing(Record::Completed(replayed)) => assert_eq!(*replayed, done),
        other => panic!("expected the completed record, got {other:?}"),
    }
}

#[tokio::test]
async fn complete_and_release_are_fenced_by_the_token() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let key = "idempotency:orders:fenced";
    let owner = claim(MINUTE);
    let stranger = claim(MINUTE);
    assert!(is_claimed(&store.claim(&sk(key), &owner).await.unwrap()));

    refuses(&store, key, &stranger.token).await;
    assert_eq!(
        server.get(key).unwrap(),
        owner.to_processing().to_json(),
        "untouched"
    );

    assert_eq!(
        store.release(&sk(key), &owner.token).await.unwrap(),
        Fence::Applied
    );
    assert_eq!(server.get(key), None, "released");
    assert_eq!(
        store.release(&sk(key), &owner.token).await.unwrap(),
        Fence::Refused,
        "nothing left to release"
    );

    let again = claim(MINUTE);
    assert!(
        is_claimed(&store.claim(&sk(key), &again).await.unwrap()),
        "a released key can be claimed"
    );
    assert_eq!(
        store
            .complete(&sk(key), &again.token, response(r#"{"n":1}"#), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
    let completed = server.get(key).unwrap();
    // A completed record is nobody's lock: it can be neither released nor overwritten.
    assert_eq!(
        store.release(&sk(key), &again.token).await.unwrap(),
        Fence::Refused
    );
    assert_eq!(
        store
            .complete(&sk(key), &again.token, response(r#"{"n":2}"#), HOUR)
            .await
            .unwrap(),
        Fence::Refused
    );
    assert_eq!(
        store
            .complete(&sk(key), &stranger.token, response(r#"{"n":3}"#), HOUR)
            .await
            .unwrap(),
        Fence::Refused
    );
    assert_eq!(server.get(key).unwrap(), completed);

    // Ownership is the exact beginning of the value: the same PROCESSING record anywhere
    // else in it (here after a space) is not this claim's lock.
    let shifted = [b" ".as_slice(), &again.to_processing().to_json()].concat();
    server.set(key, &shifted);
    assert_eq!(
        store.release(&sk(key), &again.token).await.unwrap(),
        Fence::Refused
    );
    assert_eq!(
        store
            .complete(&sk(key), &again.token, response(r#"{"n":4}"#), HOUR)
            .await
            .unwrap(),
        Fence::Refused
    );
    assert_eq!(server.get(key).unwrap(), shifted);
}

#[tokio::test]
async fn an_expired_lock_is_taken_over_and_fences_its_old_owner() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let key = "idempotency:orders:takeover";
    let lock_ttl = Duration::from_millis(100);
    let old = claim(lock_ttl);
    assert!(is_claimed(&store.claim(&sk(key), &old).await.unwrap()));
    // Time has to pass for Redis to expire the PROCESSING record (PX lock_ttl): wait just
    // past it.
    tokio::time::sleep(lock_ttl + Duration::from_millis(50)).await;
    assert_eq!(server.get(key), None, "expired by Redis");

    let new = claim(MINUTE);
    assert!(
        is_claimed(&store.claim(&sk(key), &new).await.unwrap()),
        "the dead owner's lock is taken over"
    );
    refuses(&store, key, &old.token).await;
    assert_eq!(server.get(key).unwrap(), new.to_processing().to_json());
    assert_eq!(
        store
            .complete(&sk(key), &new.token, response("{}"), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
}

#[tokio::test]
async fn a_late_finisher_stores_if_nobody_claimed_since() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let key = "idempotency:orders:late";
    let lock_ttl = Duration::from_millis(100);
    let slow = claim(lock_ttl);
    assert!(is_claimed(&store.claim(&sk(key), &slow).await.unwrap()));
    // Let Redis expire the lock (PX lock_ttl), as for a handler slower than lock_ttl.
    tokio::time::sleep(lock_ttl + Duration::from_millis(50)).await;
    assert_eq!(
        store
            .complete(&sk(key), &slow.token, response(r#"{"late":true}"#), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
    match store.claim(&sk(key), &claim(MINUTE)).await.unwrap() {
        ClaimOutcome::Existing(Record::Completed(r)) => {
            assert_eq!(&r.body[..], br#"{"late":true}"#)
        }
        other => panic!("expected the late result, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_32_concurrent_claims_wins() {
    let server = RedisServer::start();
    let one: Arc<dyn IdempotencyStore> = Arc::new(connect(&server).await);
    let other: Arc<dyn IdempotencyStore> = Arc::new(connect(&server).await);
    for round in 0..20 {
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
}

#[tokio::test]
async fn spring_records_replay_with_default_headers() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    server.set(
        "idempotency:orders:spring-null",
        br#"{"statusCode":201,"body":"{\"id\":7}","bodyHash":null}"#,
    );
    server.set(
        "idempotency:orders:spring-hash",
        format!(r#"{{"statusCode":200,"body":"{{\"ok\":true}}","bodyHash":"{hash}"}}"#).as_bytes(),
    );

    match store
        .claim(&sk("idempotency:orders:spring-null"), &claim(MINUTE))
        .await
        .unwrap()
    {
        ClaimOutcome::Existing(Record::Completed(r)) => {
            assert_eq!(r.status, StatusCode::CREATED);
            assert_eq!(&r.body[..], br#"{"id":7}"#);
            assert_eq!(r.headers, None);
            assert_eq!(r.fingerprint, None);
        }
        other => panic!("expected a completed record, got {other:?}"),
    }
    match store
        .claim(&sk("idempotency:orders:spring-hash"), &claim(MINUTE))
        .await
        .unwrap()
    {
        ClaimOutcome::Existing(Record::Completed(r)) => {
            assert_eq!(r.status, StatusCode::OK);
            assert_eq!(&r.body[..], br#"{"ok":true}"#);
            assert_eq!(r.headers, None);
            assert_eq!(r.fingerprint.as_deref(), Some(hash));
        }
        other => panic!("expected a completed record, got {other:?}"),
    }
    // A Spring record is nobody's lock.
    assert_eq!(
        store
            .release(&sk("idempotency:orders:spring-null"), &Token::generate())
            .await
            .unwrap(),
        Fence::Refused
    );
}

#[tokio::test]
async fn undecodable_values_are_store_errors_and_stay_untouched() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let garbage: [&[u8]; 10] = [
        b"not json",
        br#"{"statusCode":201,"bo"#,
        br#"{"statusCode":"201","body":"x"}"#,
        br#"{"statusCode":99,"body":"x"}"#,
        br#"{"body":"x"}"#,
        br#"{"state":"PROCESSING"}"#,
        br#"{"state":"PROCESSING","token":42}"#,
        b"[]",
        b"",
        b"\xff\xfe\x00",
    ];
    for (i, value) in garbage.iter().enumerate() {
        let key = format!("idempotency:garbage:{i}");
        server.set(&key, value);
        let shown = String::from_utf8_lossy(value);
        let outcome = store.claim(&sk(&key), &claim(MINUTE)).await;
        assert!(
            outcome.is_err(),
            "{shown:?} must be a store error, got {outcome:?}"
        );
        let token = Token::generate();
        assert_eq!(
            store
                .complete(&sk(&key), &token, response("{}"), HOUR)
                .await
                .unwrap(),
            Fence::Refused,
            "{shown:?}"
        );
        assert_eq!(
            store.release(&sk(&key), &token).await.unwrap(),
            Fence::Refused,
            "{shown:?}"
        );
        assert_eq!(
            server.get(&key).as_deref(),
            Some(*value),
            "{shown:?} left alone"
        );
        println!(
            "undecodable {shown:?}: {}",
            outcome.err().map(|e| e.to_string()).unwrap_or_default()
        );
    }

    // A key of another type: every operation is an error, nothing changes.
    let key = "idempotency:garbage:hash";
    redis::cmd("HSET")
        .arg(key)
        .arg("f")
        .arg("v")
        .query::<()>(&mut server.connection())
        .unwrap();
    let token = Token::generate();
    assert!(store.claim(&sk(key), &claim(MINUTE)).await.is_err());
    assert!(
        store
            .complete(&sk(key), &token, response("{}"), HOUR)
            .await
            .is_err()
    );
    assert!(store.release(&sk(key), &token).await.is_err());
    let kind: String = redis::cmd("TYPE")
        .arg(key)
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(kind, "hash");
}

fn names(seen: &[support::redis::Seen]) -> Vec<&str> {
    seen.iter().map(|s| s.name.as_str()).collect()
}

#[tokio::test]
async fn renew_extends_only_its_own_live_claim_in_one_command() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let mut monitor = Monitor::start(&server).await;
    let key = "idempotency:lease:k";
    let owner = claim(Duration::from_millis(300));
    assert!(is_claimed(&store.claim(&sk(key), &owner).await.unwrap()));
    assert!(server.pttl(key) <= 300);

    let stranger = Token::generate();
    assert_eq!(
        store.renew(&sk(key), &stranger, MINUTE).await.unwrap(),
        Fence::Refused
    );
    assert!(
        server.pttl(key) <= 300,
        "a stranger's renewal changes nothing"
    );

    let (fence, seen) = monitor
        .commands_during(store.renew(&sk(key), &owner.token, MINUTE))
        .await;
    assert_eq!(fence.unwrap(), Fence::Applied);
    assert_eq!(names(&seen), ["EVALSHA"], "renew: {seen:#?}");
    let pttl = server.pttl(key);
    assert!(
        pttl > 50_000,
        "the lease now runs for lock_ttl from the renewal: PTTL {pttl}"
    );

    // A completed record is not a lease: renewing it is refused and leaves its ttl alone.
    assert_eq!(
        store
            .complete(&sk(key), &owner.token, response("{}"), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
    assert_eq!(
        store.renew(&sk(key), &owner.token, MINUTE).await.unwrap(),
        Fence::Refused
    );
    assert!(server.pttl(key) > MINUTE.as_millis() as i64);
    // An absent key is not renewed into existence.
    assert_eq!(
        store
            .renew(&sk("idempotency:lease:absent"), &owner.token, MINUTE)
            .await
            .unwrap(),
        Fence::Refused
    );
    assert_eq!(server.get("idempotency:lease:absent"), None);
}

#[tokio::test]
async fn each_operation_is_one_command() {
    let server = RedisServer::start();
    let mut monitor = Monitor::start(&server).await;
    let (store, seen) = monitor.commands_during(connect(&server)).await;
    println!("connect: {:?}", names(&seen));
    assert_eq!(
        names(&seen).iter().filter(|n| **n == "SCRIPT").count(),
        4,
        "the scripts (claim, complete, release, renew) are loaded at connect"
    );

    let key = "idempotency:orders:counted";
    let first = hashed_claim(&"ab".repeat(32));
    let (outcome, seen) = monitor.commands_during(store.claim(&sk(key), &first)).await;
    assert!(is_claimed(&outcome.unwrap()));
    assert_eq!(names(&seen), ["SET"], "claim of a fresh key: {seen:#?}");
    assert!(
        seen[0].line.ends_with(r#""NX" "GET" "PX" "60000""#),
        "one SET NX GET PX lock_ttl: {seen:#?}"
    );

    let (outcome, seen) = monitor
        .commands_during(store.claim(&sk(key), &hashed_claim(&"ab".repeat(32))))
        .await;
    assert!(processing_token(&outcome.unwrap()).is_some());
    assert_eq!(names(&seen), ["SET"], "conflict: {seen:#?}");

    let (outcome, seen) = monitor
        .commands_during(store.claim(&sk(key), &hashed_claim(&"cd".repeat(32))))
        .await;
    assert!(processing_token(&outcome.unwrap()).is_some());
    assert_eq!(
        names(&seen),
        ["SET"],
        "mismatch (decided by the caller on the record returned): {seen:#?}"
    );

    let (fence, seen) = monitor
        .commands_during(store.complete(&sk(key), &first.token, response("{}"), HOUR))
        .await;
    assert_eq!(fence.unwrap(), Fence::Applied);
    assert_eq!(names(&seen), ["EVALSHA"], "complete: {seen:#?}");

    let (outcome, seen) = monitor
        .commands_during(store.claim(&sk(key), &claim(MINUTE)))
        .await;
    assert!(matches!(
        outcome.unwrap(),
        ClaimOutcome::Existing(Record::Completed(_))
    ));
    assert_eq!(
        names(&seen),
        ["SET"],
        "claim of a completed key (replay): {seen:#?}"
    );

    let other = claim(MINUTE);
    store
        .claim(&sk("idempotency:orders:released"), &other)
        .await
        .unwrap();
    let (fence, seen) = monitor
        .commands_during(store.release(&sk("idempotency:orders:released"), &other.token))
        .await;
    assert_eq!(fence.unwrap(), Fence::Applied);
    assert_eq!(names(&seen), ["EVALSHA"], "release: {seen:#?}");
    println!(
        "claim, conflict, mismatch, replay: 1 command each (SET); complete, release: 1 each (EVALSHA)"
    );
}

#[tokio::test]
async fn a_forgotten_script_is_sent_again_once() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let claims: Vec<(String, Claim)> = (0..3)
        .map(|i| (format!("idempotency:x:{i}"), claim(MINUTE)))
        .collect();
    for (key, claim) in &claims {
        assert!(is_claimed(&store.claim(&sk(key), claim).await.unwrap()));
    }
    let mut monitor = Monitor::start(&server).await;
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut server.connection())
        .unwrap();

    let (fence, seen) = monitor
        .commands_during(store.complete(
            &sk(&claims[0].0),
            &claims[0].1.token,
            response("{}"),
            HOUR,
        ))
        .await;
    assert_eq!(fence.unwrap(), Fence::Applied);
    assert_eq!(
        names(&seen),
        ["EVALSHA", "EVAL"],
        "NOSCRIPT, then the source once: {seen:#?}"
    );
    let (fence, seen) = monitor
        .commands_during(store.complete(
            &sk(&claims[1].0),
            &claims[1].1.token,
            response("{}"),
            HOUR,
        ))
        .await;
    assert_eq!(fence.unwrap(), Fence::Applied);
    assert_eq!(names(&seen), ["EVALSHA"], "cached again by EVAL: {seen:#?}");
    let (fence, seen) = monitor
        .commands_during(store.release(&sk(&claims[2].0), &claims[2].1.token))
        .await;
    assert_eq!(fence.unwrap(), Fence::Applied);
    assert_eq!(
        names(&seen),
        ["EVALSHA", "EVAL"],
        "each script is sent again on its own first call: {seen:#?}"
    );
}

#[tokio::test]
async fn a_server_that_refuses_set_nx_get_gets_the_claim_script() {
    let server = RedisServer::start();
    let old = Redis62Proxy::start(&server).await;
    let store = RedisStore::connect(&old.url())
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", old.url()));
    let mut monitor = Monitor::start(&server).await;
    let key = "idempotency:old:1";

    // The first claim meets `ERR syntax error` and makes the same claim with the script.
    let first = claim(MINUTE);
    let (outcome, seen) = monitor.commands_during(store.claim(&sk(key), &first)).await;
    assert!(is_claimed(&outcome.unwrap()));
    assert_eq!(old.refused(), 1, "SET … NX GET was tried, and refused");
    assert_eq!(
        names(&seen),
        ["EVALSHA"],
        "then the claim script, in the same call: {seen:#?}"
    );
    assert_eq!(server.get(key).unwrap(), first.to_processing().to_json());
    let pttl = server.pttl(key);
    assert!(pttl > 0 && pttl <= 60_000, "PTTL {pttl}");

    // Later claims, by clones too, go straight to the script.
    let clone = store.clone();
    let (outcome, seen) = monitor
        .commands_during(clone.claim(&sk(key), &claim(MINUTE)))
        .await;
    assert_eq!(processing_token(&outcome.unwrap()), Some(&first.token));
    assert_eq!(names(&seen), ["EVALSHA"], "conflict: {seen:#?}");
    assert_eq!(
        store
            .complete(&sk(key), &first.token, response(r#"{"old":1}"#), HOUR)
            .await
            .unwrap(),
        Fence::Applied
    );
    let (outcome, seen) = monitor
        .commands_during(store.claim(&sk(key), &claim(MINUTE)))
        .await;
    match outcome.unwrap() {
        ClaimOutcome::Existing(Record::Completed(r)) => assert_eq!(&r.body[..], br#"{"old":1}"#),
        other => panic!("expected the completed record, got {other:?}"),
    }
    assert_eq!(names(&seen), ["EVALSHA"], "replay: {seen:#?}");

    // A forgotten claim script is sent again, as the others are.
    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query::<()>(&mut server.connection())
        .unwrap();
    let (outcome, seen) = monitor
        .commands_during(store.claim(&sk("idempotency:old:2"), &claim(MINUTE)))
        .await;
    assert!(is_claimed(&outcome.unwrap()));
    assert_eq!(names(&seen), ["EVALSHA", "EVAL"], "{seen:#?}");
    assert_eq!(old.refused(), 1, "SET … NX GET was not tried again");

    // A store that claims with SET NX GET and one that claims with the script exclude each
    // other, as the old and new servers of a cluster being upgraded would.
    let old: Arc<dyn IdempotencyStore> = Arc::new(store);
    let new: Arc<dyn IdempotencyStore> = Arc::new(connect(&server).await);
    for round in 0..5 {
        race(
            &[old.clone(), new.clone()],
            &format!("idempotency:race:mixed-{round}"),
        )
        .await;
    }
}

#[tokio::test]
async fn an_error_answer_to_a_claim_does_not_switch_claims_to_the_script() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let mut monitor = Monitor::start(&server).await;
    redis::cmd("HSET")
        .arg("idempotency:e:hash")
        .arg("f")
        .arg("v")
        .query::<()>(&mut server.connection())
        .unwrap();
    server.set("idempotency:e:garbage", b"not json");

    for key in ["idempotency:e:hash", "idempotency:e:garbage"] {
        let (outcome, seen) = monitor
            .commands_during(store.claim(&sk(key), &claim(MINUTE)))
            .await;
        let error = outcome.err().unwrap_or_else(|| panic!("{key}: no error"));
        println!("{key}: {error}");
        assert!(!error.is_indeterminate(), "Redis answered: {error}");
        assert_eq!(names(&seen), ["SET"], "{key}: {seen:#?}");
    }
    let (outcome, seen) = monitor
        .commands_during(store.claim(&sk("idempotency:e:fresh"), &claim(MINUTE)))
        .await;
    assert!(is_claimed(&outcome.unwrap()));
    assert_eq!(names(&seen), ["SET"], "still SET NX GET: {seen:#?}");
}

/// What a loaded machine may add on top of a deadline. A test that pins "fails within the
/// deadline rather than hanging" allows this much more, so that a busy 2-core CI running the
/// test late does not fail it; how long the call took is printed.
const SLACK: Duration = Duration::from_secs(2);

/// How soon the store must be usable again, by itself, once Redis is back. Its reconnection
/// backoff tops out at `reconnect_max_delay` (500 ms, plus up to 100 % jitter), so it takes
/// a second or two at most; the rest is margin for a loaded machine. How long it took is
/// printed.
const RESUMES_WITHIN: Duration = Duration::from_secs(10);

/// Claims fresh keys until one succeeds; returns how long that took. Fails the test if the
/// store has not resumed within `within`.
async fn time_to_resume(store: &RedisStore, within: Duration) -> (Duration, usize) {
    let start = Instant::now();
    let mut failures = 0;
    loop {
        match store
            .claim(
                &sk(&format!(
                    "idempotency:resume:{}",
                    Token::generate().as_str()
                )),
                &claim(MINUTE),
            )
            .await
        {
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
    }
}

#[tokio::test]
async fn connecting_to_nothing_fails_fast() {
    let mut server = RedisServer::start();
    let url = server.url();
    server.kill();
    let start = Instant::now();
    let result = RedisStore::connect(&url).await;
    let elapsed = start.elapsed();
    let error = result.err().map(|e| e.to_string()).unwrap_or_default();
    println!("connect to a closed port: error after {elapsed:?}: {error}");
    // Fails on the first attempt, with its cause, rather than retrying until the connect
    // deadline (which would end in "no answer within"): the cause pins that. The bound only
    // pins that it does not hang: the deadline, plus a margin a loaded machine meets.
    assert!(error.contains("refused"), "the cause is reported: {error}");
    let options = RedisOptions::default();
    let deadline = options.connection_timeout + options.timeout;
    assert!(elapsed < deadline + SLACK, "{elapsed:?}");

    let start = Instant::now();
    let result = RedisClusterStore::connect([url.as_str()]).await;
    let elapsed = start.elapsed();
    let error = result.err().map(|e| e.to_string()).unwrap_or_default();
    println!("cluster connect to a closed port: error after {elapsed:?}: {error}");
    assert!(!error.is_empty());
    // As above: the cause shows it failed at once rather than at the deadline; the bound
    // pins only that it does not hang.
    assert!(error.contains("refused"), "the cause is reported: {error}");
    assert!(elapsed < deadline + SLACK, "{elapsed:?}");
}

#[tokio::test]
async fn connecting_to_a_frozen_server_fails_within_the_deadline() {
    let server = RedisServer::start();
    server.pause();
    let start = Instant::now();
    let result = RedisStore::connect(&server.url()).await;
    let elapsed = start.elapsed();
    let error = result.err().map(|e| e.to_string()).unwrap_or_default();
    println!("connect to a frozen server: error after {elapsed:?}: {error}");
    let options = RedisOptions::default();
    assert!(!error.is_empty());
    // The behaviour under test: connecting fails by its deadline (`connection_timeout +
    // timeout`) instead of hanging on a server that accepts but never answers; the margin
    // is for a loaded machine.
    assert!(
        elapsed < options.connection_timeout + options.timeout + SLACK,
        "{elapsed:?}"
    );
    server.resume();
}

#[tokio::test]
async fn a_killed_server_is_an_error_within_the_timeout_and_the_store_resumes() {
    let mut server = RedisServer::start();
    let store = connect(&server).await;
    let timeout = RedisOptions::default().timeout;
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
        println!(
            "killed: claim {i} failed after {elapsed:?}: {}",
            result
                .as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        );
        assert!(result.is_err());
        slowest = slowest.max(elapsed);
    }
    println!("killed: slowest failing claim {slowest:?} (timeout {timeout:?})");
    // The behaviour under test: a call to a dead server fails within the store's timeout
    // instead of hanging; the margin is for a loaded machine.
    assert!(
        slowest < timeout + SLACK,
        "slowest failing claim: {slowest:?}"
    );

    // Recovery under traffic: claims run back to back from the restart on.
    server.restart();
    // The store resumes by itself: time_to_resume fails the test past RESUMES_WITHIN.
    let (resumed, failures) = time_to_resume(&store, RESUMES_WITHIN).await;
    println!("killed: resumed {resumed:?} after the restart ({failures} failed claims meanwhile)");

    // Recovery without traffic: a longer outage nobody asks about, then one call.
    server.kill();
    assert!(
        store
            .claim(&sk("idempotency:k:noticed"), &claim(MINUTE))
            .await
            .is_err()
    );
    // The outage has to last for a while (several reconnection attempts) for this case.
    tokio::time::sleep(Duration::from_secs(2)).await;
    server.restart();
    // As above: resumes by itself, within RESUMES_WITHIN.
    let (resumed, failures) = time_to_resume(&store, RESUMES_WITHIN).await;
    println!(
        "killed 2 s, idle: resumed {resumed:?} after the restart ({failures} failed claims meanwhile)"
    );
}

#[tokio::test]
async fn a_frozen_server_times_out_and_the_store_resumes_when_it_thaws() {
    let server = RedisServer::start();
    let store = connect(&server).await;
    let mut monitor = Monitor::start(&server).await;
    let timeout = RedisOptions::default().timeout;
    let warm = claim(MINUTE);
    assert!(is_claimed(
        &store.claim(&sk("idempotency:f:warm"), &warm).await.unwrap()
    ));

    let late = claim(MINUTE);
    let ((), seen) = monitor
        .commands_during(async {
            server.pause();
            let start = Instant::now();
            let result = store.claim(&sk("idempotency:f:late"), &late).await;
            let elapsed = start.elapsed();
            let indeterminate = result.as_ref().err().is_some_and(|e| e.is_indeterminate());
            let error = result.err().map(|e| e.to_string()).unwrap_or_default();
            println!("SIGSTOP: claim failed after {elapsed:?}: {error}");
            assert!(!error.is_empty());
            assert!(indeterminate, "a claim sent but unanswered may still land");
            // The behaviour under test: the call waits out its timeout (the lower bound)
            // and then fails rather than hanging (the upper bound, with a margin for a
            // loaded machine).
            assert!(
                elapsed >= timeout && elapsed < timeout + SLACK,
                "{elapsed:?}"
            );
            let start = Instant::now();
            let result = store
                .complete(&sk("idempotency:f:warm"), &warm.token, response("{}"), HOUR)
                .await;
            println!("SIGSTOP: complete failed after {:?}", start.elapsed());
            assert!(result.is_err());

            server.resume();
            // The store resumes by itself once Redis thaws: time_to_resume fails the test
            // past RESUMES_WITHIN.
            let (resumed, failures) = time_to_resume(&store, RESUMES_WITHIN).await;
            println!(
                "SIGCONT: resumed {resumed:?} after the thaw ({failures} failed claims meanwhile)"
            );
            // The claim that timed out ran once Redis thawed: it holds the key until the
            // engine's fenced release (tested over HTTP) or lock_ttl.
            assert!(
                server
                    .get("idempotency:f:late")
                    .is_some_and(|v| String::from_utf8_lossy(&v).contains(late.token.as_str())),
                "the late claim landed"
            );
            assert_eq!(
                store
                    .release(&sk("idempotency:f:late"), &late.token)
                    .await
                    .unwrap(),
                Fence::Applied
            );
        })
        .await;
    let late_token = late.token.as_str();
    let touching: Vec<&str> = seen
        .iter()
        .filter(|s| s.line.contains(late_token))
        .map(|s| if s.name == "SET" { "claim" } else { "release" })
        .collect();
    println!("SIGCONT: commands carrying the late claim's token: {touching:?}");
    assert_eq!(touching.first(), Some(&"claim"));
    assert!(touching.contains(&"release"));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_store_claims_completes_replays_and_fences() {
    let cluster = RedisCluster::start(3);
    let store = RedisClusterStore::connect(cluster.urls())
        .await
        .unwrap_or_else(|e| panic!("connect to the cluster: {e}"));
    for i in 0..30 {
        let key = format!("idempotency:orders:cluster-{i}");
        let owner = claim(MINUTE);
        let stranger = claim(MINUTE);
        assert!(
            is_claimed(&store.claim(&sk(&key), &owner).await.unwrap()),
            "{key}"
        );
        assert_eq!(
            processing_token(&store.claim(&sk(&key), &stranger).await.unwrap()),
            Some(&owner.token)
        );
        assert_eq!(
            store
                .complete(&sk(&key), &stranger.token, response("{}"), HOUR)
                .await
                .unwrap(),
            Fence::Refused
        );
        assert_eq!(
            store.release(&sk(&key), &stranger.token).await.unwrap(),
            Fence::Refused
        );
        assert_eq!(
            store
                .complete(&sk(&key), &owner.token, response(r#"{"ok":1}"#), HOUR)
                .await
                .unwrap(),
            Fence::Applied
        );
        match store.claim(&sk(&key), &stranger).await.unwrap() {
            ClaimOutcome::Existing(Record::Completed(r)) => assert_eq!(&r.body[..], br#"{"ok":1}"#),
            other => panic!("expected the completed record on {key}, got {other:?}"),
        }
        assert_eq!(
            store.release(&sk(&key), &owner.token).await.unwrap(),
            Fence::Refused
        );
    }
    // The keys landed on every master.
    let mut holders = HashSet::new();
    for node in cluster.nodes() {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("idempotency:*")
            .query(&mut node.connection())
            .unwrap();
        if !keys.is_empty() {
            holders.insert(node.port());
        }
        println!("cluster node {}: {} keys", node.port(), keys.len());
    }
    assert_eq!(holders.len(), 3, "keys spread over the 3 masters");

    let store: Arc<dyn IdempotencyStore> = Arc::new(store);
    let other: Arc<dyn IdempotencyStore> =
        Arc::new(RedisClusterStore::connect(cluster.urls()).await.unwrap());
    for round in 0..5 {
        race(
            &[store.clone(), other.clone()],
            &format!("idempotency:race:cluster-{round}"),
        )
        .await;
    }
}

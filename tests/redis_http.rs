//! The README's behaviour table on Redis, over real HTTP and a real `redis-server`: every
//! row, exactly-once across two app instances sharing one Redis, the round trips per path
//! counted with `MONITOR`, and Redis killed, frozen and restarted under traffic with
//! `fail_open` on and off.
//!
//! Timings are printed; run with `--nocapture` to see them.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use idempotent_runtime::Idempotency;
use idempotent_runtime::fingerprint::sha256_hex;
use idempotent_runtime::store::redis::RedisStore;
use serde_json::{Value, json};
use support::app::{Server, WithoutRenewal, client, eventually, problem_code};
use support::orders::{AppState, routes};
use support::redis::{Monitor, RedisServer, Seen};

/// One app instance on Redis. Instances built with the same `state` share its handler-run
/// counter, as one service's replicas share a database.
struct App {
    server: Server,
    state: AppState,
    idem: Idempotency,
    http: reqwest::Client,
}

impl App {
    async fn on(redis: &RedisServer) -> App {
        App::with_state(redis, AppState::default()).await
    }

    async fn with_state(redis: &RedisServer, state: AppState) -> App {
        let idem = Idempotency::redis(&redis.url())
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", redis.url()));
        App::serving(idem, state).await
    }

    /// An instance whose store cannot renew leases: a running handler's lock expires.
    async fn without_renewal(redis: &RedisServer) -> App {
        let store = RedisStore::connect(&redis.url())
            .await
            .unwrap_or_else(|e| panic!("connect to {}: {e}", redis.url()));
        App::serving(Idempotency::new(WithoutRenewal(store)), AppState::default()).await
    }

    async fn serving(idem: Idempotency, state: AppState) -> App {
        let app = routes().layer(idem.clone()).with_state(state.clone());
        App {
            server: Server::start(app).await,
            state,
            idem,
            http: client(),
        }
    }

    fn runs(&self) -> usize {
        self.state.probe.runs()
    }

    /// A keyed `GET`, with the given `If-None-Match`.
    async fn read(&self, path: &str, key: &str, if_none_match: Option<&str>) -> reqwest::Response {
        let mut request = self
            .http
            .get(self.server.url(path))
            .header("Idempotency-Key", key);
        if let Some(tags) = if_none_match {
            request = request.header("If-None-Match", tags);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    async fn send(&self, path: &str, key: Option<&str>, body: Value) -> reqwest::Response {
        let mut request = self.http.post(self.server.url(path)).json(&body);
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }
}

fn replayed(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true")
}

fn stored_json(redis: &RedisServer, key: &str) -> Value {
    let raw = redis
        .get(key)
        .unwrap_or_else(|| panic!("no record under {key}"));
    serde_json::from_slice(&raw).unwrap_or_else(|e| panic!("record under {key}: {e}"))
}

fn names(seen: &[Seen]) -> Vec<&str> {
    seen.iter().map(|s| s.name.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_key_runs_once_then_replays_conflicts_and_mismatches() {
    let redis = RedisServer::start();
    let app = Arc::new(App::on(&redis).await);
    let key = "idempotency:orders:k-1";

    // New key: PROCESSING while the handler runs.
    let first = {
        let app = app.clone();
        tokio::spawn(async move {
            app.send("/orders", Some("k-1"), json!({"hold": true}))
                .await
        })
    };
    app.state.probe.wait_started().await;
    let processing = stored_json(&redis, key);
    assert_eq!(processing["state"], "PROCESSING");
    // What a Spring aspect sharing the Redis reads: an in-progress 409, not a null status.
    assert_eq!(processing["statusCode"], 409);
    let pttl = redis.pttl(key);
    assert!(
        pttl > 0 && pttl <= 60_000,
        "PROCESSING lives lock_ttl: {pttl}"
    );

    // Same key while PROCESSING: 409 with Retry-After; with another body: 422.
    let conflict = app
        .send("/orders", Some("k-1"), json!({"hold": true}))
        .await;
    assert!(conflict.headers().get("retry-after").is_some());
    let (status, code, _) = problem_code(conflict).await;
    assert_eq!(
        (status, code.as_str()),
        (409, "idempotency_request_in_progress")
    );
    let (status, code, _) =
        problem_code(app.send("/orders", Some("k-1"), json!({"note": "x"})).await).await;
    assert_eq!((status, code.as_str()), (422, "idempotency_key_reused"));

    app.state.probe.open(1);
    let first = first.await.unwrap_or_else(|e| panic!("first request: {e}"));
    assert_eq!(first.status(), 201);
    assert!(!replayed(&first));
    let first_body: Value = first.json().await.unwrap();

    // COMPLETED, as the Spring aspect reads it, living `ttl`.
    let completed = stored_json(&redis, key);
    assert_eq!(completed["statusCode"], 201);
    assert_eq!(completed["body"], first_body.to_string());
    assert_eq!(
        completed["bodyHash"],
        sha256_hex(br#"{"hold":true}"#).as_str()
    );
    assert!(redis.pttl(key) > 24 * 3600 * 1000 - 60_000);

    // Same key, same body: the stored response, with its replayable headers only.
    for _ in 0..3 {
        let retry = app
            .send("/orders", Some("k-1"), json!({"hold": true}))
            .await;
        assert_eq!(retry.status(), 201);
        assert!(replayed(&retry));
        assert_eq!(retry.headers()["location"], "/orders/1");
        assert_eq!(retry.headers()["content-type"], "application/json");
        assert!(retry.headers().get("set-cookie").is_none());
        assert_eq!(retry.json::<Value>().await.unwrap(), first_body);
    }
    // Same key, different body: 422, store unchanged.
    let before = redis.get(key);
    let reused = app.send("/orders", Some("k-1"), json!({"note": "b"})).await;
    let (status, code, detail) = problem_code(reused).await;
    assert_eq!((status, code.as_str()), (422, "idempotency_key_reused"));
    assert_eq!(
        detail,
        "Idempotency key 'k-1' was already used with a different request body"
    );
    assert_eq!(redis.get(key), before);
    assert_eq!(app.runs(), 1);
}

#[tokio::test]
async fn missing_and_malformed_keys_never_reach_redis() {
    let redis = RedisServer::start();
    let app = App::on(&redis).await;
    let mut monitor = Monitor::start(&redis).await;
    let ((), seen) = monitor
        .commands_during(async {
            let (status, code, detail) =
                problem_code(app.send("/orders", None, json!({})).await).await;
            assert_eq!((status, code.as_str()), (400, "idempotency_key_missing"));
            assert_eq!(
                detail,
                "Missing required idempotency header: Idempotency-Key"
            );
            for bad in ["", "\"unbalanced", &"k".repeat(256)] {
                let (status, code, _) =
                    problem_code(app.send("/orders", Some(bad), json!({})).await).await;
                assert_eq!(
                    (status, code.as_str()),
                    (400, "idempotency_key_invalid"),
                    "{bad:?}"
                );
            }
            for _ in 0..2 {
                assert_eq!(app.send("/optional", None, json!({})).await.status(), 201);
            }
        })
        .await;
    assert_eq!(
        names(&seen),
        Vec::<&str>::new(),
        "no command for a missing or invalid key"
    );
    assert_eq!(
        app.runs(),
        2,
        "only the optional route ran, without idempotency"
    );
    assert_eq!(redis.dbsize(), 0);

    // A quoted key is the bare key.
    assert_eq!(
        app.send("/orders", Some("\"abc\""), json!({}))
            .await
            .status(),
        201
    );
    assert!(redis.get("idempotency:orders:abc").is_some());
    assert!(replayed(&app.send("/orders", Some("abc"), json!({})).await));
}

#[tokio::test]
async fn round_trips_per_request_are_those_of_section_6() {
    let redis = RedisServer::start();
    let app = Arc::new(App::on(&redis).await);
    let mut monitor = Monitor::start(&redis).await;

    let (response, seen) = monitor
        .commands_during(app.send("/orders", Some("rt"), json!({"note": "a"})))
        .await;
    assert_eq!(response.status(), 201);
    assert_eq!(
        names(&seen),
        ["SET", "EVALSHA"],
        "first execution: claim + complete"
    );

    let (response, seen) = monitor
        .commands_during(app.send("/orders", Some("rt"), json!({"note": "a"})))
        .await;
    assert!(replayed(&response));
    assert_eq!(names(&seen), ["SET"], "replay");

    let (response, seen) = monitor
        .commands_during(app.send("/orders", Some("rt"), json!({"note": "b"})))
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(names(&seen), ["SET"], "mismatch");

    let held = {
        let app = app.clone();
        tokio::spawn(async move {
            app.send("/orders", Some("rt-held"), json!({"hold": true}))
                .await
                .status()
        })
    };
    app.state.probe.wait_started().await;
    let (response, seen) = monitor
        .commands_during(app.send("/orders", Some("rt-held"), json!({"hold": true})))
        .await;
    assert_eq!(response.status(), 409);
    assert_eq!(names(&seen), ["SET"], "conflict");
    app.state.probe.open(1);
    assert_eq!(held.await.unwrap(), 201);

    let (response, seen) = monitor
        .commands_during(app.send("/orders", Some("rt-400"), json!({"status": 400})))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(names(&seen), ["SET", "EVALSHA"], "non-2xx: claim + release");

    let (response, seen) = monitor
        .commands_during(app.send("/orders", None, json!({})))
        .await;
    assert_eq!(response.status(), 400);
    assert_eq!(names(&seen), Vec::<&str>::new(), "missing key");

    // A keyed read revalidated with If-None-Match: the 304 costs what a replay costs.
    let first = app.read("/reports/rt", "rt-read", None).await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let (response, seen) = monitor
        .commands_during(app.read("/reports/rt", "rt-read", Some(&etag)))
        .await;
    assert_eq!(response.status(), 304);
    assert_eq!(names(&seen), ["SET"], "304");
    println!(
        "round trips over HTTP: first run 2, replay 1, mismatch 1, conflict 1, non-2xx 2, missing key 0, 304 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_replays_the_same_etag_and_answers_304() {
    let redis = RedisServer::start();
    let state = AppState::default();
    let one = App::with_state(&redis, state.clone()).await;
    let two = App::with_state(&redis, state).await;
    let first = one.read("/reports/shared", "shared-read", None).await;
    assert_eq!(first.status(), 200);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let body = first.bytes().await.unwrap();

    let replay = two.read("/reports/shared", "shared-read", None).await;
    assert!(replayed(&replay));
    assert_eq!(replay.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(replay.headers()["vary"], "idempotency-key");
    assert_eq!(replay.bytes().await.unwrap(), body);
    let revalidated = two
        .read("/reports/shared", "shared-read", Some(&format!("W/{etag}")))
        .await;
    assert_eq!(revalidated.status(), 304);
    assert_eq!(revalidated.headers()["etag"].to_str().unwrap(), etag);
    assert_eq!(one.runs(), 1, "the handler ran once, on the first instance");
    // What the record holds: the tag, as a replayable header, in the Spring-compatible JSON.
    let record = stored_json(&redis, "idempotency:reports:shared-read");
    assert!(record["statusCode"] == 200);
    assert!(
        record["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "etag" && h[1] == etag.as_str()),
        "{record}"
    );
}

#[tokio::test]
async fn a_non_2xx_answer_or_a_panic_frees_the_key() {
    let redis = RedisServer::start();
    let app = App::on(&redis).await;
    for _ in 0..2 {
        let failed = app
            .send("/orders", Some("k-400"), json!({"status": 400}))
            .await;
        assert_eq!(failed.status(), 400);
        assert!(!replayed(&failed));
        assert_eq!(redis.get("idempotency:orders:k-400"), None);
    }
    for _ in 0..2 {
        let (status, code, _) = problem_code(
            app.send("/orders", Some("k-panic"), json!({"panic": true}))
                .await,
        )
        .await;
        assert_eq!(
            (status, code.as_str()),
            (500, "idempotency_handler_panicked")
        );
        assert_eq!(redis.get("idempotency:orders:k-panic"), None);
    }
    assert_eq!(app.runs(), 4, "each retry ran again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_still_gets_its_result_stored() {
    let redis = RedisServer::start();
    let app = Arc::new(App::on(&redis).await);
    let request = {
        let app = app.clone();
        tokio::spawn(async move {
            app.send("/orders", Some("gone"), json!({"hold": true}))
                .await
        })
    };
    app.state.probe.wait_started().await;
    request.abort();
    assert!(request.await.is_err(), "the client went away");
    app.state.probe.open(1);
    eventually(
        "the detached handler's response is stored",
        Duration::from_secs(10),
        || async {
            redis
                .get("idempotency:orders:gone")
                .is_some_and(|v| v.starts_with(b"{\"statusCode\":201"))
        },
    )
    .await;
    let retry = app
        .send("/orders", Some("gone"), json!({"hold": true}))
        .await;
    assert!(replayed(&retry));
    assert_eq!(app.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_older_than_lock_ttl_is_taken_over_and_its_owner_fenced() {
    let redis = RedisServer::start();
    // Without lease renewal, the lock of a running handler expires after lock_ttl, as when
    // its owner has died (with renewal, see the next test).
    let app = Arc::new(App::without_renewal(&redis).await);
    let slow = {
        let app = app.clone();
        tokio::spawn(async move {
            app.send("/short", Some("stale"), json!({"hold": true}))
                .await
        })
    };
    app.state.probe.wait_started().await;
    // The route's lock_ttl is 300 ms: let Redis expire the PROCESSING record, as when its
    // owner has died.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(redis.get("idempotency:short:stale"), None);

    let second = app
        .send("/short", Some("stale"), json!({"hold": false}))
        .await;
    assert_eq!(second.status(), 201);
    let second_body: Value = second.json().await.unwrap();
    app.state.probe.open(1);
    let slow = slow.await.unwrap_or_else(|e| panic!("slow request: {e}"));
    assert_eq!(
        slow.status(),
        201,
        "the late owner still answers its client"
    );
    assert_ne!(slow.json::<Value>().await.unwrap(), second_body);
    // Its completion was refused: the record is the second request's.
    let retry = app
        .send("/short", Some("stale"), json!({"hold": false}))
        .await;
    assert!(replayed(&retry));
    assert_eq!(retry.json::<Value>().await.unwrap(), second_body);
    assert_eq!(app.runs(), 2);
    assert_eq!(app.idem.metrics().fenced_writes, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_running_three_lock_ttls_keeps_its_claim_and_runs_once() {
    let redis = RedisServer::start();
    let app = Arc::new(App::on(&redis).await);
    let slow = {
        let app = app.clone();
        tokio::spawn(async move {
            app.send("/short", Some("slow"), json!({"hold": true}))
                .await
        })
    };
    app.state.probe.wait_started().await;
    // Three lock_ttls (300 ms each) pass while the handler runs: the passing of time is
    // what is tested. The lease is renewed every 150 ms.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let record = stored_json(&redis, "idempotency:short:slow");
    assert_eq!(record["state"], "PROCESSING");
    let pttl = redis.pttl("idempotency:short:slow");
    assert!(
        pttl > 0 && pttl <= 300,
        "a renewed lease of lock_ttl: PTTL {pttl}"
    );
    let (status, code, _) = problem_code(
        app.send("/short", Some("slow"), json!({"hold": true}))
            .await,
    )
    .await;
    assert_eq!(
        (status, code.as_str()),
        (409, "idempotency_request_in_progress")
    );
    assert!(
        app.idem.metrics().lease_renewals >= 2,
        "{:?}",
        app.idem.metrics()
    );
    app.state.probe.open(1);
    let first = slow.await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let retry = app
        .send("/short", Some("slow"), json!({"hold": true}))
        .await;
    assert!(replayed(&retry));
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    assert_eq!(app.runs(), 1);
}

#[tokio::test]
async fn records_written_by_spring_replay() {
    let redis = RedisServer::start();
    let app = App::on(&redis).await;
    // Spring without includeBody: no fingerprint, no headers. Replayed whatever the body,
    // as JSON.
    redis.set(
        "idempotency:orders:spring-1",
        br#"{"statusCode":200,"body":"{\"from\":\"spring\"}","bodyHash":null}"#,
    );
    let replay = app
        .send("/orders", Some("spring-1"), json!({"note": "anything"}))
        .await;
    assert_eq!(replay.status(), 200);
    assert!(replayed(&replay));
    assert_eq!(replay.headers()["content-type"], "application/json");
    assert_eq!(
        replay.json::<Value>().await.unwrap(),
        json!({"from": "spring"})
    );

    // Spring with includeBody: the same body replays, another one is 422.
    let body = json!({"note": "a"});
    let hash = sha256_hex(body.to_string().as_bytes());
    redis.set(
        "idempotency:orders:spring-2",
        format!(r#"{{"statusCode":201,"body":"{{\"id\":99}}","bodyHash":"{hash}"}}"#).as_bytes(),
    );
    let replay = app.send("/orders", Some("spring-2"), body).await;
    assert_eq!(replay.status(), 201);
    assert!(replayed(&replay));
    assert_eq!(replay.json::<Value>().await.unwrap(), json!({"id": 99}));
    let (status, code, _) = problem_code(
        app.send("/orders", Some("spring-2"), json!({"note": "b"}))
            .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (422, "idempotency_key_reused"));

    // Written with include_body = false: any body replays.
    assert_eq!(
        app.send("/unhashed", Some("u-1"), json!({"note": "a"}))
            .await
            .status(),
        201
    );
    assert_eq!(
        stored_json(&redis, "idempotency:unhashed:u-1")["bodyHash"],
        Value::Null
    );
    assert!(replayed(
        &app.send("/unhashed", Some("u-1"), json!({"note": "b"}))
            .await
    ));
    assert_eq!(app.runs(), 1);
}

#[tokio::test]
async fn an_undecodable_record_is_an_outage() {
    let redis = RedisServer::start();
    let app = App::on(&redis).await;
    redis.set("idempotency:orders:junk", b"{\"statusCode\":");
    redis.set("idempotency:closed:junk", b"not json");
    let open = app.send("/orders", Some("junk"), json!({})).await;
    assert_eq!(open.status(), 201, "fail-open runs the handler");
    let (status, code, _) = problem_code(app.send("/closed", Some("junk"), json!({})).await).await;
    assert_eq!(
        (status, code.as_str()),
        (503, "idempotency_store_unavailable")
    );
    assert_eq!(
        redis.get("idempotency:orders:junk").as_deref(),
        Some(&b"{\"statusCode\":"[..])
    );
    assert_eq!(app.runs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_two_requests_over_two_instances_run_the_handler_once() {
    let redis = RedisServer::start();
    let state = AppState::default();
    let a = Arc::new(App::with_state(&redis, state.clone()).await);
    let b = Arc::new(App::with_state(&redis, state.clone()).await);
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..32 {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        requests.spawn(async move {
            let response = app
                .send("/orders", Some("storm"), json!({"hold": true}))
                .await;
            let status = response.status().as_u16();
            let retry_after = response.headers().get("retry-after").is_some();
            (status, retry_after)
        });
    }
    // While the one handler is held, the 31 others come back 409.
    for _ in 0..31 {
        let (status, retry_after) =
            tokio::time::timeout(Duration::from_secs(10), requests.join_next())
                .await
                .unwrap_or_else(|_| panic!("31 requests answered while the handler is held"))
                .unwrap_or_else(|| panic!("a request"))
                .unwrap_or_else(|e| panic!("a request task: {e}"));
        assert_eq!((status, retry_after), (409, true));
    }
    state.probe.open(1);
    let (status, _) = requests
        .join_next()
        .await
        .unwrap_or_else(|| panic!("the first"))
        .unwrap_or_else(|e| panic!("task: {e}"));
    assert_eq!(status, 201);
    assert_eq!(state.probe.runs(), 1);
    // Both instances replay it now.
    assert!(replayed(
        &a.send("/orders", Some("storm"), json!({"hold": true}))
            .await
    ));
    assert!(replayed(
        &b.send("/orders", Some("storm"), json!({"hold": true}))
            .await
    ));
}

/// How soon idempotency must come back by itself once Redis is back. The store's
/// reconnection backoff tops out at 500 ms (plus up to 100 % jitter), so it takes a second
/// or two at most; the rest is margin for a loaded machine. How long it took is printed.
const RESUMES_WITHIN: Duration = Duration::from_secs(10);

/// Until a fresh key is stored through `app` and replayed: how long idempotency took to
/// come back. Fails the test past `RESUMES_WITHIN`.
async fn time_to_resume(app: &App, since: Instant) -> Duration {
    for attempt in 0u64.. {
        let key = format!("resume-{attempt}");
        let first = app.send("/orders", Some(&key), json!({})).await;
        assert!(first.status().is_success(), "fail-open keeps answering");
        if !replayed(&first) && replayed(&app.send("/orders", Some(&key), json!({})).await) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < RESUMES_WITHIN,
            "idempotency did not resume within {RESUMES_WITHIN:?}"
        );
    }
    unreachable!()
}

/// An app on `redis` that has served one request, so that its connection is up.
async fn serving(redis: &RedisServer) -> App {
    let app = App::on(redis).await;
    assert_eq!(
        app.send("/orders", Some("before"), json!({}))
            .await
            .status(),
        201
    );
    app
}

/// During an outage: fail-open routes run the handler (2xx, nothing stored), fail-closed
/// routes answer 503 with Retry-After, each within the store's deadline.
async fn during_outage(app: &App, label: &str) {
    let mut slowest = Duration::ZERO;
    for i in 0..4 {
        let key = format!("{label}-{i}");
        let runs = app.runs();
        let start = Instant::now();
        let open = app.send("/orders", Some(&key), json!({})).await;
        slowest = slowest.max(start.elapsed());
        assert_eq!(open.status(), 201, "fail_open = true runs the handler");
        assert!(!replayed(&open));
        assert_eq!(app.runs(), runs + 1);

        let start = Instant::now();
        let closed = app.send("/closed", Some(&key), json!({})).await;
        slowest = slowest.max(start.elapsed());
        assert!(closed.headers().get("retry-after").is_some());
        let (status, code, _) = problem_code(closed).await;
        assert_eq!(
            (status, code.as_str()),
            (503, "idempotency_store_unavailable")
        );
        assert_eq!(app.runs(), runs + 1, "fail_open = false runs nothing");
    }
    println!("redis {label}: slowest answer {slowest:?}");
    // The behaviour under test: during an outage every answer comes by the store deadline
    // (the engine's, 300 ms by default) instead of hanging; the margin is for a loaded
    // machine, and covers the HTTP round trip and the handler.
    assert!(
        slowest < idempotent_runtime::DEFAULT_STORE_TIMEOUT + Duration::from_secs(2),
        "{slowest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_then_restarted_fails_open_or_closed_then_resumes() {
    let mut redis = RedisServer::start();
    let app = serving(&redis).await;

    redis.kill();
    during_outage(&app, "killed").await;

    redis.restart();
    // Idempotency resumes by itself: time_to_resume fails the test past RESUMES_WITHIN.
    let resumed = time_to_resume(&app, Instant::now()).await;
    println!("redis restarted: idempotency resumed after {resumed:?}");
    // Nothing was written for the requests that ran during the outage.
    assert_eq!(redis.get("idempotency:orders:killed-0"), None);
    let metrics = app.idem.metrics();
    println!(
        "redis killed: store errors {}, fail-open runs {}, fail-closed 503s {}",
        metrics.store_errors, metrics.fail_open_runs, metrics.fail_closed_rejections
    );
    assert!(metrics.fail_open_runs >= 4 && metrics.fail_closed_rejections >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_then_thawed_fails_open_or_closed_then_resumes_with_keys_free() {
    let redis = RedisServer::start();
    let app = serving(&redis).await;

    redis.pause();
    during_outage(&app, "frozen").await;

    redis.resume();
    let thawed = Instant::now();
    // As above: resumes by itself, within RESUMES_WITHIN.
    let resumed = time_to_resume(&app, thawed).await;
    println!("redis thawed: idempotency resumed after {resumed:?}");
    // The claims sent while Redis was frozen ran once it thawed; they were released, so
    // the keys are free: a retry runs the handler rather than meeting a 409.
    eventually(
        "the late claims are released",
        Duration::from_secs(5),
        || async {
            (0..4).all(|i| {
                redis
                    .get(&format!("idempotency:orders:frozen-{i}"))
                    .is_none()
                    && redis
                        .get(&format!("idempotency:closed:frozen-{i}"))
                        .is_none()
            })
        },
    )
    .await;
    println!(
        "redis thawed: late claims released after {:?}",
        thawed.elapsed()
    );
    let retry = app.send("/orders", Some("frozen-0"), json!({})).await;
    assert_eq!(retry.status(), 201);
    assert!(!replayed(&retry));
}

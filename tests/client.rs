//! `idempotent-client` against the real orders example, through a proxy that loses
//! answers, resets connections and answers statuses of its own. Timing is checked on a
//! paused tokio clock: a retry's wait is virtual time, so the defaults (base 1 s, cap 8 s)
//! cost nothing and the waits can be measured exactly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

#[allow(dead_code)]
#[path = "../examples/orders.rs"]
mod orders;
#[allow(dead_code)]
#[path = "../examples/orders_client.rs"]
mod orders_client;
mod support;

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use idempotent_client::{ErrorKind, ProblemCode, RequestBuilderExt, RetryPolicy};
use idempotent_runtime::Idempotency;
use proptest::prelude::*;
use serde_json::{Value, json};
use support::app::Server;
use support::faulty_proxy::{Fault, FaultyProxy, Incoming};

/// How much virtual time may pass besides the waits themselves: none is spent on I/O, and a
/// timer fires on the millisecond tick after its deadline.
const TICK: Duration = Duration::from_millis(5);

/// The orders example with the in-memory store, and a proxy in front of it.
async fn start(
    plan: impl Fn(&Incoming<'_>) -> Fault + Send + Sync + 'static,
) -> (Server, FaultyProxy) {
    let server = Server::start(orders::app(
        Idempotency::memory(),
        orders::AppState::default(),
    ))
    .await;
    let proxy = FaultyProxy::start(server.addr, plan).await;
    (server, proxy)
}

/// How many times the orders handler ran.
async fn order_runs(server: &Server) -> u64 {
    let stats: Value = reqwest::get(server.url("/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    stats["orders"].as_u64().unwrap()
}

fn order(proxy: &FaultyProxy, amount: i64) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(proxy.url("/orders"))
        .json(&json!({ "amount": amount }))
}

fn id_of(body: &[u8]) -> u64 {
    serde_json::from_slice::<Value>(body).unwrap()["id"]
        .as_u64()
        .unwrap()
}

/// The waits between the attempts with `key`, as the proxy saw them arrive.
fn gaps(proxy: &FaultyProxy, key: &str) -> Vec<Duration> {
    let seen = proxy.seen_for(key);
    seen.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test(start_paused = true)]
async fn through_lost_answers_resets_and_503s_every_order_runs_once_and_keeps_its_first_id() {
    const ORDERS: usize = 20;
    // Every logical order meets every fault, in this order, and succeeds on its last attempt.
    let (server, proxy) = start(|req| match req.nth {
        0 => Fault::DropResponse,
        1 => Fault::Reset,
        2 => Fault::unavailable(),
        3 => Fault::DropResponse,
        _ => Fault::Forward,
    })
    .await;

    let sent = futures_util::future::join_all(
        (0..ORDERS).map(|i| order(&proxy, 100 + i as i64).idempotent().send()),
    )
    .await;

    let mut keys = HashSet::new();
    let mut ids = HashSet::new();
    for (i, outcome) in sent.into_iter().enumerate() {
        let outcome = outcome.unwrap();
        assert_eq!(outcome.status(), 201);
        assert_eq!(outcome.attempts(), 5);
        assert!(outcome.replayed(), "the final answer is the stored one");
        let key = outcome.key().to_owned();
        let body: Value = outcome.into_response().json().await.unwrap();
        assert_eq!(body["amount"], 100 + i as i64);

        // The server ran the order on the first attempt, whose answer was lost; every
        // attempt carried the same key and the same body, and the client got that order.
        let seen = proxy.seen_for(&key);
        assert_eq!(seen.len(), 5);
        assert!(seen.iter().all(|s| s.body == seen[0].body));
        let first = seen[0].upstream.as_ref().unwrap();
        assert_eq!(first.status, 201);
        assert_eq!(body["id"].as_u64(), Some(id_of(&first.body)));
        let replayed = seen[3].upstream.as_ref().unwrap();
        assert_eq!(id_of(&replayed.body), id_of(&first.body));

        assert!(keys.insert(key));
        assert!(ids.insert(body["id"].as_u64().unwrap()));
    }
    assert_eq!(keys.len(), ORDERS);
    assert_eq!(order_runs(&server).await, ORDERS as u64);
    assert_eq!(proxy.seen().len(), ORDERS * 5);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_the_wait_up_to_the_cap_in_seconds_or_as_a_date() {
    let far = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    let past = "Sun, 06 Nov 1994 08:49:37 GMT";
    let (server, proxy) = start(move |req| match (req.key, req.nth) {
        (Some("three"), 0) => Fault::retry_after("3"),
        (Some("thirty"), 0) => Fault::retry_after("30"),
        (Some("in-an-hour"), 0) => Fault::retry_after(far.clone()),
        (Some("in-the-past"), 0) => Fault::retry_after(past),
        (Some("ignored"), 0) => Fault::retry_after("3"),
        _ => Fault::Forward,
    })
    .await;

    let send = |key: &'static str, policy: RetryPolicy| {
        order(&proxy, 10)
            .idempotent()
            .key(key)
            .policy(policy)
            .send()
    };
    let cap = RetryPolicy::new().cap;
    for (key, wait) in [
        ("three", Duration::from_secs(3)),
        ("thirty", cap),
        ("in-an-hour", cap),
        ("in-the-past", Duration::ZERO),
    ] {
        let outcome = send(key, RetryPolicy::new()).await.unwrap();
        assert_eq!((outcome.status().as_u16(), outcome.attempts()), (201, 2));
        let gap = gaps(&proxy, key)[0];
        assert!(
            gap >= wait && gap < wait + TICK,
            "{key}: waited {gap:?}, not {wait:?}"
        );
    }

    // Not honoured: the backoff's first wait, base plus jitter below base.
    let policy = RetryPolicy::new().honour_retry_after(false);
    let base = policy.base;
    send("ignored", policy).await.unwrap();
    let gap = gaps(&proxy, "ignored")[0];
    assert!(gap >= base && gap < base * 2 + TICK, "waited {gap:?}");
    assert_eq!(order_runs(&server).await, 5);
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_grow_within_the_formula_and_the_attempts_run_out() {
    let (server, proxy) = start(|req| match (req.key, req.nth) {
        (Some("recovers"), 0 | 2) => Fault::Reset,
        (Some("recovers"), 1 | 3) => Fault::unavailable(),
        (Some("never"), _) => Fault::unavailable(),
        _ => Fault::Forward,
    })
    .await;
    let policy = RetryPolicy::new();

    let outcome = order(&proxy, 10)
        .idempotent()
        .key("recovers")
        .send()
        .await
        .unwrap();
    assert_eq!((outcome.status().as_u16(), outcome.attempts()), (201, 5));
    let waits = gaps(&proxy, "recovers");
    assert_eq!(waits.len(), 4);
    for (retry, &wait) in waits.iter().enumerate() {
        // min(cap, base * 2^retry) + random(0, base): 1-2 s, 2-3 s, 4-5 s, 8-9 s.
        let floor = policy.backoff_floor(retry as u32);
        assert_eq!(floor, Duration::from_secs([1, 2, 4, 8][retry]));
        assert!(
            wait >= floor && wait < floor + policy.base + TICK,
            "retry {retry} waited {wait:?}"
        );
    }
    assert!(waits.is_sorted(), "{waits:?}");

    let error = order(&proxy, 10)
        .idempotent()
        .key("never")
        .policy(policy.clone().max_attempts(3))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
    assert_eq!((error.attempts(), error.key()), (3, "never"));
    assert!(error.is_retryable());
    assert_eq!(proxy.seen_for("never").len(), 3);
    assert_eq!(order_runs(&server).await, 1);
}

#[tokio::test(start_paused = true)]
async fn only_409_429_502_503_504_and_transport_errors_are_retried() {
    let (server, proxy) = start(|req| match (req.key, req.nth) {
        (Some(key), 0) => match key.split_once('-') {
            Some(("status", code)) => Fault::Answer(code.parse().unwrap(), None),
            _ => Fault::Forward,
        },
        _ => Fault::Forward,
    })
    .await;
    let mut runs = 0;
    for code in [409, 429, 502, 503, 504] {
        let outcome = order(&proxy, 10)
            .idempotent()
            .key(format!("status-{code}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (outcome.status().as_u16(), outcome.attempts()),
            (201, 2),
            "{code}"
        );
        runs += 1;
    }
    for code in [400, 401, 403, 404, 405, 413, 418, 422, 451, 500, 501, 505] {
        let error = order(&proxy, 10)
            .idempotent()
            .key(format!("status-{code}"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(error.status().map(|s| s.as_u16()), Some(code));
        assert_eq!(error.attempts(), 1, "{code} is final");
        assert!(!error.is_retryable());
        assert_eq!(
            error.response().unwrap().body().as_ref(),
            format!("the proxy answers {code}").as_bytes()
        );
        assert!(error.problem().is_none(), "text/plain is not a problem");
    }
    assert_eq!(order_runs(&server).await, runs);
}

#[tokio::test]
async fn a_400_and_a_422_from_the_server_are_final_and_carry_their_problem() {
    let (server, proxy) = start(|_| Fault::Forward).await;

    // amount 0: the handler answers 400 (not a problem document), once.
    let error = order(&proxy, 0).idempotent().send().await.unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(400));
    assert_eq!(error.attempts(), 1);
    assert!(error.problem().is_none());
    let body: Value = serde_json::from_slice(error.response().unwrap().body()).unwrap();
    assert_eq!(body["error"], "amount must be positive");
    assert_eq!(proxy.seen_for(error.key()).len(), 1);
    assert_eq!(order_runs(&server).await, 1);

    // The same key with another body: 422 idempotency_key_reused, not retried.
    let created = order(&proxy, 10)
        .idempotent()
        .key("reused")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let error = order(&proxy, 11)
        .idempotent()
        .key("reused")
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(422));
    assert_eq!((error.attempts(), error.key()), (1, "reused"));
    assert_eq!(error.problem_code(), Some(ProblemCode::KeyReused));
    let problem = error.problem().unwrap();
    assert_eq!(problem.status, Some(422));
    assert_eq!(problem.type_uri, ProblemCode::KeyReused.type_uri());
    assert!(problem.detail.as_deref().unwrap().contains("'reused'"));
    assert!(
        error.to_string().contains("idempotency_key_reused"),
        "{error}"
    );
    assert_eq!(proxy.seen_for("reused").len(), 2);
    assert_eq!(order_runs(&server).await, 2);
}

#[tokio::test]
async fn an_invalid_key_is_refused_before_anything_is_sent() {
    let (server, proxy) = start(|_| Fault::Forward).await;
    for bad in [
        String::new(),
        "k".repeat(256),
        "caf\u{e9}".to_owned(),
        "\"open".to_owned(),
    ] {
        let error = order(&proxy, 10)
            .idempotent()
            .key(bad.clone())
            .send()
            .await
            .unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::InvalidKey(_)),
            "{bad:?}: {error}"
        );
        assert_eq!((error.attempts(), error.key()), (0, bad.as_str()));
    }
    // A key already in the request is checked the same way.
    let error = order(&proxy, 10)
        .header("idempotency-key", "")
        .idempotent()
        .send()
        .await
        .unwrap_err();
    assert!(matches!(error.kind(), ErrorKind::InvalidKey(_)));
    assert!(proxy.seen().is_empty());
    assert_eq!(order_runs(&server).await, 0);

    // A valid one in the request is the key.
    let outcome = order(&proxy, 10)
        .header("idempotency-key", "from-the-request")
        .idempotent()
        .send()
        .await
        .unwrap();
    assert_eq!(outcome.key(), "from-the-request");
    assert_eq!(proxy.seen_for("from-the-request").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_streamed_body_is_sent_once_and_a_buffered_one_on_every_attempt() {
    use axum::body::Bytes;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    // A server that is always unavailable, and counts the bodies it received whole.
    let received = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&received);
    let server = Server::start(axum::Router::new().route(
        "/",
        axum::routing::post(move |body: Bytes| {
            let counter = Arc::clone(&counter);
            async move {
                assert_eq!(&body[..], b"streamed");
                counter.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            }
        }),
    ))
    .await;
    let http = reqwest::Client::new();

    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"stream")),
        Ok(Bytes::from_static(b"ed")),
    ];
    let error = http
        .post(server.url("/"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .idempotent()
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503));
    assert_eq!(error.attempts(), 1);
    assert_eq!(received.load(Ordering::SeqCst), 1);

    let error = http
        .post(server.url("/"))
        .body("streamed")
        .idempotent()
        .policy(RetryPolicy::new().max_attempts(3))
        .send()
        .await
        .unwrap_err();
    assert_eq!(error.attempts(), 3);
    assert_eq!(received.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn orders_client_prints_one_line_per_order_and_exits_0_when_all_are_created() {
    // Every order's first answer is lost: the second attempt gets the stored order.
    let (server, proxy) = start(|req| match req.nth {
        0 => Fault::DropResponse,
        _ => Fault::Forward,
    })
    .await;
    let argv = [
        "--url",
        &proxy.url(""),
        "--orders",
        "8",
        "--amount=7",
        "--base-delay-ms",
        "1",
    ];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = orders_client::main_with(argv.map(str::to_owned), &mut out, &mut err).await;
    assert_eq!(code, ExitCode::SUCCESS, "{}", String::from_utf8_lossy(&err));

    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8);
    let mut keys = HashSet::new();
    for raw in lines {
        // The fields in the documented order.
        let at = |field: &str| raw.find(&format!("\"{field}\":")).unwrap();
        assert!(
            ["key", "status", "id", "attempts"].map(at).is_sorted(),
            "{raw}"
        );
        let line: orders_client::Line = serde_json::from_str(raw).unwrap();
        assert_eq!((line.status, line.attempts), (Some(201), 2), "{raw}");
        let first = proxy.seen_for(&line.key)[0].upstream.clone().unwrap();
        assert_eq!(line.id, Some(json!(id_of(&first.body))));
        assert!(keys.insert(line.key));
    }
    assert_eq!(order_runs(&server).await, 8);
}

#[tokio::test]
async fn orders_client_exits_1_when_an_order_is_not_created() {
    let (server, proxy) = start(|_| Fault::Forward).await;
    let argv = ["--url", &proxy.url("/"), "--orders", "3", "--amount", "0"];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = orders_client::main_with(argv.map(str::to_owned), &mut out, &mut err).await;
    assert_eq!(code, ExitCode::from(1));
    let lines: Vec<orders_client::Line> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|raw| serde_json::from_str(raw).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        assert_eq!(
            (line.status, &line.id, line.attempts),
            (Some(400), &None, 1)
        );
        assert!(!line.created());
    }
    assert_eq!(String::from_utf8(err).unwrap().lines().count(), 3);
    assert_eq!(order_runs(&server).await, 3);
}

#[tokio::test]
async fn orders_client_exits_2_on_flags_it_cannot_use() {
    let cases: [&[&str]; 12] = [
        &[],
        &["--orders", "1"],
        &["--url", "http://127.0.0.1:9"],
        &["--url", "ftp://127.0.0.1:9", "--orders", "1"],
        &["--url", "not a url", "--orders", "1"],
        &["--url", "http://127.0.0.1:9", "--orders", "0"],
        &["--url", "http://127.0.0.1:9", "--orders", "-3"],
        &[
            "--url",
            "http://127.0.0.1:9",
            "--orders",
            "1",
            "--amount",
            "1.5",
        ],
        &[
            "--url",
            "http://127.0.0.1:9",
            "--orders",
            "1",
            "--base-delay-ms",
            "soon",
        ],
        &[
            "--url",
            "http://127.0.0.1:9",
            "--orders",
            "1",
            "--orders",
            "2",
        ],
        &["--url", "http://127.0.0.1:9", "--orders", "1", "--verbose"],
        &["--url", "http://127.0.0.1:9", "--orders"],
    ];
    for argv in cases {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code =
            orders_client::main_with(argv.iter().map(|s| s.to_string()), &mut out, &mut err).await;
        assert_eq!(code, ExitCode::from(2), "{argv:?}");
        assert!(out.is_empty(), "{argv:?}");
        let err = String::from_utf8(err).unwrap();
        assert!(
            err.contains("usage: orders_client --url URL --orders N"),
            "{err}"
        );
    }

    let parsed = orders_client::parse_args(
        [
            "--url=http://127.0.0.1:3000",
            "--orders=5",
            "--base-delay-ms",
            "250",
        ]
        .map(str::to_owned),
    )
    .unwrap();
    assert_eq!(parsed.url.as_str(), "http://127.0.0.1:3000/");
    assert_eq!(
        (parsed.orders, parsed.amount, parsed.base_delay),
        (5, 100, Some(Duration::from_millis(250)))
    );
}

proptest! {
    /// The delay before retry `n` is `min(cap, base * 2^n) + random(0, base)`, whatever the
    /// policy, computed here in 128-bit integers.
    #[test]
    fn backoff_is_the_formula(
        base_ns in prop_oneof![0u64..2_000, 0u64..20_000_000_000],
        cap_ns in 0u64..120_000_000_000,
        retry in 0u32..200,
    ) {
        let policy = RetryPolicy::new()
            .base(Duration::from_nanos(base_ns))
            .cap(Duration::from_nanos(cap_ns));
        let exp_ns = 1u128
            .checked_shl(retry)
            .and_then(|factor| u128::from(base_ns).checked_mul(factor))
            .unwrap_or(if base_ns == 0 { 0 } else { u128::MAX })
            .min(u128::from(cap_ns));
        let floor = Duration::from_nanos(u64::try_from(exp_ns).unwrap());
        prop_assert_eq!(policy.backoff_floor(retry), floor);
        let base = Duration::from_nanos(base_ns);
        for _ in 0..50 {
            let delay = policy.backoff(retry);
            prop_assert!(delay >= floor, "{:?} < {:?}", delay, floor);
            prop_assert!(delay < floor + base || base.is_zero() && delay == floor);
        }
        // A longer `Retry-After` waits the cap; a shorter one, itself.
        let cap = Duration::from_nanos(cap_ns);
        prop_assert_eq!(policy.retry_delay(retry, Some(cap * 2 + Duration::from_nanos(1))), cap);
        prop_assert_eq!(policy.retry_delay(retry, Some(cap / 2)), cap / 2);
    }
}

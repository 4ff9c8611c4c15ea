//! The chaos suite: two app instances sharing one private Redis, a shuffled retry storm over
//! both, and in the middle Redis paused for seconds, then killed and restarted.
//!
//! Run it with `cargo test --test chaos -- --nocapture` to see the report; RELIABILITY.md
//! explains the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::{Idempotency, idempotent};
use serde::Deserialize;
use serde_json::{Value, json};
use support::app::{Server, client};
use support::redis::RedisServer;

#[derive(Clone, Default)]
struct Ledger {
    next_id: Arc<AtomicU64>,
    runs: Arc<Mutex<HashMap<String, u64>>>,
}

#[derive(Deserialize)]
struct Order {
    key: String,
    amount: u64,
}

#[idempotent(key_prefix = "chaos", include_body = true, lock_ttl = "10s")]
async fn place(
    State(ledger): State<Ledger>,
    Json(order): Json<Order>,
) -> (StatusCode, Json<Value>) {
    *ledger
        .runs
        .lock()
        .unwrap()
        .entry(order.key.clone())
        .or_default() += 1;
    // A little work, so that duplicates overlap the first run.
    tokio::time::sleep(Duration::from_millis(2)).await;
    let id = ledger.next_id.fetch_add(1, Ordering::SeqCst) + 1;
    (
        StatusCode::CREATED,
        Json(json!({ "id": id, "amount": order.amount })),
    )
}

async fn instance(url: &str, ledger: Ledger) -> Server {
    let idem = Idempotency::redis(url)
        .await
        .expect("connect to the private Redis");
    let app = Router::new()
        .route("/orders", post(place))
        .layer(idem)
        .with_state(ledger);
    Server::start(app).await
}

/// What the storm saw.
#[derive(Default)]
struct Tally {
    requests: u64,
    by_status: HashMap<u16, u64>,
    unanswered: u64,
    /// The distinct 2xx bodies each key was answered with.
    bodies: HashMap<String, HashSet<String>>,
    slowest: Duration,
}

impl Tally {
    fn server_errors(&self) -> u64 {
        self.by_status
            .iter()
            .filter(|(status, _)| **status >= 500)
            .map(|(_, n)| n)
            .sum()
    }

    fn keys_with_two_answers(&self) -> usize {
        self.bodies.values().filter(|b| b.len() > 1).count()
    }
}

/// Fire requests for random keys of `keys` from `workers` concurrent clients, alternating
/// the two instances, until `stop` is set (or `total` requests were sent).
async fn storm(
    urls: [String; 2],
    keys: Arc<Vec<String>>,
    workers: usize,
    total: Option<u64>,
    stop: Arc<AtomicBool>,
) -> Tally {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..workers {
        let (urls, keys, stop, tally, sent) = (
            urls.clone(),
            keys.clone(),
            stop.clone(),
            tally.clone(),
            sent.clone(),
        );
        tasks.spawn(async move {
            let http = client();
            let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ (worker as u64 + 1);
            loop {
                let n = sent.fetch_add(1, Ordering::SeqCst);
                if stop.load(Ordering::SeqCst) || total.is_some_and(|t| n >= t) {
                    return;
                }
                // xorshift: a shuffled, repeatable choice of key and instance.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let key = &keys[(seed % keys.len() as u64) as usize];
                let url = &urls[(n % 2) as usize];
                let started = Instant::now();
                let response = http
                    .post(url)
                    .header("Idempotency-Key", key)
                    .json(&json!({ "key": key, "amount": key.len() }))
                    .send()
                    .await;
                let elapsed = started.elapsed();
                let answer = match response {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        Ok((status, r.text().await.unwrap_or_default()))
                    }
                    Err(e) => Err(e),
                };
                let mut t = tally.lock().unwrap();
                t.requests += 1;
                t.slowest = t.slowest.max(elapsed);
                match answer {
                    Ok((status, body)) => {
                        *t.by_status.entry(status).or_default() += 1;
                        if (200..300).contains(&status) {
                            t.bodies.entry(key.clone()).or_default().insert(body);
                        }
                    }
                    Err(_) => t.unanswered += 1,
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Arc::try_unwrap(tally)
        .ok()
        .expect("every worker is done")
        .into_inner()
        .unwrap()
}

fn keys(prefix: &str, n: usize) -> Arc<Vec<String>> {
    Arc::new((0..n).map(|i| format!("{prefix}-{i}")).collect())
}

/// Until a fresh key is stored by one instance and replayed by the other.
async fn time_to_resume(urls: &[String; 2], since: Instant) -> Duration {
    let http = client();
    for attempt in 0u64.. {
        let key = format!("probe-{attempt}");
        let body = json!({ "key": key, "amount": 1 });
        let first = http
            .post(&urls[0])
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        let second = http
            .post(&urls[1])
            .header("Idempotency-Key", &key)
            .json(&body)
            .send()
            .await;
        if let (Ok(first), Ok(second)) = (first, second)
            && first.status() == 201
            && second.headers().get("idempotent-replayed").is_some()
        {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "idempotency did not resume within 30s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_storm_survives_pause_kill_and_restart() {
    let mut redis = RedisServer::start();
    let ledger = Ledger::default();
    let a = instance(&redis.url(), ledger.clone()).await;
    let b = instance(&redis.url(), ledger.clone()).await;
    let urls = [a.url("/orders"), b.url("/orders")];

    // 1. Healthy: 300 keys, 3000 requests, 48 concurrent clients over both instances.
    let healthy = keys("healthy", 300);
    let tally = storm(
        urls.clone(),
        healthy.clone(),
        48,
        Some(3000),
        Arc::default(),
    )
    .await;
    let runs = ledger.runs.lock().unwrap().clone();
    let touched: HashSet<&String> = tally.bodies.keys().collect();
    let healthy_runs: u64 = healthy
        .iter()
        .map(|k| runs.get(k).copied().unwrap_or(0))
        .sum();
    let distinct_run = healthy.iter().filter(|k| runs.contains_key(*k)).count();
    println!(
        "healthy phase: {} requests, statuses {:?}, unanswered {}, slowest {:?}",
        tally.requests, tally.by_status, tally.unanswered, tally.slowest
    );
    println!(
        "healthy phase: handler runs {healthy_runs} for {distinct_run} distinct keys; keys answered two ways: {}",
        tally.keys_with_two_answers()
    );
    assert_eq!(
        healthy_runs, distinct_run as u64,
        "exactly one run per key while Redis is healthy"
    );
    assert!(touched.len() <= distinct_run);
    assert_eq!(tally.keys_with_two_answers(), 0);
    assert_eq!((tally.server_errors(), tally.unanswered), (0, 0));

    // 2. Faults under traffic: pause Redis for 2 s, resume, then kill it for 1.5 s and
    //    restart it (empty) on the same port.
    let faulty = keys("faulty", 300);
    let stop = Arc::new(AtomicBool::new(false));
    let storm_task = tokio::spawn(storm(urls.clone(), faulty.clone(), 32, None, stop.clone()));
    let timeline = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.pause();
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.resume();
    let after_pause = time_to_resume(&urls, Instant::now()).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart();
    let after_restart = time_to_resume(&urls, Instant::now()).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::SeqCst);
    let tally = storm_task.await.unwrap();
    let runs = ledger.runs.lock().unwrap().clone();
    let fault_runs: u64 = faulty
        .iter()
        .map(|k| runs.get(k).copied().unwrap_or(0))
        .sum();
    let fault_keys = faulty.iter().filter(|k| runs.contains_key(*k)).count();
    println!(
        "fault phase ({:?}): {} requests, statuses {:?}, unanswered {}, slowest {:?}",
        timeline.elapsed(),
        tally.requests,
        tally.by_status,
        tally.unanswered,
        tally.slowest
    );
    println!(
        "fault phase: handler runs {fault_runs} for {fault_keys} distinct keys; keys answered two ways: {}",
        tally.keys_with_two_answers()
    );
    println!(
        "idempotency resumed {after_pause:?} after SIGCONT and {after_restart:?} after the restart"
    );
    assert_eq!(
        tally.server_errors(),
        0,
        "fail-open: no 5xx during the faults"
    );
    assert_eq!(
        tally.unanswered, 0,
        "every request is answered during the faults"
    );
    // The behaviour under test: idempotency comes back by itself after each fault, without
    // restarting the app. The store's reconnection backoff tops out at 500 ms (plus up to
    // 100 % jitter), so it takes a second or two at most even under the storm; 10 s is the
    // margin a loaded machine meets. The figures are printed above.
    let resumes_within = Duration::from_secs(10);
    assert!(
        after_pause < resumes_within && after_restart < resumes_within,
        "resumed {after_pause:?} after SIGCONT, {after_restart:?} after the restart"
    );
}

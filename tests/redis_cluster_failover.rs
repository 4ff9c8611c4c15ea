//! A Redis Cluster failover under load: three masters with a replica each, an app on
//! `RedisClusterStore`, a steady stream of keyed orders (each retried with the same key once
//! its first answer is in) and retries of orders completed earlier; mid-run one master is
//! killed (`SIGKILL`), and the load goes on until its replica has taken over and claims
//! succeed again. Run on a fresh cluster each time: without and with the local cache of
//! completed records, counting the keys whose handler ran twice (through fail-open), and
//! once more with `cluster-require-full-coverage no`, under which the surviving masters
//! keep answering during the failover.
//!
//! Run it with `cargo test --test redis_cluster_failover -- --nocapture` to see the report;
//! RELIABILITY.md explains the figures.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt;
use idempotent_runtime::store::redis::RedisClusterStore;
use idempotent_runtime::store::{Claim, ClaimOutcome, IdempotencyStore, StoreKey, Token};
use idempotent_runtime::{Idempotency, idempotent};
use serde::Deserialize;
use serde_json::{Value, json};
use support::app::{Server, client};
use support::redis::{RedisCluster, cluster_state, info_field};

const PREFIX: &str = "failover";
/// Orders completed (and replicated) before the run: retried while the master is down.
const EARLIER: usize = 300;
/// The most orders the run starts (it stops well before, [`AFTER_RECOVERY`] orders after
/// claims succeed again).
const MOST_ORDERS: usize = 4_000;
/// The master is killed when the run has started this many orders.
const KILL_AFTER: usize = 100;
/// Orders started once claims succeed again, before the run stops.
const AFTER_RECOVERY: usize = 100;
/// One new order every `ORDER_EVERY`, and one retry of an earlier order every
/// `RETRY_EVERY` (open loop, as clients arrive, whatever the answers' latency).
const ORDER_EVERY: Duration = Duration::from_millis(5);
const RETRY_EVERY: Duration = Duration::from_millis(10);
/// Orders and retries in flight at most.
const MAX_IN_FLIGHT: usize = 128;
/// How often the probes ask.
const PROBE_EVERY: Duration = Duration::from_millis(5);
/// The longest a failover may take before the test gives up: the behaviour under test is
/// that the cluster recovers at all (it takes seconds).
const RECOVER_WITHIN: Duration = Duration::from_secs(60);
/// Fresh orders after the run, each of which must be claimed, stored and replayed.
const CHECKS: usize = 60;

#[derive(Clone, Default)]
struct Ledger {
    next_id: Arc<AtomicU64>,
    runs: Arc<Mutex<HashMap<String, u32>>>,
}

impl Ledger {
    fn runs(&self, key: &str) -> u32 {
        self.runs.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

#[derive(Deserialize)]
struct Order {
    key: String,
}

#[idempotent(key_prefix = "failover", include_body = true, lock_ttl = "10s")]
async fn place(
    State(ledger): State<Ledger>,
    Json(order): Json<Order>,
) -> (StatusCode, Json<Value>) {
    *ledger.runs.lock().unwrap().entry(order.key).or_default() += 1;
    let id = ledger.next_id.fetch_add(1, Ordering::SeqCst) + 1;
    (StatusCode::CREATED, Json(json!({ "id": id })))
}

/// One HTTP answer: its status (`None`: no answer) and whether it was a replay.
#[derive(Debug, Clone, Copy)]
struct Answer {
    status: Option<u16>,
    replayed: bool,
    latency: Duration,
}

async fn send(http: &reqwest::Client, url: &str, key: &str) -> Answer {
    let started = Instant::now();
    let response = http
        .post(url)
        .header("Idempotency-Key", key)
        .json(&json!({ "key": key }))
        .send()
        .await;
    match response {
        Ok(r) => {
            let status = r.status().as_u16();
            let replayed = r.headers().get("idempotent-replayed").is_some();
            let ok = r.bytes().await.is_ok();
            Answer {
                status: ok.then_some(status),
                replayed,
                latency: started.elapsed(),
            }
        }
        Err(_) => Answer {
            status: None,
            replayed: false,
            latency: started.elapsed(),
        },
    }
}

/// An order: its first request, then (once answered) its retry.
async fn order(http: &reqwest::Client, url: &str, key: &str) -> [Answer; 2] {
    let first = send(http, url, key).await;
    let retry = send(http, url, key).await;
    [first, retry]
}

fn store_key(key: &str) -> StoreKey {
    StoreKey::new(PREFIX, None, key)
}

/// The port of the master that serves each key's slot.
fn owners(cluster: &RedisCluster, keys: &[String]) -> Vec<u16> {
    let by_slot = cluster.masters_by_slot();
    let store_keys: Vec<String> = keys
        .iter()
        .map(|k| store_key(k).as_str().to_owned())
        .collect();
    cluster
        .slots_of(&store_keys)
        .into_iter()
        .map(|slot| by_slot[usize::from(slot)])
        .collect()
}

/// A claim through the app's store: its latency and whether it succeeded.
async fn timed_claim(store: &RedisClusterStore, key: &str) -> (Duration, Result<(), String>) {
    let claim = Claim::new(Token::generate(), None, Duration::from_secs(10));
    let started = Instant::now();
    let outcome = store.claim(&store_key(key), &claim).await;
    let latency = started.elapsed();
    match outcome {
        Ok(ClaimOutcome::Claimed) => (latency, Ok(())),
        Ok(other) => (latency, Err(format!("not claimed: {other:?}"))),
        Err(e) => (latency, Err(e.to_string())),
    }
}

/// Claims on the healthy masters during the failover, by time since the kill.
#[derive(Default)]
struct HealthyClaims {
    /// (since the kill, latency, error)
    seen: Vec<(Duration, Duration, Option<String>)>,
}

impl HealthyClaims {
    fn failures(&self) -> impl Iterator<Item = &(Duration, Duration, Option<String>)> {
        self.seen.iter().filter(|(_, _, e)| e.is_some())
    }

    fn percentile(&self, p: f64) -> Duration {
        let mut latencies: Vec<Duration> = self.seen.iter().map(|(_, l, _)| *l).collect();
        latencies.sort();
        if latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((latencies.len() as f64 - 1.0) * p).round() as usize;
        latencies[rank]
    }

    /// From the first failure to the end of the last one, since the kill.
    fn failing(&self) -> Option<(Duration, Duration)> {
        let first = self.failures().map(|(at, _, _)| *at).min()?;
        let last = self.failures().map(|(at, l, _)| *at + *l).max()?;
        Some((first, last))
    }

    /// The distinct errors, with how often each was seen.
    fn errors(&self) -> Vec<(String, usize)> {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (_, _, e) in self.failures() {
            *counts.entry(e.clone().unwrap_or_default()).or_default() += 1;
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts
    }
}

/// What the servers said during the failover, by time since the kill.
#[derive(Default, Debug)]
struct ServerView {
    /// When a surviving master first and last said `cluster_state` other than `ok`.
    not_ok: Option<(Duration, Duration)>,
    /// When the killed master's replica first said it is a master.
    promoted: Option<Duration>,
}

/// Poll the surviving masters' `CLUSTER INFO` and the replica's role until `stop`.
fn watch_servers(
    masters: Vec<u16>,
    replica: u16,
    killed: Instant,
    stop: Arc<AtomicBool>,
) -> ServerView {
    let mut view = ServerView::default();
    while !stop.load(Ordering::SeqCst) {
        for &port in &masters {
            if cluster_state(port).as_deref() != Some("ok") {
                let at = killed.elapsed();
                view.not_ok = Some(view.not_ok.map_or((at, at), |(first, _)| (first, at)));
            }
        }
        if view.promoted.is_none()
            && info_field(replica, "replication", "role").as_deref() == Some("master")
        {
            view.promoted = Some(killed.elapsed());
        }
        std::thread::sleep(PROBE_EVERY);
    }
    view
}

/// The figures of one run.
struct Report {
    setup: Setup,
    earlier: usize,
    earlier_on_killed: usize,
    earlier_twice: usize,
    earlier_twice_on_killed: usize,
    earlier_retries: usize,
    orders: usize,
    orders_on_killed: usize,
    orders_twice: usize,
    orders_twice_on_killed: usize,
    /// Orders started between the kill and the recovery, and how many of them ran twice.
    outage_orders: usize,
    outage_orders_twice: usize,
    requests: usize,
    by_status: HashMap<Option<u16>, usize>,
    slowest: Duration,
    fail_open_runs: u64,
    store_errors: u64,
    recovered: Duration,
    server: ServerView,
    healthy: HealthyClaims,
}

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        100.0 * part as f64 / whole as f64
    }
}

impl Report {
    fn print(&self) {
        let cache = if self.setup.cached {
            "with the local cache"
        } else {
            "without the local cache"
        };
        let coverage = if self.setup.full_coverage {
            "cluster-require-full-coverage yes"
        } else {
            "cluster-require-full-coverage no"
        };
        println!("--- a master killed under load, {cache}, {coverage} ---");
        println!(
            "recovery: claims on the killed master's slots succeed again {} ms after the kill \
             (replica says master at {:?} ms; surviving masters' cluster_state not ok from {:?} ms)",
            self.recovered.as_millis(),
            self.server.promoted.map(|d| d.as_millis()),
            self.server
                .not_ok
                .map(|(a, b)| (a.as_millis(), b.as_millis())),
        );
        println!(
            "orders completed before the kill: {} ({} on the killed master), retried {} times \
             during the failover; ran twice: {} ({:.1} %), {} of them on the killed master",
            self.earlier,
            self.earlier_on_killed,
            self.earlier_retries,
            self.earlier_twice,
            pct(self.earlier_twice, self.earlier),
            self.earlier_twice_on_killed,
        );
        println!(
            "orders of the run: {} ({} on the killed master); ran twice: {} ({:.1} %), {} of \
             them on the killed master; started during the outage: {}, ran twice: {} ({:.1} %)",
            self.orders,
            self.orders_on_killed,
            self.orders_twice,
            pct(self.orders_twice, self.orders),
            self.orders_twice_on_killed,
            self.outage_orders,
            self.outage_orders_twice,
            pct(self.outage_orders_twice, self.outage_orders),
        );
        let keys = self.earlier + self.orders;
        let twice = self.earlier_twice + self.orders_twice;
        println!(
            "all keys: {keys}, ran twice: {twice} ({:.1} %)",
            pct(twice, keys)
        );
        let mut statuses: Vec<_> = self.by_status.iter().collect();
        statuses.sort();
        println!(
            "requests: {} {statuses:?}, slowest {} ms; fail_open_runs {}, store_errors {}",
            self.requests,
            self.slowest.as_millis(),
            self.fail_open_runs,
            self.store_errors,
        );
        let failing = self.healthy.failing();
        println!(
            "claims on the surviving masters during the failover: {}, failed {}, p50 {:.1} ms, \
             p99 {:.1} ms, max {:.1} ms; failing from {:?} to {:?} ms after the kill",
            self.healthy.seen.len(),
            self.healthy.failures().count(),
            self.healthy.percentile(0.5).as_secs_f64() * 1e3,
            self.healthy.percentile(0.99).as_secs_f64() * 1e3,
            self.healthy.percentile(1.0).as_secs_f64() * 1e3,
            failing.map(|(a, _)| a.as_millis()),
            failing.map(|(_, b)| b.as_millis()),
        );
        for (error, n) in self.healthy.errors() {
            println!("  {n} × {error}");
        }
        if let Some((from, to)) = self.server.not_ok {
            let phase = |lo: Duration, hi: Duration| {
                let seen: Vec<_> = self
                    .healthy
                    .seen
                    .iter()
                    .filter(|(at, _, _)| *at >= lo && *at < hi)
                    .collect();
                let ok: Vec<Duration> = seen
                    .iter()
                    .filter(|(_, _, e)| e.is_none())
                    .map(|(_, l, _)| *l)
                    .collect();
                format!(
                    "{} claims, {} failed, slowest success {:.1} ms",
                    seen.len(),
                    seen.len() - ok.len(),
                    ok.iter().max().copied().unwrap_or_default().as_secs_f64() * 1e3
                )
            };
            println!(
                "  before the survivors said fail: {}",
                phase(Duration::ZERO, from)
            );
            println!("  while they said fail: {}", phase(from, to));
            println!("  after: {}", phase(to, Duration::MAX));
        }
    }
}

/// How a run is set up.
#[derive(Clone, Copy)]
struct Setup {
    /// The app keeps completed records in a local cache.
    cached: bool,
    /// The cluster's `cluster-require-full-coverage` (Redis's default, `yes`: every master
    /// refuses every command while some slot has no master).
    full_coverage: bool,
}

/// One run on a fresh cluster.
async fn run(setup: Setup) -> Report {
    let cached = setup.cached;
    let mut cluster = if setup.full_coverage {
        RedisCluster::with_replicas(3, 1)
    } else {
        RedisCluster::with_replicas_and(3, 1, &["--cluster-require-full-coverage", "no"])
    };
    let store = RedisClusterStore::connect(cluster.urls())
        .await
        .unwrap_or_else(|e| panic!("connect to the cluster: {e}"));
    let mut idem = Idempotency::new(store.clone());
    if cached {
        idem = idem.local_cache(16 << 20);
    }
    let ledger = Ledger::default();
    let app = Router::new()
        .route("/orders", post(place))
        .layer(idem.clone())
        .with_state(ledger.clone());
    let server = Server::start(app).await;
    let url = server.url("/orders");
    let http = client();

    // The killed master is the one serving slot 0; keys are sorted by master in advance.
    let victim = cluster.masters_by_slot()[0];
    let replica = *cluster
        .replicas_of(victim)
        .first()
        .expect("the master has a replica");
    let survivors: Vec<u16> = cluster
        .topology()
        .iter()
        .filter(|n| n.master && n.port != victim)
        .map(|n| n.port)
        .collect();
    let earlier: Vec<String> = (0..EARLIER).map(|i| format!("earlier-{i}")).collect();
    let orders: Vec<String> = (0..MOST_ORDERS).map(|i| format!("order-{i}")).collect();
    // Probe keys are `{probe-i}-n`: the hash tag puts every `n` in the slot of `probe-i`.
    let probes: Vec<String> = (0..64).map(|i| format!("probe-{i}")).collect();
    let earlier_owner = owners(&cluster, &earlier);
    let order_owner = owners(&cluster, &orders);
    let probe_owner: Vec<u16> = {
        let by_slot = cluster.masters_by_slot();
        let slots = cluster.slots_of(&probes);
        slots.into_iter().map(|s| by_slot[usize::from(s)]).collect()
    };
    let (dead_probes, healthy_probes): (Vec<_>, Vec<_>) = probes
        .iter()
        .zip(&probe_owner)
        .partition(|(_, owner)| **owner == victim);
    let dead_probes: Vec<String> = dead_probes.into_iter().map(|(k, _)| k.clone()).collect();
    let healthy_probes: Vec<String> = healthy_probes.into_iter().map(|(k, _)| k.clone()).collect();

    // Before: orders completed, stored and replicated while the cluster is healthy.
    let answers: Vec<[Answer; 2]> = futures_util::stream::iter(&earlier)
        .map(|key| order(&http, &url, key))
        .buffer_unordered(16)
        .collect()
        .await;
    for [first, retry] in &answers {
        assert_eq!(first.status, Some(201), "healthy cluster: {first:?}");
        assert!(
            retry.replayed,
            "healthy cluster: the retry replays: {retry:?}"
        );
    }
    let healthy = idem.metrics();
    assert_eq!(
        (healthy.store_errors, healthy.fail_open_runs),
        (0, 0),
        "every earlier order was claimed and stored"
    );
    assert!(earlier.iter().all(|k| ledger.runs(k) == 1));
    cluster.wait_replicated();

    // The run: new orders at a steady pace, retries of the earlier ones, and the kill.
    let started_at: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
    let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
    let recovered: Arc<OnceLock<Instant>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT));
    let (kill_now, kill_signal) = tokio::sync::oneshot::channel::<()>();
    let dispatcher = tokio::spawn({
        let (http, url, orders) = (http.clone(), url.clone(), orders.clone());
        let (started_at, answers, recovered, slots) = (
            started_at.clone(),
            answers.clone(),
            recovered.clone(),
            slots.clone(),
        );
        async move {
            let mut kill_now = Some(kill_now);
            let mut tasks = tokio::task::JoinSet::new();
            let mut ticks = tokio::time::interval(ORDER_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut after_recovery = 0;
            for (i, key) in orders.into_iter().enumerate() {
                if recovered.get().is_some() {
                    after_recovery += 1;
                    if after_recovery > AFTER_RECOVERY {
                        break;
                    }
                }
                if i == KILL_AFTER
                    && let Some(kill) = kill_now.take()
                {
                    let _ = kill.send(());
                }
                ticks.tick().await;
                let permit = slots.clone().acquire_owned().await.unwrap();
                started_at.lock().unwrap().insert(i, Instant::now());
                let (http, url, answers) = (http.clone(), url.clone(), answers.clone());
                tasks.spawn(async move {
                    let both = order(&http, &url, &key).await;
                    answers.lock().unwrap().extend(both);
                    drop(permit);
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    });
    kill_signal.await.expect("the dispatcher reaches the kill");
    cluster.kill(victim);
    let killed = Instant::now();
    let retries = tokio::spawn({
        let (http, url, earlier) = (http.clone(), url.clone(), earlier.clone());
        let (answers, stop, slots) = (answers.clone(), stop.clone(), slots.clone());
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            let mut ticks = tokio::time::interval(RETRY_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut sent = 0;
            for key in earlier.iter().cycle() {
                ticks.tick().await;
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let permit = slots.clone().acquire_owned().await.unwrap();
                let (http, url, answers, key) =
                    (http.clone(), url.clone(), answers.clone(), key.clone());
                sent += 1;
                tasks.spawn(async move {
                    let answer = send(&http, &url, &key).await;
                    answers.lock().unwrap().push(answer);
                    drop(permit);
                });
            }
            while tasks.join_next().await.is_some() {}
            sent
        }
    });
    let recovery = tokio::spawn({
        let (store, recovered) = (store.clone(), recovered.clone());
        async move {
            for (n, key) in dead_probes.iter().cycle().enumerate() {
                // Each claim is a fresh one: a key claimed before is not claimed again.
                let fresh = format!("{{{key}}}-{n}");
                if timed_claim(&store, &fresh).await.1.is_ok() {
                    let _ = recovered.set(Instant::now());
                    return;
                }
                assert!(
                    killed.elapsed() < RECOVER_WITHIN,
                    "claims on the killed master's slots did not succeed again within \
                     {RECOVER_WITHIN:?}"
                );
                tokio::time::sleep(PROBE_EVERY).await;
            }
        }
    });
    let healthy_claims = tokio::spawn({
        let (store, stop) = (store.clone(), stop.clone());
        async move {
            let mut claims = HealthyClaims::default();
            for (n, key) in healthy_probes.iter().cycle().enumerate() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let at = killed.elapsed();
                let fresh = format!("{{{key}}}-{n}");
                let (latency, outcome) = timed_claim(&store, &fresh).await;
                claims.seen.push((at, latency, outcome.err()));
                tokio::time::sleep(PROBE_EVERY).await;
            }
            claims
        }
    });
    let watcher = std::thread::spawn({
        let stop = stop.clone();
        move || watch_servers(survivors, replica, killed, stop)
    });

    recovery.await.expect("the recovery probe");
    dispatcher.await.expect("the dispatcher");
    stop.store(true, Ordering::SeqCst);
    let earlier_retries = retries.await.expect("the retries");
    let healthy = healthy_claims.await.expect("the healthy-master probe");
    let server = watcher.join().expect("the server watcher");
    let recovered_at = *recovered.get().expect("recovered");

    // After the failover: fresh orders are claimed, stored and replayed again.
    let checks: Vec<String> = (0..CHECKS).map(|i| format!("check-{i}")).collect();
    for key in &checks {
        let [first, retry] = order(&http, &url, key).await;
        assert_eq!(
            first.status,
            Some(201),
            "{key} after the failover: {first:?}"
        );
        assert!(
            !first.replayed && retry.replayed,
            "{key} after the failover: claimed, stored and replayed: {first:?} {retry:?}"
        );
        assert_eq!(ledger.runs(key), 1, "{key} after the failover");
    }

    // The count.
    let answers = answers.lock().unwrap().clone();
    let started_at = started_at.lock().unwrap().clone();
    let mut by_status: HashMap<Option<u16>, usize> = HashMap::new();
    for answer in &answers {
        *by_status.entry(answer.status).or_default() += 1;
    }
    let twice = |key: &str| ledger.runs(key) >= 2;
    let on_killed = |owners: &[u16], i: usize| owners[i] == victim;
    let run_orders: Vec<usize> = {
        let mut indices: Vec<usize> = started_at.keys().copied().collect();
        indices.sort_unstable();
        indices
    };
    let outage: Vec<usize> = run_orders
        .iter()
        .copied()
        .filter(|i| started_at[i] >= killed && started_at[i] < recovered_at)
        .collect();
    let metrics = idem.metrics();
    let report = Report {
        setup,
        earlier: EARLIER,
        earlier_on_killed: (0..EARLIER)
            .filter(|&i| on_killed(&earlier_owner, i))
            .count(),
        earlier_twice: earlier.iter().filter(|k| twice(k)).count(),
        earlier_twice_on_killed: (0..EARLIER)
            .filter(|&i| on_killed(&earlier_owner, i) && twice(&earlier[i]))
            .count(),
        earlier_retries,
        orders: run_orders.len(),
        orders_on_killed: run_orders
            .iter()
            .filter(|&&i| on_killed(&order_owner, i))
            .count(),
        orders_twice: run_orders.iter().filter(|&&i| twice(&orders[i])).count(),
        orders_twice_on_killed: run_orders
            .iter()
            .filter(|&&i| on_killed(&order_owner, i) && twice(&orders[i]))
            .count(),
        outage_orders: outage.len(),
        outage_orders_twice: outage.iter().filter(|&&i| twice(&orders[i])).count(),
        requests: answers.len(),
        slowest: answers.iter().map(|a| a.latency).max().unwrap_or_default(),
        by_status,
        fail_open_runs: metrics.fail_open_runs,
        store_errors: metrics.store_errors,
        recovered: recovered_at - killed,
        server,
        healthy,
    };
    report.print();

    // What must hold, with or without the cache: every request was answered (201, or 409
    // for a claim that reached Redis after its deadline and is not yet released), never
    // with a server error or not at all.
    for (status, n) in &report.by_status {
        assert!(
            matches!(status, Some(201 | 409)),
            "{n} requests answered {status:?}"
        );
    }
    assert!(
        report.fail_open_runs > 0,
        "the kill made some claims fail (fail-open)"
    );
    report
}

/// The runs share two cores with everything else: one at a time, so that their timings
/// are their own.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn twice(report: &Report) -> (usize, usize) {
    (
        report.earlier_twice + report.orders_twice,
        report.earlier + report.orders,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_killed_under_load_with_and_without_the_local_cache() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let without = run(Setup {
        cached: false,
        full_coverage: true,
    })
    .await;
    let with = run(Setup {
        cached: true,
        full_coverage: true,
    })
    .await;
    assert!(
        without.earlier_twice_on_killed > 0,
        "without the local cache, retries of orders completed on the killed master ran \
         again during the failover (else the kill missed the load)"
    );
    assert_eq!(
        with.earlier_twice, 0,
        "with the local cache, no order completed in this process before the kill runs again \
         when retried to it"
    );
    let (without_twice, without_keys) = twice(&without);
    let (with_twice, with_keys) = twice(&with);
    println!(
        "--- keys run twice: without the local cache {:.1} % ({without_twice} of \
         {without_keys}), with it {:.1} % ({with_twice} of {with_keys}) ---",
        pct(without_twice, without_keys),
        pct(with_twice, with_keys),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_full_coverage_the_surviving_masters_keep_answering() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let report = run(Setup {
        cached: true,
        full_coverage: false,
    })
    .await;
    assert!(
        report.server.not_ok.is_none(),
        "with cluster-require-full-coverage no, the surviving masters stay ok: {:?}",
        report.server
    );
    assert_eq!(report.earlier_twice, 0, "held in the local cache");
}

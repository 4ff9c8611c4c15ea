//! How the cost of a request grows with the work: the request body's size (1 KiB, 64 KiB,
//! 1 MiB, with and without `include_body`, beside the bare handler taking the same body), and
//! the number of live records in the in-memory store (10k, 1M: a claim and a replay).
//!
//! ```text
//! cargo bench -p idempotent-bench --bench growth                  # all of them
//! cargo bench -p idempotent-bench --bench growth -- growth/body_  # the body sizes only
//! ```
//!
//! The store of the live-records benchmarks has room for about that many records of the
//! load benchmark's response, and is filled through requests (one first request per key)
//! when its first benchmark runs, outside the measured function, until it is full: a fresh
//! key's request, which adds a record, evicts the least recently used. The growth of the
//! process's resident memory over the filling is printed.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::cell::OnceCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::BodyExt as _;
use idempotent_runtime::Idempotency;
use idempotent_runtime::fingerprint::fingerprint;
use idempotent_runtime::record::{Record, Token};
use idempotent_runtime::store::memory::MemoryStore;
use idempotent_runtime::store::{Claim, ClaimOutcome, IdempotencyStore, StoreKey};
use tower::ServiceExt as _;

/// The load benchmark's body.
const SMALL_BODY: &str = r#"{"amount":100}"#;
const LOCK_TTL: Duration = Duration::from_secs(60);
/// The first fresh key of the live-records benchmarks: above every filled one, as long.
const FIRST_FRESH: u64 = 100_000_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn request(path: &str, key: &str, body: Bytes) -> Request {
    Request::post(path)
        .header("host", "127.0.0.1:3100")
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body))
        .unwrap()
}

/// The request through the router and the response's body read back.
async fn send(app: &Router, request: Request) -> (StatusCode, bool) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed")
        || response.headers().contains_key("idempotency-replayed");
    let body = response.into_body().collect().await.unwrap();
    assert!(!body.to_bytes().is_empty());
    (status, replayed)
}

/// The measured function of the request benchmarks (one benchmark per process under
/// callgrind): the request through the router, the response's body read back.
#[inline(never)]
async fn send_body(app: &Router, request: Request) -> (StatusCode, bool) {
    send(app, request).await
}

fn body_sizes(c: &mut Criterion) {
    let rt = runtime();
    let app = idempotent_bench::large_body_app();
    let counter = AtomicU64::new(0);
    let mut group = c.benchmark_group("growth");
    group.sample_size(30);
    for (label, size) in [("1k", 1024), ("64k", 64 * 1024), ("1m", 1024 * 1024)] {
        let body = Bytes::from(idempotent_bench::large_order_body(size));
        assert_eq!(body.len(), size);
        group.throughput(Throughput::Bytes(size as u64));
        for (mode, path) in [
            ("bare", "/large/bare"),
            ("include_body", "/large/include-body"),
            ("no_body", "/large/no-body"),
        ] {
            if path == "/large/bare" {
                group.bench_function(format!("body_{label}_bare"), |b| {
                    b.to_async(&rt).iter(|| {
                        let request = request(path, "unused", body.clone());
                        let app = &app;
                        async move { send_body(app, request).await }
                    })
                });
                continue;
            }
            // The replayed key, and a check that the path does replay.
            let replay_key = format!("replay-{label}");
            rt.block_on(async {
                for replayed in [false, true] {
                    assert_eq!(
                        send(&app, request(path, &replay_key, body.clone())).await,
                        (StatusCode::CREATED, replayed)
                    );
                }
            });
            group.bench_function(format!("body_{label}_{mode}_fresh_key"), |b| {
                b.to_async(&rt).iter(|| {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    let request = request(path, &format!("key-{n}"), body.clone());
                    let app = &app;
                    async move { send_body(app, request).await }
                })
            });
            group.bench_function(format!("body_{label}_{mode}_replay"), |b| {
                b.to_async(&rt).iter(|| {
                    let request = request(path, &replay_key, body.clone());
                    let app = &app;
                    async move { send_body(app, request).await }
                })
            });
        }
    }
    group.finish();
}

/// A memory store holding `n` completed records, and `/memory` on it.
struct Filled {
    /// The filled records still held are `first..first + n` (the earliest were evicted).
    first: u64,
    n: u64,
    store: Arc<MemoryStore>,
    app: Router,
}

/// The key of the `i`th record (`i` below [`FIRST_FRESH`]), all of one length.
fn record_key(i: u64) -> String {
    format!("k{i:012}")
}

/// The resident memory of this process, in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The fingerprint of [`SMALL_BODY`] sent as JSON, as the engine takes it.
fn small_body_fingerprint() -> String {
    let mut json = HeaderMap::new();
    json.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    fingerprint(&json, SMALL_BODY.as_bytes())
}

/// A store with room for `n` records of the load benchmark's response, filled with them
/// through requests (each record as a first request leaves it: its small request body kept
/// beside it), and `/memory` on it.
fn fill(rt: &tokio::runtime::Runtime, n: u64) -> Filled {
    let put = |app: &Router, range: std::ops::Range<u64>| {
        rt.block_on(async {
            for i in range {
                let request = request("/memory", &record_key(i), SMALL_BODY.into());
                assert_eq!(send(app, request).await, (StatusCode::CREATED, false));
            }
        })
    };
    let on = |store: &Arc<MemoryStore>| {
        idempotent_bench::memory_app(Idempotency::from_arc(
            store.clone() as Arc<dyn IdempotencyStore>
        ))
    };
    // What one record weighs against the capacity, read from a store; the answer's id
    // grows by up to 6 digits over the filling.
    let probe = Arc::new(MemoryStore::with_max_bytes(1 << 30));
    put(&on(&probe), 0..64);
    let weight = probe.weighted_size() / 64 + 6;
    drop(probe);

    let before = resident_bytes();
    let store = Arc::new(MemoryStore::with_max_bytes(n * weight));
    let app = on(&store);
    put(&app, 0..n);
    assert_eq!(store.len(), n, "every filled record is held");
    let grown = resident_bytes().saturating_sub(before);
    // Then on until the store is full (the first records evicted), so that every fresh key
    // measured evicts one.
    let mut end = n;
    while store.len() == end {
        put(&app, end..end + 256);
        end += 256;
    }
    let held = store.len();
    eprintln!(
        "records: {n} filled ({weight} bytes each as the store weighs them); resident memory \
         grew by {} MiB, {} bytes per record; full at {held} records",
        grown / (1024 * 1024),
        grown / n
    );
    Filled {
        first: end - n,
        n,
        store,
        app,
    }
}

/// The store's claim of a fresh key, then its release: the store keeps its records.
#[inline(never)]
async fn store_claim(store: &MemoryStore, key: StoreKey, claim: Claim) {
    let outcome = store.claim(&key, &claim).await.expect("claim");
    assert!(matches!(outcome, ClaimOutcome::Claimed));
    store.release(&key, &claim.token).await.expect("release");
}

/// The store's claim of a filled key: the replay's lookup.
#[inline(never)]
async fn store_lookup(store: &MemoryStore, key: StoreKey, claim: Claim) {
    let outcome = store.claim(&key, &claim).await.expect("claim");
    assert!(matches!(
        outcome,
        ClaimOutcome::Existing(Record::Completed(_))
    ));
}

fn live_records(c: &mut Criterion) {
    let rt = runtime();
    let counter = AtomicU64::new(FIRST_FRESH);
    let mut group = c.benchmark_group("growth");
    let fingerprint = Some(small_body_fingerprint());
    for (label, n) in [("10k", 10_000u64), ("1m", 1_000_000)] {
        // Filled when the first of its benchmarks runs, so that a filter skips the filling.
        let cell = OnceCell::new();
        let filled = || {
            cell.get_or_init(|| {
                let filled = fill(&rt, n);
                rt.block_on(async {
                    let check = request(
                        "/memory",
                        &record_key(filled.first + n / 2),
                        SMALL_BODY.into(),
                    );
                    assert_eq!(
                        send(&filled.app, check).await,
                        (StatusCode::CREATED, true),
                        "a filled record replays"
                    );
                });
                filled
            })
        };
        let next = AtomicU64::new(0);

        group.bench_function(format!("records_{label}_replay"), |b| {
            let Filled { first, n, app, .. } = filled();
            b.to_async(&rt).iter(|| {
                let i = first + next.fetch_add(1, Ordering::Relaxed) % n;
                let request = request("/memory", &record_key(i), SMALL_BODY.into());
                async move {
                    let replayed = send_body(app, request).await;
                    assert_eq!(replayed, (StatusCode::CREATED, true));
                }
            })
        });
        group.bench_function(format!("records_{label}_store_lookup"), |b| {
            let Filled {
                first, n, store, ..
            } = filled();
            b.to_async(&rt).iter_batched(
                || {
                    let i = first + next.fetch_add(1, Ordering::Relaxed) % n;
                    (
                        StoreKey::new("bench", None, &record_key(i)),
                        Claim::new(Token::generate(), fingerprint.clone(), LOCK_TTL),
                    )
                },
                |(key, claim)| store_lookup(store, key, claim),
                BatchSize::SmallInput,
            )
        });
        group.bench_function(format!("records_{label}_store_claim"), |b| {
            let Filled { store, .. } = filled();
            b.to_async(&rt).iter_batched(
                || {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    (
                        StoreKey::new("bench", None, &record_key(n)),
                        Claim::new(Token::generate(), fingerprint.clone(), LOCK_TTL),
                    )
                },
                |(key, claim)| store_claim(store, key, claim),
                BatchSize::SmallInput,
            )
        });
        // Last: each request adds a record and evicts a filled one.
        group.bench_function(format!("records_{label}_fresh_key"), |b| {
            let Filled { app, .. } = filled();
            b.to_async(&rt).iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let request = request("/memory", &record_key(n), SMALL_BODY.into());
                async move {
                    let first = send_body(app, request).await;
                    assert_eq!(first, (StatusCode::CREATED, false));
                }
            })
        });
        if let Some(filled) = cell.get() {
            eprintln!(
                "records_{label}: {} records held after the run ({} filled)",
                filled.store.len(),
                filled.n
            );
        }
    }
    group.finish();
}

criterion_group!(benches, body_sizes, live_records);
criterion_main!(benches);

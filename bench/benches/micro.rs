//! Micro-benchmarks of the per-request work of `#[idempotent]`: the key, the fingerprint,
//! the record codec and the in-memory store.
//!
//! ```text
//! cargo bench -p idempotent-bench --bench micro                 # all of them
//! cargo bench -p idempotent-bench --bench micro -- fingerprint  # one group
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use idempotent_runtime::fingerprint::{TypedFingerprint, canonical, compact_json, fingerprint};

/// The DTO of the typed-fingerprint benchmark.
#[derive(serde::Serialize, serde::Deserialize)]
struct Charge {
    amount: i64,
    currency: Option<String>,
}
use idempotent_runtime::key;
use idempotent_runtime::record::{Record, StoredResponse, Token};
use idempotent_runtime::store::memory::MemoryStore;
use idempotent_runtime::store::{Claim, ClaimOutcome, IdempotencyStore, StoreKey};

/// A key as clients usually send it: a UUID.
const UUID_KEY: &str = "8e03978e-40d5-43e8-bc93-6894a57f9324";
const LOCK_TTL: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(3600);

fn keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("key");
    let name = HeaderName::from_static("idempotency-key");
    let quoted = format!("\"{UUID_KEY}\"");
    group.bench_function("parse/bare_uuid", |b| {
        b.iter(|| key::parse(black_box(UUID_KEY.as_bytes())))
    });
    group.bench_function("parse/quoted_uuid", |b| {
        b.iter(|| key::parse(black_box(quoted.as_bytes())))
    });
    let long = "k".repeat(key::MAX_KEY_LEN);
    group.bench_function("parse/bare_255_bytes", |b| {
        b.iter(|| key::parse(black_box(long.as_bytes())))
    });
    group.bench_function("parse/invalid_non_ascii", |b| {
        b.iter(|| key::parse(black_box("caf\u{e9}-key".as_bytes())))
    });

    let mut headers = typical_request_headers();
    headers.insert(name.clone(), HeaderValue::from_static(UUID_KEY));
    group.bench_function("from_headers/present", |b| {
        b.iter(|| key::from_headers(black_box(&headers), black_box(&name)).map(|k| k.len()))
    });
    let without = typical_request_headers();
    group.bench_function("from_headers/missing", |b| {
        b.iter(|| key::from_headers(black_box(&without), black_box(&name)).is_err())
    });

    group.bench_function("store_key/prefix", |b| {
        b.iter(|| StoreKey::new(black_box("orders"), None, black_box(UUID_KEY)))
    });
    group.bench_function("store_key/prefix_and_scope", |b| {
        b.iter(|| {
            StoreKey::new(
                black_box("orders"),
                Some(black_box("tenant:42")),
                black_box(UUID_KEY),
            )
        })
    });
    group.finish();
}

/// The headers of a typical JSON POST, besides the key.
fn typical_request_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:3000"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("1024"));
    headers.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert(header::USER_AGENT, HeaderValue::from_static("bench/1.0"));
    headers
}

/// A pretty-printed JSON document of exactly `size` bytes: order lines, then padding.
fn json_body(size: usize) -> Vec<u8> {
    let doc = |lines: &[serde_json::Value], pad: usize| {
        serde_json::to_vec_pretty(&serde_json::json!({
            "customer": 42,
            "lines": lines,
            "pad": "x".repeat(pad),
        }))
        .expect("a JSON value serializes")
    };
    let mut lines = Vec::new();
    for i in 0u64.. {
        lines.push(serde_json::json!({
            "sku": format!("SKU-{i:06}"),
            "quantity": i % 7 + 1,
            "unit_price": 1999 + i,
            "currency": "EUR",
            "note": "caf\u{e9} \u{1F600}",
            "gift": i.is_multiple_of(3),
        }));
        if doc(&lines, 0).len() > size {
            lines.pop();
            break;
        }
    }
    let body = doc(&lines, 0);
    let body = doc(&lines, size.saturating_sub(body.len()));
    assert_eq!(
        body.len(),
        size,
        "the benchmark body has the size it is named for"
    );
    body
}

fn fingerprints(c: &mut Criterion) {
    let mut group = c.benchmark_group("fingerprint");
    let mut json_headers = HeaderMap::new();
    json_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    let mut raw_headers = HeaderMap::new();
    raw_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // The body of a typical order request, as the load benchmark sends it.
    let small = br#"{"amount":100}"#.to_vec();
    group.throughput(Throughput::Bytes(small.len() as u64));
    group.bench_function("json/14B", |b| {
        b.iter(|| fingerprint(black_box(&json_headers), black_box(&small)))
    });
    // The modes on a two-field DTO, as `POST /charges` receives it.
    let charge = br#"{"currency":"EUR","amount":100}"#.to_vec();
    group.throughput(Throughput::Bytes(charge.len() as u64));
    group.bench_function("json/charge", |b| {
        b.iter(|| fingerprint(black_box(&json_headers), black_box(&charge)))
    });
    group.bench_function("canonical/charge", |b| {
        b.iter(|| canonical(black_box(&json_headers), black_box(&charge)))
    });
    let typed = TypedFingerprint::of::<Charge>();
    group.bench_function("typed/charge", |b| {
        b.iter(|| typed.read(black_box(&charge)).map(|read| read.fingerprint))
    });
    for (label, size) in [("1KiB", 1024), ("64KiB", 64 * 1024)] {
        let body = json_body(size);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("json/{label}"), |b| {
            b.iter(|| fingerprint(black_box(&json_headers), black_box(&body)))
        });
        group.bench_function(format!("raw/{label}"), |b| {
            b.iter(|| fingerprint(black_box(&raw_headers), black_box(&body)))
        });
        // The same document as compact JSON (as most clients send it): hashed without the
        // parse.
        let compact = compact_json(&body).expect("the benchmark body is JSON");
        group.throughput(Throughput::Bytes(compact.len() as u64));
        group.bench_function(format!("json_compact/{label}"), |b| {
            b.iter(|| fingerprint(black_box(&json_headers), black_box(&compact)))
        });
    }
    group.finish();
}

fn completed_record(body: &[u8]) -> Record {
    Record::Completed(std::sync::Arc::new(stored_response(body)))
}

fn stored_response(body: &[u8]) -> StoredResponse {
    StoredResponse::new(
        StatusCode::CREATED,
        Some(vec![
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::LOCATION, HeaderValue::from_static("/orders/42")),
        ]),
        Bytes::copy_from_slice(body),
        Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_owned()),
    )
}

fn records(c: &mut Criterion) {
    let mut group = c.benchmark_group("record");
    let processing = Record::Processing {
        token: Token::generate(),
        fingerprint: Some("ab".repeat(32)),
    };
    let small = completed_record(br#"{"id":42,"amount":100}"#);
    let large = completed_record(&json_body(1024));
    let binary = completed_record(&[0xff; 1024]);
    for (label, record) in [
        ("processing", &processing),
        ("completed_small", &small),
        ("completed_1KiB", &large),
        ("completed_1KiB_binary", &binary),
    ] {
        group.bench_function(format!("to_json/{label}"), |b| {
            b.iter(|| black_box(record).to_json())
        });
        let json = record.to_json();
        assert_eq!(&Record::from_json(&json).expect("round trip"), record);
        group.bench_function(format!("from_json/{label}"), |b| {
            b.iter(|| Record::from_json(black_box(&json)).map(|r| r.fingerprint().is_some()))
        });
    }
    group.finish();
}

fn memory_store(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("a tokio runtime");
    let mut group = c.benchmark_group("memory_store");
    // Bounded so that millions of fresh keys evict instead of growing without end; the
    // fresh-key figures include moka's eviction work, as a long-running service's would.
    let store = MemoryStore::with_max_bytes(32 * 1024 * 1024);
    let counter = AtomicU64::new(0);
    let fresh_key = || {
        StoreKey::new(
            "orders",
            None,
            &format!("{}-{}", UUID_KEY, counter.fetch_add(1, Ordering::Relaxed)),
        )
    };
    let fingerprint = Some("ab".repeat(32));

    // A claim that is then released (the handler answered non-2xx), so that PROCESSING
    // records do not pile up, as in a service where every claim completes or is released.
    group.bench_function("claim_then_release/fresh_key", |b| {
        b.to_async(&rt).iter_batched(
            || {
                (
                    fresh_key(),
                    Claim::new(Token::generate(), fingerprint.clone(), LOCK_TTL),
                )
            },
            |(key, claim)| {
                let store = &store;
                async move {
                    let outcome = store.claim(&key, &claim).await.expect("claim");
                    assert!(matches!(outcome, ClaimOutcome::Claimed));
                    store.release(&key, &claim.token).await.expect("release")
                }
            },
            BatchSize::SmallInput,
        )
    });

    let response = stored_response(br#"{"id":42,"amount":100}"#);
    group.bench_function("claim_then_complete/fresh_key", |b| {
        b.to_async(&rt).iter_batched(
            || {
                (
                    fresh_key(),
                    Claim::new(Token::generate(), fingerprint.clone(), LOCK_TTL),
                )
            },
            |(key, claim)| {
                let (store, response) = (&store, response.clone());
                async move {
                    store.claim(&key, &claim).await.expect("claim");
                    store
                        .complete(&key, &claim.token, response, TTL)
                        .await
                        .expect("complete")
                }
            },
            BatchSize::SmallInput,
        )
    });

    let replay_key = &StoreKey::new("orders", None, "replayed");
    rt.block_on(async {
        let claim = Claim::new(Token::generate(), fingerprint.clone(), LOCK_TTL);
        store.claim(replay_key, &claim).await.expect("claim");
        store
            .complete(replay_key, &claim.token, response.clone(), TTL)
            .await
            .expect("complete");
    });
    group.bench_function("claim/lookup_completed", |b| {
        b.to_async(&rt).iter_batched(
            || Claim::new(Token::generate(), fingerprint.clone(), LOCK_TTL),
            |claim| {
                let store = &store;
                async move {
                    let outcome = store.claim(replay_key, &claim).await.expect("claim");
                    matches!(outcome, ClaimOutcome::Existing(Record::Completed(_)))
                }
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("token_generate", |b| b.iter(Token::generate));
    group.finish();
}

criterion_group!(benches, keys, fingerprints, records, memory_store);
criterion_main!(benches);

//! What the layer did, counted: for [`Idempotency::metrics`](crate::Idempotency::metrics)
//! snapshots and, with the `metrics` feature, through the [`metrics`] facade to whatever
//! recorder the app installs (Prometheus, OpenTelemetry, StatsD, ...). One event feeds both.
//!
//! # Metrics (feature `metrics`)
//!
//! | name | type | labels | |
//! |---|---|---|---|
//! | `idempotency_requests_total` | counter | `key_prefix`, `outcome` | what happened to keyed requests and their claims: one of [`Outcome`] |
//! | `idempotency_store_duration_seconds` | histogram | `operation`, `store` | how long each store call took (until it answered or missed its deadline) |
//!
//! `outcome` is [`Outcome::as_str`]. Every request through the layer ends in exactly one
//! of `executed`, `replayed`, `not_modified`, `conflict`, `mismatch`, `missing_key`,
//! `invalid_key`, `body_too_large`, `fail_open` or `fail_closed` (their sum is the number of
//! requests); `waited`, `store_error`, `fenced`, `oversized_response`,
//! `late_claim_released` and `lease_renewed` count events on the way (a request can have
//! several). `operation` is `claim`, `complete`, `release`, `renew` or `commit` (the
//! same-transaction mode's record and commit), `store` the store's
//! [`name`](crate::store::IdempotencyStore::name). `key_prefix` has one value per route, so
//! the label set stays small; keys, scopes and bodies are never labels.
//!
//! The library never installs a recorder: without one, the facade's calls do nothing. Each
//! series is registered with the recorder the first time it is used and its handle kept, so
//! that recording costs an increment rather than a lookup by name and labels: install the
//! recorder before serving (a series first used before it was installed stays unrecorded).
//!
//! ```
//! # #[cfg(feature = "metrics")] {
//! // In the app, once, before serving (here with metrics-exporter-prometheus):
//! // let prometheus = PrometheusBuilder::new().install_recorder()?;
//! idempotent_runtime::metrics::describe();
//! # }
//! ```

use std::borrow::Cow;
#[cfg(feature = "metrics")]
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The name of the counter of outcomes.
pub const REQUESTS_TOTAL: &str = "idempotency_requests_total";
/// The name of the histogram of store call durations.
pub const STORE_DURATION_SECONDS: &str = "idempotency_store_duration_seconds";

/// What happened to a keyed request, or to its claim on the way: the `outcome` label of
/// `idempotency_requests_total`, and a counter of [`MetricsSnapshot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The handler ran under a claimed key.
    Executed,
    /// A stored response was replayed.
    Replayed,
    /// A stored response's entity tag matched `If-None-Match`: 304.
    NotModified,
    /// 409: the first request with the key was still running.
    Conflict,
    /// 422: the key came with a different body.
    Mismatch,
    /// The request had no key (400 on a mandatory route; a run without idempotency on
    /// another).
    MissingKey,
    /// 400: the key was malformed.
    InvalidKey,
    /// 413: the body was over the limit read to fingerprint it.
    BodyTooLarge,
    /// The store was unavailable and the handler ran without idempotency. Alert on this:
    /// such runs are not protected against duplicates.
    FailOpen,
    /// The store was unavailable and the request was answered 503.
    FailClosed,
    /// The request waited for a running duplicate (`on_conflict = "wait"`).
    Waited,
    /// A store call failed or missed its deadline.
    StoreError,
    /// A completion, release or renewal was refused: another claim owns the key.
    Fenced,
    /// A 2xx response was not stored: over `max_response_size`, or over what the store can
    /// hold.
    OversizedResponse,
    /// A claim that reached the store after its deadline was released.
    LateClaimReleased,
    /// The lease of a running handler was extended.
    LeaseRenewed,
}

impl Outcome {
    /// Every outcome, in the order of the documentation.
    pub const ALL: [Outcome; 16] = [
        Outcome::Executed,
        Outcome::Replayed,
        Outcome::NotModified,
        Outcome::Conflict,
        Outcome::Mismatch,
        Outcome::MissingKey,
        Outcome::InvalidKey,
        Outcome::BodyTooLarge,
        Outcome::FailOpen,
        Outcome::FailClosed,
        Outcome::Waited,
        Outcome::StoreError,
        Outcome::Fenced,
        Outcome::OversizedResponse,
        Outcome::LateClaimReleased,
        Outcome::LeaseRenewed,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Executed => "executed",
            Outcome::Replayed => "replayed",
            Outcome::NotModified => "not_modified",
            Outcome::Conflict => "conflict",
            Outcome::Mismatch => "mismatch",
            Outcome::MissingKey => "missing_key",
            Outcome::InvalidKey => "invalid_key",
            Outcome::BodyTooLarge => "body_too_large",
            Outcome::FailOpen => "fail_open",
            Outcome::FailClosed => "fail_closed",
            Outcome::Waited => "waited",
            Outcome::StoreError => "store_error",
            Outcome::Fenced => "fenced",
            Outcome::OversizedResponse => "oversized_response",
            Outcome::LateClaimReleased => "late_claim_released",
            Outcome::LeaseRenewed => "lease_renewed",
        }
    }

    /// Whether this ends a request (the ten outcomes whose sum is the number of requests),
    /// rather than counting an event on its way.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            Outcome::Waited
                | Outcome::StoreError
                | Outcome::Fenced
                | Outcome::OversizedResponse
                | Outcome::LateClaimReleased
                | Outcome::LeaseRenewed
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A store operation, the `operation` label of `idempotency_store_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Claim,
    Complete,
    Release,
    Renew,
    Commit,
}

impl Operation {
    /// Every operation, in declaration order (`operation as usize` is its index).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) const ALL: [Operation; 5] = [
        Operation::Claim,
        Operation::Complete,
        Operation::Release,
        Operation::Renew,
        Operation::Commit,
    ];

    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Operation::Claim => "claim",
            Operation::Complete => "complete",
            Operation::Release => "release",
            Operation::Renew => "renew",
            Operation::Commit => "commit",
        }
    }

    /// What the call does, for its errors and logs.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Operation::Claim => "claim",
            Operation::Complete => "storing the response",
            Operation::Release => "releasing the key",
            Operation::Renew => "renewing the lease",
            Operation::Commit => "committing the request's transaction",
        }
    }
}

/// Register the metrics' descriptions (units and help texts) with the app's recorder. Call
/// it once after installing the recorder; without it, the metrics are described the first
/// time one of them is recorded. Does nothing without the `metrics` feature.
pub fn describe() {
    #[cfg(feature = "metrics")]
    {
        metrics::describe_counter!(
            REQUESTS_TOTAL,
            metrics::Unit::Count,
            "Keyed requests and their claims, by route key prefix and outcome"
        );
        metrics::describe_histogram!(
            STORE_DURATION_SECONDS,
            metrics::Unit::Seconds,
            "Duration of idempotency store calls, by operation and store"
        );
    }
}

/// A snapshot of the counters of one [`Idempotency`](crate::Idempotency).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// Handler runs under a claimed key.
    pub executions: u64,
    /// Responses replayed from the store.
    pub replays: u64,
    /// Revalidations answered 304 from the store.
    pub not_modified: u64,
    /// Requests answered 409 because the first was still running.
    pub conflicts: u64,
    /// Requests that waited for a running duplicate (`on_conflict = "wait"`).
    pub waits: u64,
    /// Requests answered 422 because the key came with a different body.
    pub mismatches: u64,
    /// Requests without a key.
    pub missing_keys: u64,
    /// Requests answered 400 because the key was malformed.
    pub invalid_keys: u64,
    /// Requests answered 413 because the body was over the limit.
    pub bodies_too_large: u64,
    /// Store calls that failed or missed their deadline.
    pub store_errors: u64,
    /// Handler runs without idempotency because the store was unavailable (fail-open).
    /// Alert on this: such runs are not protected against duplicates.
    pub fail_open_runs: u64,
    /// Requests answered 503 because the store was unavailable (fail-closed).
    pub fail_closed_rejections: u64,
    /// Completions, releases or renewals refused because another claim owns the key.
    pub fenced_writes: u64,
    /// 2xx responses not stored because they were over the size limit.
    pub oversized_responses: u64,
    /// Claims that reached the store after their deadline and were then released.
    pub late_claims_released: u64,
    /// Leases of running handlers extended (a handler running past half its `lock_ttl`).
    pub lease_renewals: u64,
}

impl MetricsSnapshot {
    /// The count of `outcome`.
    pub fn count(&self, outcome: Outcome) -> u64 {
        match outcome {
            Outcome::Executed => self.executions,
            Outcome::Replayed => self.replays,
            Outcome::NotModified => self.not_modified,
            Outcome::Conflict => self.conflicts,
            Outcome::Mismatch => self.mismatches,
            Outcome::MissingKey => self.missing_keys,
            Outcome::InvalidKey => self.invalid_keys,
            Outcome::BodyTooLarge => self.bodies_too_large,
            Outcome::FailOpen => self.fail_open_runs,
            Outcome::FailClosed => self.fail_closed_rejections,
            Outcome::Waited => self.waits,
            Outcome::StoreError => self.store_errors,
            Outcome::Fenced => self.fenced_writes,
            Outcome::OversizedResponse => self.oversized_responses,
            Outcome::LateClaimReleased => self.late_claims_released,
            Outcome::LeaseRenewed => self.lease_renewals,
        }
    }

    fn slot(&mut self, outcome: Outcome) -> &mut u64 {
        match outcome {
            Outcome::Executed => &mut self.executions,
            Outcome::Replayed => &mut self.replays,
            Outcome::NotModified => &mut self.not_modified,
            Outcome::Conflict => &mut self.conflicts,
            Outcome::Mismatch => &mut self.mismatches,
            Outcome::MissingKey => &mut self.missing_keys,
            Outcome::InvalidKey => &mut self.invalid_keys,
            Outcome::BodyTooLarge => &mut self.bodies_too_large,
            Outcome::FailOpen => &mut self.fail_open_runs,
            Outcome::FailClosed => &mut self.fail_closed_rejections,
            Outcome::Waited => &mut self.waits,
            Outcome::StoreError => &mut self.store_errors,
            Outcome::Fenced => &mut self.fenced_writes,
            Outcome::OversizedResponse => &mut self.oversized_responses,
            Outcome::LateClaimReleased => &mut self.late_claims_released,
            Outcome::LeaseRenewed => &mut self.lease_renewals,
        }
    }
}

/// The counters of one `Idempotency`, one per outcome, and, with the `metrics` feature, the
/// handles of its series in the app's recorder.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    counts: [AtomicU64; Outcome::ALL.len()],
    #[cfg(feature = "metrics")]
    handles: Handles,
}

/// The recorder's handles of one `Idempotency`'s series, each registered the first time it
/// is used and kept: a recorder looks a series up by its name and labels (hashing them,
/// allocating the label set) on every registration, which is most of what recording costs.
/// So the recorder that counts is the one installed when a series is first used: install it
/// before serving.
#[cfg(feature = "metrics")]
#[derive(Debug, Default)]
struct Handles {
    /// A counter per outcome, by key prefix (one entry per route: a short list).
    counters: std::sync::RwLock<Vec<(Cow<'static, str>, Arc<PrefixCounters>)>>,
    /// A histogram per store operation (the store's name is the same for all of them).
    histograms: [std::sync::OnceLock<metrics::Histogram>; Operation::ALL.len()],
}

#[cfg(feature = "metrics")]
type PrefixCounters = [std::sync::OnceLock<metrics::Counter>; Outcome::ALL.len()];

#[cfg(feature = "metrics")]
impl Handles {
    #[expect(
        clippy::ptr_arg,
        reason = "a borrowed prefix (the attribute's `&'static str`) is kept without a copy"
    )]
    fn counter(&self, key_prefix: &Cow<'static, str>, outcome: Outcome) -> metrics::Counter {
        let known = self
            .counters
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(prefix, _)| prefix == key_prefix)
            .map(|(_, counters)| counters.clone());
        let counters = known.unwrap_or_else(|| {
            let mut all = self
                .counters
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match all.iter().find(|(prefix, _)| prefix == key_prefix) {
                Some((_, counters)) => counters.clone(),
                None => {
                    let counters = Arc::new(PrefixCounters::default());
                    all.push((key_prefix.clone(), counters.clone()));
                    counters
                }
            }
        });
        counters[outcome as usize]
            .get_or_init(|| {
                described();
                metrics::counter!(
                    REQUESTS_TOTAL,
                    "key_prefix" => metrics::SharedString::from(key_prefix.clone()),
                    "outcome" => outcome.as_str()
                )
            })
            .clone()
    }

    fn histogram(&self, store: &'static str, operation: Operation) -> &metrics::Histogram {
        self.histograms[operation as usize].get_or_init(|| {
            described();
            metrics::histogram!(
                STORE_DURATION_SECONDS,
                "operation" => operation.as_str(),
                "store" => store
            )
        })
    }
}

impl Metrics {
    /// Count `outcome` for a route of `key_prefix`, in the snapshot and through the facade.
    /// A final outcome is also recorded in the request's `idempotency` span.
    #[expect(
        clippy::ptr_arg,
        reason = "a borrowed prefix (the attribute's `&'static str`) becomes a label without a copy"
    )]
    pub(crate) fn record(&self, key_prefix: &Cow<'static, str>, outcome: Outcome) {
        self.counts[outcome as usize].fetch_add(1, Relaxed);
        if outcome.is_final() && tracing::level_enabled!(tracing::Level::DEBUG) {
            tracing::Span::current().record("outcome", outcome.as_str());
        }
        #[cfg(feature = "metrics")]
        self.handles.counter(key_prefix, outcome).increment(1);
        #[cfg(not(feature = "metrics"))]
        let _ = key_prefix;
    }

    /// Count `outcome` for a route whose prefix is known only as text.
    pub(crate) fn record_for(&self, key_prefix: &str, outcome: Outcome) {
        // The label needs its own copy of the prefix only where there is a label.
        #[cfg(feature = "metrics")]
        self.record(&Cow::Owned(key_prefix.to_owned()), outcome);
        #[cfg(not(feature = "metrics"))]
        self.record(&Cow::Borrowed(""), outcome);
        #[cfg(not(feature = "metrics"))]
        let _ = key_prefix;
    }

    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let mut snapshot = MetricsSnapshot::default();
        for outcome in Outcome::ALL {
            *snapshot.slot(outcome) = self.counts[outcome as usize].load(Relaxed);
        }
        snapshot
    }
}

impl Metrics {
    /// Record how long a call of the store named `store` took.
    #[cfg(feature = "metrics")]
    pub(crate) fn store_call(
        &self,
        store: &'static str,
        operation: Operation,
        took: std::time::Duration,
    ) {
        self.handles
            .histogram(store, operation)
            .record(took.as_secs_f64());
    }
}

/// Describe the metrics once, the first time one is recorded.
#[cfg(feature = "metrics")]
fn described() {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(describe);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_own_counter_and_label() {
        let metrics = Metrics::default();
        for (i, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, i, "ALL is in declaration order");
            for _ in 0..=i {
                metrics.record(&Cow::Borrowed("orders"), outcome);
            }
        }
        let snapshot = metrics.snapshot();
        for (i, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(snapshot.count(outcome), i as u64 + 1, "{outcome}");
        }
        let labels: std::collections::HashSet<_> =
            Outcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(labels.len(), Outcome::ALL.len());
        assert_eq!(Outcome::ALL.iter().filter(|o| o.is_final()).count(), 10);
    }

    #[test]
    fn operations_are_listed_in_declaration_order() {
        for (i, operation) in Operation::ALL.into_iter().enumerate() {
            assert_eq!(operation as usize, i, "{operation:?}");
        }
    }

    /// The handles kept for each series count into the series they were registered for.
    #[cfg(feature = "metrics")]
    #[test]
    fn kept_handles_keep_prefixes_outcomes_and_operations_apart() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let metrics = Metrics::default();
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..3 {
                metrics.record(&Cow::Borrowed("orders"), Outcome::Executed);
            }
            metrics.record(&Cow::Borrowed("orders"), Outcome::Replayed);
            metrics.record_for("payments", Outcome::Executed);
            let millis = std::time::Duration::from_millis(1);
            for _ in 0..2 {
                metrics.store_call("memory", Operation::Claim, millis);
            }
            metrics.store_call("memory", Operation::Complete, millis);
        });
        let text = handle.render();
        for line in [
            r#"idempotency_requests_total{key_prefix="orders",outcome="executed"} 3"#,
            r#"idempotency_requests_total{key_prefix="orders",outcome="replayed"} 1"#,
            r#"idempotency_requests_total{key_prefix="payments",outcome="executed"} 1"#,
            r#"idempotency_store_duration_seconds_count{operation="claim",store="memory"} 2"#,
            r#"idempotency_store_duration_seconds_count{operation="complete",store="memory"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}

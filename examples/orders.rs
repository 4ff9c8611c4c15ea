//! The orders service: routes under `#[idempotent]` (orders, payments, notifications,
//! charges with the typed fingerprint, and a cacheable keyed read, reports), one under the
//! middleware with a `Policy` (refunds, no macro), with PostgreSQL transfers in the
//! same-transaction mode, a plain stats route, the layer's metrics in the Prometheus text
//! format at `/metrics`, and the OpenAPI document of them all at `/openapi.json`.
//!
//! ```text
//! cargo run --example orders                                  # in-memory store
//! DATABASE_URL=postgres://127.0.0.1/app cargo run --example orders  # PostgreSQL, and /transfers
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example orders  # shared Redis store
//! DYNAMODB_TABLE=idempotency AWS_REGION=us-east-1 cargo run --example orders  # DynamoDB
//! ```
//!
//! Environment: `BIND` (default `127.0.0.1:3000`), `DATABASE_URL` (optional: PostgreSQL;
//! the tables `idempotency_keys` and `transfers` are created when missing),
//! `DYNAMODB_TABLE` (optional, with the AWS SDK's settings: `AWS_REGION`, credentials,
//! `AWS_ENDPOINT_URL_DYNAMODB`; the table is created when missing), `REDIS_URL` (optional),
//! `ORDERS_DELAY_MS` (optional: the orders handler sleeps this long, for concurrency tests),
//! `TRANSFERS_DELAY_MS` (optional: the transfers handler sleeps this long after its insert,
//! before its transaction commits, for crash tests).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use idempotent_runtime::fingerprint::{Fingerprint, TypedFingerprint};
use idempotent_runtime::store::postgres::Tx;
use idempotent_runtime::{Idempotency, Policy, idempotent};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgPool;

#[path = "shared/mod.rs"]
pub(crate) mod shared;

#[path = "orders/api_doc.rs"]
mod api_doc;

#[derive(Clone, Default)]
pub(crate) struct AppState {
    ids: Arc<AtomicU64>,
    orders: Arc<AtomicU64>,
    payments: Arc<AtomicU64>,
    notifications: Arc<AtomicU64>,
    refunds: Arc<AtomicU64>,
    reports: Arc<AtomicU64>,
    charges: Arc<AtomicU64>,
    transfers: Arc<AtomicU64>,
    orders_delay: Option<Duration>,
    transfers_delay: Option<Duration>,
    /// With PostgreSQL: the database of the transfers (and of the idempotency records).
    pool: Option<PgPool>,
    /// The Prometheus recorder's handle, which `/metrics` renders.
    prometheus: Option<PrometheusHandle>,
}

impl AppState {
    /// The same state, serving the metrics of `prometheus` at `/metrics`.
    #[allow(
        dead_code,
        reason = "the tests that include this file build their state with it"
    )]
    pub(crate) fn with_metrics(mut self, prometheus: PrometheusHandle) -> Self {
        self.prometheus = Some(prometheus);
        self
    }

    /// The state of a service whose transfers live in `pool`'s database (which has the
    /// `transfers` table).
    #[allow(
        dead_code,
        reason = "the tests that include this file build their state with it"
    )]
    pub(crate) fn with_pool(pool: PgPool) -> Self {
        AppState {
            pool: Some(pool),
            ..AppState::default()
        }
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// 201 `{"id", "amount"}` for a positive amount, else 400 (which is not stored).
    fn created(&self, amount: i64) -> (StatusCode, Json<serde_json::Value>) {
        if amount <= 0 {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "amount must be positive" })),
            );
        }
        (
            StatusCode::CREATED,
            Json(json!({ "id": self.next_id(), "amount": amount })),
        )
    }
}

#[derive(Deserialize)]
struct NewOrder {
    amount: i64,
}

#[idempotent(
    key_prefix = "orders",
    ttl = "24h",
    include_body = true,
    mandatory = true
)]
async fn create_order(
    State(state): State<AppState>,
    Json(req): Json<NewOrder>,
) -> impl IntoResponse {
    state.orders.fetch_add(1, Ordering::SeqCst);
    if let Some(delay) = state.orders_delay {
        tokio::time::sleep(delay).await;
    }
    state.created(req.amount)
}

#[idempotent(key_prefix = "payments", mandatory = true)]
async fn create_payment(State(state): State<AppState>) -> impl IntoResponse {
    state.payments.fetch_add(1, Ordering::SeqCst);
    (StatusCode::CREATED, Json(json!({ "id": state.next_id() })))
}

#[idempotent(key_prefix = "notify", mandatory = false)]
async fn send_notification(State(state): State<AppState>) -> impl IntoResponse {
    state.notifications.fetch_add(1, Ordering::SeqCst);
    (StatusCode::OK, Json(json!({ "id": state.next_id() })))
}

#[derive(Deserialize)]
struct NewRefund {
    amount: i64,
}

/// A plain handler: the protocol comes from the layer it is routed with (see `app`).
async fn create_refund(
    State(state): State<AppState>,
    Json(req): Json<NewRefund>,
) -> impl IntoResponse {
    state.refunds.fetch_add(1, Ordering::SeqCst);
    state.created(req.amount)
}

/// A charge, as a Spring service declares its DTO: the typed fingerprint hashes it as
/// Jackson writes it (`amount`, then `currency`, `null` when absent; fields it does not
/// declare are dropped), whatever order and extras the client sent.
#[derive(Deserialize, Serialize)]
struct NewCharge {
    amount: i64,
    currency: Option<String>,
}

#[idempotent(key_prefix = "charges", include_body = true, fingerprint = "typed")]
async fn create_charge(
    State(state): State<AppState>,
    Json(req): Json<NewCharge>,
) -> impl IntoResponse {
    state.charges.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::CREATED,
        Json(json!({ "id": state.next_id(), "amount": req.amount, "currency": req.currency })),
    )
}

/// A keyed read that browsers and shared caches may keep for an hour: the first answer
/// carries an `ETag`, and a revalidation with `If-None-Match` is answered 304 from the record
/// without running this body.
#[idempotent(
    key_prefix = "reports",
    mandatory = true,
    cache_control = "max-age=3600"
)]
async fn get_report(State(state): State<AppState>, Path(name): Path<String>) -> impl IntoResponse {
    state.reports.fetch_add(1, Ordering::SeqCst);
    Json(json!({ "report": name, "id": state.next_id() }))
}

#[derive(Deserialize)]
struct NewTransfer {
    amount: i64,
}

/// Create the table of the transfers if it is missing.
pub(crate) async fn create_transfers_table(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS transfers (id bigserial PRIMARY KEY, amount bigint NOT NULL)",
    )
    .execute(pool)
    .await
    .map(drop)
}

/// A transfer, written in the request's transaction: the row and the idempotency record
/// commit together (after this returns), or neither does.
#[idempotent(key_prefix = "transfers", include_body = true, lock_ttl = "3s")]
async fn create_transfer(
    State(state): State<AppState>,
    mut tx: Tx,
    Json(req): Json<NewTransfer>,
) -> Response {
    state.transfers.fetch_add(1, Ordering::SeqCst);
    if req.amount <= 0 {
        // Not a 2xx: the transaction is rolled back and the key released.
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "error": "amount must be positive" })),
        )
            .into_response();
    }
    let inserted =
        sqlx::query_scalar::<_, i64>("INSERT INTO transfers (amount) VALUES ($1) RETURNING id")
            .bind(req.amount)
            .fetch_one(&mut *tx)
            .await;
    let id = match inserted {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(%error, "inserting a transfer failed");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": "the transfer could not be written" })),
            )
                .into_response();
        }
    };
    if let Some(delay) = state.transfers_delay {
        tokio::time::sleep(delay).await;
    }
    (
        StatusCode::CREATED,
        Json(json!({ "id": id, "amount": req.amount })),
    )
        .into_response()
}

/// Install the Prometheus recorder of the `metrics` facade for the process, with buckets for
/// the store-call histogram (from half a millisecond to a second), and describe the layer's
/// metrics. Once per process: a recorder is global.
pub(crate) fn install_metrics() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(idempotent_runtime::metrics::STORE_DURATION_SECONDS.to_owned()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ],
        )
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| format!("installing the Prometheus recorder: {e}"))?;
    idempotent_runtime::metrics::describe();
    Ok(handle)
}

/// The Prometheus text exposition of the layer's metrics (503 when no recorder is installed,
/// as in a test that builds the app without one).
async fn metrics(State(state): State<AppState>) -> Response {
    match &state.prometheus {
        Some(prometheus) => {
            // Drains the histograms and publishes the descriptions before rendering.
            prometheus.run_upkeep();
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                prometheus.render(),
            )
                .into_response()
        }
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no metrics recorder is installed\n",
        )
            .into_response(),
    }
}

/// How many times each handler body ran (routes this build does not serve count zero), and
/// with PostgreSQL how many transfer rows there are.
async fn stats(State(state): State<AppState>) -> Response {
    let mut stats = json!({
        "orders": state.orders.load(Ordering::SeqCst),
        "payments": state.payments.load(Ordering::SeqCst),
        "notifications": state.notifications.load(Ordering::SeqCst),
        "refunds": state.refunds.load(Ordering::SeqCst),
        "transfers": state.transfers.load(Ordering::SeqCst),
        "reports": state.reports.load(Ordering::SeqCst),
        "charges": state.charges.load(Ordering::SeqCst),
    });
    if let Some(pool) = &state.pool {
        let rows = sqlx::query_scalar::<_, i64>("SELECT count(*) FROM transfers")
            .fetch_one(pool)
            .await;
        match rows {
            Ok(rows) => stats["transfer_rows"] = json!(rows),
            Err(error) => {
                tracing::error!(%error, "counting the transfers failed");
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(json!({ "error": "the transfers could not be counted" })),
                )
                    .into_response();
            }
        }
    }
    Json(stats).into_response()
}

/// The options of every keyed route, as `Policy` values: the layer of `/refunds`, and the
/// OpenAPI document of all of them (`/openapi.json`). The attributes build their own
/// `Policy`, which is not reachable from outside their functions: the others here mirror
/// them, option by option, and change with them.
pub(crate) struct Policies {
    orders: Policy,
    payments: Policy,
    notifications: Policy,
    refunds: Policy,
    transfers: Policy,
    charges: Policy,
    reports: Policy,
}

impl Policies {
    fn new() -> Policies {
        Policies {
            // #[idempotent(key_prefix = "orders", ttl = "24h", include_body = true, mandatory = true)]
            orders: Policy::new()
                .key_prefix("orders")
                .ttl(Duration::from_secs(24 * 60 * 60))
                .include_body(true)
                .mandatory(true),
            // #[idempotent(key_prefix = "payments", mandatory = true)]
            payments: Policy::new().key_prefix("payments").mandatory(true),
            // #[idempotent(key_prefix = "notify", mandatory = false)]
            notifications: Policy::new().key_prefix("notify").mandatory(false),
            // No attribute: the protocol without the macro (see `app`).
            refunds: Policy::new()
                .key_prefix("refunds")
                .include_body(true)
                .mandatory(true),
            // #[idempotent(key_prefix = "transfers", include_body = true, lock_ttl = "3s")]
            transfers: Policy::new()
                .key_prefix("transfers")
                .include_body(true)
                .lock_ttl(Duration::from_secs(3)),
            // #[idempotent(key_prefix = "charges", include_body = true, fingerprint = "typed")]
            charges: Policy::new()
                .key_prefix("charges")
                .include_body(true)
                .fingerprint(Fingerprint::Typed(TypedFingerprint::of::<NewCharge>())),
            // #[idempotent(key_prefix = "reports", mandatory = true, cache_control = "max-age=3600")]
            reports: Policy::new()
                .key_prefix("reports")
                .mandatory(true)
                .cache_control(HeaderValue::from_static("max-age=3600")),
        }
    }
}

pub(crate) fn app(idempotency: Idempotency, state: AppState) -> Router {
    let policies = Policies::new();
    // Built once; `/transfers` is documented where it is routed.
    let api_doc = api_doc::Served::new(api_doc::document(&policies, state.pool.is_some()));
    // The protocol without the macro: the options of the attribute as a `Policy`.
    let refunds = policies.refunds;
    let mut router = Router::new();
    if state.pool.is_some() {
        router = router.route("/transfers", post(create_transfer));
    }
    router
        .route("/orders", post(create_order))
        .route("/payments", post(create_payment))
        .route("/notifications", post(send_notification))
        .route(
            "/refunds",
            post(create_refund).layer(idempotency.layer(refunds)),
        )
        .route("/charges", post(create_charge))
        .route("/reports/{name}", get(get_report))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(move || async move { api_doc }))
        .layer(idempotency)
        .with_state(state)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::init_tracing();

    let shared::Chosen {
        idempotency,
        name: store,
        pool,
    } = shared::store_from_env().await?;
    if let Some(pool) = &pool {
        create_transfers_table(pool)
            .await
            .map_err(|e| format!("creating the table transfers: {e}"))?;
    }
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| format!("binding {bind}: {e}"))?;
    let state = AppState {
        orders_delay: delay_from_env("ORDERS_DELAY_MS")?,
        transfers_delay: delay_from_env("TRANSFERS_DELAY_MS")?,
        pool,
        prometheus: Some(install_metrics()?),
        ..AppState::default()
    };
    tracing::info!(addr = %listener.local_addr()?, store, "orders example ready");
    axum::serve(listener, app(idempotency, state)).await?;
    Ok(())
}

/// The delay an optional variable names, in milliseconds.
fn delay_from_env(name: &str) -> Result<Option<Duration>, String> {
    match std::env::var(name) {
        Ok(ms) if !ms.is_empty() => ms
            .parse()
            .map(|ms| Some(Duration::from_millis(ms)))
            .map_err(|e| format!("{name}={ms} is not a number of milliseconds: {e}")),
        _ => Ok(None),
    }
}

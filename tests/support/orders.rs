//! The test service: one handler body behind routes with different options. A request's
//! JSON body tells the handler what to do (answer a status, wait at the probe's gate, panic).
//!
//! Every route exists twice, with the same options: under `#[idempotent]` ([`routes`]) and
//! as a plain handler under the middleware with a `Policy` ([`layered_routes`]), so that the
//! behaviour tests run on both paths.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::extract::{Path as UrlPath, RawQuery};
use axum::http::HeaderValue;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::time::Duration;

use axum::http::HeaderName;
use idempotent_runtime::fingerprint::{Fingerprint, TypedFingerprint};
use idempotent_runtime::{
    Idempotency, IdempotencyClaim, IdempotencyKey, OnConflict, Policy, idempotent,
};
use serde::Deserialize;
use serde_json::json;

use super::app::Probe;

#[derive(Clone, Default)]
pub struct AppState {
    pub probe: Probe,
    pub ids: Arc<AtomicU64>,
}

/// What a test asks the handler to do.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Command {
    status: Option<u16>,
    hold: bool,
    panic: bool,
    pad: usize,
    #[allow(dead_code)]
    note: Option<String>,
}

pub async fn behave(state: &AppState, cmd: Command) -> Response {
    state.probe.enter();
    if cmd.hold {
        state.probe.hold().await;
    }
    if cmd.panic {
        panic!("handler panics on purpose");
    }
    let id = state.ids.fetch_add(1, Ordering::SeqCst) + 1;
    let status = StatusCode::from_u16(cmd.status.unwrap_or(201)).unwrap_or(StatusCode::CREATED);
    (
        status,
        [
            ("location", format!("/orders/{id}")),
            ("set-cookie", "session=secret".to_owned()),
            ("x-not-replayed", "1".to_owned()),
        ],
        Json(json!({ "id": id, "pad": "x".repeat(cmd.pad) })),
    )
        .into_response()
}

#[idempotent(key_prefix = "orders", ttl = "24h", include_body = true)]
pub async fn orders(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(key_prefix = "optional", include_body = true, mandatory = false)]
pub async fn optional(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(key_prefix = "unhashed")]
pub async fn unhashed(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(key_prefix = "closed", include_body = true, fail_open = false)]
pub async fn closed(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(key_prefix = "billing", header = "X-Idempotency-Key")]
pub async fn billing(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(key_prefix = "short", include_body = true, lock_ttl = "300ms")]
pub async fn short_lock(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(
    key_prefix = "wait",
    include_body = true,
    on_conflict = "wait",
    max_wait = "10s"
)]
pub async fn waiting(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

#[idempotent(key_prefix = "impatient", on_conflict = "wait", max_wait = "100ms")]
pub async fn impatient(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

/// What the protocol told the handler: its key, and the claim it runs under.
async fn told(key: Option<IdempotencyKey>, claim: Option<IdempotencyClaim>) -> Response {
    Json(json!({
        "key": key.as_ref().map(IdempotencyKey::as_str),
        "store_key": claim.as_ref().map(|c| c.key.to_string()),
        "token": claim.as_ref().map(|c| c.token.as_str().to_owned()),
    }))
    .into_response()
}

#[idempotent(key_prefix = "told", mandatory = false)]
pub async fn told_by_macro(
    key: Option<IdempotencyKey>,
    claim: Option<IdempotencyClaim>,
) -> Response {
    told(key, claim).await
}

/// A keyed read: `{"report": name, "id": n}`; with `?tagged` the handler sets its own
/// `ETag` and `Cache-Control`.
async fn report(state: &AppState, name: String, tagged: bool) -> Response {
    state.probe.enter();
    let id = state.ids.fetch_add(1, Ordering::SeqCst) + 1;
    let mut response = Json(json!({ "report": name, "id": id })).into_response();
    if tagged {
        let headers = response.headers_mut();
        headers.insert("etag", HeaderValue::from_static("W/\"own-tag\""));
        headers.insert(
            "cache-control",
            HeaderValue::from_static("private, max-age=5"),
        );
    }
    response
}

#[idempotent(key_prefix = "reports", cache_control = "max-age=3600")]
pub async fn reports_by_macro(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    report(&state, name, query.as_deref() == Some("tagged")).await
}

async fn reports_plain(
    State(state): State<AppState>,
    UrlPath(name): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Response {
    report(&state, name, query.as_deref() == Some("tagged")).await
}

/// The policy of `/reports/{name}`, as its attribute says.
pub fn reports_policy() -> Policy {
    Policy::new()
        .key_prefix("reports")
        .cache_control(HeaderValue::from_static("max-age=3600"))
}

/// A charge as a Spring DTO declares it.
#[derive(serde::Serialize, Deserialize)]
pub struct Charge {
    amount: i64,
    currency: Option<String>,
}

async fn charge(state: &AppState, charge: Charge) -> Response {
    state.probe.enter();
    let id = state.ids.fetch_add(1, Ordering::SeqCst) + 1;
    (
        StatusCode::CREATED,
        Json(json!({ "id": id, "amount": charge.amount, "currency": charge.currency })),
    )
        .into_response()
}

#[idempotent(key_prefix = "charges", include_body = true, fingerprint = "typed")]
pub async fn charges_by_macro(State(state): State<AppState>, Json(c): Json<Charge>) -> Response {
    charge(&state, c).await
}

#[idempotent(
    key_prefix = "canonical",
    include_body = true,
    fingerprint = "canonical"
)]
pub async fn canonical_by_macro(State(state): State<AppState>, Json(c): Json<Charge>) -> Response {
    charge(&state, c).await
}

async fn charges_plain(State(state): State<AppState>, Json(c): Json<Charge>) -> Response {
    charge(&state, c).await
}

/// Every route, each with the options its name says.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/charges", post(charges_by_macro))
        .route("/canonical", post(canonical_by_macro))
        .route("/told", post(told_by_macro))
        .route("/reports/{name}", get(reports_by_macro))
        .route("/orders", post(orders))
        .route("/optional", post(optional))
        .route("/unhashed", post(unhashed))
        .route("/closed", post(closed))
        .route("/billing", post(billing))
        .route("/short", post(short_lock))
        .route("/wait", post(waiting))
        .route("/impatient", post(impatient))
}

async fn plain(State(state): State<AppState>, Json(cmd): Json<Command>) -> Response {
    behave(&state, cmd).await
}

/// The policy of each route of [`routes`], as its attribute says.
pub fn policies() -> Vec<(&'static str, Policy)> {
    vec![
        (
            "/orders",
            Policy::new()
                .key_prefix("orders")
                .ttl(Duration::from_secs(24 * 3600))
                .include_body(true),
        ),
        (
            "/optional",
            Policy::new()
                .key_prefix("optional")
                .include_body(true)
                .mandatory(false),
        ),
        ("/unhashed", Policy::new().key_prefix("unhashed")),
        (
            "/closed",
            Policy::new()
                .key_prefix("closed")
                .include_body(true)
                .fail_open(false),
        ),
        (
            "/billing",
            Policy::new()
                .key_prefix("billing")
                .header(HeaderName::from_static("x-idempotency-key")),
        ),
        (
            "/short",
            Policy::new()
                .key_prefix("short")
                .include_body(true)
                .lock_ttl(Duration::from_millis(300)),
        ),
        (
            "/wait",
            Policy::new()
                .key_prefix("wait")
                .include_body(true)
                .on_conflict(OnConflict::Wait(Duration::from_secs(10))),
        ),
        (
            "/impatient",
            Policy::new()
                .key_prefix("impatient")
                .on_conflict(OnConflict::Wait(Duration::from_millis(100))),
        ),
    ]
}

/// The routes of [`routes`], each a plain handler under the middleware with its policy.
pub fn layered_routes(idem: &Idempotency) -> Router<AppState> {
    let told_policy = Policy::new().key_prefix("told").mandatory(false);
    let charges = Policy::new()
        .key_prefix("charges")
        .include_body(true)
        .fingerprint(Fingerprint::Typed(TypedFingerprint::of::<Charge>()));
    let canonical = Policy::new()
        .key_prefix("canonical")
        .include_body(true)
        .fingerprint(Fingerprint::Canonical);
    let base = Router::new()
        .route("/told", post(told).layer(idem.layer(told_policy)))
        .route("/charges", post(charges_plain).layer(idem.layer(charges)))
        .route(
            "/canonical",
            post(charges_plain).layer(idem.layer(canonical)),
        )
        .route(
            "/reports/{name}",
            get(reports_plain).layer(idem.layer(reports_policy())),
        );
    policies().into_iter().fold(base, |router, (path, policy)| {
        router.route(path, post(plain).layer(idem.layer(policy)))
    })
}

/// Which way the protocol reaches the handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `#[idempotent]`, with the store registered on the router.
    Macro,
    /// `Idempotency::layer(policy)` around a plain handler.
    Layer,
}

impl Path {
    /// The test service on this path, with `idem` as its store.
    pub fn app(self, idem: Idempotency) -> Router<AppState> {
        match self {
            Path::Macro => routes().layer(idem),
            Path::Layer => layered_routes(&idem),
        }
    }
}

//! A reverse proxy that makes any upstream HTTP service idempotent, with no change to it.
//!
//! ```text
//! UPSTREAM=http://127.0.0.1:3000 BIND=127.0.0.1:8080 cargo run --example gateway
//! ```
//!
//! Every `POST`, `PUT`, `PATCH` and `DELETE` goes through the middleware with the policy
//! `key_prefix = "gateway", include_body = true, mandatory = false` (default `ttl`, and a
//! `lock_ttl` from `LOCK_TTL`): one carrying an `Idempotency-Key` is sent upstream once and
//! its 2xx response replayed to retries; one without a key is passed on as it is. Other
//! methods pass through untouched.
//!
//! Bodies stream both ways: a request body is sent upstream as it arrives (a keyed one is
//! first read whole, to fingerprint it), and a response body is passed on as the upstream
//! sends it (a keyed 2xx one is also kept for replay, up to the store's size limit). The
//! upstream's status, headers and body are kept; a replay carries the replayable headers.
//! An upstream that cannot be reached is answered 502, and its key released, so the retry
//! reaches the upstream again.
//!
//! Environment: `UPSTREAM` (required: `http://host:port`), `BIND` (default
//! `127.0.0.1:8080`), `LOCK_TTL` (a duration such as `"1s"`; default `"60s"`), and the
//! store: `DATABASE_URL` for PostgreSQL, else `DYNAMODB_TABLE` for DynamoDB, else `REDIS_URL`
//! for Redis, else the in-memory store.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use idempotent_runtime::{Idempotency, Policy};

#[path = "shared/mod.rs"]
mod shared;

/// Where requests go, and the client that takes them there.
#[derive(Clone)]
pub(crate) struct Upstream {
    base: String,
    client: reqwest::Client,
}

impl Upstream {
    pub(crate) fn new(base: &str) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            // The gateway relays what the upstream says, redirects included.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            client,
        })
    }
}

/// Headers that belong to one connection, not to the message: never relayed.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn relayed(headers: &HeaderMap) -> HeaderMap {
    let mut kept = headers.clone();
    for name in &HOP_BY_HOP {
        kept.remove(name);
    }
    kept.remove(header::HOST);
    kept
}

/// Send the request upstream, streaming its body, and stream the answer back.
async fn proxy(State(upstream): State<Upstream>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let url = format!("{}{}", upstream.base, path);
    let sent = upstream
        .client
        .request(parts.method.clone(), &url)
        .headers(relayed(&parts.headers))
        .body(reqwest::Body::wrap_stream(body.into_data_stream()))
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, method = %parts.method, path, "gateway: the upstream cannot be reached");
            return (
                StatusCode::BAD_GATEWAY,
                [(header::CONTENT_TYPE, "application/problem+json")],
                r#"{"type":"about:blank","title":"Bad Gateway","status":502,"detail":"The upstream service cannot be reached."}"#,
            )
                .into_response();
        }
    };
    let status = answer.status();
    let headers = relayed(answer.headers());
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The policy every keyed `POST`, `PUT`, `PATCH` and `DELETE` goes through.
pub(crate) fn policy(lock_ttl: Duration) -> Policy {
    Policy::new()
        .key_prefix("gateway")
        .include_body(true)
        .mandatory(false)
        .lock_ttl(lock_ttl)
}

/// The gateway: unsafe methods under the policy, everything else straight through.
pub(crate) fn app(idempotency: &Idempotency, upstream: Upstream, lock_ttl: Duration) -> Router {
    let routes = post(proxy)
        .put(proxy)
        .patch(proxy)
        .delete(proxy)
        // `route_layer`: the methods above only, not the fallback below.
        .route_layer(idempotency.layer(policy(lock_ttl)))
        .fallback(proxy)
        .with_state(upstream);
    Router::new().fallback_service(routes)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::init_tracing();

    let upstream = match std::env::var("UPSTREAM") {
        Ok(url) if !url.is_empty() => url,
        _ => return Err("UPSTREAM is not set: the gateway needs the upstream's address, e.g. UPSTREAM=http://127.0.0.1:3000".into()),
    };
    let lock_ttl = match std::env::var("LOCK_TTL") {
        Ok(text) if !text.is_empty() => humantime::parse_duration(&text)
            .map_err(|e| format!("LOCK_TTL={text} is not a duration such as \"1s\": {e}"))?,
        _ => Duration::from_secs(60),
    };
    if lock_ttl < Duration::from_millis(1) {
        return Err(format!("LOCK_TTL={lock_ttl:?} must be at least 1ms").into());
    }
    let shared::Chosen {
        idempotency,
        name: store,
        ..
    } = shared::store_from_env().await?;
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .map_err(|e| format!("binding {bind}: {e}"))?;
    let router = app(&idempotency, Upstream::new(&upstream)?, lock_ttl);
    tracing::info!(addr = %listener.local_addr()?, upstream, store, ?lock_ttl, "gateway example ready");
    axum::serve(listener, router).await?;
    Ok(())
}

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::routing::post;
use idempotent_runtime::{Idempotency, idempotent};

#[derive(Clone)]
struct AppState {
    name: &'static str,
}

// The last argument may be an extractor of the request head only.
#[idempotent]
async fn last_is_state(headers: HeaderMap, State(state): State<AppState>) -> String {
    format!("{}: {}", state.name, headers.len())
}

#[idempotent]
async fn last_is_headers(method: Method, uri: Uri, headers: HeaderMap) -> String {
    format!("{method} {uri} {}", headers.len())
}

#[idempotent]
async fn only_headers(headers: HeaderMap) -> String {
    headers.len().to_string()
}

fn main() {
    let _app: Router = Router::new()
        .route("/state", post(last_is_state))
        .route("/headers", post(last_is_headers))
        .route("/only", post(only_headers))
        .layer(Idempotency::memory())
        .with_state(AppState { name: "app" });
}

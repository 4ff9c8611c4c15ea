#![deny(missing_docs, warnings)]
//! Attributes on a handler keep working: docs and `cfg` on the routed function, the others
//! (here `tracing::instrument` and a lint level, which `state` needs) on the body.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use idempotent_runtime::{Idempotency, idempotent};

/// The application state.
#[derive(Clone, Debug)]
pub struct AppState;

/// Sends a notification.
#[idempotent(key_prefix = "notify", mandatory = false)]
#[cfg(not(any()))]
#[tracing::instrument(skip_all)]
#[allow(unused_variables)]
pub async fn notify(State(state): State<AppState>, body: String) -> String {
    tracing::info!("notifying");
    body
}

fn main() {
    let _app: Router = Router::new()
        .route("/notify", post(notify))
        .layer(Idempotency::memory())
        .with_state(AppState);
}

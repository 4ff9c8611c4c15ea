use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use idempotent_runtime::{Idempotency, idempotent};

/// Handlers that work with any state.
fn app<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/echo", post(echo))
        .route("/headers", post(count_headers))
}

#[idempotent]
async fn echo(Json(value): Json<serde_json::Value>) -> Json<serde_json::Value> {
    Json(value)
}

#[idempotent]
async fn count_headers(headers: HeaderMap) -> String {
    headers.len().to_string()
}

trait Repo: Clone + Send + Sync + 'static {
    fn save(&self, value: &serde_json::Value) -> u64;
}

#[derive(Clone)]
struct MemoryRepo;

impl Repo for MemoryRepo {
    fn save(&self, _value: &serde_json::Value) -> u64 {
        1
    }
}

/// A handler generic over its repository.
#[idempotent(key_prefix = "saved")]
async fn save<R>(State(repo): State<R>, Json(value): Json<serde_json::Value>) -> String
where
    R: Repo,
{
    repo.save(&value).to_string()
}

fn main() {
    let _app: Router = app::<MemoryRepo>()
        .route("/save", post(save::<MemoryRepo, _, _>))
        .layer(Idempotency::memory())
        .with_state(MemoryRepo);
}

extern crate idempotent_runtime as idem;

use axum::Router;
use axum::routing::post;
use idem::{Idempotency, idempotent};

mod runtime {
    pub use idempotent_runtime as renamed;
}

#[idempotent(crate = "idem")]
async fn via_extern_crate(body: String) -> String {
    body
}

#[idempotent(crate = "runtime::renamed")]
async fn via_module(body: String) -> String {
    body
}

fn main() {
    let _app: Router = Router::new()
        .route("/a", post(via_extern_crate))
        .route("/b", post(via_module))
        .layer(Idempotency::memory());
}

use idempotent_runtime::idempotent;

#[idempotent(on_conflict = "queue")]
async fn handler() {}

fn main() {}

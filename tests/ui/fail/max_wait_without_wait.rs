use idempotent_runtime::idempotent;

#[idempotent(max_wait = "5s")]
async fn handler() {}

fn main() {}

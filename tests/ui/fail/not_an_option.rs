use idempotent_runtime::idempotent;

#[idempotent("orders")]
async fn handler() {}

fn main() {}

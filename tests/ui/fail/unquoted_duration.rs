use idempotent_runtime::idempotent;

#[idempotent(ttl = 24h)]
async fn handler() {}

fn main() {}

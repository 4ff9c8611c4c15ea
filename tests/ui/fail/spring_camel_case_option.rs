use idempotent_runtime::idempotent;

#[idempotent(keyPrefix = "orders", includeBody = true, timeUnit = "HOURS", ttl = 24)]
async fn handler() {}

fn main() {}

use idempotent_runtime::idempotent;

#[idempotent(ttl = "1h", key_prefix = "orders", ttl = "2h")]
async fn handler() {}

fn main() {}

use idempotent_runtime::idempotent;

#[idempotent(key_prefix = "orders:v2")]
async fn colon() {}

#[idempotent(key_prefix = "orders|v2")]
async fn pipe() {}

#[idempotent(key_prefix = "my orders")]
async fn whitespace() {}

fn main() {}

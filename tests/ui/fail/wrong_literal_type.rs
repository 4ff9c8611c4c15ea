use idempotent_runtime::idempotent;

#[idempotent(include_body = "yes")]
async fn boolean() {}

#[idempotent(key_prefix = orders)]
async fn string() {}

#[idempotent(ttl = 1.5)]
async fn duration() {}

fn main() {}

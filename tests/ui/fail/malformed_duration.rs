use idempotent_runtime::idempotent;

#[idempotent(ttl = "one day")]
async fn no_number() {}

#[idempotent(lock_ttl = "60")]
async fn no_unit() {}

#[idempotent(ttl = "")]
async fn empty() {}

fn main() {}

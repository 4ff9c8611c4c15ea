use idempotent_runtime::idempotent;

#[idempotent(ttl = "24h", time_unit = "HOURS")]
async fn string_ttl() {}

#[idempotent(time_unit = "HOURS")]
async fn no_ttl() {}

fn main() {}

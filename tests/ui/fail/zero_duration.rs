use idempotent_runtime::idempotent;

#[idempotent(ttl = "0s")]
async fn zero_string() {}

#[idempotent(ttl = 0, time_unit = "HOURS")]
async fn zero_integer() {}

#[idempotent(lock_ttl = "500us")]
async fn under_a_millisecond() {}

fn main() {}

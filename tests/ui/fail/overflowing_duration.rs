use idempotent_runtime::idempotent;

#[idempotent(ttl = "100000000000000000000000s")]
async fn string() {}

#[idempotent(ttl = 18446744073709551615, time_unit = "DAYS")]
async fn integer() {}

fn main() {}

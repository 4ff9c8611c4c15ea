use idempotent_runtime::idempotent;

#[idempotent(ttl = 24, time_unit = "HOUR")]
async fn singular() {}

#[idempotent(ttl = 24, time_unit = TimeUnit.HOURS)]
async fn java_constant() {}

fn main() {}

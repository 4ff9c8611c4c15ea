use idempotent_runtime::idempotent;

#[idempotent(cache_control = "max-age=60\n")]
async fn newline() {}

#[idempotent(cache_control = "")]
async fn empty() {}

#[idempotent(cache_control = 3600)]
async fn not_a_string() {}

fn main() {}

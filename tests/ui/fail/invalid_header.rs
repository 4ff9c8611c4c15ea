use idempotent_runtime::idempotent;

#[idempotent(header = "Idempotency Key")]
async fn handler() {}

fn main() {}

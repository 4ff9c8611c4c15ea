use idempotent_runtime::idempotent;

#[idempotent(header = "")]
async fn handler() {}

fn main() {}

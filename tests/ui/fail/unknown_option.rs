use idempotent_runtime::idempotent;

#[idempotent(colour = "red")]
async fn handler() {}

fn main() {}

use idempotent_runtime::idempotent;

#[idempotent(crate = "idempotent runtime")]
async fn handler() {}

fn main() {}

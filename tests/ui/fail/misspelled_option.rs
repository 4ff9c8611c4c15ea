use idempotent_runtime::idempotent;

#[idempotent(key_prefx = "orders")]
async fn handler() {}

fn main() {}

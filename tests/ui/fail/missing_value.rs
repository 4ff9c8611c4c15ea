use idempotent_runtime::idempotent;

#[idempotent(include_body)]
async fn handler() {}

fn main() {}

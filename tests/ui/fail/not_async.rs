use idempotent_runtime::idempotent;

#[idempotent]
fn handler() -> &'static str {
    "hello"
}

fn main() {}

use idempotent_runtime::idempotent;

#[idempotent]
struct Order {
    amount: i64,
}

fn main() {}

use idempotent_runtime::idempotent;

struct Orders;

impl Orders {
    #[idempotent(
        keyPrefix = "orders",
        ttl = "0s",
        include_body = "yes",
        header = "bad header",
        ttl = "1h"
    )]
    fn create(&self) {}
}

fn main() {}

use idempotent_runtime::idempotent;

#[idempotent(include_body = true, fingerprint = "cannonical")]
async fn handler(body: String) -> String {
    body
}

fn main() {}

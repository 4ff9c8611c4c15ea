use idempotent_runtime::idempotent;

#[idempotent(include_body = true, fingerprint = "typed")]
async fn handler() -> &'static str {
    "no body extractor"
}

fn main() {}

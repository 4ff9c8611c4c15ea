//! What the examples share: their logs, and their store, chosen by the environment
//! (DynamoDB when `DYNAMODB_TABLE` is set, else Redis when `REDIS_URL` is set, else the
//! in-memory store). `DATABASE_URL`, which names PostgreSQL ahead of all of them, is refused
//! with a clear error: this build has no PostgreSQL store.

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use idempotent_runtime::Idempotency;
use idempotent_runtime::store::dynamodb::DynamoStore;

/// The store the environment names, and its name for the log line. A store that cannot be
/// reached is an error that says which variable named it.
pub(crate) async fn store_from_env() -> Result<(Idempotency, &'static str), String> {
    store_from(|name| std::env::var(name).ok().filter(|value| !value.is_empty())).await
}

/// The store the variables `var` reads name (a variable set to "" counts as unset).
pub(crate) async fn store_from(
    var: impl Fn(&str) -> Option<String>,
) -> Result<(Idempotency, &'static str), String> {
    // PostgreSQL comes first in the order of choice: a run that names it must not silently
    // get another store (and no `/transfers`).
    if var("DATABASE_URL").is_some() {
        return Err(
            "DATABASE_URL is set, but this build has no PostgreSQL store: unset it to \
                    use DynamoDB (DYNAMODB_TABLE), Redis (REDIS_URL) or the in-memory store"
                .into(),
        );
    }
    // DynamoDB: the SDK's own settings from the environment (`AWS_REGION`, credentials,
    // `AWS_ENDPOINT_URL_DYNAMODB` for a local server, ...).
    if let Some(table) = var("DYNAMODB_TABLE") {
        let config = aws_config::defaults(BehaviorVersion::latest())
            .http_client(https_client())
            .load()
            .await;
        let idem = dynamodb(&config, &table)
            .await
            .map_err(|e| format!("DYNAMODB_TABLE={table}: {e}"))?;
        return Ok((idem, "dynamodb"));
    }
    match var("REDIS_URL") {
        Some(url) => {
            let idem = Idempotency::redis(&url)
                .await
                .map_err(|e| format!("connecting to REDIS_URL={url}: {e}"))?;
            Ok((idem, "redis"))
        }
        None => Ok((Idempotency::memory(), "memory")),
    }
}

/// The HTTP client of the examples' AWS SDK: hyper with rustls and ring (HTTPS for AWS, plain
/// HTTP for a local endpoint).
pub(crate) fn https_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The DynamoDB store in `table`, over a client of `config`; the table is created (with TTL
/// on its expiry attribute) when it does not exist, which also checks that DynamoDB can be
/// reached.
pub(crate) async fn dynamodb(config: &SdkConfig, table: &str) -> Result<Idempotency, String> {
    if config.region().is_none() {
        return Err("no AWS region: set AWS_REGION (any region for a local endpoint)".into());
    }
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(config), table);
    store
        .create_table()
        .await
        .map_err(|e| format!("cannot use the table: {e}"))?;
    Ok(Idempotency::new(store))
}

/// Logs to stderr, at `info` unless `RUST_LOG` says otherwise.
pub(crate) fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

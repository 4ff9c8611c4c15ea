//! What the examples share: their logs, and their store, chosen by the environment
//! (PostgreSQL when `DATABASE_URL` is set, else DynamoDB when `DYNAMODB_TABLE` is set, else
//! Redis when `REDIS_URL` is set, else the in-memory store).

use std::time::Duration;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use idempotent_runtime::Idempotency;
use idempotent_runtime::store::dynamodb::DynamoStore;
use sqlx::postgres::{PgPool, PgPoolOptions};

/// The store an example runs on.
pub(crate) struct Chosen {
    pub(crate) idempotency: Idempotency,
    /// Its name, for the log line.
    pub(crate) name: &'static str,
    /// With PostgreSQL, the pool (the orders example's transfers live in the same database).
    #[allow(dead_code, reason = "the gateway example has no use for it")]
    pub(crate) pool: Option<PgPool>,
}

/// The store the environment names. A store that cannot be reached is an error that says
/// which variable named it.
pub(crate) async fn store_from_env() -> Result<Chosen, String> {
    store_from(|name| std::env::var(name).ok().filter(|value| !value.is_empty())).await
}

/// The store the variables `var` reads name (a variable set to "" counts as unset).
pub(crate) async fn store_from(var: impl Fn(&str) -> Option<String>) -> Result<Chosen, String> {
    let chosen = |idempotency, name| Chosen {
        idempotency,
        name,
        pool: None,
    };
    if var("DATABASE_URL").is_some() {
        // The URL may carry a password: the error names the variable, not its value.
        let url = var("DATABASE_URL").unwrap_or_default();
        let pool = postgres_pool(&url)
            .await
            .map_err(|e| format!("connecting to DATABASE_URL: {e}"))?;
        let idempotency = Idempotency::postgres(pool.clone())
            .await
            .map_err(|e| format!("DATABASE_URL: {e}"))?;
        return Ok(Chosen {
            idempotency,
            name: "postgres",
            pool: Some(pool),
        });
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
        return Ok(chosen(idem, "dynamodb"));
    }
    match var("REDIS_URL") {
        Some(url) => {
            let idem = Idempotency::redis(&url)
                .await
                .map_err(|e| format!("connecting to REDIS_URL={url}: {e}"))?;
            Ok(chosen(idem, "redis"))
        }
        None => Ok(chosen(Idempotency::memory(), "memory")),
    }
}

/// A pool on `url` as a service would size it: connections are not pinged before each use
/// (a broken one fails one call, an outage the store handles, and is replaced), and a
/// checkout waits at most two seconds.
pub(crate) async fn postgres_pool(url: &str) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(2))
        .test_before_acquire(false)
        .connect(url)
        .await
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

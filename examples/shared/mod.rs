//! What the examples share: their logs, and their store, chosen by the environment (Redis
//! when `REDIS_URL` is set, else the in-memory store).

use idempotent_runtime::Idempotency;

/// The store the environment names, and its name for the log line. A store that cannot be
/// reached is an error that says which variable named it.
pub(crate) async fn store_from_env() -> Result<(Idempotency, &'static str), String> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let idem = Idempotency::redis(&url)
                .await
                .map_err(|e| format!("connecting to REDIS_URL={url}: {e}"))?;
            Ok((idem, "redis"))
        }
        _ => Ok((Idempotency::memory(), "memory")),
    }
}

/// Logs to stderr, at `info` unless `RUST_LOG` says otherwise.
pub(crate) fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
}

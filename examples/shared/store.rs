//! The store of the examples, chosen by the environment: Redis when `REDIS_URL` is set,
//! else the in-memory store.

use idempotent_runtime::Idempotency;

/// The store the environment names, and its name for the log line. A store that cannot be
/// reached is an error that says which variable named it.
pub(crate) async fn from_env() -> Result<(Idempotency, &'static str), String> {
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

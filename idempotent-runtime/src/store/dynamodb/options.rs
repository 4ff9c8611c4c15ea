//! [`DynamoOptions`]: the table's attribute names and the bounds of each call.

use std::time::Duration;

/// Settings of a [`DynamoStore`](super::DynamoStore): the names of the table's key and
/// expiry attributes, and how long one store call may take.
///
/// ```
/// use std::time::Duration;
/// use idempotent_runtime::store::dynamodb::DynamoOptions;
///
/// let options = DynamoOptions::default()
///     .partition_key("id")
///     .expiry_attribute("ttl")
///     .timeout(Duration::from_millis(200));
/// assert_eq!(options.partition_key, "id");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DynamoOptions {
    /// The name of the table's partition key, a string attribute that holds the store key
    /// (`idempotency:{key_prefix}:{key}`). Default `pk`.
    pub partition_key: String,
    /// The name of the attribute holding the record's expiry in seconds since the Unix
    /// epoch: the one to enable the table's TTL on. Default `expires_at`.
    pub expiry_attribute: String,
    /// The longest one store call may take, every attempt and backoff included: the SDK's
    /// operation timeout for the store's calls. Default 250 ms, below the engine's default
    /// store deadline (300 ms), so that a slow call ends with the SDK's own error.
    pub timeout: Duration,
    /// How many times the SDK may send one store call (its standard retry strategy, with
    /// backoffs of a few milliseconds, all within [`timeout`](Self::timeout)). Default 1:
    /// no retry, so that a failure says exactly whether the call may have taken effect. With
    /// more, throttling, 5xx answers and connection errors are retried, and any failure
    /// after a retry counts as one that may have taken effect (an earlier attempt may have
    /// landed).
    pub max_attempts: u32,
}

impl Default for DynamoOptions {
    fn default() -> Self {
        Self {
            partition_key: "pk".to_owned(),
            expiry_attribute: "expires_at".to_owned(),
            timeout: Duration::from_millis(250),
            max_attempts: 1,
        }
    }
}

impl DynamoOptions {
    /// Set [`partition_key`](Self::partition_key).
    pub fn partition_key(mut self, name: impl Into<String>) -> Self {
        self.partition_key = name.into();
        self
    }

    /// Set [`expiry_attribute`](Self::expiry_attribute).
    pub fn expiry_attribute(mut self, name: impl Into<String>) -> Self {
        self.expiry_attribute = name.into();
        self
    }

    /// Set [`timeout`](Self::timeout).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Set [`max_attempts`](Self::max_attempts) (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }
}

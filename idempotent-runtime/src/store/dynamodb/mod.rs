//! [`DynamoStore`]: records in a DynamoDB table, shared by every process that uses it
//! (feature `dynamodb`).
//!
//! The app builds the SDK's client (region, credentials, endpoint, HTTP and TLS stack are
//! the SDK's own settings) and hands it over with a table name:
//!
//! ```no_run
//! # async fn start() -> Result<(), Box<dyn std::error::Error>> {
//! use idempotent_runtime::Idempotency;
//!
//! let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
//! let client = aws_sdk_dynamodb::Client::new(&config);
//! // Checks that the table exists and has the expected key (one `DescribeTable`).
//! let idem = Idempotency::dynamodb(client, "idempotency").await?;
//! # drop(idem);
//! # Ok(())
//! # }
//! ```
//!
//! The feature builds the SDK without its default features: the app picks the HTTP client
//! and TLS stack (the SDK's defaults, by depending on `aws-sdk-dynamodb` with them, or its
//! own). It needs Rust 1.94.1 or later, the SDK's own minimum.
//!
//! # The table
//!
//! A partition key of type `S` named `pk` (see [`DynamoOptions::partition_key`]), no sort
//! key, and TTL enabled on `expires_at` ([`DynamoOptions::expiry_attribute`]) so that
//! DynamoDB deletes expired records by itself. [`DynamoStore::create_table`] makes one
//! (on-demand capacity) for development, tests and examples; in production, declare it
//! with your infrastructure:
//!
//! ```text
//! aws dynamodb create-table --table-name idempotency \
//!     --attribute-definitions AttributeName=pk,AttributeType=S \
//!     --key-schema AttributeName=pk,KeyType=HASH --billing-mode PAY_PER_REQUEST
//! aws dynamodb update-time-to-live --table-name idempotency \
//!     --time-to-live-specification Enabled=true,AttributeName=expires_at
//! ```
//!
//! The store calls `PutItem`, `UpdateItem`, `DeleteItem` and `GetItem` on the table;
//! [`Idempotency::dynamodb`](crate::Idempotency::dynamodb) and
//! [`check_table`](DynamoStore::check_table) also `DescribeTable`, and
//! [`create_table`](DynamoStore::create_table) `CreateTable` and `UpdateTimeToLive`.
//!
//! # What is stored
//!
//! One item per store key, the key's string form (`idempotency:{key_prefix}:{key}`) as the
//! partition key. The record (see [`crate::record`]) is kept in attributes:
//!
//! | attribute | type | |
//! |---|---|---|
//! | `pk` | S | the store key |
//! | `state` | S | `PROCESSING` or `COMPLETED` |
//! | `token` | S | the claim's token; of a completed record, the claim that completed it |
//! | `fingerprint` | S | the request's fingerprint (`bodyHash`); absent when not hashed |
//! | `status` | N | the response's status (completed) |
//! | `headers` | L | the replayable headers, each `[name (S), value (B)]` (completed) |
//! | `body` | B | the response body (completed) |
//! | `stored_at` | N | when it was stored, in milliseconds since the Unix epoch (completed) |
//! | `expires_at_ms` | N | when the record expires, in milliseconds since the Unix epoch |
//! | `expires_at` | N | the same in seconds, rounded up: the table's TTL attribute |
//!
//! A PROCESSING record expires after the handler's `lock_ttl`, a completed one after its
//! `ttl`. DynamoDB deletes expired items lazily (within days), so expiry is never left to
//! it: every condition compares `expires_at_ms` with the time the call was made, and every
//! read treats an expired item as absent. The time is this process's clock: processes
//! sharing a table need clocks that agree to well within `lock_ttl`.
//!
//! # Round trips
//!
//! Each store operation is one request, a conditional write:
//!
//! | request | DynamoDB requests |
//! |---|---|
//! | replay (key completed, same body) | 1: the claim, which returns the stored record |
//! | mismatch (different body) | 1: the claim |
//! | conflict (key still PROCESSING) | 1: the claim |
//! | first execution | 2: the claim, then complete (or release, for a non-2xx answer) |
//! | missing or invalid key | 0 |
//!
//! - **claim**: `PutItem` of the PROCESSING record with the condition
//!   `attribute_not_exists(pk) OR expires_at_ms <= :now` and
//!   `ReturnValuesOnConditionCheckFailure = ALL_OLD`: when a live record is there, nothing
//!   is written and DynamoDB returns that record with the `ConditionalCheckFailedException`.
//!   Of any number of concurrent claims, across processes, exactly one succeeds.
//! - **complete**: `PutItem` of the completed record with the condition
//!   `attribute_not_exists(pk) OR expires_at_ms <= :now OR token = :token`: written over
//!   this claim's record, or when the key is free (the lock expired and nobody claimed it
//!   since); refused ([`Fence::Refused`]) when another live record is there.
//! - **release**: `DeleteItem` with the condition `token = :token AND state = PROCESSING`.
//! - **renew** (lease renewal, while a handler runs past half its `lock_ttl`): `UpdateItem`
//!   of the expiry with the condition `token = :token AND state = PROCESSING AND
//!   expires_at_ms > :now`.
//!
//! # Item size
//!
//! An item holds at most 400 KB. A completed record over it is not sent: `complete` answers
//! [`StoreErrorKind::TooLarge`], and the engine returns the response without storing it,
//! releases the key, logs a warning and counts it, as for a response over
//! [`max_response_size`](crate::Idempotency::max_response_size). A size refusal from the
//! service (a `ValidationException` about the item size) is the same error.
//!
//! # Outages
//!
//! The store sends its calls through a copy of the app's client (sharing its connections,
//! credentials, region, endpoint and interceptors) whose operation timeout is
//! [`DynamoOptions::timeout`] (250 ms by default, below the engine's 300 ms store
//! deadline) and whose retries are [`DynamoOptions::max_attempts`] (1 by default: no
//! retry). A call that fails is a [`StoreError`], which the engine treats as an outage
//! (`fail_open`): throttling and refusals answered by the service are
//! [`Unavailable`](StoreErrorKind::Unavailable), as is a connection that could not be
//! opened; a timeout, a connection lost after sending, a 5xx answer or an answer that
//! cannot be read may still have taken effect, and is
//! [`Indeterminate`](StoreErrorKind::Indeterminate) (for a claim, the engine then releases
//! it, fenced, in the background). An item that is not a record of this store is
//! [`Undecodable`](StoreErrorKind::Undecodable) and left alone. The SDK's client needs no
//! reconnection: the next call after an outage simply succeeds.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::describe_table::DescribeTableError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType,
    ReturnValuesOnConditionCheckFailure, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};

pub use options::DynamoOptions;

use super::{
    Claim, ClaimOutcome, Fence, IdempotencyStore, Record, StoreError, StoreErrorKind, StoreKey,
    StoredResponse, Token,
};
use item::{Expiry, Item, Layout, epoch_millis, number, string};

mod failure;
mod item;
mod options;

/// How long [`DynamoStore::create_table`] waits for a new table to become active.
const TABLE_ACTIVE_WITHIN: Duration = Duration::from_secs(60);
/// How often it asks meanwhile.
const TABLE_POLL_EVERY: Duration = Duration::from_millis(200);

/// A store in a DynamoDB table, over the AWS SDK's [`Client`].
///
/// See the [module docs](self) for the table, what is stored, the round trips and outage
/// behaviour. Cloning is cheap and shares the client.
///
/// ```no_run
/// # async fn start(client: aws_sdk_dynamodb::Client) -> Result<(), idempotent_runtime::store::StoreError> {
/// use std::time::Duration;
/// use idempotent_runtime::Idempotency;
/// use idempotent_runtime::store::dynamodb::{DynamoOptions, DynamoStore};
///
/// let options = DynamoOptions::default()
///     .partition_key("id")
///     .timeout(Duration::from_millis(200));
/// let store = DynamoStore::with_options(client, "idempotency", options)?;
/// store.create_table().await?; // development only: creates it if missing
/// let idem = Idempotency::new(store);
/// # drop(idem);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DynamoStore {
    shared: Arc<Shared>,
}

struct Shared {
    /// The app's client, for the table's administration (its own timeouts).
    admin: Client,
    /// The same client with the store's timeout and retries, for the store's calls.
    calls: Client,
    table: String,
    layout: Layout,
    retried: bool,
}

impl DynamoStore {
    /// A store in `table`, with the default [`DynamoOptions`]. Sends nothing: see
    /// [`check_table`](Self::check_table) to find out at start whether the table is there.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self::build(client, table.into(), DynamoOptions::default())
    }

    /// A store in `table` with the given options. Sends nothing.
    ///
    /// Fails if an attribute name of the options is empty, is one of the record's
    /// attributes (`state`, `token`, `fingerprint`, `status`, `headers`, `body`,
    /// `stored_at`, `expires_at_ms`), or if both name the same attribute.
    pub fn with_options(
        client: Client,
        table: impl Into<String>,
        options: DynamoOptions,
    ) -> Result<Self, StoreError> {
        for (option, name) in [
            ("partition_key", &options.partition_key),
            ("expiry_attribute", &options.expiry_attribute),
        ] {
            if name.is_empty() || item::RECORD_ATTRIBUTES.contains(&name.as_str()) {
                return Err(StoreError::new(format!(
                    "dynamodb: `{option}` cannot be {name:?}: it must name an attribute other than the record's ({})",
                    item::RECORD_ATTRIBUTES.join(", ")
                )));
            }
        }
        if options.partition_key == options.expiry_attribute {
            return Err(StoreError::new(
                "dynamodb: `partition_key` and `expiry_attribute` must name different attributes",
            ));
        }
        Ok(Self::build(client, table.into(), options))
    }

    fn build(client: Client, table: String, options: DynamoOptions) -> Self {
        let config = client.config();
        let timeouts = config
            .timeout_config()
            .map(TimeoutConfig::to_builder)
            .unwrap_or_default()
            .operation_timeout(options.timeout)
            .build();
        let retries = if options.max_attempts > 1 {
            RetryConfig::standard()
                .with_max_attempts(options.max_attempts)
                .with_initial_backoff(Duration::from_millis(10))
                .with_max_backoff(Duration::from_millis(50))
        } else {
            RetryConfig::disabled()
        };
        // The app's client passed the same checks when it was built; what is added here, a
        // timeout and retries, needs an async sleep, which the `rt-tokio` feature this crate
        // enables on the SDK always provides: building the client cannot fail.
        let calls = Client::from_conf(
            config
                .to_builder()
                .timeout_config(timeouts)
                .retry_config(retries)
                .build(),
        );
        Self {
            shared: Arc::new(Shared {
                admin: client,
                calls,
                table,
                layout: Layout {
                    partition_key: options.partition_key,
                    expiry: options.expiry_attribute,
                },
                retried: options.max_attempts > 1,
            }),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.shared.table
    }

    /// Check that the table exists and that its partition key is the expected string
    /// attribute, without a sort key (one `DescribeTable`, with the app's client and its
    /// timeouts). For an app that should not start without its store.
    pub async fn check_table(&self) -> Result<(), StoreError> {
        let shared = &*self.shared;
        let described = shared
            .admin
            .describe_table()
            .table_name(&shared.table)
            .send()
            .await;
        let table = match described {
            Ok(output) => output.table,
            Err(error) => {
                if let Some(DescribeTableError::ResourceNotFoundException(_)) =
                    error.as_service_error()
                {
                    return Err(StoreError::new(format!(
                        "dynamodb: table `{}` does not exist (create it, or call DynamoStore::create_table)",
                        shared.table
                    )));
                }
                return Err(self.failure("DescribeTable", error));
            }
        };
        let keys = table.as_ref().map(|t| t.key_schema()).unwrap_or_default();
        let hash = keys.iter().find(|k| k.key_type() == &KeyType::Hash);
        if keys.len() != 1
            || hash.map(KeySchemaElement::attribute_name) != Some(&shared.layout.partition_key)
        {
            return Err(StoreError::new(format!(
                "dynamodb: table `{}` must have the partition key `{}` and no sort key",
                shared.table, shared.layout.partition_key
            )));
        }
        let string_key = table
            .as_ref()
            .map(|t| t.attribute_definitions())
            .unwrap_or_default()
            .iter()
            .any(|d| {
                d.attribute_name() == shared.layout.partition_key
                    && d.attribute_type() == &ScalarAttributeType::S
            });
        if !string_key {
            return Err(StoreError::new(format!(
                "dynamodb: the partition key `{}` of table `{}` must be a string (S)",
                shared.layout.partition_key, shared.table
            )));
        }
        Ok(())
    }

    /// Create the table if it does not exist (on-demand capacity, the partition key of the
    /// options), wait until it is active, and enable TTL on the expiry attribute; then
    /// [`check_table`](Self::check_table). Returns whether it created the table. Uses the
    /// app's client and its timeouts. For development, tests and examples: production
    /// tables belong to the infrastructure's code.
    ///
    /// A server that does not support TTL (some local emulators) is tolerated: expiry never
    /// depends on it, only the deletion of expired items does. That is logged at `warn`.
    pub async fn create_table(&self) -> Result<bool, StoreError> {
        let shared = &*self.shared;
        let pk = &shared.layout.partition_key;
        let created = shared
            .admin
            .create_table()
            .table_name(&shared.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(pk)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(|e| {
                        StoreError::with_source("dynamodb: building the table's definition", e)
                    })?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(pk)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(|e| {
                        StoreError::with_source("dynamodb: building the table's key", e)
                    })?,
            )
            .send()
            .await;
        let created = match created {
            Ok(_) => true,
            Err(error) => {
                use aws_sdk_dynamodb::operation::create_table::CreateTableError;
                match error.as_service_error() {
                    // It exists already (or is being created by another process).
                    Some(CreateTableError::ResourceInUseException(_)) => false,
                    _ => return Err(self.failure("CreateTable", error)),
                }
            }
        };
        self.wait_until_active().await?;
        if created {
            self.enable_ttl().await;
            tracing::info!(table = %shared.table, "idempotency: created the dynamodb table");
        }
        self.check_table().await?;
        Ok(created)
    }

    async fn wait_until_active(&self) -> Result<(), StoreError> {
        let shared = &*self.shared;
        let give_up = tokio::time::Instant::now() + TABLE_ACTIVE_WITHIN;
        loop {
            let status = shared
                .admin
                .describe_table()
                .table_name(&shared.table)
                .send()
                .await
                .map_err(|e| self.failure("DescribeTable", e))?
                .table
                .and_then(|t| t.table_status);
            if status == Some(TableStatus::Active) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(StoreError::new(format!(
                    "dynamodb: table `{}` is not active after {TABLE_ACTIVE_WITHIN:?} (status {status:?})",
                    shared.table
                )));
            }
            tokio::time::sleep(TABLE_POLL_EVERY).await;
        }
    }

    async fn enable_ttl(&self) {
        let shared = &*self.shared;
        let enabled = TimeToLiveSpecification::builder()
            .enabled(true)
            .attribute_name(&shared.layout.expiry)
            .build();
        let result = match enabled {
            Ok(spec) => shared
                .admin
                .update_time_to_live()
                .table_name(&shared.table)
                .time_to_live_specification(spec)
                .send()
                .await
                .map(drop)
                .map_err(|e| self.failure("UpdateTimeToLive", e)),
            Err(e) => Err(StoreError::with_source(
                "dynamodb: building the TTL settings",
                e,
            )),
        };
        if let Err(error) = result {
            tracing::warn!(table = %shared.table, %error, "idempotency: could not enable TTL on the dynamodb table; expired records stay until deleted (they are still treated as absent)");
        }
    }

    /// The live record under `key`, read with a strongly consistent `GetItem`; `None` when
    /// there is none or it has expired. For tools and tests: the store's own operations
    /// never read before they write.
    pub async fn get(&self, key: &StoreKey) -> Result<Option<Record>, StoreError> {
        let shared = &*self.shared;
        let read = shared
            .calls
            .get_item()
            .table_name(&shared.table)
            .set_key(Some(shared.layout.key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.failure("get", e))?;
        match read.item {
            None => Ok(None),
            Some(item) => decode(item, now_millis()),
        }
    }

    fn failure<E, R>(&self, op: &str, error: aws_sdk_dynamodb::error::SdkError<E, R>) -> StoreError
    where
        E: aws_sdk_dynamodb::error::ProvideErrorMetadata
            + std::error::Error
            + Send
            + Sync
            + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        failure::classify(op, &self.shared.table, error, self.shared.retried)
    }
}

/// The record in an item read back, or why it is not one.
fn decode(item: Item, now: u64) -> Result<Option<Record>, StoreError> {
    item::decode(item, now).map_err(|why| {
        tracing::debug!(
            why,
            "idempotency: a dynamodb item under a store key is not an idempotency record"
        );
        StoreError::new(format!(
            "dynamodb: the item under the key is not an idempotency record: {why}"
        ))
        .with_kind(StoreErrorKind::Undecodable)
    })
}

fn now_millis() -> u64 {
    epoch_millis(SystemTime::now())
}

/// `#name` placeholders for the attributes conditions refer to.
const PK: &str = "#pk";
const EXPIRES: &str = "#expires";
const TTL: &str = "#ttl";
const TOKEN: &str = "#token";
const STATE: &str = "#state";

#[async_trait]
impl IdempotencyStore for DynamoStore {
    fn name(&self) -> &'static str {
        "dynamodb"
    }

    async fn claim(&self, key: &StoreKey, claim: &Claim) -> Result<ClaimOutcome, StoreError> {
        let shared = &*self.shared;
        let now = now_millis();
        let item = shared.layout.processing(
            key,
            &claim.token,
            claim.fingerprint.as_deref(),
            Expiry::after(now, claim.lock_ttl),
        );
        let put = shared
            .calls
            .put_item()
            .table_name(&shared.table)
            .set_item(Some(item))
            .condition_expression(format!("attribute_not_exists({PK}) OR {EXPIRES} <= :now"))
            .expression_attribute_names(PK, &shared.layout.partition_key)
            .expression_attribute_names(EXPIRES, item::EXPIRES_AT_MS)
            .expression_attribute_values(":now", number(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match put {
            Ok(_) => return Ok(ClaimOutcome::Claimed),
            Err(error) => error,
        };
        if !matches!(
            error.as_service_error(),
            Some(PutItemError::ConditionalCheckFailedException(_))
        ) {
            return Err(self.failure("claim", error));
        }
        let existing = match error.into_service_error() {
            PutItemError::ConditionalCheckFailedException(failed) => failed.item,
            _ => None,
        };
        let record = match existing {
            Some(item) => decode(item, now)?,
            // A server that does not return the item with the failure: read it.
            None => self.get(key).await?,
        };
        match record {
            // Only possible if this very claim was sent twice (a retry after a lost answer).
            Some(record) if record.is_owned_by(&claim.token) => Ok(ClaimOutcome::Claimed),
            Some(record) => Ok(ClaimOutcome::Existing(record)),
            // The condition saw a live record that is gone now (released or expired since).
            None => Err(StoreError::new(
                "dynamodb: claim: the record that refused the claim was gone when read; the key is free again",
            )),
        }
    }

    async fn complete(
        &self,
        key: &StoreKey,
        token: &Token,
        response: StoredResponse,
        ttl: Duration,
    ) -> Result<Fence, StoreError> {
        let shared = &*self.shared;
        let now = now_millis();
        let item = shared
            .layout
            .completed(key, token, &response, Expiry::after(now, ttl));
        drop(response);
        let size = item::size(&item);
        if size > item::MAX_ITEM_BYTES {
            return Err(StoreError::new(format!(
                "dynamodb: complete: the record is {size} bytes, over DynamoDB's item limit of {} bytes",
                item::MAX_ITEM_BYTES
            ))
            .with_kind(StoreErrorKind::TooLarge));
        }
        let put = shared
            .calls
            .put_item()
            .table_name(&shared.table)
            .set_item(Some(item))
            .condition_expression(format!(
                "attribute_not_exists({PK}) OR {EXPIRES} <= :now OR {TOKEN} = :token"
            ))
            .expression_attribute_names(PK, &shared.layout.partition_key)
            .expression_attribute_names(EXPIRES, item::EXPIRES_AT_MS)
            .expression_attribute_names(TOKEN, item::TOKEN)
            .expression_attribute_values(":now", number(now))
            .expression_attribute_values(":token", string(token.as_str()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(Fence::Applied),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(Fence::Refused),
                _ => Err(self.failure("complete", error)),
            },
        }
    }

    async fn release(&self, key: &StoreKey, token: &Token) -> Result<Fence, StoreError> {
        let shared = &*self.shared;
        let deleted = shared
            .calls
            .delete_item()
            .table_name(&shared.table)
            .set_key(Some(shared.layout.key(key)))
            .condition_expression(format!("{TOKEN} = :token AND {STATE} = :processing"))
            .expression_attribute_names(TOKEN, item::TOKEN)
            .expression_attribute_names(STATE, item::STATE)
            .expression_attribute_values(":token", string(token.as_str()))
            .expression_attribute_values(":processing", string(item::PROCESSING))
            .send()
            .await;
        match deleted {
            Ok(_) => Ok(Fence::Applied),
            Err(error) => match error.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(Fence::Refused),
                _ => Err(self.failure("release", error)),
            },
        }
    }

    async fn renew(
        &self,
        key: &StoreKey,
        token: &Token,
        lock_ttl: Duration,
    ) -> Result<Fence, StoreError> {
        let shared = &*self.shared;
        let now = now_millis();
        let expiry = Expiry::after(now, lock_ttl);
        let updated = shared
            .calls
            .update_item()
            .table_name(&shared.table)
            .set_key(Some(shared.layout.key(key)))
            .update_expression(format!("SET {EXPIRES} = :until, {TTL} = :until_s"))
            .condition_expression(format!(
                "{TOKEN} = :token AND {STATE} = :processing AND {EXPIRES} > :now"
            ))
            .expression_attribute_names(EXPIRES, item::EXPIRES_AT_MS)
            .expression_attribute_names(TTL, &shared.layout.expiry)
            .expression_attribute_names(TOKEN, item::TOKEN)
            .expression_attribute_names(STATE, item::STATE)
            .expression_attribute_values(":until", expiry.millis())
            .expression_attribute_values(":until_s", expiry.seconds())
            .expression_attribute_values(":token", string(token.as_str()))
            .expression_attribute_values(":processing", string(item::PROCESSING))
            .expression_attribute_values(":now", number(now))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(Fence::Applied),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(Fence::Refused),
                _ => Err(self.failure("renew", error)),
            },
        }
    }
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore")
            .field("table", &self.shared.table)
            .field("layout", &self.shared.layout)
            .finish_non_exhaustive()
    }
}

//! Records as DynamoDB items, their expiry, and their size as DynamoDB counts it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};

use crate::record::{Record, StoredResponse, Token};
use crate::store::StoreKey;

/// An item: attribute names to values.
pub(super) type Item = HashMap<String, AttributeValue>;

/// `PROCESSING` or `COMPLETED`.
pub(super) const STATE: &str = "state";
/// The claim's token (of a completed record: the claim that completed it).
pub(super) const TOKEN: &str = "token";
/// The request's fingerprint; absent when the body was not hashed.
pub(super) const FINGERPRINT: &str = "fingerprint";
/// The response's status code (completed records).
pub(super) const STATUS: &str = "status";
/// The replayable headers, a list of `[name (S), value (B)]` (completed records; absent for
/// a record written without them).
pub(super) const HEADERS: &str = "headers";
/// The response body (completed records).
pub(super) const BODY: &str = "body";
/// When the response was stored, in milliseconds since the Unix epoch.
pub(super) const STORED_AT: &str = "stored_at";
/// The precise expiry, in milliseconds since the Unix epoch: what conditions and reads
/// compare with the time.
pub(super) const EXPIRES_AT_MS: &str = "expires_at_ms";

/// The attributes of a record, which the configurable names must not take.
pub(super) const RECORD_ATTRIBUTES: [&str; 8] = [
    STATE,
    TOKEN,
    FINGERPRINT,
    STATUS,
    HEADERS,
    BODY,
    STORED_AT,
    EXPIRES_AT_MS,
];

/// The values of [`STATE`].
pub(super) const PROCESSING: &str = "PROCESSING";
/// See [`PROCESSING`].
pub(super) const COMPLETED: &str = "COMPLETED";

/// DynamoDB's largest item: 400 KB, attribute names included.
pub(super) const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Milliseconds since the Unix epoch.
pub(super) fn epoch_millis(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An expiry: `ttl` from `now` (milliseconds since the Unix epoch), at least 1 ms later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Expiry {
    millis: u64,
}

impl Expiry {
    pub(super) fn after(now: u64, ttl: Duration) -> Self {
        let ttl = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        Self {
            millis: now.saturating_add(ttl),
        }
    }

    /// [`EXPIRES_AT_MS`].
    pub(super) fn millis(self) -> AttributeValue {
        number(self.millis)
    }

    /// The TTL attribute: whole seconds, rounded up, so that DynamoDB never deletes an item
    /// before it expires.
    pub(super) fn seconds(self) -> AttributeValue {
        number(self.millis.div_ceil(1000))
    }
}

pub(super) fn number(n: u64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

pub(super) fn string(s: &str) -> AttributeValue {
    AttributeValue::S(s.to_owned())
}

/// The names of the table's own attributes.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) partition_key: String,
    pub(super) expiry: String,
}

impl Layout {
    /// The item's key.
    pub(super) fn key(&self, key: &StoreKey) -> Item {
        HashMap::from([(self.partition_key.clone(), string(key.as_str()))])
    }

    fn with_expiry(&self, mut item: Item, expiry: Expiry) -> Item {
        item.insert(EXPIRES_AT_MS.to_owned(), expiry.millis());
        item.insert(self.expiry.clone(), expiry.seconds());
        item
    }

    /// The PROCESSING record of `token`.
    pub(super) fn processing(
        &self,
        key: &StoreKey,
        token: &Token,
        fingerprint: Option<&str>,
        expiry: Expiry,
    ) -> Item {
        let mut item = self.key(key);
        item.insert(STATE.to_owned(), string(PROCESSING));
        item.insert(TOKEN.to_owned(), string(token.as_str()));
        if let Some(fingerprint) = fingerprint {
            item.insert(FINGERPRINT.to_owned(), string(fingerprint));
        }
        self.with_expiry(item, expiry)
    }

    /// The completed record of `response`, completed by the claim `token`.
    pub(super) fn completed(
        &self,
        key: &StoreKey,
        token: &Token,
        response: &StoredResponse,
        expiry: Expiry,
    ) -> Item {
        let mut item = self.key(key);
        item.insert(STATE.to_owned(), string(COMPLETED));
        item.insert(TOKEN.to_owned(), string(token.as_str()));
        if let Some(fingerprint) = &response.fingerprint {
            item.insert(FINGERPRINT.to_owned(), string(fingerprint));
        }
        item.insert(STATUS.to_owned(), number(response.status.as_u16().into()));
        if let Some(headers) = &response.headers {
            let list = headers
                .iter()
                .map(|(name, value)| {
                    AttributeValue::L(vec![
                        string(name.as_str()),
                        AttributeValue::B(Blob::new(value.as_bytes())),
                    ])
                })
                .collect();
            item.insert(HEADERS.to_owned(), AttributeValue::L(list));
        }
        item.insert(
            BODY.to_owned(),
            AttributeValue::B(Blob::new(response.body.to_vec())),
        );
        if let Some(at) = response.stored_at {
            item.insert(STORED_AT.to_owned(), number(epoch_millis(at)));
        }
        self.with_expiry(item, expiry)
    }
}

/// The record in `item` if it is live at `now` (milliseconds since the Unix epoch), `None`
/// if it has expired; an error if `item` is not a record of this store.
pub(super) fn decode(mut item: Item, now: u64) -> Result<Option<Record>, String> {
    let expires =
        read_number(&item, EXPIRES_AT_MS)?.ok_or_else(|| format!("no `{EXPIRES_AT_MS}`"))?;
    if expires <= now {
        return Ok(None);
    }
    let token = read_string(&item, TOKEN)?.ok_or_else(|| format!("no `{TOKEN}`"))?;
    let token = Token::from_string(token.to_owned());
    let fingerprint = read_string(&item, FINGERPRINT)?.map(str::to_owned);
    match read_string(&item, STATE)? {
        Some(PROCESSING) => Ok(Some(Record::Processing { token, fingerprint })),
        Some(COMPLETED) => {
            let code = read_number(&item, STATUS)?.ok_or_else(|| format!("no `{STATUS}`"))?;
            let status = u16::try_from(code)
                .ok()
                .and_then(|code| StatusCode::from_u16(code).ok())
                .ok_or_else(|| format!("`{STATUS}` {code} is not an HTTP status"))?;
            let stored_at = read_number(&item, STORED_AT)?
                .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms)));
            let body = match item.remove(BODY) {
                None => Bytes::new(),
                Some(AttributeValue::B(blob)) => Bytes::from(blob.into_inner()),
                Some(_) => return Err(format!("`{BODY}` is not binary")),
            };
            let headers = match item.get(HEADERS) {
                None => None,
                Some(AttributeValue::L(list)) => Some(list.iter().map(header).collect::<Result<
                    Vec<_>,
                    String,
                >>(
                )?),
                Some(_) => return Err(format!("`{HEADERS}` is not a list")),
            };
            let mut response = StoredResponse::new(status, headers, body, fingerprint);
            response.stored_at = stored_at;
            response.token = Some(token);
            Ok(Some(Record::Completed(Arc::new(response))))
        }
        Some(other) => Err(format!("unknown `{STATE}` {other:?}")),
        None => Err(format!("no `{STATE}`")),
    }
}

fn read_string<'a>(item: &'a Item, name: &str) -> Result<Option<&'a str>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(text)) => Ok(Some(text)),
        Some(_) => Err(format!("`{name}` is not a string")),
    }
}

fn read_number(item: &Item, name: &str) -> Result<Option<u64>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(text)) => text
            .parse()
            .map(Some)
            .map_err(|_| format!("`{name}` is not a whole number")),
        Some(_) => Err(format!("`{name}` is not a number")),
    }
}

/// One stored header: `[name (S), value (B)]`.
fn header(value: &AttributeValue) -> Result<(HeaderName, HeaderValue), String> {
    let malformed = || "a header that is not [name, value]".to_owned();
    let AttributeValue::L(pair) = value else {
        return Err(malformed());
    };
    let [AttributeValue::S(name), AttributeValue::B(value)] = pair.as_slice() else {
        return Err(malformed());
    };
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name {name:?}"))?;
    let value = HeaderValue::from_bytes(value.as_ref())
        .map_err(|_| format!("invalid value of header {name}"))?;
    Ok((name, value))
}

/// The size of `item` as DynamoDB counts it against [`MAX_ITEM_BYTES`]: the UTF-8 length of
/// each attribute name and string, the length of each binary, at most 21 bytes for a number,
/// and 3 bytes per list or map plus 1 per element. It is never below DynamoDB's count.
pub(super) fn size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(_) => 21,
        AttributeValue::B(blob) => blob.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => 21 * set.len(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        // A kind this crate never writes.
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            partition_key: "pk".to_owned(),
            expiry: "expires_at".to_owned(),
        }
    }

    const NOW: u64 = 1_764_000_000_000;

    #[test]
    fn a_processing_record_round_trips_until_it_expires() {
        let token = Token::generate();
        let key = StoreKey::new("orders", None, "k1");
        let expiry = Expiry::after(NOW, Duration::from_millis(300));
        let item = layout().processing(&key, &token, Some("ab"), expiry);
        assert_eq!(item["pk"], string("idempotency:orders:k1"));
        assert_eq!(item["expires_at_ms"], number(NOW + 300));
        assert_eq!(item["expires_at"], number(NOW / 1000 + 1), "rounded up");
        assert_eq!(
            decode(item.clone(), NOW).unwrap(),
            Some(Record::Processing {
                token,
                fingerprint: Some("ab".to_owned())
            })
        );
        assert!(decode(item.clone(), NOW + 299).unwrap().is_some());
        assert_eq!(decode(item.clone(), NOW + 300).unwrap(), None);
    }

    #[test]
    fn a_completed_record_keeps_every_header_byte_and_a_binary_body() {
        let token = Token::generate();
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(NOW);
        let response = StoredResponse::new(
            StatusCode::CREATED,
            Some(vec![
                (
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (
                    HeaderName::from_static("x-latin1"),
                    HeaderValue::from_bytes(b"caf\xe9").unwrap(),
                ),
            ]),
            Bytes::from_static(&[0xff, 0x00, 0xfe]),
            None,
        )
        .stored(at, token.clone());
        let key = StoreKey::new("orders", Some("t:1"), "k1");
        let item = layout().completed(
            &key,
            &token,
            &response,
            Expiry::after(NOW, Duration::from_secs(60)),
        );
        assert!(!item.contains_key(FINGERPRINT));
        let Some(Record::Completed(read)) = decode(item.clone(), NOW).unwrap() else {
            panic!("a completed record")
        };
        assert_eq!(*read, response);
        // Written without headers (as the Spring aspect's records are): none read back.
        let bare = StoredResponse::new(StatusCode::OK, None, Bytes::new(), Some("cd".into()));
        let item = layout().completed(
            &key,
            &token,
            &bare,
            Expiry::after(NOW, Duration::from_secs(1)),
        );
        let Some(Record::Completed(read)) = decode(item.clone(), NOW).unwrap() else {
            panic!("a completed record")
        };
        assert_eq!(
            (read.headers.as_ref(), read.fingerprint.as_deref()),
            (None, Some("cd"))
        );
    }

    #[test]
    fn what_is_not_a_record_is_an_error() {
        let token = Token::generate();
        let key = StoreKey::new("p", None, "k");
        let good = layout().processing(
            &key,
            &token,
            None,
            Expiry::after(NOW, Duration::from_secs(1)),
        );
        for (name, value) in [
            (STATE, Some(string("DONE"))),
            (STATE, None),
            (STATE, Some(number(1))),
            (TOKEN, None),
            (EXPIRES_AT_MS, None),
            (EXPIRES_AT_MS, Some(string("soon"))),
            (EXPIRES_AT_MS, Some(AttributeValue::N("1.5".into()))),
        ] {
            let mut item = good.clone();
            match value {
                Some(value) => item.insert(name.to_owned(), value),
                None => item.remove(name),
            };
            assert!(decode(item.clone(), NOW).is_err(), "{name}: {item:?}");
        }
        let mut completed = good.clone();
        completed.insert(STATE.to_owned(), string(COMPLETED));
        assert!(decode(completed.clone(), NOW).is_err(), "no status");
        completed.insert(STATUS.to_owned(), number(99));
        assert!(decode(completed.clone(), NOW).is_err(), "not a status");
        completed.insert(STATUS.to_owned(), number(200));
        assert!(decode(completed.clone(), NOW).is_ok());
        completed.insert(HEADERS.to_owned(), AttributeValue::L(vec![string("x")]));
        assert!(
            decode(completed.clone(), NOW).is_err(),
            "a header without a value"
        );
    }

    #[test]
    fn the_size_counts_names_values_and_list_overheads() {
        let item = Item::from([
            ("pk".to_owned(), string("abc")),
            ("b".to_owned(), AttributeValue::B(Blob::new(vec![0u8; 10]))),
            ("n".to_owned(), number(7)),
            (
                "l".to_owned(),
                AttributeValue::L(vec![
                    string("ab"),
                    AttributeValue::B(Blob::new(vec![1u8; 4])),
                ]),
            ),
        ]);
        assert_eq!(
            size(&item),
            (2 + 3) + (1 + 10) + (1 + 21) + (1 + 3 + (1 + 2) + (1 + 4))
        );
    }
}

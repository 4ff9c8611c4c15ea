//! The stored record and its JSON codec, compatible with the Spring `@Idempotent` aspect.
//!
//! A completed record is written as
//!
//! ```json
//! {"statusCode":201,"body":"{\"id\":42}","bodyHash":"e3b0…","headers":[["content-type","application/json"]],"storedAt":1764000000000,"token":"…"}
//! ```
//!
//! `statusCode`, `body` and `bodyHash` are the Spring aspect's fields, so a Spring service
//! replays what this crate writes (Jackson ignores the extra fields) and this crate replays
//! what Spring writes: a record without `headers` replays with
//! `Content-Type: application/json`. A body that is not UTF-8 is stored base64-encoded with
//! `"bodyEncoding":"base64"`. A header value is stored as text when it is UTF-8 (visible
//! ASCII, and also the `obs-text` bytes some servers send when they form UTF-8), and
//! otherwise base64-encoded as a triple `[name, base64, "base64"]`: every header value is
//! kept, byte for byte. `storedAt` (milliseconds since the Unix epoch) and `token` (the claim
//! that completed it) are optional.
//!
//! A PROCESSING record is `{"state":"PROCESSING","token":"…","bodyHash":…,"statusCode":409,"body":"…"}`,
//! always with `state` and `token` first (the Redis store recognises a claim's own record by
//! that beginning). This crate reads it by its `state`; its `statusCode` and `body` (the 409
//! `idempotency_request_in_progress` problem) are for a Spring `@Idempotent` aspect sharing
//! the store, which reads every record as a `CachedResponse`: it replays the 409 to its
//! client, who retries, instead of failing on a null status.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode};
use serde::ser::SerializeSeq as _;
use serde::{Deserialize, Serialize};

/// An opaque, unique value that identifies one claim of a key.
#[derive(Clone)]
pub struct Token(TokenRepr);

/// A generated token is kept inline (no allocation per request); one read back from a store
/// is kept as it was read.
#[derive(Clone)]
enum TokenRepr {
    Generated([u8; uuid::fmt::Simple::LENGTH]),
    Read(Box<str>),
}

impl Token {
    /// A fresh random token: 128 random bits, as 32 lowercase hex digits.
    pub fn generate() -> Self {
        let mut buf = [0u8; uuid::fmt::Simple::LENGTH];
        uuid::Uuid::new_v4().simple().encode_lower(&mut buf);
        Self(TokenRepr::Generated(buf))
    }

    /// A token from its string form (as a store read it back).
    pub fn from_string(token: String) -> Self {
        Self(TokenRepr::Read(token.into_boxed_str()))
    }

    /// The string form of the token.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            #[expect(
                clippy::expect_used,
                reason = "a generated token is 32 lowercase hex digits, which are ASCII"
            )]
            TokenRepr::Generated(hex) => {
                std::str::from_utf8(hex).expect("hex digits are ASCII, hence UTF-8")
            }
            TokenRepr::Read(text) => text,
        }
    }
}

impl Token {
    /// The bytes of the string form, without checking them again (compared on every fenced
    /// write of the memory store).
    fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            TokenRepr::Generated(hex) => hex,
            TokenRepr::Read(text) => text.as_bytes(),
        }
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Token {}

impl std::hash::Hash for Token {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that a token hashes as its string form does.
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({})", self.as_str())
    }
}

/// A response kept for replay: status, replayable headers, body, the fingerprint of the
/// request that produced it, and when and by which claim it was stored.
///
/// Two stored responses are equal when these fields are; the request bytes a process may
/// keep beside a record it wrote, to recognise a retry without hashing its body, are not
/// part of the record.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoredResponse {
    /// The status code.
    pub status: StatusCode,
    /// The replayable headers, in order. `None` for a record written without them (by the
    /// Spring aspect), which replays with `Content-Type: application/json`.
    pub headers: Option<Vec<(HeaderName, HeaderValue)>>,
    /// The body bytes.
    pub body: Bytes,
    /// Lowercase hex SHA-256 of the request body, or `None` when the body was not hashed.
    pub fingerprint: Option<String>,
    /// When the response was stored, where the record says (the Spring aspect's do not).
    pub stored_at: Option<SystemTime>,
    /// The claim that stored it, where the record says.
    pub token: Option<Token>,
    /// The body of the request that produced it, as received, when this process wrote the
    /// record and the body was small; never written to a store.
    request: Option<RequestBody>,
}

/// The bytes of a request body and whether it was hashed as JSON: together they decide
/// its fingerprint in the default mode.
#[derive(Debug, Clone)]
struct RequestBody {
    bytes: Bytes,
    json: bool,
}

impl PartialEq for StoredResponse {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status
            && self.headers == other.headers
            && self.body == other.body
            && self.fingerprint == other.fingerprint
            && self.stored_at == other.stored_at
            && self.token == other.token
    }
}

impl Eq for StoredResponse {}

impl StoredResponse {
    /// A stored response from its parts, without a time or a token.
    pub fn new(
        status: StatusCode,
        headers: Option<Vec<(HeaderName, HeaderValue)>>,
        body: Bytes,
        fingerprint: Option<String>,
    ) -> Self {
        Self {
            status,
            headers,
            body,
            fingerprint,
            stored_at: None,
            token: None,
            request: None,
        }
    }

    /// The largest request body kept beside a record this process writes, in bytes.
    pub(crate) const KEEP_REQUEST_UP_TO: usize = 512;

    /// Keep a copy of the request body the fingerprint was made of (in the default mode,
    /// [`Fingerprint::Json`](idempotent_protocol::Fingerprint::Json), where it depends only
    /// on these bytes and on whether they were hashed as JSON), so that a retry holding the
    /// same bytes is recognised without hashing them again. A copy: the received bytes may
    /// share a larger buffer. Bodies over [`Self::KEEP_REQUEST_UP_TO`] are not kept.
    pub(crate) fn with_request(mut self, body: &[u8], json: bool) -> Self {
        if body.len() <= Self::KEEP_REQUEST_UP_TO {
            self.request = Some(RequestBody {
                bytes: Bytes::copy_from_slice(body),
                json,
            });
        }
        self
    }

    /// Whether a request with `body` (hashed as JSON or not, per `json`) is the one that
    /// produced this response, as far as the default fingerprint can tell: the same bytes
    /// under the same decision have the same fingerprint. `false` when the bytes were not
    /// kept; the caller then compares fingerprints.
    pub(crate) fn same_request(&self, body: &[u8], json: impl FnOnce() -> bool) -> bool {
        self.request
            .as_ref()
            .is_some_and(|kept| *kept.bytes == *body && kept.json == json())
    }

    /// The bytes [`Self::with_request`] kept, for weighing a cached record.
    pub(crate) fn kept_request_len(&self) -> usize {
        self.request.as_ref().map_or(0, |kept| kept.bytes.len())
    }

    /// The same response, stored at `at` by the claim `token`.
    pub fn stored(mut self, at: SystemTime, token: Token) -> Self {
        self.stored_at = Some(at);
        self.token = Some(token);
        self
    }
}

/// What a store keeps under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Record {
    /// The first request is still running.
    Processing {
        /// The claim that owns the key.
        token: Token,
        /// The fingerprint of the request that claimed it.
        fingerprint: Option<String>,
    },
    /// The first request finished with a 2xx, kept for replay. Shared, so that a store that
    /// holds records in memory hands them out without copying them.
    Completed(Arc<StoredResponse>),
}

impl Record {
    /// Whether this is the PROCESSING record of `token`.
    pub fn is_owned_by(&self, token: &Token) -> bool {
        matches!(self, Record::Processing { token: t, .. } if t == token)
    }

    /// The fingerprint of the request behind this record.
    pub fn fingerprint(&self) -> Option<&str> {
        match self {
            Record::Processing { fingerprint, .. } => fingerprint.as_deref(),
            Record::Completed(response) => response.fingerprint.as_deref(),
        }
    }

    /// Encode as the JSON described in the [module docs](self).
    pub fn to_json(&self) -> Vec<u8> {
        let written = match self {
            Record::Processing { token, fingerprint } => serde_json::to_vec(&ProcessingOut {
                state: PROCESSING,
                token: token.as_str(),
                body_hash: fingerprint.as_deref(),
                status_code: 409,
                body: IN_FLIGHT_BODY,
            }),
            Record::Completed(response) => Self::completed_json(response),
        };
        #[expect(
            clippy::expect_used,
            reason = "the records are strings, integers and sequences of them, and a Vec never fails to grow"
        )]
        written.expect("serialising a record of strings and integers cannot fail")
    }

    /// The JSON of a completed record.
    fn completed_json(response: &StoredResponse) -> serde_json::Result<Vec<u8>> {
        let (body, body_encoding) = match std::str::from_utf8(&response.body) {
            Ok(text) => (Text::Borrowed(text), None),
            Err(_) => (
                Text::Owned(base64::engine::general_purpose::STANDARD.encode(&response.body)),
                Some(BASE64),
            ),
        };
        serde_json::to_vec(&CompletedOut {
            status_code: response.status.as_u16(),
            body,
            body_hash: response.fingerprint.as_deref(),
            headers: response.headers.as_deref().map(HeadersOut),
            body_encoding,
            stored_at: response.stored_at.map(epoch_millis),
            token: response.token.as_ref().map(Token::as_str),
        })
    }

    /// The exact beginning of the JSON of `token`'s PROCESSING record, as
    /// [`to_json`](Self::to_json) writes it whatever the fingerprint:
    /// `{"state":"PROCESSING","token":"…"`. No other record starts with it: a completed
    /// record starts with `{"statusCode"`, and the closing quote ends the token.
    #[cfg(any(feature = "redis", test))]
    pub(crate) fn processing_prefix(token: &Token) -> String {
        // `ProcessingOut`'s first two fields, as `to_json` writes them, the strings escaped
        // by serde_json as there (a unit test holds the two together).
        format!(
            "{{\"state\":{},\"token\":{}",
            serde_json::Value::from(PROCESSING),
            serde_json::Value::from(token.as_str())
        )
    }

    /// Decode a record written by [`to_json`](Self::to_json) or by the Spring aspect.
    pub fn from_json(bytes: &[u8]) -> Result<Record, RecordError> {
        let wire: WireIn<'_> = serde_json::from_slice(bytes).map_err(RecordError::json)?;
        if wire.state.as_deref() == Some(PROCESSING) {
            let token = wire
                .token
                .ok_or_else(|| RecordError::invalid("PROCESSING record without `token`"))?;
            return Ok(Record::Processing {
                token: Token::from_string(token.into_owned()),
                fingerprint: wire.body_hash.map(|h| h.into_owned()),
            });
        }
        let code = wire
            .status_code
            .ok_or_else(|| RecordError::invalid("record without `statusCode`"))?;
        let status = StatusCode::from_u16(code)
            .map_err(|_| RecordError::invalid("`statusCode` is not an HTTP status"))?;
        let body = wire.body.unwrap_or_default();
        let body = match wire.body_encoding.as_deref() {
            None => Bytes::from(body.into_owned()),
            Some(BASE64) => Bytes::from(decode_base64(&body, "`body` is not valid base64")?),
            Some(_) => return Err(RecordError::invalid("unknown `bodyEncoding`")),
        };
        let headers = match wire.headers {
            None => None,
            Some(list) => Some(
                list.into_iter()
                    .map(header_in)
                    .collect::<Result<Vec<_>, RecordError>>()?,
            ),
        };
        Ok(Record::Completed(Arc::new(StoredResponse {
            status,
            headers,
            body,
            fingerprint: wire.body_hash.map(|h| h.into_owned()),
            stored_at: wire
                .stored_at
                .and_then(|ms| SystemTime::UNIX_EPOCH.checked_add(Duration::from_millis(ms))),
            token: wire.token.map(|t| Token::from_string(t.into_owned())),
            request: None,
        })))
    }
}

/// Milliseconds since the Unix epoch (0 for a time before it).
fn epoch_millis(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn decode_base64(text: &str, what: &'static str) -> Result<Vec<u8>, RecordError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.as_bytes())
        .map_err(|_| RecordError::invalid(what))
}

/// One stored header: `[name, value]`, or `[name, base64 of value, "base64"]`.
fn header_in(fields: Vec<Text<'_>>) -> Result<(HeaderName, HeaderValue), RecordError> {
    let mut fields = fields.into_iter();
    let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
        return Err(RecordError::invalid("a header without a name and a value"));
    };
    let bytes = match (fields.next().as_deref(), fields.next()) {
        (None, _) => value.into_owned().into_bytes(),
        (Some(BASE64), None) => decode_base64(&value, "a header value is not valid base64")?,
        _ => return Err(RecordError::invalid("unknown header encoding")),
    };
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| RecordError::invalid("invalid header name"))?;
    let value = HeaderValue::from_maybe_shared(Bytes::from(bytes))
        .map_err(|_| RecordError::invalid("invalid header value"))?;
    Ok((name, value))
}

const PROCESSING: &str = "PROCESSING";
const BASE64: &str = "base64";

type Text<'a> = std::borrow::Cow<'a, str>;

/// A PROCESSING record, as written.
/// A PROCESSING record, as written. Its `statusCode` and `body` are for a Spring aspect
/// sharing the store, which reads any record as a `CachedResponse`: it sees the key in
/// flight (a 409 problem, replayed to its client, who retries) rather than a response with
/// a null status. This crate reads the record by its `state`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProcessingOut<'a> {
    state: &'a str,
    token: &'a str,
    body_hash: Option<&'a str>,
    status_code: u16,
    body: &'a str,
}

/// The body of the 409 a Spring aspect replays from a PROCESSING record: the problem this
/// crate answers in that case.
const IN_FLIGHT_BODY: &str = concat!(
    r#"{"type":"https://docs.rs/idempotent-runtime/latest/idempotent_runtime/problem/enum.ProblemCode.html#variant.RequestInProgress","#,
    r#""title":"Request in progress","status":409,"#,
    r#""detail":"A request with this idempotency key is still being processed","#,
    r#""code":"idempotency_request_in_progress"}"#
);

/// A completed record, as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CompletedOut<'a> {
    status_code: u16,
    body: Text<'a>,
    body_hash: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<HeadersOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_encoding: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stored_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
}

/// The headers of a completed record: each `[name, value]`, or `[name, base64, "base64"]`
/// for a value that is not UTF-8.
struct HeadersOut<'a>(&'a [(HeaderName, HeaderValue)]);

impl Serialize for HeadersOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for (name, value) in self.0 {
            match std::str::from_utf8(value.as_bytes()) {
                Ok(text) => seq.serialize_element(&[name.as_str(), text])?,
                Err(_) => {
                    let encoded =
                        base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
                    seq.serialize_element(&[name.as_str(), &encoded, BASE64])?;
                }
            }
        }
        seq.end()
    }
}

/// Any record, as read: every field optional, unknown fields ignored.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireIn<'a> {
    #[serde(borrow)]
    state: Option<Text<'a>>,
    #[serde(borrow)]
    token: Option<Text<'a>>,
    status_code: Option<u16>,
    #[serde(borrow)]
    body: Option<Text<'a>>,
    #[serde(borrow)]
    body_hash: Option<Text<'a>>,
    #[serde(borrow)]
    headers: Option<Vec<Vec<Text<'a>>>>,
    #[serde(borrow)]
    body_encoding: Option<Text<'a>>,
    stored_at: Option<u64>,
}

/// A stored record that cannot be decoded.
#[derive(Debug)]
pub struct RecordError {
    message: String,
}

impl RecordError {
    fn json(err: serde_json::Error) -> Self {
        Self {
            message: format!("stored record is not valid JSON: {err}"),
        }
    }

    fn invalid(what: &str) -> Self {
        Self {
            message: format!("stored record is malformed: {what}"),
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RecordError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_request_is_the_same_only_with_the_same_bytes_and_reading() {
        let response = StoredResponse::new(StatusCode::CREATED, None, Bytes::new(), None);
        assert!(!response.same_request(b"{}", || true), "nothing kept");
        let kept = response.clone().with_request(b"{ }", true);
        assert!(kept.same_request(b"{ }", || true));
        assert!(!kept.same_request(b"{}", || true), "other bytes");
        assert!(!kept.same_request(b"{ }", || false), "read as raw bytes");
        assert_eq!(kept, response, "not part of the record");
        let large = vec![b' '; StoredResponse::KEEP_REQUEST_UP_TO + 1];
        let not_kept = response.with_request(&large, true);
        assert!(!not_kept.same_request(&large, || true), "too large to keep");
        assert_eq!(not_kept.kept_request_len(), 0);
    }

    fn completed(body: &[u8], headers: Option<Vec<(HeaderName, HeaderValue)>>) -> Record {
        Record::Completed(Arc::new(StoredResponse::new(
            StatusCode::CREATED,
            headers,
            Bytes::copy_from_slice(body),
            Some("ab".repeat(32)),
        )))
    }

    #[test]
    fn a_token_read_back_equals_the_generated_one() {
        let token = Token::generate();
        assert_eq!(token.as_str().len(), 32);
        assert!(token.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        let read = Token::from_string(token.as_str().to_owned());
        assert_eq!(read, token);
        let state = std::hash::RandomState::new();
        assert_eq!(
            std::hash::BuildHasher::hash_one(&state, &read),
            std::hash::BuildHasher::hash_one(&state, &token)
        );
        assert_ne!(Token::generate(), token);
    }

    #[test]
    fn completed_record_round_trips_with_spring_field_names() {
        let record = completed(
            br#"{"id":42}"#,
            Some(vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )]),
        );
        let json = record.to_json();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(
            text.starts_with(r#"{"statusCode":201,"body":"{\"id\":42}","bodyHash":"abab"#),
            "{text}"
        );
        assert_eq!(Record::from_json(&json).unwrap(), record);
    }

    #[test]
    fn every_header_value_is_kept_byte_for_byte() {
        let headers = vec![
            (
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (
                HeaderName::from_static("x-utf8"),
                HeaderValue::from_bytes("caf\u{e9}".as_bytes()).unwrap(),
            ),
            (
                HeaderName::from_static("x-latin1"),
                HeaderValue::from_bytes(b"caf\xe9").unwrap(),
            ),
        ];
        let record = completed(b"{}", Some(headers));
        let json = record.to_json();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.contains("[\"x-utf8\",\"caf\u{e9}\"]"), "{text}");
        assert!(
            text.contains(r#"["x-latin1","Y2Fm6Q==","base64"]"#),
            "{text}"
        );
        assert_eq!(Record::from_json(&json).unwrap(), record);
    }

    #[test]
    fn the_time_and_the_token_of_a_completed_record_round_trip() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        let token = Token::generate();
        let response =
            StoredResponse::new(StatusCode::OK, None, Bytes::new(), None).stored(at, token.clone());
        let json = Record::Completed(Arc::new(response)).to_json();
        let text = std::str::from_utf8(&json).unwrap();
        assert!(text.starts_with(r#"{"statusCode":200,"#), "{text}");
        let Record::Completed(read) = Record::from_json(&json).unwrap() else {
            panic!("expected a completed record")
        };
        assert_eq!(
            (read.stored_at, read.token.as_ref()),
            (Some(at), Some(&token))
        );
        // A completed record with a token is not its claim's PROCESSING record.
        assert!(!Record::Completed(read).is_owned_by(&token));
    }

    #[test]
    fn binary_body_is_base64_and_round_trips() {
        let record = completed(&[0xff, 0x00, 0xfe], None);
        let json = record.to_json();
        assert!(
            std::str::from_utf8(&json)
                .unwrap()
                .contains(r#""bodyEncoding":"base64""#)
        );
        assert_eq!(Record::from_json(&json).unwrap(), record);
    }

    #[test]
    fn spring_record_without_extras_decodes() {
        let json = br#"{"statusCode":200,"body":"{\"ok\":true}","bodyHash":null}"#;
        let Record::Completed(response) = Record::from_json(json).unwrap() else {
            panic!("expected a completed record")
        };
        assert_eq!(response.status, StatusCode::OK);
        assert_eq!(response.headers, None);
        assert_eq!(&response.body[..], br#"{"ok":true}"#);
        assert_eq!(response.fingerprint, None);
    }

    #[test]
    fn a_processing_record_round_trips_and_reads_as_a_409_to_spring() {
        let record = Record::Processing {
            token: Token::generate(),
            fingerprint: Some("ab".repeat(32)),
        };
        let json = record.to_json();
        assert_eq!(Record::from_json(&json).unwrap(), record);
        // What the Spring aspect's `CachedResponse` reads: a status, and a problem body.
        let spring: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(spring["statusCode"], 409);
        assert_eq!(spring["bodyHash"], "ab".repeat(32));
        let body: serde_json::Value =
            serde_json::from_str(spring["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["code"], "idempotency_request_in_progress");
        assert_eq!(body["status"], 409);
    }

    #[test]
    fn a_processing_record_starts_with_its_prefix_and_no_other_record_does() {
        let token = Token::generate();
        let prefix = Record::processing_prefix(&token);
        assert_eq!(
            prefix,
            format!(r#"{{"state":"PROCESSING","token":"{}""#, token.as_str())
        );
        for fingerprint in [None, Some("ab".repeat(32))] {
            let json = Record::Processing {
                token: token.clone(),
                fingerprint,
            }
            .to_json();
            assert!(json.starts_with(prefix.as_bytes()), "{json:?}");
        }
        let other = Record::Processing {
            token: Token::generate(),
            fingerprint: None,
        };
        assert!(!other.to_json().starts_with(prefix.as_bytes()));
        assert!(
            !completed(b"{}", None)
                .to_json()
                .starts_with(prefix.as_bytes())
        );
        // A token that is the beginning of another one: the closing quote tells them apart.
        let longer = Token::from_string(format!("{}0", token.as_str()));
        let json = Record::Processing {
            token: longer,
            fingerprint: None,
        }
        .to_json();
        assert!(!json.starts_with(prefix.as_bytes()));
        // A token that JSON escapes is escaped the same way in both.
        let odd = Token::from_string("a\"b\\c\u{1}".to_owned());
        let json = Record::Processing {
            token: odd.clone(),
            fingerprint: None,
        }
        .to_json();
        assert!(json.starts_with(Record::processing_prefix(&odd).as_bytes()));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [
            &b"not json"[..],
            br#"{"statusCode":"201"}"#,
            br#"{"statusCode":99}"#,
            br#"{"body":"x"}"#,
            br#"{"statusCode":200,"body":"%%","bodyEncoding":"base64"}"#,
            br#"{"state":"PROCESSING"}"#,
            br#"{"statusCode":200,"bo"#,
            br#"{"statusCode":200,"headers":[["x"]]}"#,
            br#"{"statusCode":200,"headers":[["x","%%","base64"]]}"#,
            br#"{"statusCode":200,"headers":[["x","a","rot13"]]}"#,
        ] {
            assert!(
                Record::from_json(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}

//! The request fingerprint: lowercase hex SHA-256 of the request body.
//!
//! A JSON body (`Content-Type` `application/json` or `*/*+json`) that parses is hashed over
//! its compact serialization, key order preserved, UTF-8 written raw and numbers as
//! `serde_json` writes them, so whitespace does not matter and the hash equals what
//! Jackson's `writeValueAsString` produces for the same object in the usual case. Any other
//! body is hashed as raw bytes. That is the default mode, [`Fingerprint::Json`]; the others
//! are [`Fingerprint::Canonical`] (RFC 8785: key order does not matter) and
//! [`Fingerprint::Typed`] (the request as the handler's body type writes it back, the way the
//! Spring aspect hashes its DTO).

use std::any::Any;
use std::fmt;
use std::io;

use http::HeaderMap;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

/// How a request body becomes a fingerprint (with `include_body = true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Fingerprint {
    /// Compact JSON in the request's key order (whitespace does not matter), raw bytes for
    /// anything else. The default.
    #[default]
    Json,
    /// RFC 8785 (JSON Canonicalization Scheme): keys sorted, numbers normalised, so that
    /// two clients writing the same object with different key orders send the same request.
    /// Raw bytes for a body that is not JSON.
    Canonical,
    /// The body deserialised into the handler's body type and written back the way Jackson's
    /// `writeValueAsString` writes that object, as the Spring `@Idempotent` aspect hashes its
    /// DTO: fields in declaration order (serde renames honoured), fields the type does not
    /// declare dropped, absent optional fields `null`, Jackson's string escapes. A body that
    /// does not deserialise is hashed as in [`Json`](Self::Json) (the handler's extractor
    /// rejects it anyway).
    Typed(TypedFingerprint),
}

/// The typed fingerprint of one body type: see [`Fingerprint::Typed`].
#[derive(Clone, Copy)]
pub struct TypedFingerprint {
    type_name: &'static str,
    hash: fn(&[u8]) -> Option<TypedBody>,
}

/// Not public API: a body read as its type, with its fingerprint.
#[doc(hidden)]
pub struct TypedBody {
    /// The fingerprint of the value as Jackson writes it.
    pub fingerprint: String,
    /// The value, handed to the handler's extractor so that the body is deserialised once.
    pub value: Box<dyn Any + Send + Sync>,
}

impl TypedFingerprint {
    /// The typed fingerprint of requests whose body deserialises into `T`.
    ///
    /// ```
    /// use idempotent_protocol::fingerprint::{Fingerprint, TypedFingerprint};
    ///
    /// #[derive(serde::Serialize, serde::Deserialize)]
    /// struct NewCharge {
    ///     amount: i64,
    ///     currency: Option<String>,
    /// }
    ///
    /// let mode = Fingerprint::Typed(TypedFingerprint::of::<NewCharge>());
    /// # let _ = mode;
    /// ```
    pub fn of<T: Serialize + DeserializeOwned + Send + Sync + 'static>() -> Self {
        Self {
            type_name: std::any::type_name::<T>(),
            hash: typed_body::<T>,
        }
    }

    /// Not public API: the same, in a constant (the attribute's `static` policy).
    #[doc(hidden)]
    pub const fn of_named<T: Serialize + DeserializeOwned + Send + Sync + 'static>(
        type_name: &'static str,
    ) -> Self {
        Self {
            type_name,
            hash: typed_body::<T>,
        }
    }

    /// The body read as its type, with its fingerprint; `None` if it does not deserialise.
    pub fn read(&self, body: &[u8]) -> Option<TypedBody> {
        (self.hash)(body)
    }
}

impl fmt::Debug for TypedFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypedFingerprint")
            .field(&self.type_name)
            .finish()
    }
}

impl PartialEq for TypedFingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.type_name == other.type_name
    }
}

impl Eq for TypedFingerprint {}

fn typed_body<T: Serialize + DeserializeOwned + Send + Sync + 'static>(
    body: &[u8],
) -> Option<TypedBody> {
    let value: T = serde_json::from_slice(body).ok()?;
    let written = jackson_json(&value).ok()?;
    Some(TypedBody {
        fingerprint: sha256_hex(&written),
        value: Box::new(value),
    })
}

/// `value` as Jackson's `writeValueAsString` writes it with a Spring Boot `ObjectMapper`:
/// compact, fields in the type's order, UTF-8 raw, control characters other than `\b`,
/// `\t`, `\n`, `\f` and `\r` escaped as `\u00XX` with upper-case hex digits (serde_json
/// writes them lower-case).
pub fn jackson_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, JacksonFormatter);
    value.serialize(&mut serializer)?;
    Ok(out)
}

/// serde_json's compact formatter, with Jackson's escapes.
struct JacksonFormatter;

impl serde_json::ser::Formatter for JacksonFormatter {
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: serde_json::ser::CharEscape,
    ) -> io::Result<()> {
        use serde_json::ser::CharEscape;
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let escaped: &[u8] = match char_escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"\\/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(byte) => {
                let code = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(byte >> 4)],
                    HEX[usize::from(byte & 0xF)],
                ];
                return writer.write_all(&code);
            }
        };
        writer.write_all(escaped)
    }
}

/// The fingerprint of a body in `mode`. The typed mode falls back to [`Fingerprint::Json`]
/// here: [`TypedFingerprint::read`] reads a typed body and hands its value on.
pub fn fingerprint_in(mode: Fingerprint, headers: &HeaderMap, body: &[u8]) -> String {
    match mode {
        Fingerprint::Canonical => canonical(headers, body),
        Fingerprint::Json | Fingerprint::Typed(_) => fingerprint(headers, body),
    }
}

/// The RFC 8785 fingerprint of a JSON body; raw bytes for anything else.
pub fn canonical(headers: &HeaderMap, body: &[u8]) -> String {
    if is_json(headers)
        && let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Ok(canonical) = serde_jcs::to_vec(&value)
    {
        return sha256_hex(&canonical);
    }
    sha256_hex(body)
}

/// The fingerprint of a body sent with `headers`.
pub fn fingerprint(headers: &HeaderMap, body: &[u8]) -> String {
    if is_json(headers)
        && !is_compact_json(body)
        && let Some(compact) = compact_json(body)
    {
        return sha256_hex(&compact);
    }
    sha256_hex(body)
}

/// Whether `body`, if it is JSON at all, is already in the compact form
/// [`compact_json`] would write, so that it can be hashed as it is.
///
/// A body that is not JSON is hashed raw either way, so this only has to be right about
/// valid JSON: no whitespace between tokens, no escape sequences in strings (the compact
/// form may write them differently), and only integers that are written back unchanged
/// (no fraction or exponent, no `-0`, at most 18 digits). Anything else answers `false`,
/// and the body takes the full parse.
pub fn is_compact_json(body: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        match b {
            b'"' => {
                // A string: up to the closing quote, without escapes.
                i += 1;
                loop {
                    match body.get(i) {
                        Some(b'"') => break,
                        Some(b'\\') | None => return false,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let negative = b == b'-';
                let start = if negative { i + 1 } else { i };
                let digits = body
                    .get(start..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|d| d.is_ascii_digit())
                    .count();
                let leading_zero = body.get(start) == Some(&b'0');
                if digits == 0
                    || digits > 18
                    || (leading_zero && (digits > 1 || negative))
                    || matches!(body.get(start + digits), Some(b'.' | b'e' | b'E'))
                {
                    return false;
                }
                i = start + digits;
            }
            b' ' | b'\t' | b'\n' | b'\r' => return false,
            _ => i += 1,
        }
    }
    true
}

/// Lowercase hex SHA-256 of `bytes`.
#[expect(
    clippy::expect_used,
    reason = "a 32-byte digest is exactly 64 hex digits, and hex digits are ASCII"
)]
pub fn sha256_hex(bytes: &[u8]) -> String {
    let mut out = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(bytes), &mut out)
        .expect("a 32-byte digest fills 64 hex digits exactly");
    std::str::from_utf8(&out)
        .expect("hex digits are ASCII, hence UTF-8")
        .to_owned()
}

/// Whether the `Content-Type` is `application/json` or `*/*+json` (parameters ignored).
///
/// A structured-syntax suffix needs a subtype before it (RFC 6838 §4.2.8): `application/+json`
/// has an empty subtype name, is not a valid media type, and is not JSON here (its body is
/// hashed as raw bytes). The type and subtype are compared without regard to case.
pub fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    // The usual case, without splitting.
    if value.eq_ignore_ascii_case("application/json") {
        return true;
    }
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((_, subtype)) = essence.split_once('/') else {
        return false;
    };
    subtype.eq_ignore_ascii_case("json")
        || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json")
}

/// The compact form of a JSON document, key order and duplicates preserved, or `None` if
/// `body` is not one JSON value.
pub fn compact_json(body: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(body.len());
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut ser = serde_json::Serializer::new(&mut out);
    serde_transcode::transcode(&mut de, &mut ser).ok()?;
    de.end().ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn json_headers(ct: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        h
    }

    #[test]
    fn empty_body_is_the_empty_hash() {
        assert_eq!(
            fingerprint(&HeaderMap::new(), b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn json_whitespace_does_not_matter_but_order_does() {
        let h = json_headers("application/json; charset=utf-8");
        let a = fingerprint(&h, br#"{"amount": 10, "currency" : "EUR"}"#);
        let b = fingerprint(&h, b"{\n  \"amount\":10,\"currency\":\"EUR\"\n}");
        assert_eq!(a, b);
        assert_eq!(a, sha256_hex(br#"{"amount":10,"currency":"EUR"}"#));
        assert_ne!(a, fingerprint(&h, br#"{"currency":"EUR","amount":10}"#));
    }

    #[test]
    fn jackson_compatible_output() {
        assert_eq!(
            compact_json("{ \"name\" : \"caf\\u00e9 \u{1F600}\", \"n\": 1.50, \"big\": 12345678901234567890 }".as_bytes()).unwrap(),
            "{\"name\":\"café 😀\",\"n\":1.5,\"big\":12345678901234567890}".as_bytes()
        );
    }

    #[test]
    fn compact_bodies_are_recognised_and_anything_else_takes_the_parse() {
        for compact in [
            &br#"{"amount":100}"#[..],
            "[1,-2,0,true,false,null,\"caf\u{e9} {x}\"]".as_bytes(),
            br#"{"a":{"b":[]},"c":-999999999999999999}"#,
            b"",
        ] {
            assert!(
                is_compact_json(compact),
                "{}",
                String::from_utf8_lossy(compact)
            );
        }
        for other in [
            &br#"{"amount": 100}"#[..],
            b"{\"a\":1}\n",
            br#"{"a":"\u0041"}"#,
            br#"{"a":"x\/y"}"#,
            b"1.50",
            b"1e3",
            b"2E1",
            b"-0",
            b"01",
            b"1234567890123456789",
            br#"{"a":"unterminated"#,
        ] {
            assert!(
                !is_compact_json(other),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
        // Where the fast path answers, the full parse agrees.
        let h = json_headers("application/json");
        let body = br#"{"amount":100,"items":[{"sku":"A-1","qty":2}]}"#;
        assert_eq!(
            fingerprint(&h, body),
            sha256_hex(&compact_json(body).unwrap())
        );
    }

    #[test]
    fn canonical_json_does_not_depend_on_key_order_or_number_spelling() {
        let h = json_headers("application/json");
        let a = canonical(&h, br#"{"currency":"EUR","amount":100}"#);
        assert_eq!(a, canonical(&h, br#"{ "amount": 1e2, "currency": "EUR" }"#));
        assert_eq!(a, sha256_hex(br#"{"amount":100,"currency":"EUR"}"#));
        assert_ne!(a, canonical(&h, br#"{"amount":101,"currency":"EUR"}"#));
        // Not JSON: raw bytes.
        assert_eq!(canonical(&h, b"{oops"), sha256_hex(b"{oops"));
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Charge {
        amount: i64,
        currency: Option<String>,
    }

    fn typed(body: &[u8]) -> Option<String> {
        TypedFingerprint::of::<Charge>()
            .read(body)
            .map(|t| t.fingerprint)
    }

    #[test]
    fn typed_is_the_value_as_jackson_writes_it() {
        let expected = sha256_hex(br#"{"amount":100,"currency":"EUR"}"#);
        for body in [
            &br#"{"currency":"EUR","amount":100}"#[..],
            br#"{"amount":100,"currency":"EUR","note":"not declared"}"#,
            br#"{ "amount" : 100, "currency" : "EUR" }"#,
        ] {
            assert_eq!(typed(body).as_deref(), Some(expected.as_str()));
        }
        assert_eq!(
            typed(br#"{"amount":100}"#),
            Some(sha256_hex(br#"{"amount":100,"currency":null}"#))
        );
        assert_eq!(typed(br#"{"amount":"many"}"#), None);
        assert_eq!(
            jackson_json(&"a\u{1f}b\n\u{7f}\"/").unwrap(),
            b"\"a\\u001Fb\\n\x7f\\\"/\"".to_vec()
        );
    }

    #[test]
    fn typed_honours_serde_renames_as_java_names() {
        #[derive(serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payout {
            amount_cents: i64,
            account_id: String,
        }
        let read = TypedFingerprint::of::<Payout>()
            .read(br#"{"accountId":"a-1","amountCents":5}"#)
            .map(|t| t.fingerprint);
        assert_eq!(
            read,
            Some(sha256_hex(br#"{"amountCents":5,"accountId":"a-1"}"#))
        );
    }

    #[test]
    fn plus_json_and_raw_fallbacks() {
        let h = json_headers("application/problem+json");
        assert_eq!(fingerprint(&h, b"[1, 2]"), sha256_hex(b"[1,2]"));
        // Invalid JSON is hashed raw.
        assert_eq!(fingerprint(&h, b"{oops"), sha256_hex(b"{oops"));
        // Trailing garbage is not one JSON value.
        assert_eq!(fingerprint(&h, b"[1] x"), sha256_hex(b"[1] x"));
        // Non-JSON content types are hashed raw.
        let text = json_headers("text/plain");
        assert_eq!(fingerprint(&text, b"[1, 2]"), sha256_hex(b"[1, 2]"));
        assert!(!is_json(&json_headers("application/jsonx")));
        // A suffix without a subtype name is not a media type.
        assert!(!is_json(&json_headers("application/+json")));
        assert_eq!(
            fingerprint(&json_headers("application/+json"), b"[1, 2]"),
            sha256_hex(b"[1, 2]")
        );
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.api+json",
            "application/problem+JSON",
            "text/json",
        ] {
            assert!(is_json(&json_headers(json)), "{json}");
        }
        for other in ["application/json-seq", "json", "", "application/x+jsonx"] {
            assert!(!is_json(&json_headers(other)), "{other}");
        }
    }
}

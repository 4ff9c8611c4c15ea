//! The request fingerprint: lowercase hex SHA-256 of the request body.
//!
//! A JSON body (`Content-Type` `application/json` or `*/*+json`) that parses is hashed over
//! its compact serialization, key order preserved, UTF-8 written raw and numbers as
//! `serde_json` writes them, so whitespace does not matter and the hash equals what
//! Jackson's `writeValueAsString` produces for the same object in the usual case. Any other
//! body is hashed as raw bytes.

use http::HeaderMap;
use sha2::{Digest, Sha256};

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

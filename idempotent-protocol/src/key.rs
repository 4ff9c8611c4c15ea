//! The idempotency key: reading it from the request, the RFC 8941 quoted form, validation.
//!
//! A server reads the key of a request with [`from_headers`]; a client checks a key it was
//! given with [`parse`] before it sends anything, so that it never sends a request the server
//! would refuse with 400 `idempotency_key_invalid`.
//!
//! ```
//! use idempotent_protocol::key::{self, KeyError};
//!
//! assert_eq!(key::parse(b"order-42").as_deref(), Ok("order-42"));
//! // The IETF draft's form, an RFC 8941 string, is unquoted.
//! assert_eq!(key::parse(br#""a \"b\"""#).as_deref(), Ok(r#"a "b""#));
//! assert!(matches!(key::parse(b""), Err(KeyError::Invalid(_))));
//! assert!(matches!(key::parse("caf\u{e9}".as_bytes()), Err(KeyError::Invalid(_))));
//! ```

use http::{HeaderMap, HeaderName};

/// The longest key accepted, in bytes, after unquoting.
pub const MAX_KEY_LEN: usize = 255;

/// Why a request's key was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The header is absent.
    Missing,
    /// The header is present but not a valid key; the text says why.
    Invalid(&'static str),
}

impl std::fmt::Display for KeyError {
    /// `the header is absent`, or why the key is invalid (`the key is empty`, ...).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::Missing => f.write_str("the header is absent"),
            KeyError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for KeyError {}

/// Read and validate the key in header `name`.
///
/// A bare key is 1 to [`MAX_KEY_LEN`] bytes of printable ASCII (0x20–0x7E). A key quoted
/// as an RFC 8941 string (`"abc"`, the IETF draft's form) is unquoted first, honouring the
/// `\"` and `\\` escapes; the length limit applies to the unquoted key. The header may
/// appear only once.
pub fn from_headers<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<std::borrow::Cow<'h, str>, KeyError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(KeyError::Missing)?;
    if values.next().is_some() {
        return Err(KeyError::Invalid("the header appears more than once"));
    }
    parse(value.as_bytes())
}

/// Validate one header value as a key (see [`from_headers`]).
pub fn parse(raw: &[u8]) -> Result<std::borrow::Cow<'_, str>, KeyError> {
    if raw.first() == Some(&b'"') {
        return unquote(raw).map(std::borrow::Cow::Owned);
    }
    if raw.is_empty() {
        return Err(KeyError::Invalid("the key is empty"));
    }
    if raw.len() > MAX_KEY_LEN {
        return Err(KeyError::Invalid("the key is longer than 255 bytes"));
    }
    if !raw.iter().all(|b| (0x20..=0x7e).contains(b)) {
        return Err(KeyError::Invalid(
            "the key has characters outside printable ASCII",
        ));
    }
    // Every byte is ASCII, so this cannot fail.
    std::str::from_utf8(raw)
        .map(std::borrow::Cow::Borrowed)
        .map_err(|_| KeyError::Invalid("the key has characters outside printable ASCII"))
}

fn unquote(raw: &[u8]) -> Result<String, KeyError> {
    const UNBALANCED: KeyError = KeyError::Invalid("the quoted key is not closed");
    let mut out = String::with_capacity(raw.len());
    let mut bytes = raw[1..].iter();
    loop {
        match bytes.next() {
            None => return Err(UNBALANCED),
            Some(b'"') => break,
            Some(b'\\') => match bytes.next() {
                Some(&c @ (b'"' | b'\\')) => out.push(char::from(c)),
                Some(_) => {
                    return Err(KeyError::Invalid(
                        "the quoted key has an escape other than \\\" or \\\\",
                    ));
                }
                None => return Err(UNBALANCED),
            },
            Some(&c) if (0x20..=0x7e).contains(&c) => out.push(char::from(c)),
            Some(_) => {
                return Err(KeyError::Invalid(
                    "the key has characters outside printable ASCII",
                ));
            }
        }
    }
    if bytes.next().is_some() {
        return Err(KeyError::Invalid(
            "the quoted key has characters after its closing quote",
        ));
    }
    if out.is_empty() {
        return Err(KeyError::Invalid("the key is empty"));
    }
    if out.len() > MAX_KEY_LEN {
        return Err(KeyError::Invalid("the key is longer than 255 bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        parse(raw.as_bytes()).map(|k| k.into_owned()).unwrap()
    }

    fn bad(raw: &[u8]) {
        assert!(
            matches!(parse(raw), Err(KeyError::Invalid(_))),
            "{:?} should be invalid",
            String::from_utf8_lossy(raw)
        );
    }

    #[test]
    fn bare_keys() {
        assert_eq!(ok("abc-123"), "abc-123");
        assert_eq!(ok("a b:c*{}"), "a b:c*{}");
        assert_eq!(ok(&"k".repeat(255)), "k".repeat(255));
        bad(b"");
        bad("k".repeat(256).as_bytes());
        bad(b"tab\there");
        bad("caf\u{e9}".as_bytes());
        bad(b"\x7f");
    }

    #[test]
    fn quoted_keys() {
        assert_eq!(ok(r#""abc""#), "abc");
        assert_eq!(ok(r#""a\"b\\c""#), r#"a"b\c"#);
        assert_eq!(ok(&format!("\"{}\"", "k".repeat(255))), "k".repeat(255));
        bad(format!("\"{}\"", "k".repeat(256)).as_bytes());
        bad(br#""abc"#);
        bad(br#""""#);
        bad(br#""a\nb""#);
        bad(br#""abc"d"#);
        bad(br#""a"b""#);
        bad(br#""abc\"#);
    }

    #[test]
    fn header_must_be_single() {
        let name = HeaderName::from_static("idempotency-key");
        let mut headers = HeaderMap::new();
        assert_eq!(from_headers(&headers, &name), Err(KeyError::Missing));
        headers.append(&name, "a".parse().unwrap());
        assert_eq!(from_headers(&headers, &name).unwrap(), "a");
        headers.append(&name, "b".parse().unwrap());
        assert!(matches!(
            from_headers(&headers, &name),
            Err(KeyError::Invalid(_))
        ));
    }
}

//! [`StoreKey`]: the key a record is stored under.

use std::fmt;

/// The key a record is stored under: the route's prefix, the tenant scope (if any) and the
/// client's idempotency key.
///
/// Its string form ([`as_str`](Self::as_str), [`Display`](fmt::Display)) is the Spring
/// `@Idempotent` aspect's: `idempotency:{prefix}:{key}` (`idempotency::{key}` with no
/// prefix), so that a Spring service and a Rust service sharing a Redis find each other's
/// records. With a tenant scope it is `idempotency:{prefix}|{scope}:{key}`, where `%`, `:`
/// and `|` in the scope are percent-encoded. A prefix never contains `:` or `|` (the
/// attribute and [`Policy`](crate::Policy) reject them), so two different
/// (prefix, scope, key) triples never share a string form.
///
/// Table stores can keep the parts in columns of their own ([`prefix`](Self::prefix),
/// [`scope`](Self::scope), [`key`](Self::key)); the string form is built once, when the key
/// is made.
///
/// ```
/// use idempotent_runtime::store::StoreKey;
///
/// let key = StoreKey::new("orders", None, "k-1");
/// assert_eq!(key.to_string(), "idempotency:orders:k-1");
/// let scoped = StoreKey::new("orders", Some("tenant:7"), "k-1");
/// assert_eq!(scoped.as_str(), "idempotency:orders|tenant%3A7:k-1");
/// assert_eq!((scoped.prefix(), scoped.scope(), scoped.key()), ("orders", Some("tenant:7"), "k-1"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoreKey {
    /// The string form.
    full: String,
    /// Where the prefix ends in `full`.
    prefix_end: usize,
    /// Where the client's key starts in `full`.
    key_start: usize,
    /// The scope as given (it is percent-encoded in `full`).
    scope: Option<Box<str>>,
}

/// What every store key starts with.
const NAMESPACE: &str = "idempotency:";

impl StoreKey {
    /// The store key of `key` under the route prefix `prefix`, for the tenant `scope`.
    pub fn new(prefix: &str, scope: Option<&str>, key: &str) -> Self {
        let mut full = String::with_capacity(
            NAMESPACE.len() + prefix.len() + 1 + key.len() + scope.map_or(0, |s| s.len() + 1),
        );
        full.push_str(NAMESPACE);
        full.push_str(prefix);
        let prefix_end = full.len();
        if let Some(scope) = scope {
            full.push('|');
            for c in scope.chars() {
                match c {
                    '%' => full.push_str("%25"),
                    ':' => full.push_str("%3A"),
                    '|' => full.push_str("%7C"),
                    c => full.push(c),
                }
            }
        }
        full.push(':');
        let key_start = full.len();
        full.push_str(key);
        Self {
            full,
            prefix_end,
            key_start,
            scope: scope.map(Box::from),
        }
    }

    /// The key whose string form is `text`, or `None` if `text` is not one (it does not
    /// start with `idempotency:`, has no `:` after the prefix, or a badly encoded scope).
    /// The inverse of [`as_str`](Self::as_str), for tools that read keys back from a store.
    ///
    /// ```
    /// use idempotent_runtime::store::StoreKey;
    ///
    /// let key = StoreKey::new("orders", Some("t:1"), "a:b");
    /// assert_eq!(StoreKey::parse(key.as_str()), Some(key));
    /// assert_eq!(StoreKey::parse("orders:k"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(NAMESPACE)?;
        let (head, key) = rest.split_once(':')?;
        let (prefix, scope) = match head.split_once('|') {
            Some((prefix, encoded)) => (prefix, Some(decode_scope(encoded)?)),
            None => (head, None),
        };
        let parsed = Self::new(prefix, scope.as_deref(), key);
        (parsed.full == text).then_some(parsed)
    }

    /// The string form: `idempotency:{prefix}:{key}`.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The route prefix (`key_prefix`).
    pub fn prefix(&self) -> &str {
        &self.full[NAMESPACE.len()..self.prefix_end]
    }

    /// The tenant scope, as the scope function returned it.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The client's idempotency key (unquoted).
    pub fn key(&self) -> &str {
        &self.full[self.key_start..]
    }
}

/// The scope from its encoded form: `%25`, `%3A` and `%7C` decoded, any other `%` refused.
fn decode_scope(encoded: &str) -> Option<String> {
    let mut out = String::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3)?;
        out.push(match code {
            "25" => '%',
            "3A" => ':',
            "7C" => '|',
            _ => return None,
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Some(out)
}

impl fmt::Display for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StoreKey").field(&self.full).finish()
    }
}

impl AsRef<str> for StoreKey {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(prefix: &str, scope: Option<&str>, key: &str) -> String {
        StoreKey::new(prefix, scope, key).to_string()
    }

    #[test]
    fn the_string_form_is_the_spring_aspects() {
        assert_eq!(s("orders", None, "k1"), "idempotency:orders:k1");
        assert_eq!(s("", None, "k1"), "idempotency::k1");
        assert_eq!(
            s("orders", Some("t:1|%"), "k"),
            "idempotency:orders|t%3A1%7C%25:k"
        );
        assert_ne!(s("a", Some("b"), "c"), s("a", None, "b:c"));
        assert_ne!(s("a", Some("b:c"), "d"), s("a", Some("b"), "c:d"));
    }

    #[test]
    fn what_is_not_a_store_key_does_not_parse() {
        for text in [
            "",
            "idempotency:",
            "idempotency:orders",
            "other:orders:k",
            "idempotency:p|%41:k",
            "idempotency:p|%3:k",
        ] {
            assert_eq!(StoreKey::parse(text), None, "{text}");
        }
    }

    #[test]
    fn the_parts_are_kept() {
        for (prefix, scope, key) in [
            ("orders", None, "k1"),
            ("", None, "a:b"),
            ("p", Some("t:1|%"), "x|y:z"),
            ("p", Some(""), ""),
        ] {
            let k = StoreKey::new(prefix, scope, key);
            assert_eq!((k.prefix(), k.scope(), k.key()), (prefix, scope, key));
            assert_eq!(StoreKey::parse(k.as_str()), Some(k));
        }
    }
}

//! Entity tags and `If-None-Match` (RFC 9110 §8.8.3, §13.1.2), as far as a replay needs them.

use http::HeaderValue;
use idempotent_protocol::fingerprint::sha256_hex;

/// One entity tag: whether it is weak, and its opaque tag without the quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EntityTag<'a> {
    pub(crate) weak: bool,
    pub(crate) opaque: &'a [u8],
}

impl<'a> EntityTag<'a> {
    /// `[W/] DQUOTE *etagc DQUOTE` at the start of `input`, and what follows it.
    fn parse_prefix(input: &'a [u8]) -> Option<(Self, &'a [u8])> {
        let (weak, rest) = match input.strip_prefix(b"W/") {
            Some(rest) => (true, rest),
            None => (false, input),
        };
        let rest = rest.strip_prefix(b"\"")?;
        let end = rest.iter().position(|&b| b == b'"')?;
        let opaque = &rest[..end];
        // etagc = %x21 / %x23-7E / obs-text
        if !opaque
            .iter()
            .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
        {
            return None;
        }
        Some((Self { weak, opaque }, &rest[end + 1..]))
    }

    /// A whole header value that is one entity tag (an `ETag`).
    pub(crate) fn parse(value: &'a HeaderValue) -> Option<Self> {
        match Self::parse_prefix(trim(value.as_bytes()))? {
            (tag, []) => Some(tag),
            _ => None,
        }
    }

    /// The weak comparison: the opaque tags are the same, weak or not.
    fn weakly_matches(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// The strong entity tag of a body: its SHA-256, in lowercase hex (the fingerprint's
/// digest), quoted.
pub(crate) fn of_body(body: &[u8]) -> HeaderValue {
    #[expect(
        clippy::expect_used,
        reason = "a quoted run of hex digits is a valid header value"
    )]
    HeaderValue::try_from(format!("\"{}\"", sha256_hex(body)))
        .expect("quoted hex digits are a valid header value")
}

/// What the `If-None-Match` fields of a request say about a response whose entity tag is
/// `current`: `true` when one of them matches it (weak comparison), or is `*`. Fields that do
/// not parse are not a match: the full response is sent.
pub(crate) fn none_match_fails<'v>(
    fields: impl IntoIterator<Item = &'v HeaderValue>,
    current: Option<&HeaderValue>,
) -> bool {
    let current = current.and_then(EntityTag::parse);
    let mut matched = false;
    for field in fields {
        match parse_list(field.as_bytes()) {
            Some(List::Any) => matched = true,
            Some(List::Tags(tags)) => {
                if let Some(current) = &current {
                    matched |= tags.iter().any(|tag| tag.weakly_matches(current));
                }
            }
            None => return false,
        }
    }
    matched
}

/// An `If-None-Match` field value.
enum List<'a> {
    Any,
    Tags(Vec<EntityTag<'a>>),
}

/// `"*" / #entity-tag`: a comma-separated list, empty elements and optional whitespace allowed.
fn parse_list(value: &[u8]) -> Option<List<'_>> {
    let value = trim(value);
    if value == b"*" {
        return Some(List::Any);
    }
    let mut tags = Vec::new();
    let mut rest = value;
    loop {
        rest = trim_start(rest);
        match rest.first() {
            None => break,
            Some(b',') => {
                rest = &rest[1..];
                continue;
            }
            Some(_) => {}
        }
        let (tag, after) = EntityTag::parse_prefix(rest)?;
        tags.push(tag);
        rest = trim_start(after);
        match rest.first() {
            None => break,
            Some(b',') => rest = &rest[1..],
            Some(_) => return None,
        }
    }
    if tags.is_empty() {
        return None;
    }
    Some(List::Tags(tags))
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim(bytes: &[u8]) -> &[u8] {
    let bytes = trim_start(bytes);
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    fn fails(fields: &[&str], current: &str) -> bool {
        let fields: Vec<HeaderValue> = fields.iter().map(|f| v(f)).collect();
        none_match_fails(&fields, Some(&v(current)))
    }

    #[test]
    fn the_weak_comparison_of_rfc_9110() {
        // §8.8.3.2's table: weak comparison matches all but different opaque tags.
        assert!(fails(&[r#"W/"1""#], r#"W/"1""#));
        assert!(fails(&[r#"W/"1""#], r#""1""#));
        assert!(fails(&[r#""1""#], r#"W/"1""#));
        assert!(fails(&[r#""1""#], r#""1""#));
        assert!(!fails(&[r#"W/"1""#], r#"W/"2""#));
        assert!(!fails(&[r#""1""#], r#""2""#));
    }

    #[test]
    fn lists_star_and_several_fields() {
        assert!(fails(&[r#""a", "b" ,W/"c""#], r#""c""#));
        assert!(fails(&[r#", ,"a",,"#], r#""a""#));
        assert!(fails(&[r#""x""#, r#""y", "a""#], r#""a""#));
        assert!(fails(&["*"], r#""anything""#));
        assert!(fails(&[" * "], r#""anything""#));
        assert!(!fails(&[r#""a", "b""#], r#""c""#));
        // `*` matches any current response, even one without a tag.
        assert!(none_match_fails(&[v("*")], None));
        assert!(!none_match_fails(&[v(r#""a""#)], None));
    }

    #[test]
    fn malformed_fields_are_no_match() {
        for bad in [
            "a",
            r#""a"#,
            r#""a" "b""#,
            r#"w/"a""#,
            r#""a"x"#,
            "",
            ",",
            "*, \"a\"",
        ] {
            assert!(!fails(&[bad, r#""a""#], r#""a""#), "{bad}");
        }
    }

    #[test]
    fn a_body_tag_is_strong_and_stable() {
        let tag = of_body(b"{}");
        assert_eq!(
            tag,
            "\"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\""
        );
        assert!(!EntityTag::parse(&tag).unwrap().weak);
        assert_ne!(of_body(b"{ }"), tag);
    }

    /// Opaque tags made of `etagc`, the quote and the space left out: the oracle skips a
    /// malformed element of a list where this parser refuses the whole field (tested above).
    fn etagc() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                Just('!'),
                (0x23u8..=0x7e).prop_map(char::from),
                Just('W'),
                Just('/')
            ],
            0..6,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn tag() -> impl Strategy<Value = String> {
        (any::<bool>(), etagc())
            .prop_map(|(weak, opaque)| format!("{}\"{opaque}\"", if weak { "W/" } else { "" }))
    }

    proptest! {
        /// The `headers` crate, as an oracle: where it reads the fields, it decides as we do.
        #[test]
        fn agrees_with_the_headers_crate(
            tags in prop::collection::vec(tag(), 0..4),
            separators in prop::collection::vec(prop_oneof![Just(","), Just(", "), Just(" ,"), Just(",,")], 4),
            star in any::<bool>(),
            other in tag(),
            pick in prop::option::of((any::<prop::sample::Index>(), any::<bool>())),
        ) {
            use headers::HeaderMapExt as _;
            // Often one of the listed tags, weak or strong: so that matches are tested too.
            let current = match pick {
                Some((index, weak)) if !tags.is_empty() => {
                    let listed = index.get(&tags).trim_start_matches("W/");
                    if weak { format!("W/{listed}") } else { listed.to_owned() }
                }
                _ => other,
            };
            let field = if star {
                "*".to_owned()
            } else {
                tags.iter()
                    .zip(separators.iter().cycle())
                    .map(|(t, s)| format!("{t}{s}"))
                    .collect::<String>()
            };
            let (Ok(field_value), Ok(current_value)) =
                (HeaderValue::from_str(&field), HeaderValue::from_str(&current))
            else {
                return Ok(());
            };
            let mut map = http::HeaderMap::new();
            map.insert(http::header::IF_NONE_MATCH, field_value.clone());
            map.insert(http::header::ETAG, current_value.clone());
            let (Some(if_none_match), Some(etag)) =
                (map.typed_get::<headers::IfNoneMatch>(), map.typed_get::<headers::ETag>())
            else {
                return Ok(());
            };
            // The oracle says whether the precondition passes (no match); a 304 is its failure.
            prop_assert_eq!(
                none_match_fails([&field_value], Some(&current_value)),
                !if_none_match.precondition_passes(&etag),
                "If-None-Match: {} / ETag: {}", field, current
            );
        }
    }
}

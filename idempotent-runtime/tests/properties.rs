//! Property tests over hostile input: the key parser, the store-key builder and the
//! fingerprint never panic and never confuse two different inputs.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

use http::{HeaderMap, HeaderValue};
use idempotent_runtime::fingerprint::{compact_json, fingerprint, is_compact_json, sha256_hex};
use idempotent_runtime::key::{self, KeyError, MAX_KEY_LEN};
use idempotent_runtime::store::StoreKey;
use proptest::prelude::*;

/// Characters that matter to store keys, Redis and quoting, mixed with ordinary ones.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(vec![':', '|', '%', '*', '{', '}', ' ', '"', '\\', '?', '[', ']']),
        2 => prop::char::range('a', 'e'),
        1 => any::<char>(),
    ]
}

fn tricky_string(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(tricky_char(), 0..max).prop_map(|chars| chars.into_iter().collect())
}

/// Printable ASCII strings, the only valid keys.
fn printable(min: usize, max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(vec![':', '|', '%', '*', '{', '}', ' ', '"', '\\']),
            prop::char::range(' ', '~'),
        ],
        min..=max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn quote(key: &str) -> String {
    let mut out = String::from("\"");
    for c in key.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Split a store key back into (prefix, scope, key), undoing the scope's escaping.
fn split(store_key: &str) -> (String, Option<String>, String) {
    let rest = store_key
        .strip_prefix("idempotency:")
        .expect("every store key starts with `idempotency:`");
    let (head, key) = rest.split_once(':').expect("a `:` after the prefix");
    let (prefix, scope) = match head.split_once('|') {
        Some((prefix, scope)) => {
            let scope = scope
                .replace("%3A", ":")
                .replace("%7C", "|")
                .replace("%25", "%");
            (prefix.to_owned(), Some(scope))
        }
        None => (head.to_owned(), None),
    };
    (prefix, scope, key.to_owned())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_bytes_are_a_valid_key_or_rejected(raw in prop::collection::vec(any::<u8>(), 0..300)) {
        match key::parse(&raw) {
            Ok(key) => {
                prop_assert!(!key.is_empty() && key.len() <= MAX_KEY_LEN);
                prop_assert!(key.bytes().all(|b| (0x20..=0x7e).contains(&b)));
            }
            Err(KeyError::Invalid(why)) => prop_assert!(!why.is_empty()),
            Err(other) => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    #[test]
    fn quoting_a_valid_key_names_the_same_key(raw in printable(1, MAX_KEY_LEN)) {
        // A bare key that starts with a quote is read as a quoted string, so compare the
        // quoted form with what the bare form means.
        let quoted = quote(&raw);
        prop_assert_eq!(key::parse(quoted.as_bytes()).map(|k| k.into_owned()), Ok(raw.clone()));
        if !raw.starts_with('"') {
            prop_assert_eq!(key::parse(raw.as_bytes()).map(|k| k.into_owned()), Ok(raw));
        }
    }

    #[test]
    fn keys_over_the_limit_are_rejected_quoted_or_not(raw in printable(MAX_KEY_LEN + 1, MAX_KEY_LEN + 40)) {
        prop_assert!(key::parse(quote(&raw).as_bytes()).is_err());
        prop_assert!(key::parse(raw.as_bytes()).is_err());
    }

    #[test]
    fn store_keys_never_collide_across_prefixes_tenants_and_keys(
        prefix in "[a-z0-9_.-]{0,12}",
        scope in prop::option::of(tricky_string(24)),
        key in printable(1, 64),
    ) {
        let built = StoreKey::new(&prefix, scope.as_deref(), &key);
        prop_assert_eq!(
            (built.prefix(), built.scope(), built.key()),
            (prefix.as_str(), scope.as_deref(), key.as_str())
        );
        // The parts can be read back from the string form unambiguously, so two different
        // triples never share a store key.
        prop_assert_eq!(split(built.as_str()), (prefix, scope, key));
    }

    #[test]
    fn fingerprint_never_panics_and_is_hex(
        content_type in prop::option::of(prop_oneof![
            Just("application/json".to_owned()),
            Just("application/vnd.api+json; charset=utf-8".to_owned()),
            "[ -~]{0,40}",
        ]),
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut headers = HeaderMap::new();
        if let Some(ct) = content_type.and_then(|ct| HeaderValue::from_str(&ct).ok()) {
            headers.insert(http::header::CONTENT_TYPE, ct);
        }
        let fp = fingerprint(&headers, &body);
        prop_assert_eq!(fp.len(), 64);
        prop_assert!(fp.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn json_layout_does_not_change_the_fingerprint(value in json_value()) {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let compact = serde_json::to_vec(&value).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        prop_assert_eq!(fingerprint(&headers, &pretty), fingerprint(&headers, &compact));
        prop_assert_eq!(fingerprint(&headers, &compact), sha256_hex(&compact));
    }

    #[test]
    fn a_body_taken_as_compact_is_what_the_full_parse_writes(
        tokens in prop::collection::vec(json_token(), 0..8),
        value in json_value(),
    ) {
        let soup = tokens.concat().into_bytes();
        // The same pieces as the items of an array: valid JSON whenever each is a value.
        let array = format!("[{}]", tokens.join(",")).into_bytes();
        let compact = serde_json::to_vec(&value).unwrap();
        let pretty = serde_json::to_vec_pretty(&value).unwrap();
        for body in [soup, array, compact, pretty] {
            if is_compact_json(&body)
                && let Some(parsed) = compact_json(&body)
            {
                prop_assert_eq!(
                    &parsed, &body,
                    "{}", String::from_utf8_lossy(&body)
                );
            }
        }
    }
}

/// Pieces of JSON, valid or not, in the forms the compact writer keeps and in those it
/// changes.
fn json_token() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "{",
            "}",
            "[",
            "]",
            ":",
            ",",
            " ",
            "\n",
            "true",
            "false",
            "null",
            "-",
            "-0",
            "0",
            "00",
            "7",
            "-12",
            "1.5",
            "1.0",
            "1e3",
            "1E-2",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "999999999999999999",
            "\"k\"",
            "\"\"",
            "\"\\u0041\"",
            "\"\\/\"",
            "\"\\n\"",
            "\"é😀\"",
            "\"\u{7f}\"",
        ])
        .prop_map(str::to_owned),
        tricky_string(6).prop_map(|s| format!("\"{s}\"")),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
    ]
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        (-1e9f64..1e9).prop_map(serde_json::Value::from),
        tricky_string(16).prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::vec((tricky_string(8), inner), 0..6)
                .prop_map(|entries| { serde_json::Value::Object(entries.into_iter().collect()) }),
        ]
    })
}

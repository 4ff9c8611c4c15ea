//! The store's table name: checked once, written quoted into every statement.

use std::fmt;

use crate::store::StoreError;

/// PostgreSQL's longest identifier, in bytes (`NAMEDATALEN - 1`).
const MAX_IDENTIFIER: usize = 63;

/// A table name, `name` or `schema.name`, each part a plain identifier (ASCII letters,
/// digits and `_`, not starting with a digit, at most 63 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TableName {
    schema: Option<String>,
    name: String,
}

impl TableName {
    pub(super) fn parse(text: &str) -> Result<Self, StoreError> {
        let (schema, name) = match text.split_once('.') {
            Some((schema, name)) => (Some(schema), name),
            None => (None, text),
        };
        for part in schema.iter().chain([&name]) {
            if !is_identifier(part) {
                return Err(StoreError::new(format!(
                    "invalid PostgreSQL table name {text:?}: expected `name` or `schema.name`, \
                     each of ASCII letters, digits and `_`, not starting with a digit, at most \
                     {MAX_IDENTIFIER} bytes"
                )));
            }
        }
        Ok(TableName {
            schema: schema.map(str::to_owned),
            name: name.to_owned(),
        })
    }

    /// A name derived from the table's (for its index), quoted, cut to the identifier limit.
    pub(super) fn derived(&self, suffix: &str) -> String {
        let mut name = format!("{}_{suffix}", self.name);
        name.truncate(MAX_IDENTIFIER);
        format!("\"{name}\"")
    }
}

fn is_identifier(part: &str) -> bool {
    !part.is_empty()
        && part.len() <= MAX_IDENTIFIER
        && !part.starts_with(|c: char| c.is_ascii_digit())
        && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Display for TableName {
    /// The quoted name, as it is written into statements.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "\"{schema}\".")?;
        }
        write!(f, "\"{}\"", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_and_checked() {
        let plain = TableName::parse("idempotency_keys").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plain.to_string(), "\"idempotency_keys\"");
        assert_eq!(
            plain.derived("expires_at_idx"),
            "\"idempotency_keys_expires_at_idx\""
        );
        let qualified = TableName::parse("billing.Keys_2").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(qualified.to_string(), "\"billing\".\"Keys_2\"");
        for bad in [
            "",
            "a.b.c",
            ".keys",
            "keys.",
            "2keys",
            "keys; DROP TABLE x",
            "k\"eys",
            "clés",
            &"k".repeat(64),
        ] {
            assert!(TableName::parse(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(TableName::parse(&"k".repeat(63)).is_ok());
        let long = TableName::parse(&"k".repeat(63)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(long.derived("expires_at_idx").len(), 63 + 2);
    }
}

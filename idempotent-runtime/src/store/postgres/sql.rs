//! The statements of the PostgreSQL store, written once per table when the store is made.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use super::table::TableName;

/// The schema of a table named `table` (see the module documentation).
pub(super) fn schema(table: &TableName) -> String {
    let index = table.derived("expires_at_idx");
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (
    key           text        PRIMARY KEY,
    state         text        NOT NULL CHECK (state IN ('processing', 'completed')),
    token         text        NOT NULL,
    fingerprint   text,
    status        smallint,
    header_names  text[],
    header_values bytea[],
    body          bytea,
    stored_at     timestamptz,
    expires_at    timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS {index} ON {table} (expires_at);"
    )
}

/// The columns a record is read from, in the order [`super::decode`] reads them.
const RECORD_COLUMNS: &str = "state, token, fingerprint, status, header_names, header_values, \
     body, (extract(epoch FROM stored_at) * 1000)::bigint AS stored_at_ms";

/// Every statement the store sends, as shared strings (cloning one is a reference count).
pub(super) struct Statements {
    pub(super) claim: SqlStr,
    pub(super) complete: SqlStr,
    pub(super) release: SqlStr,
    pub(super) renew: SqlStr,
    pub(super) get: SqlStr,
    pub(super) delete_expired: SqlStr,
}

fn statement(sql: String) -> SqlStr {
    AssertSqlSafe(Arc::<str>::from(sql)).into_sql_str()
}

impl Statements {
    pub(super) fn new(table: &TableName) -> Self {
        Statements {
            // One statement: insert the claim; or, when the key holds an expired record,
            // take it over; or else read the live record. A duplicate of a live record
            // writes nothing (`DO NOTHING` finds the conflict before inserting, and the
            // takeover's condition is false), so a replay leaves no dead tuple and takes no
            // transaction id. All three parts see the statement's snapshot: a row committed
            // by a concurrent claim after it was taken is neither inserted over nor read, and
            // the statement answers no row (or the expired row it replaced); the store then
            // asks again.
            // $1 key, $2 token, $3 fingerprint, $4 lock_ttl in milliseconds.
            claim: statement(format!(
                "WITH inserted AS (
    INSERT INTO {table} (key, state, token, fingerprint, expires_at)
    VALUES ($1, 'processing', $2, $3, statement_timestamp() + $4 * interval '1 millisecond')
    ON CONFLICT (key) DO NOTHING
    RETURNING 1
), taken AS (
    UPDATE {table}
    SET state = 'processing', token = $2, fingerprint = $3, status = NULL,
        header_names = NULL, header_values = NULL, body = NULL, stored_at = NULL,
        expires_at = statement_timestamp() + $4 * interval '1 millisecond'
    WHERE key = $1 AND expires_at <= statement_timestamp()
      AND NOT EXISTS (SELECT 1 FROM inserted)
    RETURNING 1
)
SELECT true AS claimed, true AS live, NULL::text AS state, NULL::text AS token,
       NULL::text AS fingerprint, NULL::smallint AS status, NULL::text[] AS header_names,
       NULL::bytea[] AS header_values, NULL::bytea AS body, NULL::bigint AS stored_at_ms
FROM inserted
UNION ALL
SELECT true, true, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM taken
UNION ALL
SELECT false, expires_at > statement_timestamp(), {RECORD_COLUMNS}
FROM {table}
WHERE key = $1 AND NOT EXISTS (SELECT 1 FROM inserted) AND NOT EXISTS (SELECT 1 FROM taken)"
            )),
            // Written over this claim's record, or where the key is free (absent, or its
            // record expired); refused (no row) where another live record is.
            // $1 key, $2 token, $3 fingerprint, $4 status, $5 header names, $6 header values,
            // $7 body, $8 stored_at in milliseconds since the epoch, $9 ttl in milliseconds.
            complete: statement(format!(
                "INSERT INTO {table} AS r
    (key, state, token, fingerprint, status, header_names, header_values, body, stored_at,
     expires_at)
VALUES ($1, 'completed', $2, $3, $4, $5, $6, $7, to_timestamp($8::float8 / 1000),
        statement_timestamp() + $9 * interval '1 millisecond')
ON CONFLICT (key) DO UPDATE
SET state = 'completed', token = excluded.token, fingerprint = excluded.fingerprint,
    status = excluded.status, header_names = excluded.header_names,
    header_values = excluded.header_values, body = excluded.body,
    stored_at = excluded.stored_at, expires_at = excluded.expires_at
WHERE r.token = excluded.token OR r.expires_at <= statement_timestamp()"
            )),
            // $1 key, $2 token.
            release: statement(format!(
                "DELETE FROM {table} WHERE key = $1 AND token = $2 AND state = 'processing'"
            )),
            // $1 key, $2 token, $3 lock_ttl in milliseconds.
            renew: statement(format!(
                "UPDATE {table} SET expires_at = statement_timestamp() + $3 * interval '1 millisecond'
WHERE key = $1 AND token = $2 AND state = 'processing' AND expires_at > statement_timestamp()"
            )),
            // $1 key.
            get: statement(format!(
                "SELECT true AS live, {RECORD_COLUMNS} FROM {table}
WHERE key = $1 AND expires_at > statement_timestamp()"
            )),
            // At most $1 expired rows, oldest first. Rows another transaction holds (a
            // takeover of an expired key in flight) are skipped, and a row made live again
            // since the statement began is not deleted: `FOR UPDATE` reads the newest version
            // of each row and checks the condition again.
            delete_expired: statement(format!(
                "DELETE FROM {table} WHERE key IN (
    SELECT key FROM {table} WHERE expires_at <= statement_timestamp()
    ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
            )),
        }
    }
}

//! What the store-level tests of every store share: keys, claims and responses to write, and
//! the race every store must win exactly once.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{self, HeaderValue, StatusCode};
use idempotent_runtime::store::{
    Claim, ClaimOutcome, Fence, IdempotencyStore, Record, StoreKey, StoredResponse, Token,
};

pub const MINUTE: Duration = Duration::from_secs(60);
pub const HOUR: Duration = Duration::from_secs(3600);

/// The store key whose string form is `key` (the tests name their keys that way).
pub fn sk(key: &str) -> StoreKey {
    StoreKey::parse(key).expect("a store key")
}

/// A claim without a fingerprint, locking for `lock_ttl`.
pub fn claim(lock_ttl: Duration) -> Claim {
    Claim::new(Token::generate(), None, lock_ttl)
}

/// A claim with `fingerprint`, locking for a minute.
pub fn hashed_claim(fingerprint: &str) -> Claim {
    Claim::new(Token::generate(), Some(fingerprint.to_owned()), MINUTE)
}

/// A 201 JSON response with `body`.
pub fn response(body: &'static str) -> StoredResponse {
    StoredResponse::new(
        StatusCode::CREATED,
        Some(vec![(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )]),
        Bytes::from_static(body.as_bytes()),
        None,
    )
}

pub fn is_claimed(outcome: &ClaimOutcome) -> bool {
    matches!(outcome, ClaimOutcome::Claimed)
}

/// The token of the PROCESSING record a claim found.
pub fn processing_token(outcome: &ClaimOutcome) -> Option<&Token> {
    match outcome {
        ClaimOutcome::Existing(Record::Processing { token, .. }) => Some(token),
        _ => None,
    }
}

/// 32 claims of one key at once, from `stores` (separate connections, as separate processes
/// would have): exactly one wins, and every other one sees the winner's record.
pub async fn race(stores: &[Arc<dyn IdempotencyStore>], key: &str) {
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            let key = key.to_owned();
            tokio::spawn(async move {
                let claim = claim(MINUTE);
                let outcome = store
                    .claim(&sk(&key), &claim)
                    .await
                    .unwrap_or_else(|e| panic!("claim {key}: {e}"));
                (claim.token, outcome)
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap_or_else(|e| panic!("claim task: {e}")));
    }
    let winners: Vec<&Token> = results
        .iter()
        .filter(|(_, o)| is_claimed(o))
        .map(|(t, _)| t)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one claim wins on {key}");
    for (_, outcome) in &results {
        if !is_claimed(outcome) {
            assert_eq!(
                processing_token(outcome),
                Some(winners[0]),
                "losers see the winner's lock"
            );
        }
    }
}

/// `token`, which does not own `key`, can neither complete nor release it.
pub async fn refuses(store: &impl IdempotencyStore, key: &str, token: &Token) {
    let completed = store
        .complete(&sk(key), token, response("{}"), HOUR)
        .await
        .unwrap_or_else(|e| panic!("complete {key}: {e}"));
    assert_eq!(
        completed,
        Fence::Refused,
        "complete by a token that does not own {key}"
    );
    let released = store
        .release(&sk(key), token)
        .await
        .unwrap_or_else(|e| panic!("release {key}: {e}"));
    assert_eq!(
        released,
        Fence::Refused,
        "release by a token that does not own {key}"
    );
}

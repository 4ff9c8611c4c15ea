//! The handler's transaction (the same-transaction mode): committed with the record, or
//! rolled back.

use axum::response::Response;

use super::call::{release, within_deadline};
use crate::extract::IdempotencyClaim;
use crate::idempotency::Inner;
use crate::metrics::{Operation, Outcome};
use crate::policy::PolicyRef;
use crate::problem::{ProblemCode, problem, problem_retry_after};
use crate::store::{Completion, Fence, StoredResponse, UnitOfWork};

/// Roll the handler's transaction back, within the store deadline (a rollback whose answer
/// is lost is one all the same: the server ends the transaction when the connection goes).
pub(super) async fn roll_back(inner: &Inner, unit: &dyn UnitOfWork) {
    if tokio::time::timeout(inner.store_timeout, unit.rollback())
        .await
        .is_err()
    {
        tracing::warn!(
            deadline = ?inner.store_timeout,
            "idempotency: rolling back the request's transaction timed out"
        );
    }
}

/// Write the completed record in the handler's transaction and commit both. `Err` is the
/// answer to send instead of the handler's: nothing of the request was kept.
pub(super) async fn commit_owned(
    inner: &Inner,
    policy: &PolicyRef,
    claim: &IdempotencyClaim,
    unit: &dyn UnitOfWork,
    stored: StoredResponse,
) -> Result<(), Response> {
    let completion = Completion::new(claim.key.clone(), claim.token.clone(), stored, policy.ttl);
    let committed = within_deadline(inner, Operation::Commit, unit.commit(Some(completion))).await;
    match committed {
        Ok(Fence::Applied) => Ok(()),
        Ok(_) => {
            inner.metrics.record(&policy.key_prefix, Outcome::Fenced);
            tracing::warn!(
                key_prefix = &*policy.key_prefix,
                "idempotency: the request's transaction was rolled back: the key was claimed by \
                 another request after this one's lock_ttl ran out"
            );
            Err(problem_retry_after(
                ProblemCode::RequestInProgress,
                &format!(
                    "Another request with idempotency key '{}' took over; retry to get its response",
                    claim.key.key()
                ),
                1,
            ))
        }
        Err(error) => {
            inner
                .metrics
                .record(&policy.key_prefix, Outcome::StoreError);
            tracing::error!(
                %error,
                kind = %error.kind(),
                key_prefix = &*policy.key_prefix,
                "idempotency: committing the request's transaction with its record failed; \
                 the key is released"
            );
            // Fenced: if a commit whose answer was lost did land, the record is completed
            // and stays.
            release(inner, claim).await;
            Err(transaction_failed())
        }
    }
}

/// Commit the transaction of a request that owns no claim (no key on an optional route, or
/// a store outage with `fail_open`): its writes, without a record.
pub(super) async fn commit_unowned(
    inner: &Inner,
    policy: &PolicyRef,
    unit: Box<dyn UnitOfWork>,
    response: Response,
) -> Response {
    match within_deadline(inner, Operation::Commit, unit.commit(None)).await {
        Ok(_) => response,
        Err(error) => {
            tracing::error!(%error, key_prefix = &*policy.key_prefix, "idempotency: committing the request's transaction failed");
            transaction_failed()
        }
    }
}

fn transaction_failed() -> Response {
    problem(
        ProblemCode::TransactionFailed,
        "The request's transaction could not be committed; nothing was kept. Retry with the same key.",
    )
}

//! What a failed SDK call means for the engine: which [`StoreErrorKind`] it is.

use std::error::Error;
use std::fmt;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::store::{StoreError, StoreErrorKind};

/// The [`StoreError`] of a failed call of `op`; `retried` says whether the SDK may have sent
/// it more than once (then a failure after a lost attempt can look like one that never left).
pub(super) fn classify<E, R>(
    op: &str,
    table: &str,
    error: SdkError<E, R>,
    retried: bool,
) -> StoreError
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    let kind = kind(&error, retried);
    tracing::debug!(op, table, kind = %kind, error = %DisplayErrorContext(&error), "idempotency: dynamodb call failed");
    let what = match kind {
        StoreErrorKind::TooLarge => {
            format!("dynamodb: {op}: the item is over DynamoDB's size limit")
        }
        _ => format!("dynamodb: {op} on table `{table}` failed"),
    };
    StoreError::with_source(what, Context(error)).with_kind(kind)
}

fn kind<E, R>(error: &SdkError<E, R>, retried: bool) -> StoreErrorKind
where
    E: ProvideErrorMetadata + Error + 'static,
    R: fmt::Debug,
{
    match error {
        // Never sent.
        SdkError::ConstructionFailure(_) => StoreErrorKind::Unavailable,
        SdkError::ServiceError(failure) => {
            let err = failure.err();
            if is_size_refusal(err.code(), err.message()) {
                return StoreErrorKind::TooLarge;
            }
            let code = err.code().unwrap_or_default();
            // A 5xx (`InternalServerError`, `ServiceUnavailable`) may have been applied; an
            // answered refusal (throttling, validation, a missing table, access) was not,
            // unless an earlier attempt, whose answer was lost, was.
            if retried
                || code.contains("InternalServerError")
                || code.contains("ServiceUnavailable")
            {
                StoreErrorKind::Indeterminate
            } else {
                StoreErrorKind::Unavailable
            }
        }
        SdkError::DispatchFailure(failure)
            if !retried
                && failure
                    .as_connector_error()
                    .is_some_and(|e| never_connected(e)) =>
        {
            StoreErrorKind::Unavailable
        }
        // Sent (or perhaps sent), and no answer read: a timeout, a connection lost, an answer
        // that could not be parsed.
        _ => StoreErrorKind::Indeterminate,
    }
}

/// DynamoDB's answer to an item over its size limit: a `ValidationException` saying "Item
/// size has exceeded the maximum allowed size" (or, for an update, "Item size to update
/// has exceeded the maximum allowed size").
pub(super) fn is_size_refusal(code: Option<&str>, message: Option<&str>) -> bool {
    code == Some("ValidationException")
        && message.is_some_and(|m| {
            let m = m.to_ascii_lowercase();
            m.contains("item size") && m.contains("maximum allowed size")
        })
}

/// Whether the connection could not be opened at all (refused, or no route), so that the
/// request never left: the cause is an I/O error of that kind somewhere in the chain.
fn never_connected(error: &(dyn Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{
                AddrNotAvailable, ConnectionRefused, HostUnreachable, NetworkUnreachable,
            };
            if matches!(
                io.kind(),
                ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable
            ) {
                return true;
            }
            // `io::Error::source` skips its payload: look at it too.
            if io.get_ref().is_some_and(|inner| never_connected(inner)) {
                return true;
            }
        }
        next = error.source();
    }
    false
}

/// An SDK error that displays its whole chain of causes (the SDK's own `Display` says only
/// "service error" or "dispatch failure").
struct Context<E, R>(SdkError<E, R>);

impl<E, R> fmt::Display for Context<E, R>
where
    E: Error + 'static,
    R: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", DisplayErrorContext(&self.0))
    }
}

impl<E, R> fmt::Debug for Context<E, R>
where
    E: Error + 'static,
    R: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<E, R> Error for Context<E, R>
where
    E: Error + 'static,
    R: fmt::Debug,
{
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dynamodbs_size_refusal_is_too_large() {
        assert!(is_size_refusal(
            Some("ValidationException"),
            Some("Item size has exceeded the maximum allowed size")
        ));
        assert!(is_size_refusal(
            Some("ValidationException"),
            Some("Item size to update has exceeded the maximum allowed size")
        ));
        assert!(!is_size_refusal(
            Some("ValidationException"),
            Some("One or more parameter values were invalid")
        ));
        assert!(!is_size_refusal(
            Some("ThrottlingException"),
            Some("Item size has exceeded the maximum allowed size")
        ));
        assert!(!is_size_refusal(None, None));
    }

    #[test]
    fn a_refused_connection_is_found_in_the_chain() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("tcp connect error")
            }
        }
        impl Error for Outer {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(never_connected(&Outer(refused)));
        let wrapped = std::io::Error::other(Outer(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(never_connected(&wrapped), "inside an io::Error's payload");
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(
            !never_connected(&Outer(reset)),
            "a reset may come after sending"
        );
    }
}

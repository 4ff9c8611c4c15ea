//! The handler's future, detached from the connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A future polled in place by the request, and moved onto a task of its own if the request
/// is dropped before it finishes (the client went away), so that it still runs to the end:
/// the handler completes, and its response is stored for the retry.
pub(super) struct Detached<F: Future + Send + 'static>
where
    F::Output: Send + 'static,
{
    future: Option<Pin<Box<F>>>,
}

impl<F: Future + Send + 'static> Detached<F>
where
    F::Output: Send + 'static,
{
    /// The future, already on the heap: made there by the caller, so that a large future is
    /// not moved once more on its way in.
    pub(super) fn new(future: Pin<Box<F>>) -> Self {
        Self {
            future: Some(future),
        }
    }
}

impl<F: Future + Send + 'static> Future for Detached<F>
where
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(future) = self.future.as_mut() else {
            return Poll::Pending;
        };
        let output = std::task::ready!(future.as_mut().poll(cx));
        self.future = None;
        Poll::Ready(output)
    }
}

impl<F: Future + Send + 'static> Drop for Detached<F>
where
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(future);
                }
                Err(_) => tracing::warn!(
                    "idempotency: a request was dropped outside a Tokio runtime; its handler \
                     cannot be finished in the background"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::{Notify, oneshot};

    #[tokio::test]
    async fn a_dropped_future_runs_to_the_end_on_a_task_of_its_own() {
        let gate = Arc::new(Notify::new());
        let (done, finished) = oneshot::channel();
        let detached = Detached::new({
            let gate = gate.clone();
            Box::pin(async move {
                gate.notified().await;
                let _ = done.send(());
            })
        });
        // Polled once in place, then dropped while it waits.
        let mut detached = Box::pin(detached);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(detached.as_mut().poll(&mut cx).is_pending());
        drop(detached);
        gate.notify_one();
        finished.await.expect("the detached future ran to its end");
    }
}

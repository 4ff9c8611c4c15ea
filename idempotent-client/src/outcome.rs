//! A logical request that succeeded.

use http::StatusCode;
use idempotent_protocol::IDEMPOTENT_REPLAYED;

/// The final response of a logical request (a status below 400), with its key and the
/// number of attempts it took.
///
/// ```no_run
/// use idempotent_client::RequestBuilderExt;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let outcome = reqwest::Client::new()
///     .post("http://127.0.0.1:3000/orders")
///     .header("content-type", "application/json")
///     .body(r#"{"amount": 100}"#)
///     .idempotent()
///     .send()
///     .await?;
/// println!(
///     "{} with key {} after {} attempt(s){}",
///     outcome.status(),
///     outcome.key(),
///     outcome.attempts(),
///     if outcome.replayed() { ", replayed" } else { "" },
/// );
/// let body = outcome.into_response().text().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Outcome {
    response: reqwest::Response,
    key: String,
    attempts: u32,
}

impl Outcome {
    pub(crate) fn new(response: reqwest::Response, key: String, attempts: u32) -> Outcome {
        Outcome {
            response,
            key,
            attempts,
        }
    }

    /// The final response's status.
    pub fn status(&self) -> StatusCode {
        self.response.status()
    }

    /// The idempotency key the request was sent with, on every attempt.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How many times the request was sent: 1 when the first attempt succeeded.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Whether the server answered from its store (`Idempotent-Replayed: true`): an earlier
    /// attempt ran the request, and this is its response.
    pub fn replayed(&self) -> bool {
        self.response
            .headers()
            .get(IDEMPOTENT_REPLAYED)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"true"))
    }

    /// The final response.
    pub fn response(&self) -> &reqwest::Response {
        &self.response
    }

    /// The final response, by value, to read its body.
    pub fn into_response(self) -> reqwest::Response {
        self.response
    }
}

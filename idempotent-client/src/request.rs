//! One logical request: its key, its attempts, the waits between them.

use std::time::{Duration, SystemTime};

use backon::Retryable;
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use idempotent_protocol::IDEMPOTENCY_KEY;
use idempotent_protocol::key::{self, KeyError};

use crate::error::{Error, ErrorKind, ErrorResponse};
use crate::outcome::Outcome;
use crate::policy::{Delays, RetryPolicy, is_retryable_status, retry_after};

/// Turns a `reqwest` request into an [`IdempotentRequest`].
///
/// ```no_run
/// use idempotent_client::{RequestBuilderExt, RetryPolicy};
///
/// # async fn run() -> Result<(), idempotent_client::Error> {
/// let http = reqwest::Client::new();
/// let outcome = http
///     .post("http://127.0.0.1:3000/orders")
///     .header("content-type", "application/json")
///     .body(r#"{"amount": 100}"#)
///     .idempotent()
///     .policy(RetryPolicy::new().max_attempts(3))
///     .send()
///     .await?;
/// assert!(outcome.status().is_success());
/// # Ok(())
/// # }
/// ```
pub trait RequestBuilderExt {
    /// This request, sent with an idempotency key and retried under the default
    /// [`RetryPolicy`].
    fn idempotent(self) -> IdempotentRequest;
}

impl RequestBuilderExt for reqwest::RequestBuilder {
    fn idempotent(self) -> IdempotentRequest {
        IdempotentRequest::new(self)
    }
}

/// A request that is sent with one idempotency key and retried with that key and the same
/// body until it gets a final answer or the [`RetryPolicy`] runs out.
///
/// What is retried: a transport error (no response), 409, 429, 502, 503 and 504
/// ([`is_retryable_status`]). Nothing else is: a 2xx or 3xx is an [`Outcome`], any other
/// 4xx or 5xx an [`Error`] with the response and its problem document.
///
/// The key is, in order of preference: the one given with [`key`](IdempotentRequest::key);
/// the one already in the request's key header; a new random UUID (v4). A key given either
/// way is checked with the server's rules ([`idempotent_protocol::key::parse`]) before
/// anything is sent.
///
/// A body that cannot be sent twice (a stream) is sent once: its request gets one attempt.
#[derive(Debug)]
#[must_use = "a request does nothing until it is sent"]
pub struct IdempotentRequest {
    builder: reqwest::RequestBuilder,
    key: Option<String>,
    policy: RetryPolicy,
    header: HeaderName,
}

/// Why one attempt did not end the logical request.
enum Failure {
    /// No response.
    Transport(reqwest::Error),
    /// A response whose status is retried.
    Status(reqwest::Response),
}

impl Failure {
    /// The delay the response asks for.
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Transport(_) => None,
            Failure::Status(response) => retry_after(response.headers(), SystemTime::now()),
        }
    }
}

impl IdempotentRequest {
    /// `builder`, with a key to come and the default [`RetryPolicy`].
    pub fn new(builder: reqwest::RequestBuilder) -> IdempotentRequest {
        IdempotentRequest {
            builder,
            key: None,
            policy: RetryPolicy::new(),
            header: IDEMPOTENCY_KEY,
        }
    }

    /// Send this key rather than a new one: for a logical request that an earlier process
    /// already sent (a key kept with the order in a database, say). It must be a valid key:
    /// 1 to 255 bytes of printable ASCII, or an RFC 8941 quoted string.
    ///
    /// ```no_run
    /// use idempotent_client::RequestBuilderExt;
    ///
    /// # async fn run() -> Result<(), idempotent_client::Error> {
    /// let outcome = reqwest::Client::new()
    ///     .post("http://127.0.0.1:3000/payments")
    ///     .idempotent()
    ///     .key("order-42-payment")
    ///     .send()
    ///     .await?;
    /// assert_eq!(outcome.key(), "order-42-payment");
    /// # Ok(())
    /// # }
    /// ```
    pub fn key(mut self, key: impl Into<String>) -> IdempotentRequest {
        self.key = Some(key.into());
        self
    }

    /// Retry under this policy.
    pub fn policy(mut self, policy: RetryPolicy) -> IdempotentRequest {
        self.policy = policy;
        self
    }

    /// Send the key in this header rather than `Idempotency-Key` (e.g. `X-Idempotency-Key`).
    pub fn key_header(mut self, name: HeaderName) -> IdempotentRequest {
        self.header = name;
        self
    }

    /// Send the request, and retry it as the policy says, always with the same key and body.
    ///
    /// An [`Outcome`] when the final response is below 400; else an [`Error`], which has
    /// the key, the number of attempts, and the final response (with its problem document)
    /// or the last transport error.
    pub async fn send(self) -> Result<Outcome, Error> {
        let IdempotentRequest {
            builder,
            key: given,
            policy,
            header,
        } = self;
        let (client, request) = builder.build_split();
        let mut request = match request {
            Ok(request) => request,
            Err(cause) => {
                return Err(Error::new(
                    given.unwrap_or_default(),
                    0,
                    ErrorKind::Request(cause),
                ));
            }
        };
        let key = match attach_key(request.headers_mut(), &header, given) {
            Ok(key) => key,
            Err((key, why)) => return Err(Error::new(key, 0, ErrorKind::InvalidKey(why))),
        };

        let template = match Template::of(request) {
            Copyable::Yes(template) => template,
            // A body that cannot be copied (a stream) goes out once.
            Copyable::No(request) => {
                let result = execute(&client, request).await;
                return finish(result, key, 1).await;
            }
        };

        let mut attempts = 0u32;
        let attempt = || {
            attempts += 1;
            execute(&client, template.copy())
        };
        let honour_retry_after = policy.honour_retry_after;
        let cap = policy.cap;
        let result = attempt
            .retry(Delays::new(policy))
            .when(|failure| match failure {
                Failure::Status(_) => true,
                // A redirect loop or a bad redirect is the same on every attempt.
                Failure::Transport(cause) => !cause.is_redirect() && !cause.is_builder(),
            })
            .adjust(|failure, backoff| {
                // `None` when the attempts ran out: the failure is then final.
                let backoff = backoff?;
                match failure.retry_after() {
                    Some(after) if honour_retry_after => Some(after.min(cap)),
                    _ => Some(backoff),
                }
            })
            .await;
        finish(result, key, attempts).await
    }
}

/// One attempt: a response that ends the logical request, or why it did not.
async fn execute(
    client: &reqwest::Client,
    request: reqwest::Request,
) -> Result<reqwest::Response, Failure> {
    match client.execute(request).await {
        Ok(response) if is_retryable_status(response.status()) => Err(Failure::Status(response)),
        Ok(response) => Ok(response),
        Err(cause) => Err(Failure::Transport(cause)),
    }
}

/// The result of the last attempt, as the caller sees it.
async fn finish(
    result: Result<reqwest::Response, Failure>,
    key: String,
    attempts: u32,
) -> Result<Outcome, Error> {
    match result {
        Ok(response) if response.status().as_u16() < 400 => {
            Ok(Outcome::new(response, key, attempts))
        }
        Ok(response) | Err(Failure::Status(response)) => Err(Error::new(
            key,
            attempts,
            ErrorKind::Status(Box::new(ErrorResponse::read(response).await)),
        )),
        Err(Failure::Transport(cause)) => {
            Err(Error::new(key, attempts, ErrorKind::Transport(cause)))
        }
    }
}

/// A request that can be sent any number of times: the request without its body, and its
/// body as bytes.
#[derive(Debug)]
struct Template {
    head: reqwest::Request,
    body: Option<Bytes>,
}

/// Whether a request can be sent more than once.
enum Copyable {
    /// Yes: any number of copies of it.
    Yes(Template),
    /// No: its body is a stream.
    No(reqwest::Request),
}

impl Template {
    /// The template of `request`, or `request` back if its body is a stream.
    fn of(mut request: reqwest::Request) -> Copyable {
        let body = match request.body() {
            None => None,
            Some(body) => match body.as_bytes() {
                Some(bytes) => Some(Bytes::copy_from_slice(bytes)),
                None => return Copyable::No(request),
            },
        };
        *request.body_mut() = None;
        Copyable::Yes(Template {
            head: request,
            body,
        })
    }

    /// A copy of the request, to send.
    fn copy(&self) -> reqwest::Request {
        // A request without a body always clones, with reqwest's own per-request settings.
        // Were that to change, the copy is rebuilt from the public parts.
        let mut request = self.head.try_clone().unwrap_or_else(|| {
            let mut request =
                reqwest::Request::new(self.head.method().clone(), self.head.url().clone());
            *request.headers_mut() = self.head.headers().clone();
            *request.version_mut() = self.head.version();
            *request.timeout_mut() = self.head.timeout().copied();
            request
        });
        *request.body_mut() = self.body.clone().map(reqwest::Body::from);
        request
    }
}

/// Put the request's key in `header`: `given`, else the one the request already carries,
/// else a new one. The key as sent, or the rejected key and why.
fn attach_key(
    headers: &mut http::HeaderMap,
    header: &HeaderName,
    given: Option<String>,
) -> Result<String, (String, KeyError)> {
    let key = match given {
        Some(given) => {
            if let Err(why) = key::parse(given.as_bytes()) {
                return Err((given, why));
            }
            given
        }
        None => match key::from_headers(headers, header) {
            // Already there, and valid: sent as it is.
            Ok(_) => {
                let raw = headers
                    .get(header)
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                return Ok(raw.to_owned());
            }
            Err(KeyError::Missing) => uuid::Uuid::new_v4().to_string(),
            Err(why) => {
                let raw = headers
                    .get_all(header)
                    .iter()
                    .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err((raw, why));
            }
        },
    };
    match HeaderValue::from_str(&key) {
        Ok(value) => {
            headers.insert(header, value);
            Ok(key)
        }
        // A valid key is printable ASCII, which is always a valid header value.
        Err(_) => Err((
            key,
            KeyError::Invalid("the key is not a valid header value"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    const NAME: HeaderName = IDEMPOTENCY_KEY;

    #[test]
    fn a_given_key_is_checked_and_replaces_the_header() {
        let mut headers = HeaderMap::new();
        headers.insert(NAME, HeaderValue::from_static("old"));
        assert_eq!(
            attach_key(&mut headers, &NAME, Some("order-1".into())),
            Ok("order-1".to_owned())
        );
        assert_eq!(headers[NAME], "order-1");
        assert_eq!(
            attach_key(&mut headers, &NAME, Some(r#""quoted \"key\"""#.into())),
            Ok(r#""quoted \"key\"""#.to_owned())
        );

        for bad in [
            String::new(),
            "k".repeat(256),
            "caf\u{e9}".into(),
            "a\nb".into(),
            "\"open".into(),
        ] {
            let mut headers = HeaderMap::new();
            let refused = attach_key(&mut headers, &NAME, Some(bad.clone()));
            assert!(
                matches!(&refused, Err((key, KeyError::Invalid(_))) if *key == bad),
                "{bad:?}: {refused:?}"
            );
            assert!(headers.is_empty(), "nothing is set for {bad:?}");
        }
    }

    #[test]
    fn a_key_in_the_request_is_kept_and_a_missing_one_is_generated() {
        let mut headers = HeaderMap::new();
        headers.insert(NAME, HeaderValue::from_static("from-the-caller"));
        assert_eq!(
            attach_key(&mut headers, &NAME, None),
            Ok("from-the-caller".to_owned())
        );

        let mut twice = HeaderMap::new();
        twice.append(NAME, HeaderValue::from_static("a"));
        twice.append(NAME, HeaderValue::from_static("b"));
        assert!(matches!(
            attach_key(&mut twice, &NAME, None),
            Err((key, KeyError::Invalid(_))) if key == "a, b"
        ));

        let mut first = HeaderMap::new();
        let mut second = HeaderMap::new();
        let a = attach_key(&mut first, &NAME, None).unwrap();
        let b = attach_key(&mut second, &NAME, None).unwrap();
        assert_ne!(a, b);
        assert_eq!(first[NAME], a.as_str());
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 4);
        assert!(key::parse(a.as_bytes()).is_ok());
    }
}

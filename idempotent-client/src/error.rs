//! Why a logical request did not succeed, with what the client knows about it.

use std::fmt;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use idempotent_protocol::key::KeyError;
use idempotent_protocol::{ProblemCode, ProblemDetails};

use crate::policy::is_retryable_status;

/// A logical request that did not succeed: its key, how many attempts were made, and why.
///
/// ```no_run
/// use idempotent_client::{ErrorKind, ProblemCode, RequestBuilderExt};
///
/// # async fn run() {
/// let http = reqwest::Client::new();
/// match http.post("http://127.0.0.1:3000/orders").body("{}").idempotent().send().await {
///     Ok(outcome) => println!("{} after {} attempts", outcome.status(), outcome.attempts()),
///     Err(error) if error.problem_code() == Some(ProblemCode::KeyReused) => {
///         eprintln!("key {} was used for another request", error.key());
///     }
///     Err(error) => match error.kind() {
///         ErrorKind::Transport(cause) => eprintln!("no answer after {} attempts: {cause}", error.attempts()),
///         ErrorKind::Status(response) => eprintln!("{}: {:?}", response.status(), response.problem()),
///         _ => eprintln!("{error}"),
///     },
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct Error {
    key: String,
    attempts: u32,
    kind: ErrorKind,
}

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The key the request was given is not one a server accepts (see
    /// [`idempotent_protocol::key::parse`]). Nothing was sent.
    InvalidKey(KeyError),
    /// The request could not be built (an invalid URL or header, a body that failed to
    /// serialise). Nothing was sent.
    Request(reqwest::Error),
    /// The last attempt got no response: the connection was refused, reset or closed
    /// before the answer, or timed out. The server may have run the request; a later retry
    /// with the same key gets its response.
    Transport(reqwest::Error),
    /// The final response has a 4xx or 5xx status: one that is never retried, or the last
    /// of the attempts the policy allows.
    Status(Box<ErrorResponse>),
}

/// A final 4xx or 5xx response, read whole (up to [`ErrorResponse::BODY_LIMIT`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ErrorResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    problem: Option<ProblemDetails>,
}

impl ErrorResponse {
    /// How much of an error response's body is kept; the rest is not read.
    pub const BODY_LIMIT: usize = 64 * 1024;

    /// Read what there is to know of an error response: its head, and its body up to
    /// [`BODY_LIMIT`](ErrorResponse::BODY_LIMIT) bytes. A body that fails midway keeps what
    /// arrived.
    pub(crate) async fn read(mut response: reqwest::Response) -> ErrorResponse {
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            let room = ErrorResponse::BODY_LIMIT - body.len();
            if chunk.len() > room {
                body.extend_from_slice(chunk.get(..room).unwrap_or_default());
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let problem = is_problem(&headers)
            .then(|| serde_json::from_slice::<ProblemDetails>(&body).ok())
            .flatten();
        ErrorResponse {
            status,
            headers,
            body: Bytes::from(body),
            problem,
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The body, or its first [`BODY_LIMIT`](ErrorResponse::BODY_LIMIT) bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The RFC 9457 problem, when the response is `application/problem+json` with a JSON
    /// object for its body.
    pub fn problem(&self) -> Option<&ProblemDetails> {
        self.problem.as_ref()
    }
}

/// Whether the response says it is `application/problem+json` (parameters ignored).
fn is_problem(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| {
            essence
                .trim()
                .eq_ignore_ascii_case(idempotent_protocol::PROBLEM_JSON)
        })
}

impl Error {
    pub(crate) fn new(key: String, attempts: u32, kind: ErrorKind) -> Error {
        Error {
            key,
            attempts,
            kind,
        }
    }

    /// The idempotency key the request was sent with, or the invalid key it was given.
    /// Sending the same request again with this key later is safe: the server runs it at
    /// most once. Empty when the request could not be built and was given no key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// How many times the request was sent: 0 when nothing was sent.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// What went wrong, by value.
    pub fn into_kind(self) -> ErrorKind {
        self.kind
    }

    /// The status of the final response, if there was one.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.kind {
            ErrorKind::Status(response) => Some(response.status),
            _ => None,
        }
    }

    /// The final response, if there was one.
    pub fn response(&self) -> Option<&ErrorResponse> {
        match &self.kind {
            ErrorKind::Status(response) => Some(response),
            _ => None,
        }
    }

    /// The problem document of the final response, if it had one.
    pub fn problem(&self) -> Option<&ProblemDetails> {
        self.response().and_then(ErrorResponse::problem)
    }

    /// The protocol's code of the final response's problem, if it had one this crate knows.
    pub fn problem_code(&self) -> Option<ProblemCode> {
        self.problem().and_then(ProblemDetails::problem_code)
    }

    /// Whether sending the request again later, with the same key, may succeed: the last
    /// attempt got no response or a status that is retried ([`is_retryable_status`]), so the
    /// attempts ran out (or the body could be sent only once).
    pub fn is_retryable(&self) -> bool {
        match &self.kind {
            ErrorKind::Transport(_) => true,
            ErrorKind::Status(response) => is_retryable_status(response.status),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::InvalidKey(why) => write!(f, "invalid idempotency key: {why}")?,
            ErrorKind::Request(cause) => write!(f, "the request could not be built: {cause}")?,
            ErrorKind::Transport(cause) => write!(f, "no response: {cause}")?,
            ErrorKind::Status(response) => {
                write!(f, "{}", response.status)?;
                if let Some(problem) = &response.problem {
                    if let Some(code) = &problem.code {
                        write!(f, " {code}")?;
                    }
                    if let Some(detail) = &problem.detail {
                        write!(f, ": {detail}")?;
                    }
                }
            }
        }
        let plural = if self.attempts == 1 { "" } else { "s" };
        write!(
            f,
            " (idempotency key {:?}, {} attempt{plural})",
            self.key, self.attempts
        )
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::InvalidKey(why) => Some(why),
            ErrorKind::Request(cause) | ErrorKind::Transport(cause) => Some(cause),
            ErrorKind::Status(_) => None,
        }
    }
}

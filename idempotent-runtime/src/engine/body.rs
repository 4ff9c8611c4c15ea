//! Request and response bodies: reading a request body for hashing, buffering a response
//! for storing.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt as _;

use crate::problem::{ProblemCode, problem};

/// Read a request body for hashing, up to `limit` bytes: 413 over it, 400 if it fails.
pub(super) async fn read_request(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Response> {
    let too_large = || {
        problem(
            ProblemCode::BodyTooLarge,
            &format!("The request body is larger than {limit} bytes."),
        )
    };
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match collect_limited(body, limit).await {
        Collected::Whole(bytes) => Ok(bytes),
        Collected::TooLarge(_) => Err(too_large()),
        Collected::Failed(error) => {
            tracing::debug!(%error, "idempotency: reading the request body failed");
            Err(problem(
                ProblemCode::RequestBodyUnreadable,
                "The request body could not be read.",
            ))
        }
    }
}

/// A response body, buffered for storing.
pub(super) enum Collected {
    /// All of it, within the limit.
    Whole(Bytes),
    /// Over the limit: a body that yields what was read and then the rest.
    TooLarge(Body),
    /// Reading it failed.
    Failed(axum::Error),
}

/// Buffer a response body up to `limit` bytes; past it, hand back a body that yields what
/// was read and then the rest.
pub(super) async fn collect_limited(mut body: Body, limit: usize) -> Collected {
    // Most bodies are one chunk: keep it as it is, and gather only when a second comes.
    let mut first: Option<Bytes> = None;
    let mut more: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    loop {
        match body.frame().await {
            None => break,
            Some(Err(error)) => return Collected::Failed(error),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len();
                    if first.is_none() {
                        first = Some(data);
                    } else {
                        more.push(data);
                    }
                    if total > limit {
                        let head = futures_util::stream::iter(
                            first.into_iter().chain(more).map(Ok::<_, axum::Error>),
                        );
                        let rest = body.into_data_stream();
                        return Collected::TooLarge(Body::from_stream(
                            futures_util::StreamExt::chain(head, rest),
                        ));
                    }
                }
            }
        }
    }
    Collected::Whole(match first {
        None => Bytes::new(),
        Some(only) if more.is_empty() => only,
        Some(first) => {
            let mut all = bytes::BytesMut::with_capacity(total);
            all.extend_from_slice(&first);
            for chunk in more {
                all.extend_from_slice(&chunk);
            }
            all.freeze()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: &[&'static str]) -> Body {
        let chunks: Vec<Result<Bytes, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(Bytes::from_static(c.as_bytes())))
            .collect();
        Body::from_stream(futures_util::stream::iter(chunks))
    }

    async fn all_of(body: Body) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_gathered_whole() {
        for chunks in [&[][..], &["one"], &["one", "two", "three"]] {
            match collect_limited(chunked(chunks), 100).await {
                Collected::Whole(bytes) => assert_eq!(bytes, chunks.concat()),
                _ => panic!("{chunks:?} was not gathered whole"),
            }
        }
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_handed_back_in_full() {
        for (chunks, limit) in [(&["0123456789"][..], 5), (&["012", "345", "6789"], 5)] {
            match collect_limited(chunked(chunks), limit).await {
                Collected::TooLarge(body) => assert_eq!(all_of(body).await, chunks.concat()),
                _ => panic!("{chunks:?} was not over the limit of {limit}"),
            }
        }
    }

    #[tokio::test]
    async fn a_request_body_that_fails_is_a_problem_not_plain_text() {
        let failing = Body::from_stream(futures_util::stream::iter([
            Ok(Bytes::from_static(b"{")),
            Err(std::io::Error::other("connection reset")),
        ]));
        let Err(response) = read_request(&HeaderMap::new(), failing, 1024).await else {
            panic!("a failing body was read")
        };
        assert_eq!(response.status(), 400);
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        let body: serde_json::Value =
            serde_json::from_slice(&all_of(response.into_body()).await).unwrap();
        assert_eq!(body["code"], "idempotency_request_body_unreadable");
    }
}

//! Building the response of a replay, and the record of a response to store.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderName, HeaderValue};

use crate::store::StoredResponse;

/// `Idempotent-Replayed`, on every replayed response.
pub(crate) const REPLAYED: HeaderName = idempotent_protocol::IDEMPOTENT_REPLAYED;

/// The stored response, as a response with `Idempotent-Replayed: true`. A record without
/// headers (written by the Spring aspect) replays as JSON.
pub(super) fn replay(stored: &StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body.clone()));
    *response.status_mut() = stored.status;
    let headers = response.headers_mut();
    match &stored.headers {
        Some(list) => {
            headers.reserve(list.len() + 1);
            for (name, value) in list {
                headers.append(name.clone(), value.clone());
            }
        }
        None => {
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

/// The replayable headers of a response: every value of each header `names` lists, in
/// order.
pub(super) fn replayable_headers(
    headers: &http::HeaderMap,
    names: &[HeaderName],
) -> Vec<(HeaderName, HeaderValue)> {
    let mut kept = Vec::with_capacity(names.len());
    for name in names {
        for value in headers.get_all(name) {
            kept.push((name.clone(), value.clone()));
        }
    }
    kept
}

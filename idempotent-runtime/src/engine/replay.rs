//! Building the response of a replay, the record of a response to store, and what HTTP
//! caching adds to both (`ETag`, `Cache-Control`, `Vary`, and `304 Not Modified`).

use axum::body::Body;
use axum::response::Response;
use http::header::{CACHE_CONTROL, CONTENT_LOCATION, ETAG, EXPIRES, IF_NONE_MATCH, VARY};
use http::request::Parts;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::etag;
use crate::policy::Policy;
use crate::store::StoredResponse;

/// `Idempotent-Replayed`, on every replayed response.
pub(crate) const REPLAYED: HeaderName = idempotent_protocol::IDEMPOTENT_REPLAYED;

/// What HTTP caching asks of one keyed request's answers; `None` (no work at all) for a
/// request that is not a read on a route without the options.
pub(super) struct Caching {
    /// `Vary: <key header>`, on the answers to a keyed `GET` or `HEAD`.
    vary: Option<HeaderName>,
    /// Whether stored responses carry an `ETag` and `If-None-Match` is evaluated.
    etag: bool,
    /// The route's `Cache-Control`, unless the handler set one.
    cache_control: Option<HeaderValue>,
    /// The request's `If-None-Match` fields (only when `etag` is on).
    if_none_match: Vec<HeaderValue>,
}

impl Caching {
    pub(super) fn of(policy: &Policy, request: &Parts) -> Option<Caching> {
        let read = request.method == Method::GET || request.method == Method::HEAD;
        if !read && !policy.etag && policy.cache_control.is_none() {
            return None;
        }
        let if_none_match = if policy.etag {
            request
                .headers
                .get_all(IF_NONE_MATCH)
                .iter()
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        Some(Caching {
            vary: read.then(|| policy.header.clone()),
            etag: policy.etag,
            cache_control: policy.cache_control.clone(),
            if_none_match,
        })
    }

    /// A fresh 2xx response, before it is stored: its `ETag` (from the body, unless the
    /// handler set one) and `Cache-Control` (unless the handler set one).
    pub(super) fn before_storing(&self, headers: &mut HeaderMap, body: &[u8]) {
        if self.etag && !headers.contains_key(ETAG) {
            headers.insert(ETAG, etag::of_body(body));
        }
        self.add_cache_control(headers);
    }

    /// The answer to the request that ran the handler, once its response is stored: 304 if
    /// its `If-None-Match` matches, else the response; `Vary` on a read.
    pub(super) fn answer_fresh(&self, response: Response) -> Response {
        let mut response = if self.not_modified(response.headers().get(ETAG)) {
            not_modified(response.headers(), false)
        } else {
            response
        };
        self.add_vary(response.headers_mut());
        response
    }

    /// Whether the request's `If-None-Match` matches the response's entity tag.
    fn not_modified(&self, current: Option<&HeaderValue>) -> bool {
        self.etag
            && !self.if_none_match.is_empty()
            && etag::none_match_fails(&self.if_none_match, current)
    }

    fn add_cache_control(&self, headers: &mut HeaderMap) {
        if let Some(value) = &self.cache_control
            && !headers.contains_key(CACHE_CONTROL)
        {
            headers.insert(CACHE_CONTROL, value.clone());
        }
    }

    fn add_vary(&self, headers: &mut HeaderMap) {
        let Some(name) = &self.vary else {
            return;
        };
        let listed = headers.get_all(VARY).iter().any(|value| {
            value.to_str().is_ok_and(|list| {
                list.split(',')
                    .map(str::trim)
                    .any(|item| item == "*" || item.eq_ignore_ascii_case(name.as_str()))
            })
        });
        if !listed {
            headers.append(VARY, HeaderValue::from_name(name.clone()));
        }
    }
}

/// The stored response, as a response with `Idempotent-Replayed: true`. A record without
/// headers (written by the Spring aspect) replays as JSON. With caching, a matching
/// `If-None-Match` gets a 304 instead, and the answer carries `ETag`, `Cache-Control` and
/// `Vary` as the first one did.
pub(super) fn replay(stored: &StoredResponse, caching: Option<&Caching>) -> Response {
    let mut headers = HeaderMap::with_capacity(stored.headers.as_ref().map_or(2, |h| h.len() + 2));
    match &stored.headers {
        Some(list) => {
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
    let Some(caching) = caching else {
        headers.insert(REPLAYED, HeaderValue::from_static("true"));
        return with(stored.status, headers, Body::from(stored.body.clone()));
    };
    // A record stored before the route had the option, or by the Spring aspect.
    caching.before_storing(&mut headers, &stored.body);
    let mut response = if caching.not_modified(headers.get(ETAG)) {
        not_modified(&headers, true)
    } else {
        headers.insert(REPLAYED, HeaderValue::from_static("true"));
        with(stored.status, headers, Body::from(stored.body.clone()))
    };
    caching.add_vary(response.headers_mut());
    response
}

/// `304 Not Modified`, without a body, with the fields of `headers` that RFC 9110 §15.4.5
/// asks to send again.
fn not_modified(headers: &HeaderMap, replayed: bool) -> Response {
    let mut kept = HeaderMap::new();
    for name in [ETAG, CACHE_CONTROL, VARY, CONTENT_LOCATION, EXPIRES] {
        for value in headers.get_all(&name) {
            kept.append(name.clone(), value.clone());
        }
    }
    if replayed {
        kept.insert(REPLAYED, HeaderValue::from_static("true"));
    }
    with(StatusCode::NOT_MODIFIED, kept, Body::empty())
}

fn with(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// The replayable headers of a response: the values of the headers `names` lists, in the
/// response's order. One pass over the response's few headers, rather than a lookup per
/// replayable name.
pub(super) fn replayable_headers(
    headers: &http::HeaderMap,
    names: &[HeaderName],
) -> Vec<(HeaderName, HeaderValue)> {
    let mut kept = Vec::with_capacity(headers.len().min(names.len() + 2));
    for (name, value) in headers {
        if names.contains(name) {
            kept.push((name.clone(), value.clone()));
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_listed_headers_are_kept_every_value_in_order() {
        let mut headers = http::HeaderMap::new();
        headers.append("content-type", HeaderValue::from_static("application/json"));
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("x-list", HeaderValue::from_static("1"));
        headers.append("x-list", HeaderValue::from_static("2"));
        let names = [
            http::header::CONTENT_TYPE,
            HeaderName::from_static("x-list"),
        ];
        let kept = replayable_headers(&headers, &names);
        let kept: Vec<(&str, &str)> = kept
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            kept,
            [
                ("content-type", "application/json"),
                ("x-list", "1"),
                ("x-list", "2")
            ]
        );
    }
}

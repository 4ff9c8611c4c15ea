//! OpenAPI documentation of keyed routes, with [utoipa](https://docs.rs/utoipa) (feature
//! `utoipa`).
//!
//! [`document`] gives one operation of an [`OpenApi`] document what the layer adds to it
//! under a [`Policy`]:
//!
//! - the key header parameter ([`key_parameter`]): named as the policy's header
//!   (`Idempotency-Key` by default), required when the policy is `mandatory`, a string of 1
//!   to 255 printable ASCII characters;
//! - on every 2xx response the operation already documents, the `Idempotent-Replayed`
//!   header, and with caching `ETag`, `Cache-Control` and (on a `GET` or `HEAD`) `Vary`;
//! - the layer's `application/problem+json` responses, 400, 409 (with `Retry-After`), 413,
//!   422 and 503 (with `Retry-After`), each saying when it applies under the policy, and
//!   `304 Not Modified` when the policy has `etag`;
//! - the `ProblemDetails` schema those responses refer to, in the document's components
//!   ([`register_components`]).
//!
//! A response the operation already documents for one of these statuses is left as it is,
//! and so is a key header parameter it already has: calling it twice changes nothing. A
//! response given as a reference (`$ref`, possibly shared by other operations) does not get
//! the headers.
//!
//! ```
//! use http::Method;
//! use idempotent_runtime::{Policy, openapi};
//! use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
//! use utoipa::openapi::{OpenApiBuilder, PathsBuilder, ResponseBuilder};
//!
//! // The document of the app, as utoipa's macros or builders make it.
//! let create_order = OperationBuilder::new()
//!     .response("201", ResponseBuilder::new().description("The order"));
//! let mut doc = OpenApiBuilder::new()
//!     .paths(PathsBuilder::new().path("/orders", PathItem::new(HttpMethod::Post, create_order)))
//!     .build();
//!
//! // The same options as the route's `#[idempotent(...)]` or layer.
//! let policy = Policy::new().key_prefix("orders").include_body(true);
//! openapi::document(&mut doc, "/orders", &Method::POST, &policy)?;
//!
//! let json = serde_json::to_value(&doc)?;
//! let operation = &json["paths"]["/orders"]["post"];
//! assert_eq!(operation["parameters"][0]["name"], "Idempotency-Key");
//! assert_eq!(operation["parameters"][0]["in"], "header");
//! assert_eq!(operation["parameters"][0]["required"], true);
//! assert!(operation["responses"]["201"]["headers"]["Idempotent-Replayed"].is_object());
//! for status in ["400", "409", "413", "422", "503"] {
//!     let problem = &operation["responses"][status]["content"]["application/problem+json"];
//!     assert_eq!(problem["schema"]["$ref"], "#/components/schemas/ProblemDetails");
//! }
//! assert!(operation["responses"]["409"]["headers"]["Retry-After"].is_object());
//! assert!(json["components"]["schemas"]["ProblemDetails"].is_object());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With `#[derive(OpenApi)]`, call it from a [`Modify`](utoipa::Modify) of the app's own:
//!
//! ```
//! use http::Method;
//! use idempotent_runtime::{Policy, openapi};
//! use utoipa::{Modify, OpenApi};
//!
//! #[utoipa::path(post, path = "/payments", responses((status = 201, description = "The payment")))]
//! async fn create_payment() {}
//!
//! #[derive(OpenApi)]
//! #[openapi(paths(create_payment), modifiers(&Idempotent))]
//! struct ApiDoc;
//!
//! struct Idempotent;
//!
//! impl Modify for Idempotent {
//!     fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
//!         // The document is built once, at start: a route missing from it is a bug to fix.
//!         let payments = Policy::new().key_prefix("payments");
//!         if let Err(error) = openapi::document(doc, "/payments", &Method::POST, &payments) {
//!             panic!("{error}");
//!         }
//!     }
//! }
//!
//! let json = serde_json::to_value(ApiDoc::openapi())?;
//! assert_eq!(json["paths"]["/payments"]["post"]["parameters"][0]["name"], "Idempotency-Key");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;

use http::{HeaderName, Method};
use idempotent_protocol::{IDEMPOTENT_REPLAYED, PROBLEM_JSON, ProblemCode, ProblemDetails};
use utoipa::ToSchema;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{Components, OpenApi, Ref, RefOr, Required};

use crate::{DEFAULT_BODY_LIMIT, OnConflict, Policy};

/// The longest key the layer accepts, in bytes (unquoted).
const MAX_KEY_LENGTH: usize = 255;

/// Why [`document`] could not document an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpenApiError {
    /// The document has no operation for this method at this path. Document the route first;
    /// the path is written as in the document (`/reports/{name}`, as axum routes it).
    NoOperation {
        /// The path that was asked for.
        path: String,
        /// The method that was asked for.
        method: Method,
    },
}

impl fmt::Display for OpenApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenApiError::NoOperation { path, method } => write!(
                f,
                "the OpenAPI document has no `{method} {path}` operation to add the idempotency \
                 key and responses to: document the route first (paths are written as in the \
                 document, e.g. `/reports/{{name}}`)"
            ),
        }
    }
}

impl std::error::Error for OpenApiError {}

/// Document the operation `method` `path` of `openapi` as a keyed route under `policy`
/// (the key header, the replay headers, the problem responses and `304`: see the
/// [module documentation](self)), and register the `ProblemDetails` schema.
///
/// # Errors
///
/// [`OpenApiError::NoOperation`] if the document has no such operation; the document is
/// then left unchanged.
pub fn document(
    openapi: &mut OpenApi,
    path: &str,
    method: &Method,
    policy: &Policy,
) -> Result<(), OpenApiError> {
    let operation = openapi
        .paths
        .paths
        .get_mut(path)
        .and_then(|item| operation_mut(item, method))
        .ok_or_else(|| OpenApiError::NoOperation {
            path: path.to_owned(),
            method: method.clone(),
        })?;
    document_operation(operation, method, policy);
    register_components(openapi);
    Ok(())
}

/// Document one operation (answering `method`) as a keyed route under `policy`, as
/// [`document`] does, without registering the `ProblemDetails` schema that its problem
/// responses refer to: call [`register_components`] on the document that holds it.
pub fn document_operation(operation: &mut Operation, method: &Method, policy: &Policy) {
    let parameter = key_parameter(policy);
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    let documented = parameters.iter().any(|existing| {
        matches!(existing, RefOr::T(existing)
            if existing.parameter_in == ParameterIn::Header
                && existing.name.eq_ignore_ascii_case(&parameter.name))
    });
    if !documented {
        parameters.push(RefOr::T(parameter));
    }

    let read = method == Method::GET || method == Method::HEAD;
    let responses = &mut operation.responses.responses;
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response
            && is_success(status)
        {
            add_replay_headers(response, policy, read);
        }
    }
    if policy.etag {
        let not_modified = responses
            .entry("304".to_owned())
            .or_insert_with(|| RefOr::T(not_modified_response()));
        if let RefOr::T(response) = not_modified {
            add_replay_headers(response, policy, read);
        }
    }
    for (status, response) in problem_responses(policy) {
        responses
            .entry(status.to_owned())
            .or_insert(RefOr::T(response));
    }
}

/// Register the schemas that [`document`]'s responses refer to (`ProblemDetails`) in
/// `openapi`'s components, unless it already has a schema of that name.
pub fn register_components(openapi: &mut OpenApi) {
    openapi
        .components
        .get_or_insert_with(Components::new)
        .schemas
        .entry(ProblemDetails::name().into_owned())
        .or_insert_with(<ProblemDetails as utoipa::PartialSchema>::schema);
}

/// The key header parameter of a route under `policy`: named as its header is usually
/// written (`Idempotency-Key`), required when the policy is `mandatory`.
pub fn key_parameter(policy: &Policy) -> Parameter {
    let name = display_name(&policy.header);
    let mut description = format!(
        "One unique key per logical request (a UUID, for instance), sent again unchanged on \
         every retry of that request: a retry gets the first request's response back \
         (`Idempotent-Replayed: true`) instead of running it again. Printable ASCII \
         (0x20-0x7E), 1 to {MAX_KEY_LENGTH} bytes; it may be sent as an RFC 8941 quoted string \
         (`\"abc\"` means the key `abc`)."
    );
    if policy.include_body {
        description.push_str(" The same key with a different request body is answered 422.");
    }
    if !policy.mandatory {
        description
            .push_str(" Optional on this route: a request without it runs without idempotency.");
    }
    let schema = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_KEY_LENGTH))
        .pattern(Some("^[ -~]+$"));
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(if policy.mandatory {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(schema))
        .example(Some(serde_json::Value::from(
            "5f0e8c2a-7b1d-4c3e-9a6f-2d8b4e1c0a97",
        )))
        .build()
}

/// The operation of `item` that answers `method`, if it has one.
fn operation_mut<'a>(item: &'a mut PathItem, method: &Method) -> Option<&'a mut Operation> {
    match method.as_str() {
        "GET" => item.get.as_mut(),
        "PUT" => item.put.as_mut(),
        "POST" => item.post.as_mut(),
        "DELETE" => item.delete.as_mut(),
        "OPTIONS" => item.options.as_mut(),
        "HEAD" => item.head.as_mut(),
        "PATCH" => item.patch.as_mut(),
        "TRACE" => item.trace.as_mut(),
        "QUERY" => item.query.as_mut(),
        other => item.additional_operations.get_mut(other),
    }
}

/// Whether a key of an operation's responses stands for 2xx statuses (`"201"`, `"2XX"`).
fn is_success(status: &str) -> bool {
    let bytes = status.as_bytes();
    bytes.len() == 3
        && bytes[0] == b'2'
        && (bytes[1..].iter().all(u8::is_ascii_digit) || bytes[1..].eq_ignore_ascii_case(b"XX"))
}

/// A header name as it is usually written: `idempotency-key` as `Idempotency-Key`.
fn display_name(name: &HeaderName) -> String {
    name.as_str()
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// A header whose value is a string.
fn text_header(description: String, example: Option<String>) -> Header {
    HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(description))
        .example(example.map(serde_json::Value::from))
        .build()
}

/// Add `header` to `response` as `name`, unless it documents a header of that name.
fn add_header(response: &mut Response, name: &str, header: Header) {
    if !response
        .headers
        .keys()
        .any(|existing| existing.eq_ignore_ascii_case(name))
    {
        response.headers.insert(name.to_owned(), RefOr::T(header));
    }
}

/// The headers the layer adds to a 2xx (or 304) answer of a route under `policy`.
fn add_replay_headers(response: &mut Response, policy: &Policy, read: bool) {
    let replayed = HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["true"])),
        ))
        .description(Some(
            "`true` on a replayed response: the stored response of the first request with \
             this key, which this request did not run again. Absent on the first answer.",
        ))
        .build();
    add_header(response, &display_name(&IDEMPOTENT_REPLAYED), replayed);
    if policy.etag {
        add_header(
            response,
            "ETag",
            text_header(
                "A strong entity tag of the stored response body (from its SHA-256), unless the \
                 handler set its own; send it in `If-None-Match` to revalidate (304)."
                    .to_owned(),
                Some(
                    "\"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\""
                        .to_owned(),
                ),
            ),
        );
    }
    if let Some(cache_control) = &policy.cache_control {
        let value = String::from_utf8_lossy(cache_control.as_bytes()).into_owned();
        add_header(
            response,
            "Cache-Control",
            text_header(
                format!("`{value}`, unless the handler set its own."),
                Some(value),
            ),
        );
    }
    if read {
        let key = display_name(&policy.header);
        add_header(
            response,
            "Vary",
            text_header(
                format!("Lists `{key}`: shared caches keep one response per key."),
                Some(key),
            ),
        );
    }
}

/// `304 Not Modified`, as the layer answers a matching `If-None-Match`.
fn not_modified_response() -> Response {
    Response::new(
        "Not Modified: the request's `If-None-Match` matches the `ETag` of the response stored \
         for this key. No body; the handler did not run.",
    )
}

/// The layer's problem responses under `policy`, by status.
fn problem_responses(policy: &Policy) -> [(&'static str, Response); 5] {
    let key = display_name(&policy.header);
    let mut bad_request = if policy.mandatory {
        format!("The `{key}` header is missing (`idempotency_key_missing`) or invalid")
    } else {
        format!("The `{key}` header is invalid")
    };
    bad_request.push_str(
        " (`idempotency_key_invalid`: empty, over 255 bytes, characters outside printable \
         ASCII, a badly quoted string, or the header sent twice)",
    );
    if policy.include_body {
        bad_request.push_str(
            ", or the request body could not be read to fingerprint it \
             (`idempotency_request_body_unreadable`)",
        );
    }
    bad_request.push_str(". Nothing was run or stored.");
    let mut bad_request_codes = vec![ProblemCode::KeyInvalid];
    if policy.mandatory {
        bad_request_codes.insert(0, ProblemCode::KeyMissing);
    }
    if policy.include_body {
        bad_request_codes.push(ProblemCode::RequestBodyUnreadable);
    }

    let mut conflict = "The first request with this key is still running \
                        (`idempotency_request_in_progress`). Retry after `Retry-After` seconds \
                        with the same key and body to get its response."
        .to_owned();
    if let OnConflict::Wait(max_wait) = policy.on_conflict {
        conflict.push_str(&format!(
            " This route first waits up to {} ms for it to finish and replays its response.",
            max_wait.as_millis()
        ));
    }

    let body_rule = |what: &str| {
        if policy.include_body {
            format!("{what} Nothing was run or stored.")
        } else {
            format!("{what} Only on routes with `include_body`, which this route does not set.")
        }
    };
    let too_large = body_rule(
        "The request body is over the limit the layer reads to fingerprint it \
         (`idempotency_body_too_large`, with `include_body`).",
    );
    let reused = body_rule(
        "The key was already used with a different request body (`idempotency_key_reused`, \
         with `include_body`): use a new key for a new request.",
    );
    let unavailable = if policy.fail_open {
        "The idempotency store is unavailable and the route refuses to run without it \
         (`idempotency_store_unavailable`, with `fail_open = false`). Not sent by this route, \
         which fails open: it runs the request without idempotency instead."
    } else {
        "The idempotency store is unavailable and this route refuses to run without it \
         (`idempotency_store_unavailable`, `fail_open = false`). Nothing was run: retry after \
         `Retry-After` seconds with the same key."
    };

    [
        (
            "400",
            problem_response(bad_request, &key, &bad_request_codes, false),
        ),
        (
            "409",
            problem_response(conflict, &key, &[ProblemCode::RequestInProgress], true),
        ),
        (
            "413",
            problem_response(too_large, &key, &[ProblemCode::BodyTooLarge], false),
        ),
        (
            "422",
            problem_response(reused, &key, &[ProblemCode::KeyReused], false),
        ),
        (
            "503",
            problem_response(
                unavailable.to_owned(),
                &key,
                &[ProblemCode::StoreUnavailable],
                true,
            ),
        ),
    ]
}

/// An `application/problem+json` response with one example per code, and `Retry-After`
/// if `retry_after`.
fn problem_response(
    description: String,
    key: &str,
    codes: &[ProblemCode],
    retry_after: bool,
) -> Response {
    let examples = codes.iter().map(|&code| {
        let problem = ProblemDetails::new(code, example_detail(code, key));
        let example = ExampleBuilder::new()
            .summary(code.title())
            .value(serde_json::to_value(problem).ok());
        (code.as_str(), example.build())
    });
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ProblemDetails::name())))
        .examples_from_iter(examples)
        .build();
    let mut response = ResponseBuilder::new()
        .description(description)
        .content(PROBLEM_JSON, content);
    if retry_after {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(1)),
                ))
                .description(Some(
                    "Seconds to wait before retrying with the same key and body.",
                ))
                .build(),
        );
    }
    response.build()
}

/// The `detail` of an example of `code`'s problem, as the layer words it, for the key
/// header `key`.
fn example_detail(code: ProblemCode, key: &str) -> String {
    match code {
        ProblemCode::KeyMissing => format!("Missing required idempotency header: {key}"),
        ProblemCode::KeyInvalid => {
            format!("Invalid idempotency header {key}: the key is longer than 255 bytes")
        }
        ProblemCode::RequestBodyUnreadable => "The request body could not be read.".to_owned(),
        ProblemCode::BodyTooLarge => {
            format!("The request body is larger than {DEFAULT_BODY_LIMIT} bytes.")
        }
        ProblemCode::KeyReused => {
            "Idempotency key 'k-1' was already used with a different request body".to_owned()
        }
        ProblemCode::RequestInProgress => {
            "A request with idempotency key 'k-1' is still being processed".to_owned()
        }
        ProblemCode::StoreUnavailable => {
            "The idempotency store is unavailable; retry later with the same key.".to_owned()
        }
        _ => code.title().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http::HeaderValue;
    use serde_json::{Value, json};
    use utoipa::openapi::path::{HttpMethod, OperationBuilder};
    use utoipa::openapi::{OpenApiBuilder, PathsBuilder};

    use super::*;

    /// A document with `POST /orders` (201) and `GET /reports/{name}` (200).
    fn doc() -> OpenApi {
        let created = OperationBuilder::new()
            .response("201", ResponseBuilder::new().description("The order"));
        let report =
            OperationBuilder::new().response("200", ResponseBuilder::new().description("Report"));
        OpenApiBuilder::new()
            .paths(
                PathsBuilder::new()
                    .path("/orders", PathItem::new(HttpMethod::Post, created))
                    .path("/reports/{name}", PathItem::new(HttpMethod::Get, report)),
            )
            .build()
    }

    fn documented(path: &str, method: &Method, policy: &Policy) -> Value {
        let mut doc = doc();
        document(&mut doc, path, method, policy).unwrap();
        let json = serde_json::to_value(&doc).unwrap();
        let method = method.as_str().to_ascii_lowercase();
        let operation = json["paths"][path][method.as_str()].clone();
        assert!(operation.is_object(), "{json:#}");
        operation
    }

    #[test]
    fn the_key_parameter_follows_the_policy() {
        let operation = documented("/orders", &Method::POST, &Policy::new());
        let parameters = operation["parameters"].as_array().unwrap();
        assert_eq!(parameters.len(), 1);
        let parameter = &parameters[0];
        assert_eq!(parameter["name"], "Idempotency-Key");
        assert_eq!(parameter["in"], "header");
        assert_eq!(parameter["required"], true);
        assert_eq!(parameter["schema"]["type"], "string");
        assert_eq!(parameter["schema"]["minLength"], 1);
        assert_eq!(parameter["schema"]["maxLength"], 255);
        let description = parameter["description"].as_str().unwrap();
        for said in [
            "unique key per logical request",
            "every retry",
            "Printable ASCII",
            "RFC 8941",
        ] {
            assert!(description.contains(said), "{said}: {description}");
        }

        let optional = Policy::new()
            .mandatory(false)
            .header(HeaderName::from_static("x-idempotency-key"));
        let operation = documented("/orders", &Method::POST, &optional);
        assert_eq!(operation["parameters"][0]["name"], "X-Idempotency-Key");
        assert_eq!(operation["parameters"][0]["required"], false);
    }

    #[test]
    fn a_documented_key_parameter_is_kept_and_a_second_call_changes_nothing() {
        let mut doc = doc();
        let theirs = ParameterBuilder::new()
            .name("idempotency-key")
            .parameter_in(ParameterIn::Header)
            .description(Some("theirs"))
            .build();
        if let Some(item) = doc.paths.paths.get_mut("/orders")
            && let Some(operation) = item.post.as_mut()
        {
            operation.parameters = Some(vec![RefOr::T(theirs)]);
        }
        let policy = Policy::new().include_body(true);
        document(&mut doc, "/orders", &Method::POST, &policy).unwrap();
        let once = serde_json::to_value(&doc).unwrap();
        document(&mut doc, "/orders", &Method::POST, &policy).unwrap();
        assert_eq!(serde_json::to_value(&doc).unwrap(), once);
        let parameters = once["paths"]["/orders"]["post"]["parameters"]
            .as_array()
            .unwrap();
        assert_eq!(parameters.len(), 1);
        assert_eq!(parameters[0]["description"], "theirs");
    }

    #[test]
    fn success_responses_get_the_replay_headers() {
        let operation = documented("/orders", &Method::POST, &Policy::new());
        let headers = &operation["responses"]["201"]["headers"];
        let replayed = &headers["Idempotent-Replayed"];
        assert_eq!(replayed["schema"]["enum"], json!(["true"]));
        assert!(
            replayed["description"]
                .as_str()
                .unwrap()
                .starts_with("`true` on a replayed response"),
            "{replayed}"
        );
        // No caching options, not a read: nothing else.
        assert_eq!(headers.as_object().unwrap().len(), 1, "{headers}");

        let cached = Policy::new().cache_control(HeaderValue::from_static("max-age=3600"));
        let operation = documented("/reports/{name}", &Method::GET, &cached);
        let headers = &operation["responses"]["200"]["headers"];
        assert!(headers["ETag"].is_object(), "{headers}");
        assert_eq!(headers["Cache-Control"]["example"], "max-age=3600");
        assert_eq!(headers["Vary"]["example"], "Idempotency-Key");
        // A keyed read without caching options still varies on the key.
        let operation = documented("/reports/{name}", &Method::GET, &Policy::new());
        let headers = operation["responses"]["200"]["headers"]
            .as_object()
            .unwrap();
        let mut names = headers.keys().collect::<Vec<_>>();
        names.sort();
        assert_eq!(names, ["Idempotent-Replayed", "Vary"]);
    }

    #[test]
    fn every_problem_response_is_problem_json_with_its_code() {
        let policy = Policy::new().include_body(true).fail_open(false);
        let operation = documented("/orders", &Method::POST, &policy);
        let responses = &operation["responses"];
        for (status, codes, retry_after) in [
            (
                "400",
                &[
                    "idempotency_key_missing",
                    "idempotency_key_invalid",
                    "idempotency_request_body_unreadable",
                ][..],
                false,
            ),
            ("409", &["idempotency_request_in_progress"][..], true),
            ("413", &["idempotency_body_too_large"][..], false),
            ("422", &["idempotency_key_reused"][..], false),
            ("503", &["idempotency_store_unavailable"][..], true),
        ] {
            let response = &responses[status];
            let description = response["description"].as_str().unwrap();
            let content = &response["content"]["application/problem+json"];
            assert_eq!(
                content["schema"]["$ref"], "#/components/schemas/ProblemDetails",
                "{status}: {response}"
            );
            for code in codes {
                assert!(description.contains(code), "{status}: {description}");
                let example = &content["examples"][code]["value"];
                assert_eq!(example["code"], *code, "{status}: {content}");
                assert_eq!(example["status"], status.parse::<u16>().unwrap());
            }
            assert_eq!(
                response["headers"]["Retry-After"]["schema"]["type"] == "integer",
                retry_after,
                "{status}: {response}"
            );
        }
        // Not a read, no `etag`: no 304.
        assert!(responses.get("304").is_none(), "{responses}");
    }

    #[test]
    fn the_descriptions_say_when_a_problem_applies() {
        let defaults = documented("/orders", &Method::POST, &Policy::new());
        let description = |operation: &Value, status: &str| {
            operation["responses"][status]["description"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert!(description(&defaults, "413").contains("which this route does not set"));
        assert!(description(&defaults, "422").contains("which this route does not set"));
        assert!(description(&defaults, "503").contains("fails open"));
        assert!(!description(&defaults, "400").contains("unreadable"));

        let optional = documented("/orders", &Method::POST, &Policy::new().mandatory(false));
        assert!(!description(&optional, "400").contains("idempotency_key_missing"));

        let waits = Policy::new().on_conflict(OnConflict::Wait(Duration::from_secs(10)));
        let waits = documented("/orders", &Method::POST, &waits);
        assert!(description(&waits, "409").contains("waits up to 10000 ms"));
    }

    #[test]
    fn not_modified_is_documented_only_with_etag() {
        let plain = documented("/reports/{name}", &Method::GET, &Policy::new());
        assert!(plain["responses"].get("304").is_none(), "{plain}");

        let cached = Policy::new().cache_control(HeaderValue::from_static("max-age=60"));
        let operation = documented("/reports/{name}", &Method::GET, &cached);
        let not_modified = &operation["responses"]["304"];
        assert!(
            not_modified["description"]
                .as_str()
                .unwrap()
                .starts_with("Not Modified")
        );
        assert!(not_modified.get("content").is_none(), "{not_modified}");
        for header in ["ETag", "Cache-Control", "Vary", "Idempotent-Replayed"] {
            assert!(
                not_modified["headers"][header].is_object(),
                "{header}: {not_modified}"
            );
        }

        let etag_only = Policy::new().etag(true);
        let operation = documented("/orders", &Method::POST, &etag_only);
        let headers = operation["responses"]["304"]["headers"]
            .as_object()
            .unwrap();
        let mut names = headers.keys().collect::<Vec<_>>();
        names.sort();
        assert_eq!(names, ["ETag", "Idempotent-Replayed"]);
    }

    #[test]
    fn a_response_the_operation_documents_is_left_alone() {
        let mut doc = doc();
        let theirs = ResponseBuilder::new()
            .description("Amount must be positive")
            .build();
        if let Some(item) = doc.paths.paths.get_mut("/orders")
            && let Some(operation) = item.post.as_mut()
        {
            operation
                .responses
                .responses
                .insert("400".to_owned(), RefOr::T(theirs.clone()));
            operation.responses.responses.insert(
                "409".to_owned(),
                RefOr::Ref(Ref::from_response_name("Conflict")),
            );
        }
        document(&mut doc, "/orders", &Method::POST, &Policy::new()).unwrap();
        let responses = &doc
            .paths
            .get_path_operation("/orders", HttpMethod::Post)
            .unwrap()
            .responses
            .responses;
        assert!(responses["400"] == RefOr::T(theirs));
        assert!(responses["409"] == RefOr::Ref(Ref::from_response_name("Conflict")));
        assert!(
            matches!(&responses["413"], RefOr::T(response) if response.content.contains_key(PROBLEM_JSON))
        );
    }

    #[test]
    fn the_problem_schema_is_registered_once() {
        let mut doc = doc();
        document(&mut doc, "/orders", &Method::POST, &Policy::new()).unwrap();
        document(&mut doc, "/reports/{name}", &Method::GET, &Policy::new()).unwrap();
        let json = serde_json::to_value(&doc).unwrap();
        let schemas = json["components"]["schemas"].as_object().unwrap();
        assert_eq!(schemas.len(), 1);
        let problem = &schemas["ProblemDetails"];
        for member in ["type", "title", "status", "detail", "instance", "code"] {
            assert!(
                problem["properties"][member].is_object(),
                "{member}: {problem}"
            );
        }
        assert_eq!(problem["additionalProperties"], true);
        let codes = ProblemCode::ALL.map(ProblemCode::as_str);
        assert_eq!(problem["properties"]["code"]["examples"], json!(codes));
    }

    #[test]
    fn a_missing_operation_is_an_error_and_changes_nothing() {
        let mut doc = doc();
        let before = serde_json::to_value(&doc).unwrap();
        let error = document(&mut doc, "/orders", &Method::PUT, &Policy::new()).unwrap_err();
        assert_eq!(
            error,
            OpenApiError::NoOperation {
                path: "/orders".to_owned(),
                method: Method::PUT
            }
        );
        assert!(error.to_string().contains("`PUT /orders`"), "{error}");
        assert!(document(&mut doc, "/nowhere", &Method::POST, &Policy::new()).is_err());
        assert_eq!(serde_json::to_value(&doc).unwrap(), before);
    }
}

//! RFC 9457 problem details: the codes of the protocol's errors, and the body that carries
//! them.
//!
//! Every error of the protocol is an `application/problem+json` document with `type`,
//! `title`, `status`, `detail` and a machine-readable `code`:
//!
//! ```json
//! {"type":"https://docs.rs/idempotent-runtime/latest/idempotent_runtime/problem/enum.ProblemCode.html#variant.KeyReused",
//!  "title":"Idempotency key reused","status":422,
//!  "detail":"Idempotency key 'k-1' was already used with a different request body",
//!  "code":"idempotency_key_reused"}
//! ```
//!
//! A server writes it from a [`ProblemCode`] with [`ProblemDetails::new`]; a client reads it
//! back with `serde_json` and matches on [`ProblemDetails::problem_code`]:
//!
//! ```
//! use idempotent_protocol::{ProblemCode, ProblemDetails};
//!
//! let body = br#"{"type":"about:blank","title":"Idempotency key reused","status":422,
//!                 "detail":"already used","code":"idempotency_key_reused"}"#;
//! let problem: ProblemDetails = serde_json::from_slice(body)?;
//! assert_eq!(problem.problem_code(), Some(ProblemCode::KeyReused));
//! assert_eq!(problem.status, Some(422));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;
use std::str::FromStr;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `code` of every problem the protocol answers with, and its HTTP status.
///
/// Each variant's documentation is the page its problem's `type` points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemCode {
    /// 400 `idempotency_key_missing`: the route requires an idempotency key and the request
    /// has none. Send the header (default `Idempotency-Key`) with a unique value per logical
    /// request, e.g. a UUID, and the same value on every retry of it.
    KeyMissing,
    /// 400 `idempotency_key_invalid`: the key is empty, longer than 255 bytes, has
    /// characters outside printable ASCII, is a badly quoted RFC 8941 string, or the header
    /// appears more than once. The `detail` says which.
    KeyInvalid,
    /// 413 `idempotency_body_too_large`: the request body is over the limit this route reads
    /// to fingerprint it (`include_body = true`). Nothing was run or stored.
    BodyTooLarge,
    /// 400 `idempotency_request_body_unreadable`: the request body could not be read (the
    /// client sent a malformed or truncated body). Nothing was run or stored; retrying with
    /// the same key is safe.
    RequestBodyUnreadable,
    /// 422 `idempotency_key_reused`: the key was already used with a different request body.
    /// A key names one logical request: use a new key for a new request.
    KeyReused,
    /// 409 `idempotency_request_in_progress`: the first request with this key is still
    /// running. Retry after the `Retry-After` delay, with the same key and body: you will
    /// get its response.
    RequestInProgress,
    /// 503 `idempotency_store_unavailable`: the idempotency store cannot be reached and the
    /// route refuses to run without it (`fail_open = false`). Nothing was run. Retry after the
    /// `Retry-After` delay with the same key.
    StoreUnavailable,
    /// 500 `idempotency_handler_panicked`: the handler failed. Nothing was stored, so a retry
    /// with the same key runs it again.
    HandlerPanicked,
    /// 500 `idempotency_response_body_unreadable`: the handler's response body failed while
    /// it was read for storing. Nothing was stored, so a retry with the same key runs the
    /// handler again.
    ResponseBodyUnreadable,
    /// 500 `idempotency_not_configured`: the server has an `#[idempotent]` route but no store
    /// registered (a bug of the server: `.layer(Idempotency::memory())` or another store is
    /// missing on its router).
    NotConfigured,
    /// 500 `idempotency_transaction_failed`: the handler ran in the request's database
    /// transaction (the same-transaction mode) and that transaction could not be committed
    /// with its idempotency record, so neither the handler's writes nor the record were kept.
    /// The key was released: a retry with the same key runs the handler again.
    TransactionFailed,
}

/// The address of the page that explains `ProblemCode::$variant`.
macro_rules! type_uri {
    ($variant:ident) => {
        concat!(
            "https://docs.rs/idempotent-runtime/latest/idempotent_runtime/problem/enum.ProblemCode.html#variant.",
            stringify!($variant)
        )
    };
}

impl ProblemCode {
    /// Every code, in the order of the documentation.
    pub const ALL: [ProblemCode; 11] = [
        ProblemCode::KeyMissing,
        ProblemCode::KeyInvalid,
        ProblemCode::BodyTooLarge,
        ProblemCode::RequestBodyUnreadable,
        ProblemCode::KeyReused,
        ProblemCode::RequestInProgress,
        ProblemCode::StoreUnavailable,
        ProblemCode::HandlerPanicked,
        ProblemCode::ResponseBodyUnreadable,
        ProblemCode::NotConfigured,
        ProblemCode::TransactionFailed,
    ];

    /// The machine-readable `code`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemCode::KeyMissing => "idempotency_key_missing",
            ProblemCode::KeyInvalid => "idempotency_key_invalid",
            ProblemCode::BodyTooLarge => "idempotency_body_too_large",
            ProblemCode::RequestBodyUnreadable => "idempotency_request_body_unreadable",
            ProblemCode::KeyReused => "idempotency_key_reused",
            ProblemCode::RequestInProgress => "idempotency_request_in_progress",
            ProblemCode::StoreUnavailable => "idempotency_store_unavailable",
            ProblemCode::HandlerPanicked => "idempotency_handler_panicked",
            ProblemCode::ResponseBodyUnreadable => "idempotency_response_body_unreadable",
            ProblemCode::NotConfigured => "idempotency_not_configured",
            ProblemCode::TransactionFailed => "idempotency_transaction_failed",
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        match self {
            ProblemCode::KeyMissing
            | ProblemCode::KeyInvalid
            | ProblemCode::RequestBodyUnreadable => StatusCode::BAD_REQUEST,
            ProblemCode::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::KeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ProblemCode::RequestInProgress => StatusCode::CONFLICT,
            ProblemCode::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::HandlerPanicked
            | ProblemCode::ResponseBodyUnreadable
            | ProblemCode::NotConfigured
            | ProblemCode::TransactionFailed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The problem's `type`: the address of this variant's documentation, which explains it.
    pub fn type_uri(self) -> &'static str {
        match self {
            ProblemCode::KeyMissing => type_uri!(KeyMissing),
            ProblemCode::KeyInvalid => type_uri!(KeyInvalid),
            ProblemCode::BodyTooLarge => type_uri!(BodyTooLarge),
            ProblemCode::RequestBodyUnreadable => type_uri!(RequestBodyUnreadable),
            ProblemCode::KeyReused => type_uri!(KeyReused),
            ProblemCode::RequestInProgress => type_uri!(RequestInProgress),
            ProblemCode::StoreUnavailable => type_uri!(StoreUnavailable),
            ProblemCode::HandlerPanicked => type_uri!(HandlerPanicked),
            ProblemCode::ResponseBodyUnreadable => type_uri!(ResponseBodyUnreadable),
            ProblemCode::NotConfigured => type_uri!(NotConfigured),
            ProblemCode::TransactionFailed => type_uri!(TransactionFailed),
        }
    }

    /// The problem's `title`.
    pub fn title(self) -> &'static str {
        match self {
            ProblemCode::KeyMissing => "Idempotency key missing",
            ProblemCode::KeyInvalid => "Idempotency key invalid",
            ProblemCode::BodyTooLarge => "Request body too large",
            ProblemCode::RequestBodyUnreadable => "Request body unreadable",
            ProblemCode::KeyReused => "Idempotency key reused",
            ProblemCode::RequestInProgress => "Request in progress",
            ProblemCode::StoreUnavailable => "Idempotency store unavailable",
            ProblemCode::HandlerPanicked
            | ProblemCode::ResponseBodyUnreadable
            | ProblemCode::NotConfigured => "Internal server error",
            ProblemCode::TransactionFailed => "Transaction failed",
        }
    }
}

impl ProblemCode {
    /// The code whose [`as_str`](ProblemCode::as_str) is `code`, if there is one.
    ///
    /// ```
    /// use idempotent_protocol::ProblemCode;
    ///
    /// assert_eq!(
    ///     ProblemCode::from_code("idempotency_request_in_progress"),
    ///     Some(ProblemCode::RequestInProgress)
    /// );
    /// assert_eq!(ProblemCode::from_code("out_of_stock"), None);
    /// ```
    pub fn from_code(code: &str) -> Option<ProblemCode> {
        ProblemCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ProblemCode {
    /// The machine-readable `code`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProblemCode {
    type Err = UnknownProblemCode;

    /// Parse a machine-readable `code` (see [`ProblemCode::from_code`]).
    ///
    /// ```
    /// use idempotent_protocol::ProblemCode;
    ///
    /// let code: ProblemCode = "idempotency_key_reused".parse()?;
    /// assert_eq!(code, ProblemCode::KeyReused);
    /// assert!("out_of_stock".parse::<ProblemCode>().is_err());
    /// # Ok::<(), idempotent_protocol::UnknownProblemCode>(())
    /// ```
    fn from_str(code: &str) -> Result<ProblemCode, UnknownProblemCode> {
        ProblemCode::from_code(code).ok_or_else(|| UnknownProblemCode(code.to_owned()))
    }
}

/// A `code` that is not one of [`ProblemCode::ALL`]: another layer's, or a newer version's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProblemCode(pub String);

impl fmt::Display for UnknownProblemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not a problem code of the protocol", self.0)
    }
}

impl std::error::Error for UnknownProblemCode {}

/// An RFC 9457 problem document, with the protocol's `code` member.
///
/// Serialised, it is the body of an `application/problem+json` response ([`PROBLEM_JSON`]):
/// members in the order `type`, `title`, `status`, `detail`, `instance`, `code`, then the
/// extensions; absent members are left out.
///
/// Deserialising is lenient, as RFC 9457 §3.1 asks of a consumer: every member is optional,
/// a member whose value has the wrong type is ignored, `type` defaults to `about:blank`, and
/// a `code` this crate does not know is kept as text ([`ProblemDetails::problem_code`] is
/// then `None`). Members the RFC does not define are kept in
/// [`extensions`](ProblemDetails::extensions).
///
/// ```
/// use idempotent_protocol::{ProblemCode, ProblemDetails};
///
/// let problem = ProblemDetails::new(ProblemCode::RequestInProgress, "still running");
/// let json = serde_json::to_string(&problem)?;
/// assert!(json.starts_with(r#"{"type":"https://docs.rs/idempotent-runtime/"#));
/// assert!(json.ends_with(r#""status":409,"detail":"still running","code":"idempotency_request_in_progress"}"#));
///
/// // Another service's problem: an unknown code and an extension member.
/// let other: ProblemDetails = serde_json::from_str(
///     r#"{"title":"Out of stock","status":"409","code":"out_of_stock","sku":"A-1"}"#,
/// )?;
/// assert_eq!(other.type_uri, "about:blank");
/// assert_eq!(other.status, None); // a string where a number belongs is ignored
/// assert_eq!(other.code.as_deref(), Some("out_of_stock"));
/// assert_eq!(other.problem_code(), None);
/// assert_eq!(other.extensions["sku"], "A-1");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Map<String, Value>")]
#[non_exhaustive]
pub struct ProblemDetails {
    /// `type`: a URI that identifies the kind of problem; `about:blank` when absent.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// `title`: a short, human-readable summary of the kind of problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `status`: the HTTP status code the server answered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `detail`: what happened to this request, for a human.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `instance`: a URI that identifies this occurrence of the problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// `code`: the machine-readable code; one of [`ProblemCode`]'s when the protocol answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Every other member, as it was.
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

/// The `type` of a problem that says nothing beyond its status (RFC 9457 §4.2.1).
const ABOUT_BLANK: &str = "about:blank";

impl ProblemDetails {
    /// The problem `code` stands for: its `type`, `title`, `status` and `code`, and `detail`.
    pub fn new(code: ProblemCode, detail: impl Into<String>) -> ProblemDetails {
        ProblemDetails {
            type_uri: code.type_uri().to_owned(),
            title: Some(code.title().to_owned()),
            status: Some(code.status().as_u16()),
            detail: Some(detail.into()),
            instance: None,
            code: Some(code.as_str().to_owned()),
            extensions: Map::new(),
        }
    }

    /// The protocol's code, when `code` is one this crate knows.
    pub fn problem_code(&self) -> Option<ProblemCode> {
        self.code.as_deref().and_then(ProblemCode::from_code)
    }
}

impl Default for ProblemDetails {
    /// `about:blank`, with no other member.
    fn default() -> ProblemDetails {
        ProblemDetails {
            type_uri: ABOUT_BLANK.to_owned(),
            title: None,
            status: None,
            detail: None,
            instance: None,
            code: None,
            extensions: Map::new(),
        }
    }
}

impl From<Map<String, Value>> for ProblemDetails {
    /// The problem a JSON object describes, leniently (see [`ProblemDetails`]).
    fn from(mut members: Map<String, Value>) -> ProblemDetails {
        let mut text = |name: &str| match members.remove(name) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let type_uri = text("type").unwrap_or_else(|| ABOUT_BLANK.to_owned());
        let title = text("title");
        let detail = text("detail");
        let instance = text("instance");
        let code = text("code");
        let status = members
            .remove("status")
            .and_then(|status| status.as_u64())
            .and_then(|status| u16::try_from(status).ok());
        ProblemDetails {
            type_uri,
            title,
            status,
            detail,
            instance,
            code,
            extensions: members,
        }
    }
}

/// The OpenAPI schema of a problem document, with the `utoipa` feature: register it in a
/// document's components under the name `ProblemDetails` and point the `application/problem+json`
/// content of a response at it.
///
/// The schema is as lenient as the type: every member is optional, `code` is a string whose
/// examples are the protocol's codes ([`ProblemCode::ALL`]; another service's code is allowed),
/// and extension members are allowed (`additionalProperties`).
///
/// ```
/// use idempotent_protocol::ProblemDetails;
/// use utoipa::{PartialSchema, ToSchema};
///
/// assert_eq!(ProblemDetails::name(), "ProblemDetails");
/// let schema = serde_json::to_value(ProblemDetails::schema())?;
/// assert_eq!(schema["properties"]["status"]["type"], "integer");
/// assert_eq!(schema["properties"]["code"]["examples"][0], "idempotency_key_missing");
/// assert_eq!(schema["additionalProperties"], true);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[cfg(feature = "utoipa")]
impl utoipa::PartialSchema for ProblemDetails {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, SchemaFormat, Type};

        let text = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(description))
        };
        let uri_reference = |description: &str| {
            text(description).format(Some(SchemaFormat::Custom("uri-reference".to_owned())))
        };
        let codes = ProblemCode::ALL
            .iter()
            .map(|code| format!("`{code}` ({})", code.status().as_u16()))
            .collect::<Vec<_>>()
            .join(", ");
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "An RFC 9457 problem document (`application/problem+json`) with a \
                 machine-readable `code`. Every member is optional; members not listed here \
                 are extensions.",
            ))
            .property(
                "type",
                uri_reference(
                    "A URI that identifies the kind of problem; for the protocol's problems, \
                     the page that explains it. `about:blank` when absent.",
                )
                .default(Some(Value::String(ABOUT_BLANK.to_owned())))
                .examples([ProblemCode::KeyReused.type_uri()]),
            )
            .property(
                "title",
                text("A short, human-readable summary of the kind of problem.")
                    .examples([ProblemCode::KeyReused.title()]),
            )
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some("The HTTP status code of the response."))
                    .minimum(Some(100))
                    .maximum(Some(599))
                    .examples([ProblemCode::KeyReused.status().as_u16()]),
            )
            .property(
                "detail",
                text("What happened to this request, for a human.").examples([
                    "Idempotency key 'k-1' was already used with a different request body",
                ]),
            )
            .property(
                "instance",
                uri_reference("A URI that identifies this occurrence of the problem."),
            )
            .property(
                "code",
                text(&format!(
                    "The machine-readable code. The idempotency layer answers with one of: \
                     {codes}. Another service may use codes of its own."
                ))
                .examples(ProblemCode::ALL.map(ProblemCode::as_str)),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .into()
    }
}

#[cfg(feature = "utoipa")]
impl utoipa::ToSchema for ProblemDetails {
    /// `ProblemDetails`.
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ProblemDetails")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_parses_back_and_nothing_else_does() {
        for code in ProblemCode::ALL {
            assert_eq!(ProblemCode::from_code(code.as_str()), Some(code));
            assert_eq!(code.as_str().parse::<ProblemCode>(), Ok(code));
            assert_eq!(code.to_string(), code.as_str());
        }
        for other in [
            "",
            "idempotency_",
            "IDEMPOTENCY_KEY_REUSED",
            "KeyReused",
            "out_of_stock",
        ] {
            assert_eq!(ProblemCode::from_code(other), None, "{other}");
            assert_eq!(
                other.parse::<ProblemCode>(),
                Err(UnknownProblemCode(other.to_owned()))
            );
        }
    }

    #[test]
    fn a_problem_round_trips_for_every_code() {
        for code in ProblemCode::ALL {
            let problem = ProblemDetails::new(code, format!("detail of {code}"));
            let json = serde_json::to_value(&problem).unwrap();
            assert_eq!(
                json,
                serde_json::json!({
                    "type": code.type_uri(),
                    "title": code.title(),
                    "status": code.status().as_u16(),
                    "detail": format!("detail of {code}"),
                    "code": code.as_str(),
                })
            );
            let back: ProblemDetails = serde_json::from_value(json).unwrap();
            assert_eq!(back, problem);
            assert_eq!(back.problem_code(), Some(code));
        }
    }

    #[test]
    fn members_serialise_in_the_rfc_order() {
        let mut problem = ProblemDetails::new(ProblemCode::KeyMissing, "no key");
        problem.instance = Some("/orders/1".to_owned());
        problem
            .extensions
            .insert("retry".to_owned(), Value::Bool(false));
        let json = serde_json::to_string(&problem).unwrap();
        let at = |member: &str| json.find(&format!("\"{member}\":")).unwrap();
        let order = [
            "type", "title", "status", "detail", "instance", "code", "retry",
        ]
        .map(at);
        assert!(order.is_sorted(), "{json}");
    }

    #[test]
    fn deserialising_ignores_what_it_cannot_use_and_never_fails_on_an_object() {
        let problem: ProblemDetails = serde_json::from_str(
            r#"{"type":7,"title":null,"status":70000,"detail":["x"],"code":"future_code","x":1}"#,
        )
        .unwrap();
        assert_eq!(problem.type_uri, "about:blank");
        assert_eq!(problem.title, None);
        assert_eq!(problem.status, None);
        assert_eq!(problem.detail, None);
        assert_eq!(problem.code.as_deref(), Some("future_code"));
        assert_eq!(problem.problem_code(), None);
        assert_eq!(problem.extensions.len(), 1);
        assert_eq!(problem.extensions["x"], 1);

        let empty: ProblemDetails = serde_json::from_str("{}").unwrap();
        assert_eq!(empty, ProblemDetails::default());
        // Not an object at all is an error.
        assert!(serde_json::from_str::<ProblemDetails>("[1]").is_err());
    }
}

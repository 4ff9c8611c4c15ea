//! The OpenAPI 3.1 document of the orders example, served at `GET /openapi.json`: the routes
//! as any axum app documents them with utoipa, then one call per keyed route,
//! [`idempotent_runtime::openapi::document`], with the route's `Policy`, adds the key header,
//! the replay headers and the layer's problem responses.

use axum::body::Bytes;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idempotent_runtime::openapi::{self, OpenApiError};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, RefOr, Required, ResponseBuilder,
};

use super::Policies;

/// The document of the routes this app serves (`/transfers` only with a database).
pub(crate) fn document(policies: &Policies, transfers: bool) -> Result<OpenApi, OpenApiError> {
    let mut paths = Paths::new();
    let mut post = |path: &str, operation: OperationBuilder| {
        paths.add_path_operation(path, vec![HttpMethod::Post], operation);
    };
    let amount = || object([("amount", integer())]);
    let created = || object([("id", integer()), ("amount", integer())]);
    post(
        "/orders",
        operation("create_order", "Create an order")
            .request_body(Some(json_body(amount())))
            .response("201", json_response("The order", created())),
    );
    post(
        "/payments",
        operation("create_payment", "Create a payment").response(
            "201",
            json_response("The payment", object([("id", integer())])),
        ),
    );
    post(
        "/notifications",
        operation(
            "send_notification",
            "Send a notification (the key is optional)",
        )
        .response(
            "200",
            json_response("The notification", object([("id", integer())])),
        ),
    );
    post(
        "/refunds",
        operation(
            "create_refund",
            "Create a refund (the protocol as middleware, without the macro)",
        )
        .request_body(Some(json_body(amount())))
        .response("201", json_response("The refund", created())),
    );
    if transfers {
        post(
            "/transfers",
            operation(
                "create_transfer",
                "Create a transfer, committed with its idempotency record",
            )
            .request_body(Some(json_body(amount())))
            .response("201", json_response("The transfer", created())),
        );
    }
    let currency = || {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .description(Some("A currency code; `null` when absent."))
    };
    post(
        "/charges",
        operation(
            "create_charge",
            "Create a charge (fingerprinted as the Spring aspect does)",
        )
        .request_body(Some(json_body(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .property("amount", integer())
                .required("amount")
                .property("currency", currency()),
        )))
        .response(
            "201",
            json_response(
                "The charge",
                object([("id", integer()), ("amount", integer())])
                    .property("currency", currency())
                    .required("currency"),
            ),
        ),
    );
    paths.add_path_operation(
        "/reports/{name}",
        vec![HttpMethod::Get],
        operation(
            "get_report",
            "Read a report (a keyed read that caches may keep)",
        )
        .parameter(
            ParameterBuilder::new()
                .name("name")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string())),
        )
        .response(
            "200",
            json_response(
                "The report",
                object([("report", string()), ("id", integer())]),
            ),
        ),
    );
    let counters = [
        "orders",
        "payments",
        "notifications",
        "refunds",
        "transfers",
        "reports",
        "charges",
    ];
    let mut stats = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "How many times each handler body ran; with PostgreSQL also `transfer_rows`.",
        ));
    for counter in counters {
        stats = stats.property(counter, integer()).required(counter);
    }
    let mut stats = operation("stats", "How many times each handler ran").response(
        "200",
        json_response("The counters", stats.property("transfer_rows", integer())),
    );
    if transfers {
        stats = stats.response(
            "503",
            json_response(
                "The transfers could not be counted",
                object([("error", string())]),
            ),
        );
    }
    paths.add_path_operation("/stats", vec![HttpMethod::Get], stats);
    paths.add_path_operation(
        "/metrics",
        vec![HttpMethod::Get],
        operation("metrics", "The layer's metrics").response(
            "200",
            ResponseBuilder::new()
                .description("The Prometheus text exposition format")
                .content(
                    "text/plain",
                    ContentBuilder::new().schema(Some(string())).build(),
                ),
        ),
    );

    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("orders example")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The routes of `examples/orders.rs`. A keyed route runs once per \
                     idempotency key and replays its stored response to retries.",
                )),
        )
        .paths(paths)
        .build();

    // The one call per keyed route.
    let mut keyed = vec![
        ("/orders", Method::POST, &policies.orders),
        ("/payments", Method::POST, &policies.payments),
        ("/notifications", Method::POST, &policies.notifications),
        ("/refunds", Method::POST, &policies.refunds),
        ("/charges", Method::POST, &policies.charges),
        ("/reports/{name}", Method::GET, &policies.reports),
    ];
    if transfers {
        keyed.push(("/transfers", Method::POST, &policies.transfers));
    }
    for (path, method, policy) in keyed {
        openapi::document(&mut doc, path, &method, policy)?;
    }

    // The handlers' own errors, next to the layer's problems of the same status.
    let mut handler_errors = vec![("/orders", "400"), ("/refunds", "400")];
    if transfers {
        handler_errors.extend([("/transfers", "400"), ("/transfers", "503")]);
    }
    for (path, status) in handler_errors {
        let response = doc
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.post.as_mut())
            .and_then(|operation| operation.responses.responses.get_mut(status));
        if let Some(RefOr::T(response)) = response {
            let error = object([("error", string())]);
            response.description.push_str(if status == "400" {
                " From the handler (`application/json`): the amount is not positive."
            } else {
                " From the handler (`application/json`): the transfer could not be written."
            });
            response.content.insert(
                "application/json".to_owned(),
                RefOr::T(ContentBuilder::new().schema(Some(error)).build()),
            );
        }
    }
    Ok(doc)
}

/// The body of `GET /openapi.json`, serialised once, when the app is built.
#[derive(Clone)]
pub(crate) struct Served(Result<Bytes, String>);

impl Served {
    /// The document `document` built, or why there is none (logged now, answered 500).
    pub(crate) fn new(document: Result<OpenApi, OpenApiError>) -> Served {
        let json = document
            .map_err(|e| e.to_string())
            .and_then(|doc| doc.to_json().map_err(|e| format!("serialising: {e}")))
            .map(Bytes::from);
        if let Err(error) = &json {
            tracing::error!(%error, "the OpenAPI document could not be built");
        }
        Served(json)
    }
}

impl IntoResponse for Served {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
            Err(error) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the OpenAPI document could not be built: {error}"),
            )
                .into_response(),
        }
    }
}

fn operation(id: &str, summary: &str) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn integer() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
}

/// An object with these members, all required.
fn object<const N: usize>(members: [(&str, ObjectBuilder); N]) -> ObjectBuilder {
    members.into_iter().fold(
        ObjectBuilder::new().schema_type(Type::Object),
        |object, (name, schema)| object.property(name, schema).required(name),
    )
}

fn json_body(schema: ObjectBuilder) -> utoipa::openapi::request_body::RequestBody {
    RequestBodyBuilder::new()
        .required(Some(Required::True))
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(schema)).build(),
        )
        .build()
}

fn json_response(description: &str, schema: ObjectBuilder) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new().schema(Some(schema)).build(),
    )
}

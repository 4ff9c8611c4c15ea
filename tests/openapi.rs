//! The orders example's `/openapi.json`: what it says about the keyed routes, and that a real
//! OpenAPI validator (`openapi-spec-validator`, from PyPI) accepts it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly on the spot

#[allow(dead_code)]
#[path = "../examples/orders.rs"]
mod orders;
mod support;

use std::path::PathBuf;
use std::process::Command;

use idempotent_runtime::Idempotency;
use serde_json::{Value, json};
use support::app::{Server, client};

const PROBLEM_REF: &str = "#/components/schemas/ProblemDetails";

/// The example's document, fetched over HTTP as a client gets it.
async fn fetch(state: orders::AppState) -> Value {
    let server = Server::start(orders::app(Idempotency::memory(), state)).await;
    let response = client()
        .get(server.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn keyed_routes_document_the_key_and_the_problems() {
    let doc = fetch(orders::AppState::default()).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");

    let orders = &doc["paths"]["/orders"]["post"];
    let key = &orders["parameters"][0];
    assert_eq!(key["name"], "Idempotency-Key", "{orders:#}");
    assert_eq!(key["in"], "header");
    assert_eq!(key["required"], true);
    assert_eq!(key["schema"]["maxLength"], 255);

    let responses = &orders["responses"];
    assert!(
        responses["201"]["headers"]["Idempotent-Replayed"].is_object(),
        "{responses:#}"
    );
    assert_eq!(
        responses["201"]["content"]["application/json"]["schema"]["required"],
        json!(["id", "amount"])
    );
    for status in ["400", "409", "413", "422", "503"] {
        let problem = &responses[status]["content"]["application/problem+json"];
        assert_eq!(
            problem["schema"]["$ref"], PROBLEM_REF,
            "{status}: {responses:#}"
        );
    }
    assert!(responses["409"]["headers"]["Retry-After"].is_object());
    assert!(responses["503"]["headers"]["Retry-After"].is_object());
    // The handler's own 400 (a non-positive amount) is documented next to the layer's.
    assert!(responses["400"]["content"]["application/json"].is_object());
    assert!(responses.get("304").is_none(), "no ETag on orders");

    let problem = &doc["components"]["schemas"]["ProblemDetails"];
    assert_eq!(problem["type"], "object");
    assert!(
        problem["properties"]["code"]["examples"]
            .as_array()
            .unwrap()
            .contains(&json!("idempotency_key_reused"))
    );

    let reports = &doc["paths"]["/reports/{name}"]["get"];
    let not_modified = &reports["responses"]["304"];
    assert!(not_modified.is_object(), "{reports:#}");
    assert_eq!(
        not_modified["headers"]["Cache-Control"]["example"],
        "max-age=3600"
    );
    assert!(reports["responses"]["200"]["headers"]["ETag"].is_object());
    assert_eq!(
        reports["responses"]["200"]["headers"]["Vary"]["example"],
        "Idempotency-Key"
    );

    let notifications = &doc["paths"]["/notifications"]["post"];
    assert_eq!(notifications["parameters"][0]["name"], "Idempotency-Key");
    assert_eq!(notifications["parameters"][0]["required"], false);

    // Routed only with a database, documented only with one.
    assert!(
        doc["paths"].get("/transfers").is_none(),
        "{:#}",
        doc["paths"]
    );
    for path in ["/payments", "/refunds", "/charges"] {
        assert_eq!(
            doc["paths"][path]["post"]["parameters"][0]["in"], "header",
            "{path}"
        );
    }
    // Plain routes: no key, no problems.
    for path in ["/stats", "/metrics"] {
        let operation = &doc["paths"][path]["get"];
        assert!(operation["responses"]["200"].is_object(), "{path}");
        assert!(
            operation.get("parameters").is_none(),
            "{path}: {operation:#}"
        );
        assert!(operation["responses"].get("409").is_none(), "{path}");
    }
    assert!(
        doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]["text/plain"].is_object()
    );

    validate("orders", &doc).unwrap_or_else(|report| panic!("{report}"));
}

#[tokio::test]
async fn with_a_database_transfers_are_documented_too() {
    // A pool that connects on first use: the document needs none.
    let pool = sqlx::PgPool::connect_lazy("postgres://idempotent@127.0.0.1:1/none").unwrap();
    let doc = fetch(orders::AppState::with_pool(pool)).await;
    let transfers = &doc["paths"]["/transfers"]["post"];
    assert_eq!(
        transfers["parameters"][0]["required"], true,
        "{transfers:#}"
    );
    assert_eq!(
        transfers["responses"]["422"]["content"]["application/problem+json"]["schema"]["$ref"],
        PROBLEM_REF
    );
    // The handler answers 503 itself when its insert fails.
    assert!(transfers["responses"]["503"]["content"]["application/json"].is_object());

    validate("orders-with-database", &doc).unwrap_or_else(|report| panic!("{report}"));
}

#[tokio::test]
async fn the_validator_rejects_a_broken_document() {
    let mut doc = fetch(orders::AppState::default()).await;
    // A response object must have a description.
    let created = doc["paths"]["/orders"]["post"]["responses"]["201"]
        .as_object_mut()
        .unwrap();
    assert!(created.remove("description").is_some());
    let report = validate("broken", &doc).expect_err("a response without description passed");
    assert!(report.contains("description"), "{report}");
}

/// The virtualenv `scripts/test.sh` installs moto and the validator into.
fn default_venv() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("idempotent-tests").join("moto"))
}

/// The `openapi-spec-validator` executable: `OPENAPI_SPEC_VALIDATOR`, else the one in
/// `scripts/test.sh`'s virtualenv.
fn validator() -> PathBuf {
    if let Some(path) = std::env::var_os("OPENAPI_SPEC_VALIDATOR") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "OPENAPI_SPEC_VALIDATOR={} does not exist: run `bash scripts/test.sh`, which installs \
             openapi-spec-validator, or point it at an openapi-spec-validator executable",
            path.display()
        );
        return path;
    }
    let venv = default_venv();
    match venv
        .as_ref()
        .map(|v| v.join("bin").join("openapi-spec-validator"))
    {
        Some(path) if path.exists() => path,
        _ => panic!(
            "openapi-spec-validator not found: this test validates the example's OpenAPI document \
             with it. Run `bash scripts/test.sh`, which installs it into {} (or set \
             OPENAPI_SPEC_VALIDATOR to an openapi-spec-validator executable)",
            venv.map_or_else(
                || "~/.cache/idempotent-tests/moto".to_owned(),
                |v| v.display().to_string()
            )
        ),
    }
}

/// Run the validator on `doc` as an OpenAPI 3.1 document: `Err` with its report if it
/// rejects it.
fn validate(name: &str, doc: &Value) -> Result<(), String> {
    let file = std::env::temp_dir().join(format!(
        "idempotent-openapi-{}-{name}.json",
        std::process::id()
    ));
    std::fs::write(&file, serde_json::to_vec_pretty(doc).unwrap()).unwrap();
    let validator = validator();
    let output = Command::new(&validator)
        .args(["--schema", "3.1", "--validation-errors", "all"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", validator.display()));
    let _ = std::fs::remove_file(&file);
    let report = format!(
        "{} rejected the document ({}):\n{}{}",
        validator.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(())
    } else {
        Err(report)
    }
}

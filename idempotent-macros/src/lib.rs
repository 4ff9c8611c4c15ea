//! The `#[idempotent]` attribute macro.
//!
//! Use it through [`idempotent-runtime`](https://docs.rs/idempotent-runtime), which re-exports
//! it as `idempotent_runtime::idempotent` and provides everything the generated code calls.
//! Depending on this crate directly gives you nothing to run the handler with.

mod expand;
mod handler;
mod options;

use proc_macro::TokenStream;

/// Makes an axum handler safe to retry: requests carrying the same idempotency key run the
/// handler once, and repeats get the stored response back.
///
/// Apply it to an `async fn` handler and route that function exactly as before
/// (`post(create_order)`); register a store once on the router with `Idempotency`:
///
/// ```
/// use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::post};
/// use idempotent_runtime::{Idempotency, idempotent};
/// # #[derive(Clone)] struct Db;
/// # #[derive(serde::Deserialize)] struct NewOrder { amount: i64 }
///
/// #[idempotent(key_prefix = "orders", ttl = "24h", include_body = true)]
/// async fn create_order(State(db): State<Db>, Json(req): Json<NewOrder>) -> impl IntoResponse {
///     // business logic, unchanged
///     # let _ = db;
///     (StatusCode::CREATED, Json(serde_json::json!({ "id": 1, "amount": req.amount })))
/// }
///
/// let app: Router = Router::new()
///     .route("/orders", post(create_order))
///     .layer(Idempotency::memory())
///     .with_state(Db);
/// ```
///
/// # Options
///
/// All options are optional and checked at compile time; a mistake is a compile error on the
/// offending token.
///
/// | option | value | default |
/// |---|---|---|
/// | `key_prefix` | string without `:`, `\|`, whitespace or control characters; the store key is `idempotency:{key_prefix}:{key}` | `""` |
/// | `ttl` | duration string: `"500ms"`, `"90s"`, `"30m"`, `"24h"`, `"7d"`, `"1h 30m"`; or an integer, in seconds unless `time_unit` says otherwise | `"1h"` |
/// | `time_unit` | with an integer `ttl`: `"NANOSECONDS"`, `"MICROSECONDS"`, `"MILLISECONDS"`, `"SECONDS"`, `"MINUTES"`, `"HOURS"` or `"DAYS"` (any case) | `"SECONDS"` |
/// | `include_body` | `true`: a reused key with a different request body is rejected (422) | `false` |
/// | `fingerprint` | with `include_body`: `"json"` (compact JSON in the request's key order), `"canonical"` (RFC 8785: key order does not matter) or `"typed"` (the body's type written back as Jackson writes it, as the Spring aspect hashes its DTO; the last argument must be e.g. `Json<T>` with `T: Serialize + Deserialize`, and the body is deserialised once) | `"json"` |
/// | `mandatory` | `true`: a request without a key is rejected (400) | `true` |
/// | `header` | the name of the header carrying the key | `"Idempotency-Key"` |
/// | `lock_ttl` | duration string: how long an unfinished request blocks duplicates if its owner dies (the lease of a running handler is renewed) | `"60s"` |
/// | `fail_open` | `true`: when the store is unavailable, run the handler anyway | `true` |
/// | `on_conflict` | `"reject"` a duplicate of a request still running (409), or `"wait"` for its result | `"reject"` |
/// | `max_wait` | with `on_conflict = "wait"`: how long to wait, as a duration string | `"10s"` |
/// | `cache_control` | for keyed reads: the `Cache-Control` of 2xx and 304 answers (unless the handler set one), e.g. `"max-age=3600"` | none |
/// | `etag` | `true`: stored responses get a strong `ETag` (SHA-256 of the body) and a matching `If-None-Match` is answered 304 without running the handler | `true` with `cache_control`, else `false` |
/// | `crate` | path of the runtime crate, if it is renamed: `crate = "idem"` | `"::idempotent_runtime"` |
///
/// Durations are kept in whole milliseconds (finer parts are dropped); each must be at least
/// `1ms`.
///
/// Spring's `@Idempotent(keyPrefix = "orders", ttl = 24, timeUnit = TimeUnit.HOURS)` reads
/// `#[idempotent(key_prefix = "orders", ttl = 24, time_unit = "HOURS")]`.
///
/// # The handler
///
/// The function must be a free `async fn` (not a method taking `self`). Its arguments are axum
/// extractors, as in any handler: every argument but the last implements `FromRequestParts`,
/// the last one `FromRequest`. Argument types must be named: `impl Trait` arguments are not
/// supported. Any return type implementing `IntoResponse` works. The handler may also extract
/// what the protocol decided: `IdempotencyKey` (the key) and `IdempotencyClaim` (the claim
/// it runs under).
///
/// Doc comments, `#[cfg]` and `#[deprecated]` stay on the routed function; other attributes,
/// such as `#[tracing::instrument]` or lint levels, apply to the body as before.
///
/// A generic handler keeps its type parameters first; route it with the two extra parameters
/// inferred: `post(handler::<MyRepo, _, _>)` (or `handler::<MyRepo, _>` without arguments).
///
/// # Equivalent code without the macro
///
/// The attribute is the middleware `Idempotency::layer` with a `Policy` of the same options,
/// applied to one handler. The example above behaves exactly as:
///
/// ```
/// use std::time::Duration;
/// use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::post};
/// use idempotent_runtime::{Idempotency, Policy};
/// # #[derive(Clone)] struct Db;
/// # #[derive(serde::Deserialize)] struct NewOrder { amount: i64 }
///
/// async fn create_order(State(db): State<Db>, Json(req): Json<NewOrder>) -> impl IntoResponse {
///     // business logic, unchanged
///     # let _ = db;
///     (StatusCode::CREATED, Json(serde_json::json!({ "id": 1, "amount": req.amount })))
/// }
///
/// let idem = Idempotency::memory();
/// let policy = Policy::new()
///     .key_prefix("orders")
///     .ttl(Duration::from_secs(24 * 3600))
///     .include_body(true);
/// let app: Router = Router::new()
///     .route("/orders", post(create_order).layer(idem.layer(policy)))
///     .with_state(Db);
/// ```
///
/// Both run one engine: same responses, same records, same metrics. What the attribute adds
/// is that the function stays routable on its own, with its options checked at compile
/// time. It turns the function into a plain function of the same name and visibility that
/// takes the whole request (so that the key is checked and the body hashed before any
/// extractor consumes it) and keeps the original inside it, unchanged; the options become a
/// `static` `Policy`, built from named fields. `cargo expand` shows the generated code.
#[proc_macro_attribute]
pub fn idempotent(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let options = options::parse(args.into());
    let handler = handler::parse(item.clone());
    match (options, handler) {
        (Ok(options), Ok(handler))
            if options.fingerprint == options::FingerprintMode::Typed
                && handler.arg_types.is_empty() =>
        {
            with_error(
                item,
                syn::Error::new(
                    options.fingerprint_span,
                    "`fingerprint = \"typed\"` reads the request body as the handler's body type: the handler needs a body extractor as its last argument, e.g. `Json(req): Json<NewCharge>`",
                ),
            )
        }
        (Ok(options), Ok(handler)) => expand::expand(&options, &handler).into(),
        (Err(error), Ok(_)) | (Ok(_), Err(error)) => with_error(item, error),
        (Err(mut error), Err(more)) => {
            error.combine(more);
            with_error(item, error)
        }
    }
}

/// The original item followed by the errors, so that the user sees what is wrong with the
/// attribute rather than a cascade of errors from code that uses the function.
fn with_error(mut item: proc_macro2::TokenStream, error: syn::Error) -> TokenStream {
    item.extend(error.into_compile_error());
    item.into()
}

/// Every error found, reported together.
#[derive(Default)]
struct Errors(Option<syn::Error>);

impl Errors {
    /// Records one more error.
    fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Records the error of `result`, if any, and returns its value.
    fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|error| self.push(error)).ok()
    }

    /// `value` if no error was recorded, the combined errors otherwise.
    fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }
}

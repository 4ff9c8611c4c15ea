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
/// ```ignore
/// use axum::{extract::State, routing::post, Json, Router};
/// use idempotent_runtime::{idempotent, Idempotency};
///
/// #[idempotent(key_prefix = "orders", ttl = "24h", include_body = true)]
/// async fn create_order(State(db): State<Db>, Json(req): Json<NewOrder>) -> impl IntoResponse {
///     // business logic, unchanged
/// }
///
/// let app = Router::new()
///     .route("/orders", post(create_order))
///     .layer(Idempotency::memory())
///     .with_state(db);
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
/// | `mandatory` | `true`: a request without a key is rejected (400) | `true` |
/// | `header` | the name of the header carrying the key | `"Idempotency-Key"` |
/// | `lock_ttl` | duration string: how long an unfinished request blocks duplicates if its owner dies | `"60s"` |
/// | `fail_open` | `true`: when the store is unavailable, run the handler anyway | `true` |
/// | `on_conflict` | `"reject"` a duplicate of a request still running (409), or `"wait"` for its result | `"reject"` |
/// | `max_wait` | with `on_conflict = "wait"`: how long to wait, as a duration string | `"10s"` |
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
/// supported. Any return type implementing `IntoResponse` works.
///
/// Doc comments, `#[cfg]` and `#[deprecated]` stay on the routed function; other attributes,
/// such as `#[tracing::instrument]` or lint levels, apply to the body as before.
///
/// A generic handler keeps its type parameters first; route it with the two extra parameters
/// inferred: `post(handler::<MyRepo, _, _>)` (or `handler::<MyRepo, _>` without arguments).
///
/// # Equivalent code without the macro
///
/// The attribute turns the function into a plain function of the same name and visibility that
/// takes the whole request and returns the response future. The original function is kept
/// inside it, unchanged, and run by the runtime with its extractors applied as axum applies
/// them. The example above becomes, in essence (with `K` the runtime crate):
///
/// ```ignore
/// fn create_order<S, M>(input: K::__private::Input<S, M>) -> impl Future<Output = Response> + Send + 'static
/// where
///     S: Clone + Send + Sync + 'static,
///     M: 'static,
///     State<Db>: FromRequestParts<S>,
///     Json<NewOrder>: FromRequest<S, M>,
/// {
///     async fn create_order(State(db): State<Db>, Json(req): Json<NewOrder>) -> impl IntoResponse {
///         // business logic, unchanged
///     }
///     static OPTIONS: K::__private::Options = K::__private::Options::new(
///         "orders",                                  // key_prefix
///         HeaderName::from_static("idempotency-key"), // header
///         Duration::from_millis(86_400_000),         // ttl
///         Duration::from_millis(60_000),             // lock_ttl
///         true,                                      // include_body
///         true,                                      // mandatory
///         true,                                      // fail_open
///         None,                                      // max_wait, with on_conflict = "wait"
///     );
///     K::__private::run(input, &OPTIONS, |request: Request, state: S| async move {
///         let (mut parts, body) = request.into_parts();
///         let db = match State::<Db>::from_request_parts(&mut parts, &state).await {
///             Ok(value) => value,
///             Err(rejection) => return rejection.into_response(),
///         };
///         let request = Request::from_parts(parts, body);
///         let req = match Json::<NewOrder>::from_request(request, &state).await {
///             Ok(value) => value,
///             Err(rejection) => return rejection.into_response(),
///         };
///         create_order(db, req).await.into_response()
///     })
/// }
/// ```
///
/// `S` (the router's state) and `M` (axum's marker for the last extractor) are inferred by
/// axum when the function is routed, as for any handler.
#[proc_macro_attribute]
pub fn idempotent(args: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let options = options::parse(args.into());
    let handler = handler::parse(item.clone());
    match (options, handler) {
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

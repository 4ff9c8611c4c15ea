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
/// Durations are whole milliseconds; a duration must be at least `1ms`.
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
/// A generic handler keeps its type parameters first; route it with the two extra parameters
/// inferred: `post(handler::<MyRepo, _, _>)` (or `handler::<MyRepo, _>` without arguments).
///
/// # Equivalent code without the macro
///
/// The attribute turns the function into a plain function taking the whole request, which runs
/// the original body under the idempotency protocol. The example above becomes, in essence:
///
/// ```ignore
/// async fn create_order<S, M>(input: __private::Input<S, M>) -> Response
/// where
///     State<Db>: FromRequestParts<S>,
///     Json<NewOrder>: FromRequest<S, M>,
/// {
///     async fn handler(State(db): State<Db>, Json(req): Json<NewOrder>) -> impl IntoResponse {
///         // business logic, unchanged
///     }
///     static OPTIONS: __private::Options = /* the validated options */;
///     __private::run(input, &OPTIONS, |request, state| async move {
///         // run the extractors on `request`, answering their rejection if one fails
///         let (mut parts, body) = request.into_parts();
///         let db = State::<Db>::from_request_parts(&mut parts, &state).await?;
///         let req = Json::<NewOrder>::from_request(Request::from_parts(parts, body), &state).await?;
///         handler(db, req).await.into_response()
///     })
///     .await
/// }
/// ```
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

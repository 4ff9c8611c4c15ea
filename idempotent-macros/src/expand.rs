//! The generated code: the validated options and handler, turned into tokens.
//!
//! The annotated function becomes a function of the same name and visibility that takes the
//! whole request (`__private::Input`) and returns the response future. Inside it, the original
//! function is kept as it was written, under its own name, and called by `__private::run` with
//! its extractors applied, exactly as axum would have applied them. The options become a
//! `static` `Policy`, built from named fields. Because it is still one
//! argument implementing `FromRequest`, the result is an axum handler, routed as before.

use proc_macro2::{Group, Ident, Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{GenericParam, ReturnType};

use crate::handler::Handler;
use crate::options::{FingerprintMode, Millis, OnConflict, Options};

/// The rewritten handler.
pub(crate) fn expand(options: &Options, handler: &Handler) -> TokenStream {
    let Handler {
        outer_attrs,
        inner_attrs,
        vis,
        sig,
        block,
        arg_types,
    } = handler;
    let krate = &options.krate;
    let private = quote!(#krate::__private);
    let name = &sig.ident;
    let state = Ident::new("__IdemS", Span::call_site());
    let marker = Ident::new("__IdemM", Span::call_site());

    // The user's generics come first; the state and the body extractor's marker follow. A
    // handler without arguments has no body extractor, hence no marker.
    let user_params = sig.generics.params.iter();
    let user_predicates = sig
        .generics
        .where_clause
        .iter()
        .flat_map(|clause| clause.predicates.iter());
    let (marker_param, input_marker) = if arg_types.is_empty() {
        (None, quote!(()))
    } else {
        (Some(quote!(#marker,)), quote!(#marker))
    };
    let marker_bound = marker_param.as_ref().map(|_| quote!(#marker: 'static,));

    // Every argument but the last is extracted from the request parts, the last one from the
    // whole request. The bounds are spanned at the argument's type, so that a type that is not
    // an extractor is reported there.
    let last = arg_types.len().saturating_sub(1);
    let extractor_bounds = arg_types.iter().enumerate().map(|(i, ty)| {
        let span = ty.span();
        let private = respan(&private, span);
        if i == last {
            quote_spanned!(span=> #ty: #private::FromRequest<#state, #marker>,)
        } else {
            quote_spanned!(span=> #ty: #private::FromRequestParts<#state>,)
        }
    });
    let args: Vec<Ident> = (0..arg_types.len())
        .map(|i| format_ident!("__arg{}", i))
        .collect();
    let typed = options.fingerprint == FingerprintMode::Typed;
    let extract = extract(&private, &state, &marker, arg_types, &args, typed);

    // The original function keeps its name: inside the rewritten one it shadows it, so that
    // attributes such as `#[tracing::instrument]` and recursive calls see what they saw before.
    let turbofish_params: Vec<&Ident> = sig
        .generics
        .params
        .iter()
        .filter_map(|param| match param {
            GenericParam::Type(param) => Some(&param.ident),
            GenericParam::Const(param) => Some(&param.ident),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    let turbofish = (!turbofish_params.is_empty()).then(|| quote!(::<#(#turbofish_params),*>));
    // Spanned at the return type, so that one that is not a response is reported there.
    let respond = match &sig.output {
        ReturnType::Type(_, ty) => {
            let span = ty.span();
            let private = respan(&private, span);
            let callee = respan(&quote!(#name #turbofish), span);
            quote_spanned!(span=> #private::IntoResponse::into_response(#callee(#(#args),*).await))
        }
        ReturnType::Default => {
            quote!(#private::IntoResponse::into_response(#name #turbofish(#(#args),*).await))
        }
    };

    let options = options_value(&private, options, arg_types.last());

    quote! {
        #(#outer_attrs)*
        #vis fn #name<#(#user_params,)* #state, #marker_param>(
            __idempotent_input: #private::Input<#state, #input_marker>,
        ) -> impl ::core::future::Future<Output = #private::Response> + ::core::marker::Send + 'static
        where
            #(#user_predicates,)*
            #state: ::core::clone::Clone + ::core::marker::Send + ::core::marker::Sync + 'static,
            #marker_bound
            #(#extractor_bounds)*
        {
            #(#inner_attrs)*
            // A handler is `async` whether or not its body awaits.
            #[allow(clippy::unused_async)]
            #sig #block

            static __IDEMPOTENT_POLICY: #private::Policy = #options;

            #private::run(
                __idempotent_input,
                &__IDEMPOTENT_POLICY,
                move |__req: #private::Request, __state: #state| async move {
                    #extract
                    #respond
                },
            )
        }
    }
}

/// `tokens` with every span set to `span`, so that a diagnostic about them points there.
fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut token| {
            if let TokenTree::Group(group) = &token {
                let mut respanned = Group::new(group.delimiter(), respan(&group.stream(), span));
                respanned.set_span(span);
                token = TokenTree::Group(respanned);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

/// The statements that run the extractors on `__req`, binding `args`; a rejection is
/// answered as axum answers it.
fn extract(
    private: &TokenStream,
    state: &Ident,
    marker: &Ident,
    arg_types: &[syn::Type],
    args: &[Ident],
    typed: bool,
) -> TokenStream {
    let Some((last_ty, parts_tys)) = arg_types.split_last() else {
        return TokenStream::new();
    };
    let Some((last_arg, parts_args)) = args.split_last() else {
        return TokenStream::new();
    };
    let rejected = quote! {
        ::core::result::Result::Err(__rejection) => {
            return #private::IntoResponse::into_response(__rejection);
        }
    };
    let from_request = quote! {
        let #last_arg = match <#last_ty as #private::FromRequest<#state, #marker>>::from_request(__req, &__state).await {
            ::core::result::Result::Ok(__value) => __value,
            #rejected
        };
    };
    if parts_tys.is_empty() && !typed {
        return from_request;
    }
    // With the typed fingerprint, the body was read as its type already: take that value
    // rather than deserialising the body again.
    let last = if typed {
        quote! {
            let #last_arg = match #private::take_typed::<#last_ty>(&mut __parts.extensions) {
                ::core::option::Option::Some(__value) => __value,
                ::core::option::Option::None => {
                    let __req = #private::Request::from_parts(__parts, __body);
                    match <#last_ty as #private::FromRequest<#state, #marker>>::from_request(__req, &__state).await {
                        ::core::result::Result::Ok(__value) => __value,
                        #rejected
                    }
                }
            };
        }
    } else {
        quote! {
            let __req = #private::Request::from_parts(__parts, __body);
            #from_request
        }
    };
    quote! {
        let (mut __parts, __body) = __req.into_parts();
        #(
            let #parts_args = match <#parts_tys as #private::FromRequestParts<#state>>::from_request_parts(&mut __parts, &__state).await {
                ::core::result::Result::Ok(__value) => __value,
                #rejected
            };
        )*
        #last
    }
}

/// The route's `Policy`, a constant expression with every option named.
fn options_value(
    private: &TokenStream,
    options: &Options,
    body_type: Option<&syn::Type>,
) -> TokenStream {
    let Options {
        key_prefix,
        header,
        ttl,
        lock_ttl,
        include_body,
        fingerprint,
        fingerprint_span: _,
        mandatory,
        fail_open,
        on_conflict,
        cache_control,
        etag,
        krate: _,
    } = options;
    let cache_control = match cache_control {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    };
    let fingerprint = match (fingerprint, body_type) {
        (FingerprintMode::Typed, Some(ty)) => {
            // Spanned at the body type, so that one the mode cannot read is reported there.
            let span = ty.span();
            let private = respan(private, span);
            quote_spanned!(span=> #private::typed_fingerprint::<#ty>(::core::stringify!(#ty)))
        }
        (FingerprintMode::Canonical, _) => quote!(#private::Fingerprint::Canonical),
        // `Typed` without a body extractor is refused before expansion.
        (FingerprintMode::Json | FingerprintMode::Typed, _) => {
            quote!(#private::Fingerprint::Json)
        }
    };
    let ttl = duration(*ttl);
    let lock_ttl = duration(*lock_ttl);
    let on_conflict = match on_conflict {
        OnConflict::Reject => quote!(#private::OnConflict::Reject),
        OnConflict::Wait(max_wait) => {
            let max_wait = duration(*max_wait);
            quote!(#private::OnConflict::Wait(#max_wait))
        }
    };
    quote! {
        #private::policy(#private::PolicyFields {
            key_prefix: #key_prefix,
            header: #header,
            ttl: #ttl,
            lock_ttl: #lock_ttl,
            include_body: #include_body,
            fingerprint: #fingerprint,
            mandatory: #mandatory,
            fail_open: #fail_open,
            on_conflict: #on_conflict,
            cache_control: #cache_control,
            etag: #etag,
        })
    }
}

/// A `Duration` constant.
fn duration(Millis(millis): Millis) -> TokenStream {
    let millis = Literal::u64_unsuffixed(millis);
    quote!(::core::time::Duration::from_millis(#millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::ToTokens;

    fn expand_str(args: TokenStream, item: TokenStream) -> String {
        let options = match crate::options::parse(args) {
            Ok(options) => options,
            Err(error) => panic!("{error}"),
        };
        let handler = match crate::handler::parse(item) {
            Ok(handler) => handler,
            Err(error) => panic!("{error}"),
        };
        let tokens = expand(&options, &handler);
        // The expansion is one well-formed function.
        match syn::parse2::<syn::ItemFn>(tokens.clone()) {
            Ok(function) => function.to_token_stream().to_string(),
            Err(error) => panic!("{error}: {tokens}"),
        }
    }

    #[test]
    fn state_and_json() {
        let expanded = expand_str(
            quote!(key_prefix = "orders", ttl = "24h", include_body = true),
            quote! {
                /// Creates an order.
                pub async fn create_order(State(db): State<Db>, Json(req): Json<NewOrder>) -> impl IntoResponse {
                    todo!()
                }
            },
        );
        for expected in [
            "pub fn create_order < __IdemS , __IdemM , > (__idempotent_input : :: idempotent_runtime :: __private :: Input < __IdemS , __IdemM > ,)",
            "State < Db > : :: idempotent_runtime :: __private :: FromRequestParts < __IdemS > ,",
            "Json < NewOrder > : :: idempotent_runtime :: __private :: FromRequest < __IdemS , __IdemM > ,",
            "async fn create_order (State (db) : State < Db > , Json (req) : Json < NewOrder >) -> impl IntoResponse",
            ":: idempotent_runtime :: __private :: policy (:: idempotent_runtime :: __private :: PolicyFields { key_prefix : \"orders\" , header : \"idempotency-key\" , ttl : :: core :: time :: Duration :: from_millis (86400000) , lock_ttl : :: core :: time :: Duration :: from_millis (60000) , include_body : true , fingerprint : :: idempotent_runtime :: __private :: Fingerprint :: Json , mandatory : true , fail_open : true , on_conflict : :: idempotent_runtime :: __private :: OnConflict :: Reject , cache_control : :: core :: option :: Option :: None , etag : false , })",
            "create_order (__arg0 , __arg1) . await",
        ] {
            assert!(
                expanded.contains(expected),
                "{expected}\n\nnot in\n\n{expanded}"
            );
        }
    }

    #[test]
    fn no_arguments() {
        let expanded = expand_str(
            quote!(crate = "idem", on_conflict = "wait"),
            quote!(
                async fn ping() {}
            ),
        );
        for expected in [
            "fn ping < __IdemS , > (__idempotent_input : idem :: __private :: Input < __IdemS , () > ,)",
            "on_conflict : idem :: __private :: OnConflict :: Wait (:: core :: time :: Duration :: from_millis (10000))",
            "ping () . await",
        ] {
            assert!(
                expanded.contains(expected),
                "{expected}\n\nnot in\n\n{expanded}"
            );
        }
        assert!(!expanded.contains("__IdemM"), "{expanded}");
    }

    #[test]
    fn generics() {
        let expanded = expand_str(
            quote!(),
            quote! {
                async fn get<'a, R: Repo, const N: usize>(State(repo): State<R>) -> String where R: Clone {
                    todo!()
                }
            },
        );
        for expected in [
            "fn get < 'a , R : Repo , const N : usize , __IdemS , __IdemM , >",
            "where R : Clone , __IdemS :",
            "get :: < R , N > (__arg0) . await",
        ] {
            assert!(
                expanded.contains(expected),
                "{expected}\n\nnot in\n\n{expanded}"
            );
        }
    }
}

//! The annotated function: checked to be a handler the expansion can wrap, and taken apart
//! into what the expansion needs.

use proc_macro2::{TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::{
    Attribute, Block, FnArg, GenericArgument, ItemFn, PathArguments, Safety, Signature, Type,
    Visibility,
};

use crate::Errors;

/// A free `async fn` whose arguments are extractors.
pub(crate) struct Handler {
    /// Attributes that describe the routed function: `doc`, `cfg`, `deprecated`.
    pub(crate) outer_attrs: Vec<Attribute>,
    /// All other attributes, kept on the function that holds the body (`tracing::instrument`,
    /// lint levels, ...).
    pub(crate) inner_attrs: Vec<Attribute>,
    /// The function's visibility.
    pub(crate) vis: Visibility,
    /// The function's signature, `async` and free of `self`.
    pub(crate) sig: Signature,
    /// The function's body, untouched.
    pub(crate) block: Box<Block>,
    /// The arguments' types, in order; the last one is the body extractor.
    pub(crate) arg_types: Vec<Type>,
}

/// Parses the item under the attribute and checks that it is a handler.
pub(crate) fn parse(item: TokenStream) -> syn::Result<Handler> {
    let function = match syn::parse2::<ItemFn>(item.clone()) {
        Ok(function) => function,
        Err(_) => return Err(not_a_function(item)),
    };
    let mut errors = Errors::default();
    check_signature(&function.sig, &mut errors);

    let mut arg_types = Vec::with_capacity(function.sig.inputs.len());
    for input in &function.sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                receiver,
                "`#[idempotent]` cannot be applied to a method taking `self`: make it a free `async fn` and take what it needs through extractors such as `State`",
            )),
            FnArg::Typed(arg) => {
                if let Some(impl_trait) = find_impl_trait(&arg.ty) {
                    errors.push(syn::Error::new_spanned(
                        impl_trait,
                        "`impl Trait` argument types are not supported by `#[idempotent]`: name the type, or use a generic parameter (`fn handler<T: Trait>(arg: T)`)",
                    ));
                }
                arg_types.push((*arg.ty).clone());
            }
        }
    }

    let (outer_attrs, inner_attrs) = function.attrs.into_iter().partition(is_outer_attr);
    errors.finish(Handler {
        outer_attrs,
        inner_attrs,
        vis: function.vis,
        sig: function.sig,
        block: function.block,
        arg_types,
    })
}

/// Everything that makes a function signature unusable as a handler, but `self` and
/// argument types.
fn check_signature(sig: &Signature, errors: &mut Errors) {
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new_spanned(
            sig.fn_token,
            "`#[idempotent]` requires an `async fn`: add `async` before `fn`",
        ));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new_spanned(
            constness,
            "`#[idempotent]` handlers cannot be `const`",
        ));
    }
    if let Safety::Unsafe(unsafety) = &sig.safety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "`#[idempotent]` handlers cannot be `unsafe`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            "`#[idempotent]` handlers cannot have an `extern` ABI",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "`#[idempotent]` handlers cannot be variadic",
        ));
    }
}

/// The error for an item that is not a function, spanned at its keyword and name
/// (`struct Order`) when they can be found.
fn not_a_function(item: TokenStream) -> syn::Error {
    const MESSAGE: &str = "`#[idempotent]` can only be applied to an `async fn` handler";
    let head = (|input: ParseStream<'_>| {
        input.call(Attribute::parse_outer)?;
        input.parse::<Visibility>()?;
        let mut head = TokenStream::new();
        if let Some(TokenTree::Ident(keyword)) = input.parse::<Option<TokenTree>>()? {
            head.extend([TokenTree::Ident(keyword)]);
            if let Some(TokenTree::Ident(name)) = input.parse::<Option<TokenTree>>()? {
                head.extend([TokenTree::Ident(name)]);
            }
        }
        input.parse::<TokenStream>()?;
        Ok(head)
    })
    .parse2(item.clone());
    match head {
        Ok(head) if !head.is_empty() => syn::Error::new_spanned(head, MESSAGE),
        _ => syn::Error::new_spanned(item, MESSAGE),
    }
}

/// Whether an attribute belongs on the routed function rather than on the body's function.
fn is_outer_attr(attr: &Attribute) -> bool {
    ["doc", "cfg", "deprecated"]
        .iter()
        .any(|name| attr.path().is_ident(name))
}

/// The first `impl Trait` inside a type, such as the one in `Json<impl Deserialize>`.
fn find_impl_trait(ty: &Type) -> Option<&Type> {
    match ty {
        Type::ImplTrait(_) => Some(ty),
        Type::Array(array) => find_impl_trait(&array.elem),
        Type::Group(group) => find_impl_trait(&group.elem),
        Type::Paren(paren) => find_impl_trait(&paren.elem),
        Type::Ptr(ptr) => find_impl_trait(&ptr.elem),
        Type::Reference(reference) => find_impl_trait(&reference.elem),
        Type::Slice(slice) => find_impl_trait(&slice.elem),
        Type::Tuple(tuple) => tuple.elems.iter().find_map(find_impl_trait),
        Type::Path(path) => path
            .qself
            .iter()
            .find_map(|qself| find_impl_trait(&qself.ty))
            .or_else(|| {
                path.path
                    .segments
                    .iter()
                    .find_map(|segment| match &segment.arguments {
                        PathArguments::AngleBracketed(generics) => {
                            generics.args.iter().find_map(|arg| match arg {
                                GenericArgument::Type(ty) => find_impl_trait(ty),
                                GenericArgument::AssocType(assoc) => find_impl_trait(&assoc.ty),
                                _ => None,
                            })
                        }
                        _ => None,
                    })
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::{ToTokens, quote};

    fn errors(item: TokenStream) -> Vec<String> {
        match parse(item) {
            Ok(_) => panic!("expected an error"),
            Err(error) => error.into_iter().map(|error| error.to_string()).collect(),
        }
    }

    #[test]
    fn splits_a_handler() {
        let handler = match parse(quote! {
            /// Creates an order.
            #[cfg(feature = "orders")]
            #[tracing::instrument(skip_all)]
            #[allow(clippy::unused_async)]
            pub async fn create_order(State(db): State<Db>, Json(req): Json<NewOrder>) -> impl IntoResponse {
                db.insert(req)
            }
        }) {
            Ok(handler) => handler,
            Err(error) => panic!("{error}"),
        };
        let names = |attrs: &[Attribute]| {
            attrs
                .iter()
                .map(|attr| attr.path().to_token_stream().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&handler.outer_attrs), ["doc", "cfg"]);
        assert_eq!(
            names(&handler.inner_attrs),
            ["tracing :: instrument", "allow"]
        );
        assert_eq!(handler.sig.ident, "create_order");
        let types: Vec<String> = handler
            .arg_types
            .iter()
            .map(|ty| ty.to_token_stream().to_string())
            .collect();
        assert_eq!(types, ["State < Db >", "Json < NewOrder >"]);
    }

    #[test]
    fn requires_async() {
        assert_eq!(
            errors(quote!(
                fn f() {}
            )),
            ["`#[idempotent]` requires an `async fn`: add `async` before `fn`"]
        );
    }

    #[test]
    fn rejects_methods() {
        for receiver in [
            quote!(self),
            quote!(&self),
            quote!(&mut self),
            quote!(self: Arc<Self>),
        ] {
            let errors = errors(quote!(async fn f(#receiver, Json(x): Json<u32>) {}));
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains("cannot be applied to a method taking `self`"));
        }
    }

    #[test]
    fn rejects_non_functions() {
        for item in [
            quote!(
                struct Order;
            ),
            quote!(impl Order {}),
            quote!(
                mod orders {}
            ),
            quote!(
                async fn declared_only();
            ),
            quote!(),
        ] {
            assert_eq!(
                errors(item),
                ["`#[idempotent]` can only be applied to an `async fn` handler"]
            );
        }
    }

    #[test]
    fn rejects_impl_trait_arguments() {
        for ty in [
            quote!(impl Extractor),
            quote!(Json<impl DeserializeOwned>),
            quote!(Option<(u8, impl Send)>),
            quote!(Foo<Item = impl Send>),
        ] {
            let errors = errors(quote!(async fn f(x: #ty) {}));
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].starts_with("`impl Trait` argument types are not supported"));
        }
        assert!(
            parse(quote!(
                async fn f(x: Json<Box<dyn Send>>) -> impl IntoResponse {}
            ))
            .is_ok()
        );
    }

    #[test]
    fn reports_every_problem() {
        let errors = errors(quote!(
            unsafe extern "C" fn f(&self, x: impl Send) {}
        ));
        assert_eq!(errors.len(), 5, "{errors:?}");
    }
}

//! The attribute's arguments, parsed and validated into one [`Options`] value.
//!
//! Parsing is in two steps: [`Args`] reads the `name = value` pairs and checks each value on its
//! own, as it is read; then [`Args::build`] applies the defaults and checks the rules between
//! options. Neither step stops at a mistake, so a single compile reports every bad option, in
//! the order they are written.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Token};

use crate::Errors;

/// The option keywords.
mod kw {
    syn::custom_keyword!(key_prefix);
    syn::custom_keyword!(ttl);
    syn::custom_keyword!(time_unit);
    syn::custom_keyword!(include_body);
    syn::custom_keyword!(mandatory);
    syn::custom_keyword!(header);
    syn::custom_keyword!(lock_ttl);
    syn::custom_keyword!(fail_open);
    syn::custom_keyword!(on_conflict);
    syn::custom_keyword!(max_wait);
    syn::custom_keyword!(cache_control);
    syn::custom_keyword!(etag);
    syn::custom_keyword!(fingerprint);
}

/// Every option name, in the order the documentation lists them.
const OPTION_NAMES: &[&str] = &[
    "key_prefix",
    "ttl",
    "time_unit",
    "include_body",
    "fingerprint",
    "mandatory",
    "header",
    "lock_ttl",
    "fail_open",
    "on_conflict",
    "max_wait",
    "cache_control",
    "etag",
    "crate",
];

/// Examples of duration strings, for error messages.
const DURATION_EXAMPLES: &str = r#""500ms", "90s", "30m", "24h", "7d" or "1h 30m""#;

/// The default of `ttl`: one hour.
const DEFAULT_TTL: Millis = Millis(60 * 60 * 1000);
/// The default of `lock_ttl`: one minute.
const DEFAULT_LOCK_TTL: Millis = Millis(60 * 1000);
/// The default of `max_wait`: ten seconds.
const DEFAULT_MAX_WAIT: Millis = Millis(10 * 1000);
/// The default of `header`.
const DEFAULT_HEADER: &str = "idempotency-key";

/// The validated options of one handler.
pub(crate) struct Options {
    /// Goes between `idempotency:` and the key in the store key; free of `:`, `|`, whitespace
    /// and control characters.
    pub(crate) key_prefix: String,
    /// The name of the header carrying the key, lowercase and valid.
    pub(crate) header: String,
    /// How long a completed response is kept.
    pub(crate) ttl: Millis,
    /// How long an unfinished request blocks duplicates.
    pub(crate) lock_ttl: Millis,
    /// Whether the request body is part of the fingerprint.
    pub(crate) include_body: bool,
    /// How the body becomes a fingerprint, and where the option was written (for errors
    /// about the handler that only the expansion can see).
    pub(crate) fingerprint: FingerprintMode,
    pub(crate) fingerprint_span: Span,
    /// Whether a request without a key is rejected.
    pub(crate) mandatory: bool,
    /// Whether the handler runs when the store is unavailable.
    pub(crate) fail_open: bool,
    /// What a duplicate of a request still running gets.
    pub(crate) on_conflict: OnConflict,
    /// The `Cache-Control` of 2xx and 304 answers, a valid header value.
    pub(crate) cache_control: Option<String>,
    /// Whether stored responses get an `ETag` and `If-None-Match` is answered 304.
    pub(crate) etag: bool,
    /// The path of the runtime crate.
    pub(crate) krate: syn::Path,
}

/// A duration in whole milliseconds, at least one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Millis(pub(crate) u64);

/// How the request body becomes a fingerprint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FingerprintMode {
    /// Compact JSON in the request's order.
    Json,
    /// RFC 8785 canonical JSON.
    Canonical,
    /// The body's type, written back as Jackson writes it.
    Typed,
}

/// What a duplicate of a request still running gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnConflict {
    /// An immediate 409.
    Reject,
    /// The first request's response, waiting at most this long for it.
    Wait(Millis),
}

/// Parses and validates the attribute's arguments.
pub(crate) fn parse(args: TokenStream) -> syn::Result<Options> {
    Args::parse.parse2(args)?.build()
}

/// An option as written: its keyword, and its value if the value is valid.
struct Setting<K, T> {
    keyword: K,
    value: Option<T>,
}

/// The options as written, each at most once, each value checked on its own.
#[derive(Default)]
struct Args {
    key_prefix: Option<Setting<kw::key_prefix, String>>,
    ttl: Option<Setting<kw::ttl, Ttl>>,
    time_unit: Option<Setting<kw::time_unit, u64>>,
    include_body: Option<Setting<kw::include_body, bool>>,
    fingerprint: Option<Setting<kw::fingerprint, FingerprintMode>>,
    mandatory: Option<Setting<kw::mandatory, bool>>,
    header: Option<Setting<kw::header, String>>,
    lock_ttl: Option<Setting<kw::lock_ttl, Millis>>,
    fail_open: Option<Setting<kw::fail_open, bool>>,
    on_conflict: Option<Setting<kw::on_conflict, bool>>,
    max_wait: Option<Setting<kw::max_wait, Millis>>,
    cache_control: Option<Setting<kw::cache_control, String>>,
    etag: Option<Setting<kw::etag, bool>>,
    krate: Option<Setting<Token![crate], syn::Path>>,
    /// Every mistake found so far; none of them stops the parsing.
    errors: Errors,
}

/// A `ttl` as written: a duration string, or an integer to be read in `time_unit`s.
enum Ttl {
    Duration(Millis),
    Count(u64, Span),
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Self::default();
        let errors = &mut args.errors;
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::key_prefix) {
                assign(input, &mut args.key_prefix, errors, key_prefix)?;
            } else if lookahead.peek(kw::ttl) {
                assign(input, &mut args.ttl, errors, ttl)?;
            } else if lookahead.peek(kw::time_unit) {
                assign(input, &mut args.time_unit, errors, time_unit)?;
            } else if lookahead.peek(kw::include_body) {
                assign(input, &mut args.include_body, errors, boolean)?;
            } else if lookahead.peek(kw::fingerprint) {
                assign(input, &mut args.fingerprint, errors, fingerprint_mode)?;
            } else if lookahead.peek(kw::mandatory) {
                assign(input, &mut args.mandatory, errors, boolean)?;
            } else if lookahead.peek(kw::header) {
                assign(input, &mut args.header, errors, header)?;
            } else if lookahead.peek(kw::lock_ttl) {
                assign(input, &mut args.lock_ttl, errors, duration_string)?;
            } else if lookahead.peek(kw::fail_open) {
                assign(input, &mut args.fail_open, errors, boolean)?;
            } else if lookahead.peek(kw::on_conflict) {
                assign(input, &mut args.on_conflict, errors, on_conflict_waits)?;
            } else if lookahead.peek(kw::max_wait) {
                assign(input, &mut args.max_wait, errors, duration_string)?;
            } else if lookahead.peek(kw::cache_control) {
                assign(input, &mut args.cache_control, errors, cache_control)?;
            } else if lookahead.peek(kw::etag) {
                assign(input, &mut args.etag, errors, boolean)?;
            } else if lookahead.peek(Token![crate]) {
                assign(input, &mut args.krate, errors, crate_path)?;
            } else if input.peek(Ident::peek_any) {
                let name = input.call(Ident::parse_any)?;
                errors.push(unknown_option(&name));
                skip_value(input)?;
            } else {
                return Err(lookahead.error());
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// Parses `keyword = value` into `slot`, checking the value with `check`. The option's name
/// in messages is its keyword as written; a second occurrence is an error at the second
/// keyword.
fn assign<K: Parse + ToTokens, T>(
    input: ParseStream<'_>,
    slot: &mut Option<Setting<K, T>>,
    errors: &mut Errors,
    check: fn(&str, &Expr) -> syn::Result<T>,
) -> syn::Result<()> {
    let keyword: K = input.parse()?;
    let name = keyword.to_token_stream().to_string();
    if !input.peek(Token![=]) {
        return Err(syn::Error::new_spanned(
            keyword,
            format!("expected `=` after `{name}`, as in `{name} = ...`"),
        ));
    }
    input.parse::<Token![=]>()?;
    let value: Expr = input.parse()?;
    if slot.is_some() {
        errors.push(syn::Error::new_spanned(
            keyword,
            format!("`{name}` specified more than once"),
        ));
    } else {
        let value = errors.take(check(&name, &value));
        *slot = Some(Setting { keyword, value });
    }
    Ok(())
}

/// Skips the `= value` after an unknown option, so that the options after it are checked too.
fn skip_value(input: ParseStream<'_>) -> syn::Result<()> {
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        input.parse::<Expr>()?;
    }
    Ok(())
}

/// "unknown option" with a hint: the snake_case spelling of a camelCase name (as Spring's
/// `@Idempotent` spells them), a close match for a typo, or else the list of options.
fn unknown_option(name: &Ident) -> syn::Error {
    let written = name.unraw().to_string();
    let snake = to_snake_case(&written);
    let message = if snake != written && OPTION_NAMES.contains(&snake.as_str()) {
        format!(
            "unknown option `{written}`; did you mean `{snake}`? options are written in snake_case"
        )
    } else if let Some(close) = closest(&snake, OPTION_NAMES.iter().copied()) {
        format!("unknown option `{written}`; did you mean `{close}`?")
    } else {
        format!(
            "unknown option `{written}`; expected one of {}",
            OPTION_NAMES
                .iter()
                .map(|option| format!("`{option}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    syn::Error::new(name.span(), message)
}

/// `keyPrefix` -> `key_prefix`.
fn to_snake_case(name: &str) -> String {
    let mut snake = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !snake.ends_with('_') {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        } else {
            snake.push(c);
        }
    }
    snake
}

/// The candidate closest to `word`, if it is close enough to be what was meant: a few edits
/// away, or containing `word` (`prefix` -> `key_prefix`).
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter_map(|candidate| {
            let lower = candidate.to_ascii_lowercase();
            let distance = edit_distance(&word, &lower);
            let close = distance <= (lower.len() / 3).max(1)
                || (word.len() >= 4 && (lower.contains(&word) || word.contains(&lower)));
            close.then_some((distance, candidate))
        })
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Edit distance in characters, counting a swap of two neighbours as one edit (optimal string
/// alignment), so that `wiat` is one edit from `wait`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: the distance between the first i characters of `a` and the first j of `b`.
    let mut d = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let substitution = d[i - 1][j - 1] + usize::from(a[i - 1] != b[j - 1]);
            let mut best = substitution.min(d[i - 1][j] + 1).min(d[i][j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

impl Args {
    /// Applies the defaults and checks the rules between options.
    fn build(self) -> syn::Result<Options> {
        let mut errors = self.errors;
        let ttl = errors
            .take(ttl_millis(self.ttl, self.time_unit))
            .unwrap_or(DEFAULT_TTL);
        let wait = value_or(self.on_conflict, false);
        let on_conflict = match (wait, self.max_wait) {
            (true, max_wait) => OnConflict::Wait(value_or(max_wait, DEFAULT_MAX_WAIT)),
            (false, None) => OnConflict::Reject,
            (false, Some(max_wait)) => {
                errors.push(syn::Error::new_spanned(
                    max_wait.keyword,
                    r#"`max_wait` only applies with `on_conflict = "wait"`"#,
                ));
                OnConflict::Reject
            }
        };
        let include_body = value_or(self.include_body, false);
        let fingerprint_span = self
            .fingerprint
            .as_ref()
            .map_or_else(Span::call_site, |setting| setting.keyword.span);
        let fingerprint = match self.fingerprint {
            Some(setting) if !include_body => {
                errors.push(syn::Error::new_spanned(
                    setting.keyword,
                    "`fingerprint` applies to the request body: it needs `include_body = true`",
                ));
                FingerprintMode::Json
            }
            setting => value_or(setting, FingerprintMode::Json),
        };
        let cache_control = self.cache_control.and_then(|setting| setting.value);
        // An ETag is what makes a cached copy revalidate cheaply: on by default with caching.
        let etag = value_or(self.etag, cache_control.is_some());
        errors.finish(Options {
            key_prefix: value_or(self.key_prefix, String::new()),
            header: value_or(self.header, DEFAULT_HEADER.to_owned()),
            ttl,
            lock_ttl: value_or(self.lock_ttl, DEFAULT_LOCK_TTL),
            include_body,
            fingerprint,
            fingerprint_span,
            mandatory: value_or(self.mandatory, true),
            fail_open: value_or(self.fail_open, true),
            on_conflict,
            cache_control,
            etag,
            krate: value_or(self.krate, syn::parse_quote!(::idempotent_runtime)),
        })
    }
}

/// The option's valid value, or `default` if it was not given (or was invalid, which has
/// been reported already).
fn value_or<K, T>(setting: Option<Setting<K, T>>, default: T) -> T {
    setting.and_then(|setting| setting.value).unwrap_or(default)
}

/// `ttl` and `time_unit` together.
fn ttl_millis(
    ttl: Option<Setting<kw::ttl, Ttl>>,
    time_unit: Option<Setting<kw::time_unit, u64>>,
) -> syn::Result<Millis> {
    match (ttl.map(|ttl| ttl.value), time_unit) {
        (None, None) => Ok(DEFAULT_TTL),
        (None, Some(unit)) => Err(syn::Error::new_spanned(
            unit.keyword,
            r#"`time_unit` needs an integer `ttl`, e.g. `ttl = 24, time_unit = "HOURS"`"#,
        )),
        (Some(Some(Ttl::Duration(_))), Some(unit)) => Err(syn::Error::new_spanned(
            unit.keyword,
            r#"`time_unit` applies to an integer `ttl` only, e.g. `ttl = 24, time_unit = "HOURS"`; a duration string such as `ttl = "24h"` carries its own unit"#,
        )),
        (Some(Some(Ttl::Duration(millis))), None) => Ok(millis),
        (Some(Some(Ttl::Count(count, span))), unit) => {
            match unit.map_or(Some(NANOS_PER_SECOND), |unit| unit.value) {
                Some(unit_nanos) => {
                    to_millis("ttl", span, u128::from(count) * u128::from(unit_nanos))
                }
                // An invalid `time_unit`, already reported.
                None => Ok(DEFAULT_TTL),
            }
        }
        // An invalid `ttl`, already reported.
        (Some(None), _) => Ok(DEFAULT_TTL),
    }
}

/// The value if it is a literal.
fn literal(value: &Expr) -> Option<&Lit> {
    match value {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    }
}

/// The value if it is a string literal, an error that says what was expected otherwise.
fn string<'a>(name: &str, value: &'a Expr, expected: &str) -> syn::Result<&'a LitStr> {
    match literal(value) {
        Some(Lit::Str(lit)) => Ok(lit),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{name}` expects {expected}"),
        )),
    }
}

/// A `true` or `false` option.
fn boolean(name: &str, value: &Expr) -> syn::Result<bool> {
    match literal(value) {
        Some(Lit::Bool(lit)) => Ok(lit.value()),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{name}` expects a boolean: `true` or `false`"),
        )),
    }
}

/// `key_prefix`: a string that cannot break the store key `idempotency:{prefix}:{key}`.
fn key_prefix(name: &str, value: &Expr) -> syn::Result<String> {
    let lit = string(name, value, r#"a string, e.g. `key_prefix = "orders"`"#)?;
    let prefix = lit.value();
    let message = if prefix.contains([':', '|']) {
        "`key_prefix` must not contain `:` or `|`: they separate the parts of the store key `idempotency:{key_prefix}:{key}`".to_owned()
    } else if prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "`key_prefix` must not contain whitespace or control characters".to_owned()
    } else {
        return Ok(prefix);
    };
    Err(syn::Error::new(lit.span(), message))
}

/// `header`: a valid HTTP header name, lowercased.
fn header(name: &str, value: &Expr) -> syn::Result<String> {
    let lit = string(
        name,
        value,
        r#"a header name as a string, e.g. `header = "X-Idempotency-Key"`"#,
    )?;
    let header = lit.value();
    if header.is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            r#"`header` must not be empty; the default is "Idempotency-Key""#,
        ));
    }
    match http::HeaderName::from_bytes(header.as_bytes()) {
        Ok(header) => Ok(header.as_str().to_owned()),
        Err(_) => Err(syn::Error::new(
            lit.span(),
            format!(
                "`header` is not a valid HTTP header name: {header:?}; a header name is made of letters, digits and any of !#$%&'*+-.^_`|~ (no spaces), e.g. \"X-Idempotency-Key\""
            ),
        )),
    }
}

/// `fingerprint`: `"json"`, `"canonical"` or `"typed"`.
fn fingerprint_mode(name: &str, value: &Expr) -> syn::Result<FingerprintMode> {
    let lit = string(name, value, r#""json", "canonical" or "typed""#)?;
    match lit.value().as_str() {
        "json" => Ok(FingerprintMode::Json),
        "canonical" => Ok(FingerprintMode::Canonical),
        "typed" => Ok(FingerprintMode::Typed),
        other => {
            let hint = closest(other, ["json", "canonical", "typed"])
                .map(|close| format!("; did you mean \"{close}\"?"))
                .unwrap_or_default();
            Err(syn::Error::new(
                lit.span(),
                format!(
                    "unknown `fingerprint` {other:?}: expected \"json\" (compact JSON in the request's order), \"canonical\" (RFC 8785) or \"typed\" (the body's type, as Jackson writes it){hint}"
                ),
            ))
        }
    }
}

/// `on_conflict`: whether it is `"wait"` (rather than `"reject"`).
fn on_conflict_waits(name: &str, value: &Expr) -> syn::Result<bool> {
    let lit = string(name, value, r#""reject" or "wait""#)?;
    match lit.value().as_str() {
        "reject" => Ok(false),
        "wait" => Ok(true),
        other => {
            let hint = closest(other, ["reject", "wait"])
                .map(|close| format!("; did you mean \"{close}\"?"))
                .unwrap_or_default();
            Err(syn::Error::new(
                lit.span(),
                format!("unknown `on_conflict` {other:?}: expected \"reject\" or \"wait\"{hint}"),
            ))
        }
    }
}

/// `cache_control`: a valid, non-empty header value.
fn cache_control(name: &str, value: &Expr) -> syn::Result<String> {
    let lit = string(
        name,
        value,
        r#"a `Cache-Control` header value as a string, e.g. `cache_control = "max-age=3600"`"#,
    )?;
    let text = lit.value();
    if text.trim().is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            r#"`cache_control` must not be empty; e.g. `cache_control = "max-age=3600"`"#,
        ));
    }
    match http::HeaderValue::from_str(&text) {
        Ok(_)
            if text
                .bytes()
                .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic()) =>
        {
            Ok(text)
        }
        _ => Err(syn::Error::new(
            lit.span(),
            format!(
                "`cache_control` is not a valid header value: {text:?}; it must be printable ASCII, e.g. \"max-age=3600, public\""
            ),
        )),
    }
}

/// `crate`: the path of the runtime crate.
fn crate_path(name: &str, value: &Expr) -> syn::Result<syn::Path> {
    const EXPECTED: &str =
        r#"the path of the runtime crate as a string, e.g. `crate = "idempotent_runtime"`"#;
    let lit = string(name, value, EXPECTED)?;
    lit.parse::<syn::Path>()
        .map_err(|_| syn::Error::new(lit.span(), format!("`{name}` expects {EXPECTED}")))
}

/// A duration string option (`lock_ttl`, `max_wait`).
fn duration_string(name: &str, value: &Expr) -> syn::Result<Millis> {
    match literal(value) {
        Some(Lit::Str(lit)) => parse_duration(name, lit),
        Some(Lit::Int(lit)) if is_unit_suffix(lit.suffix()) => Err(write_as_string(name, lit)),
        _ => Err(syn::Error::new_spanned(
            value,
            format!("`{name}` expects a duration string: {DURATION_EXAMPLES}"),
        )),
    }
}

/// `ttl`: a duration string, or an integer (read in `time_unit`s once both are known).
fn ttl(name: &str, value: &Expr) -> syn::Result<Ttl> {
    match literal(value) {
        Some(Lit::Str(lit)) => parse_duration(name, lit).map(Ttl::Duration),
        Some(Lit::Int(lit)) if lit.suffix().is_empty() => match lit.base10_parse::<u64>() {
            Ok(count) => Ok(Ttl::Count(count, lit.span())),
            Err(_) => Err(too_large(name, lit.span())),
        },
        Some(Lit::Int(lit)) if is_unit_suffix(lit.suffix()) => Err(write_as_string(name, lit)),
        _ => Err(syn::Error::new_spanned(
            value,
            format!(
                r#"`{name}` expects a duration string: {DURATION_EXAMPLES}; or an integer with `time_unit`, e.g. `ttl = 24, time_unit = "HOURS"`"#
            ),
        )),
    }
}

/// Nanoseconds in a second.
const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The units of `time_unit`, named as Java's `TimeUnit`, with their length in nanoseconds.
const TIME_UNITS: &[(&str, u64)] = &[
    ("NANOSECONDS", 1),
    ("MICROSECONDS", 1_000),
    ("MILLISECONDS", 1_000_000),
    ("SECONDS", NANOS_PER_SECOND),
    ("MINUTES", 60 * NANOS_PER_SECOND),
    ("HOURS", 60 * 60 * NANOS_PER_SECOND),
    ("DAYS", 24 * 60 * 60 * NANOS_PER_SECOND),
];

/// `time_unit`: the unit's length in nanoseconds.
fn time_unit(name: &str, value: &Expr) -> syn::Result<u64> {
    let names = TIME_UNITS
        .iter()
        .map(|(unit, _)| format!("{unit:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let lit = string(name, value, &format!("a string, one of {names}"))?;
    let unit = lit.value();
    if let Some(&(_, nanos)) = TIME_UNITS
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(&unit))
    {
        return Ok(nanos);
    }
    let hint = closest(&unit, TIME_UNITS.iter().map(|&(known, _)| known))
        .map(|close| format!("; did you mean \"{close}\"?"))
        .unwrap_or_default();
    Err(syn::Error::new(
        lit.span(),
        format!("unknown `{name}` {unit:?}: expected one of {names}{hint}"),
    ))
}

/// Parses a duration string such as `"1h 30m"`.
fn parse_duration(name: &str, lit: &LitStr) -> syn::Result<Millis> {
    let value = lit.value();
    match humantime::parse_duration(&value) {
        Ok(duration) => to_millis(name, lit.span(), duration.as_nanos()),
        Err(humantime::DurationError::NumberOverflow) => Err(too_large(name, lit.span())),
        Err(humantime::DurationError::Empty) => Err(syn::Error::new(
            lit.span(),
            format!("`{name}` must not be empty; write a duration such as {DURATION_EXAMPLES}"),
        )),
        Err(error) => Err(syn::Error::new(
            lit.span(),
            format!(
                "`{name}` is not a valid duration: {value:?} ({error}); write e.g. {DURATION_EXAMPLES}"
            ),
        )),
    }
}

/// Whole milliseconds of a duration in nanoseconds: not zero, not under 1ms, not too large.
fn to_millis(name: &str, span: Span, nanos: u128) -> syn::Result<Millis> {
    let nanos_per_milli = u128::from(NANOS_PER_SECOND / 1_000);
    if nanos == 0 {
        return Err(syn::Error::new(
            span,
            format!("`{name}` must be greater than zero"),
        ));
    }
    if nanos < nanos_per_milli {
        return Err(syn::Error::new(
            span,
            format!("`{name}` must be at least 1ms"),
        ));
    }
    match u64::try_from(nanos / nanos_per_milli) {
        Ok(millis) if millis <= MAX_MILLIS => Ok(Millis(millis)),
        _ => Err(too_large(name, span)),
    }
}

/// The longest duration accepted: 100 years, far beyond any sensible lifetime and well
/// inside what clocks and Redis `PX` can add to the current time.
const MAX_MILLIS: u64 = 36_500 * 24 * 60 * 60 * 1_000;

/// The error for a duration beyond what can be represented.
fn too_large(name: &str, span: Span) -> syn::Error {
    syn::Error::new(
        span,
        format!("`{name}` is too large: the longest duration is 100 years (\"36500d\")"),
    )
}

/// Whether an integer literal's suffix is a duration unit (`24h`), rather than a type.
fn is_unit_suffix(suffix: &str) -> bool {
    !suffix.is_empty() && humantime::parse_duration(&format!("1{suffix}")).is_ok()
}

/// The error for `ttl = 24h`: durations are strings.
fn write_as_string(name: &str, lit: &syn::LitInt) -> syn::Error {
    syn::Error::new(
        lit.span(),
        format!(
            "`{name}` expects a duration string: write `{name} = \"{}{}\"`",
            lit.base10_digits(),
            lit.suffix()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn ok(args: TokenStream) -> Options {
        match parse(args) {
            Ok(options) => options,
            Err(error) => panic!("unexpected error: {error}"),
        }
    }

    fn errors(args: TokenStream) -> Vec<String> {
        match parse(args) {
            Ok(_) => panic!("expected an error"),
            Err(error) => error.into_iter().map(|error| error.to_string()).collect(),
        }
    }

    fn error(args: TokenStream) -> String {
        let errors = errors(args);
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.into_iter().next().unwrap_or_default()
    }

    #[test]
    fn defaults() {
        let options = ok(quote!());
        assert_eq!(options.key_prefix, "");
        assert_eq!(options.header, "idempotency-key");
        assert_eq!(options.ttl, Millis(3_600_000));
        assert_eq!(options.lock_ttl, Millis(60_000));
        assert!(!options.include_body);
        assert!(options.mandatory);
        assert!(options.fail_open);
        assert_eq!(options.on_conflict, OnConflict::Reject);
        assert_eq!(
            options.krate.to_token_stream().to_string(),
            ":: idempotent_runtime"
        );
    }

    #[test]
    fn every_option() {
        let options = ok(quote!(
            key_prefix = "orders",
            ttl = "1h 30m",
            include_body = true,
            mandatory = false,
            header = "X-Idempotency-Key",
            lock_ttl = "500ms",
            fail_open = false,
            on_conflict = "wait",
            max_wait = "2s",
            crate = "idem",
        ));
        assert_eq!(options.key_prefix, "orders");
        assert_eq!(options.header, "x-idempotency-key");
        assert_eq!(options.ttl, Millis(5_400_000));
        assert_eq!(options.lock_ttl, Millis(500));
        assert!(options.include_body);
        assert!(!options.mandatory);
        assert!(!options.fail_open);
        assert_eq!(options.on_conflict, OnConflict::Wait(Millis(2_000)));
        assert_eq!(options.krate.to_token_stream().to_string(), "idem");
    }

    #[test]
    fn wait_defaults_to_ten_seconds() {
        let options = ok(quote!(on_conflict = "wait"));
        assert_eq!(options.on_conflict, OnConflict::Wait(Millis(10_000)));
        assert_eq!(
            ok(quote!(on_conflict = "reject")).on_conflict,
            OnConflict::Reject
        );
    }

    #[test]
    fn durations() {
        for (written, millis) in [
            ("500ms", 500),
            ("90s", 90_000),
            ("30m", 1_800_000),
            ("24h", 86_400_000),
            ("7d", 604_800_000),
            ("1h 30m", 5_400_000),
            ("1500us", 1),
        ] {
            assert_eq!(ok(quote!(ttl = #written)).ttl, Millis(millis), "{written}");
        }
    }

    #[test]
    fn integer_ttl_with_time_unit() {
        assert_eq!(
            ok(quote!(ttl = 24, time_unit = "HOURS")).ttl,
            Millis(86_400_000)
        );
        assert_eq!(
            ok(quote!(ttl = 2, time_unit = "days")).ttl,
            Millis(172_800_000)
        );
        assert_eq!(
            ok(quote!(time_unit = "Minutes", ttl = 3)).ttl,
            Millis(180_000)
        );
        assert_eq!(
            ok(quote!(ttl = 5000, time_unit = "MICROSECONDS")).ttl,
            Millis(5)
        );
        assert_eq!(
            ok(quote!(ttl = 1_000_000, time_unit = "NANOSECONDS")).ttl,
            Millis(1)
        );
        assert_eq!(
            ok(quote!(ttl = 250, time_unit = "MILLISECONDS")).ttl,
            Millis(250)
        );
        // Without `time_unit`, an integer is in seconds, as in Spring.
        assert_eq!(ok(quote!(ttl = 90)).ttl, Millis(90_000));
    }

    #[test]
    fn unknown_options_get_hints() {
        assert_eq!(
            error(quote!(keyPrefix = "orders")),
            "unknown option `keyPrefix`; did you mean `key_prefix`? options are written in snake_case"
        );
        for (camel, snake) in [
            ("timeUnit", "time_unit"),
            ("includeBody", "include_body"),
            ("lockTtl", "lock_ttl"),
            ("failOpen", "fail_open"),
            ("onConflict", "on_conflict"),
            ("maxWait", "max_wait"),
        ] {
            let camel = Ident::new(camel, Span::call_site());
            assert!(
                error(quote!(#camel = 1)).contains(&format!("did you mean `{snake}`?")),
                "{camel}"
            );
        }
        assert_eq!(
            error(quote!(key_prefx = "orders")),
            "unknown option `key_prefx`; did you mean `key_prefix`?"
        );
        assert!(error(quote!(tll = "1h")).contains("did you mean `ttl`?"));
        assert!(error(quote!(prefix = "a")).contains("did you mean `key_prefix`?"));
        assert!(error(quote!(headers = "a")).contains("did you mean `header`?"));
        assert!(error(quote!(mandatroy = true)).contains("did you mean `mandatory`?"));
        assert!(error(quote!(colour = "red")).starts_with(
            "unknown option `colour`; expected one of `key_prefix`, `ttl`, `time_unit`,"
        ));
        // A keyword is an unknown option too.
        assert!(error(quote!(type = "a")).starts_with("unknown option `type`;"));
    }

    #[test]
    fn not_an_option_lists_the_options() {
        let message = error(quote!("orders"));
        assert!(
            message.starts_with("expected one of: `key_prefix`, `ttl`,"),
            "{message}"
        );
        assert!(message.ends_with("`crate`"), "{message}");
    }

    #[test]
    fn duplicates() {
        assert_eq!(
            error(quote!(ttl = "1h", ttl = "2h")),
            "`ttl` specified more than once"
        );
        assert_eq!(
            error(quote!(crate = "a", crate = "b")),
            "`crate` specified more than once"
        );
    }

    #[test]
    fn missing_equals() {
        assert_eq!(
            error(quote!(mandatory)),
            "expected `=` after `mandatory`, as in `mandatory = ...`"
        );
    }

    #[test]
    fn wrong_literal_types() {
        assert_eq!(
            error(quote!(include_body = "yes")),
            "`include_body` expects a boolean: `true` or `false`"
        );
        assert_eq!(
            error(quote!(mandatory = 1)),
            "`mandatory` expects a boolean: `true` or `false`"
        );
        assert!(error(quote!(key_prefix = orders)).starts_with("`key_prefix` expects a string"));
        assert!(error(quote!(header = 5)).starts_with("`header` expects a header name"));
        assert!(error(quote!(ttl = 1.5)).starts_with("`ttl` expects a duration string"));
        assert!(error(quote!(ttl = -5)).starts_with("`ttl` expects a duration string"));
        assert!(error(quote!(lock_ttl = 60)).starts_with("`lock_ttl` expects a duration string"));
        assert!(error(quote!(on_conflict = wait)).starts_with("`on_conflict` expects"));
        assert!(
            error(quote!(ttl = 24, time_unit = TimeUnit.HOURS))
                .starts_with("`time_unit` expects a string, one of \"NANOSECONDS\"")
        );
        assert!(error(quote!(crate = idem)).starts_with("`crate` expects"));
    }

    #[test]
    fn unquoted_durations_get_a_hint() {
        assert_eq!(
            error(quote!(ttl = 24h)),
            "`ttl` expects a duration string: write `ttl = \"24h\"`"
        );
        assert_eq!(
            error(quote!(lock_ttl = 500ms)),
            "`lock_ttl` expects a duration string: write `lock_ttl = \"500ms\"`"
        );
    }

    #[test]
    fn bad_durations() {
        assert!(error(quote!(ttl = "forever")).starts_with("`ttl` is not a valid duration"));
        assert!(error(quote!(ttl = "24")).starts_with("`ttl` is not a valid duration"));
        assert!(
            error(quote!(lock_ttl = "1 fortnight"))
                .starts_with("`lock_ttl` is not a valid duration")
        );
        assert!(error(quote!(ttl = "")).starts_with("`ttl` must not be empty"));
        assert_eq!(error(quote!(ttl = "0s")), "`ttl` must be greater than zero");
        assert_eq!(error(quote!(ttl = 0)), "`ttl` must be greater than zero");
        assert_eq!(
            error(quote!(max_wait = "0ms", on_conflict = "wait")),
            "`max_wait` must be greater than zero"
        );
        assert_eq!(
            error(quote!(lock_ttl = "999us")),
            "`lock_ttl` must be at least 1ms"
        );
        assert_eq!(
            error(quote!(ttl = 999, time_unit = "MICROSECONDS")),
            "`ttl` must be at least 1ms"
        );
    }

    #[test]
    fn overflowing_durations() {
        let too_large = "`ttl` is too large: the longest duration is 100 years (\"36500d\")";
        assert_eq!(error(quote!(ttl = "100000000000000000000000s")), too_large);
        assert_eq!(error(quote!(ttl = "584942417355y")), too_large);
        assert_eq!(
            error(quote!(ttl = 18446744073709551615, time_unit = "DAYS")),
            too_large
        );
        assert_eq!(error(quote!(ttl = 100000000000000000000000)), too_large);
        assert_eq!(error(quote!(ttl = "36501d")), too_large);
        assert_eq!(ok(quote!(ttl = "36500d")).ttl, Millis(MAX_MILLIS));
    }

    #[test]
    fn time_unit_rules() {
        assert_eq!(
            error(quote!(time_unit = "HOURS")),
            "`time_unit` needs an integer `ttl`, e.g. `ttl = 24, time_unit = \"HOURS\"`"
        );
        assert!(
            error(quote!(ttl = "24h", time_unit = "HOURS"))
                .starts_with("`time_unit` applies to an integer `ttl` only")
        );
        assert_eq!(
            error(quote!(ttl = 24, time_unit = "HOUR")),
            "unknown `time_unit` \"HOUR\": expected one of \"NANOSECONDS\", \"MICROSECONDS\", \"MILLISECONDS\", \"SECONDS\", \"MINUTES\", \"HOURS\", \"DAYS\"; did you mean \"HOURS\"?"
        );
        assert!(error(quote!(ttl = 24, time_unit = "FORTNIGHTS")).ends_with("\"DAYS\""));
    }

    #[test]
    fn headers() {
        assert_eq!(
            ok(quote!(header = "Idempotency-Key")).header,
            "idempotency-key"
        );
        assert!(error(quote!(header = "")).starts_with("`header` must not be empty"));
        assert!(
            error(quote!(header = "Idempotency Key"))
                .starts_with("`header` is not a valid HTTP header name")
        );
        assert!(
            error(quote!(header = "key:")).starts_with("`header` is not a valid HTTP header name")
        );
    }

    #[test]
    fn key_prefixes() {
        assert_eq!(
            ok(quote!(key_prefix = "orders-v2.eu_west")).key_prefix,
            "orders-v2.eu_west"
        );
        assert!(
            error(quote!(key_prefix = "orders:v2"))
                .starts_with("`key_prefix` must not contain `:` or `|`")
        );
        assert!(
            error(quote!(key_prefix = "a|b"))
                .starts_with("`key_prefix` must not contain `:` or `|`")
        );
        assert_eq!(
            error(quote!(key_prefix = "my orders")),
            "`key_prefix` must not contain whitespace or control characters"
        );
        assert_eq!(
            error(quote!(key_prefix = "a\tb")),
            "`key_prefix` must not contain whitespace or control characters"
        );
    }

    #[test]
    fn conflicts() {
        assert_eq!(
            error(quote!(max_wait = "5s")),
            "`max_wait` only applies with `on_conflict = \"wait\"`"
        );
        assert_eq!(
            error(quote!(max_wait = "5s", on_conflict = "reject")),
            "`max_wait` only applies with `on_conflict = \"wait\"`"
        );
        assert_eq!(
            error(quote!(on_conflict = "wiat")),
            "unknown `on_conflict` \"wiat\": expected \"reject\" or \"wait\"; did you mean \"wait\"?"
        );
    }

    #[test]
    fn crate_paths() {
        assert_eq!(
            ok(quote!(crate = "::my::idem"))
                .krate
                .to_token_stream()
                .to_string(),
            ":: my :: idem"
        );
        assert!(error(quote!(crate = "not a path")).starts_with("`crate` expects"));
    }

    #[test]
    fn all_errors_at_once() {
        let errors = errors(quote!(
            keyPrefix = "a",
            ttl = "0s",
            include_body = "yes",
            header = "bad header",
            ttl = "1h",
            max_wait = "1s",
        ));
        assert_eq!(errors.len(), 6, "{errors:?}");
    }
}

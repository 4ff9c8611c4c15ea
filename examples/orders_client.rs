//! A client of the orders example: `N` logical `POST /orders`, sent concurrently through
//! `idempotent-client`, each with its own key and retried with it.
//!
//! ```text
//! cargo run --example orders                  # the server, in another terminal
//! cargo run --example orders_client -- --url http://127.0.0.1:3000 --orders 20 [--amount 100] [--base-delay-ms 1000]
//! ```
//!
//! Prints one JSON line per order, in the order they finish:
//! `{"key":"…","status":201,"id":7,"attempts":1}` (`status` is `null` when the last attempt
//! got no response, `id` is `null` when there is no order). The exit code is 0 when every
//! order got a 201 with an id, 1 otherwise, and 2 for flags it cannot use.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use futures_util::StreamExt;
use idempotent_client::{RequestBuilderExt, RetryPolicy};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const USAGE: &str = "usage: orders_client --url URL --orders N [--amount A] [--base-delay-ms MS]";

/// How many orders are in flight at once, so that a large `N` does not open `N` sockets.
const IN_FLIGHT: usize = 64;

/// The command line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Args {
    /// The server, e.g. `http://127.0.0.1:3000`; orders go to `<url>/orders`.
    pub(crate) url: reqwest::Url,
    /// How many logical orders to send.
    pub(crate) orders: usize,
    /// The `amount` of each order.
    pub(crate) amount: i64,
    /// The retry policy's `base`, when given.
    pub(crate) base_delay: Option<Duration>,
}

/// Read the flags (`--flag value` or `--flag=value`).
pub(crate) fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let (mut url, mut orders, mut amount, mut base_delay) = (None, None, None, None);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let slot = match flag.as_str() {
            "--url" => &mut url,
            "--orders" => &mut orders,
            "--amount" => &mut amount,
            "--base-delay-ms" => &mut base_delay,
            other => return Err(format!("unknown flag `{other}`")),
        };
        if slot.is_some() {
            return Err(format!("`{flag}` given more than once"));
        }
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("`{flag}` needs a value")),
        };
        *slot = Some(value);
    }

    let url = url.ok_or("`--url` is required")?;
    let url = reqwest::Url::parse(&url)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .ok_or_else(|| format!("`--url` must be an http:// or https:// URL, not `{url}`"))?;
    let orders = orders.ok_or("`--orders` is required")?;
    let orders = orders
        .parse::<usize>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("`--orders` must be a positive integer, not `{orders}`"))?;
    let amount = match amount {
        None => 100,
        Some(amount) => amount
            .parse::<i64>()
            .map_err(|_| format!("`--amount` must be an integer, not `{amount}`"))?,
    };
    let base_delay = match base_delay {
        None => None,
        Some(ms) => Some(Duration::from_millis(ms.parse::<u64>().map_err(|_| {
            format!("`--base-delay-ms` must be a number of milliseconds, not `{ms}`")
        })?)),
    };
    Ok(Args {
        url,
        orders,
        amount,
        base_delay,
    })
}

/// What is printed for one order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Line {
    pub(crate) key: String,
    pub(crate) status: Option<u16>,
    pub(crate) id: Option<Value>,
    pub(crate) attempts: u32,
}

impl Line {
    /// Whether this order was created: a 201 with an id.
    pub(crate) fn created(&self) -> bool {
        self.status == Some(201) && self.id.as_ref().is_some_and(|id| !id.is_null())
    }
}

/// Send one logical order; its line, and what went wrong, if anything did.
async fn send_order(
    http: &reqwest::Client,
    url: &reqwest::Url,
    amount: i64,
    policy: RetryPolicy,
) -> (Line, Option<String>) {
    let sent = http
        .post(url.clone())
        .json(&json!({ "amount": amount }))
        .idempotent()
        .policy(policy)
        .send()
        .await;
    match sent {
        Ok(outcome) => {
            let mut line = Line {
                key: outcome.key().to_owned(),
                status: Some(outcome.status().as_u16()),
                id: None,
                attempts: outcome.attempts(),
            };
            match outcome.into_response().json::<Value>().await {
                Ok(order) => {
                    line.id = order.get("id").cloned();
                    (line, None)
                }
                Err(e) => {
                    let why = format!("order with key {:?}: reading it: {e}", line.key);
                    (line, Some(why))
                }
            }
        }
        Err(error) => {
            let line = Line {
                key: error.key().to_owned(),
                status: error.status().map(|status| status.as_u16()),
                id: None,
                attempts: error.attempts(),
            };
            // The error names the key and the attempts.
            (line, Some(format!("order: {error}")))
        }
    }
}

/// Send the orders of `args`, print their lines to `out` and what went wrong to `err`.
/// `SUCCESS` when every order was created, else 1.
pub(crate) async fn run(args: &Args, out: &mut impl Write, err: &mut impl Write) -> ExitCode {
    let http = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            let _ = writeln!(err, "orders_client: building the HTTP client: {e}");
            return ExitCode::from(1);
        }
    };
    let mut policy = RetryPolicy::new();
    if let Some(base) = args.base_delay {
        policy = policy.base(base);
    }
    let orders = format!("{}/orders", args.url.as_str().trim_end_matches('/'));
    let orders = match reqwest::Url::parse(&orders) {
        Ok(url) => url,
        Err(e) => {
            let _ = writeln!(err, "orders_client: {e}");
            return ExitCode::from(1);
        }
    };

    let mut sent = futures_util::stream::iter(0..args.orders)
        .map(|_| send_order(&http, &orders, args.amount, policy.clone()))
        .buffer_unordered(IN_FLIGHT);
    let mut all_created = true;
    while let Some((line, problem)) = sent.next().await {
        all_created &= line.created();
        if let Some(problem) = problem {
            let _ = writeln!(err, "{problem}");
        }
        let printed = serde_json::to_string(&line)
            .map_err(std::io::Error::other)
            .and_then(|json| writeln!(out, "{json}"));
        if let Err(e) = printed {
            let _ = writeln!(err, "orders_client: writing the output: {e}");
            return ExitCode::from(1);
        }
    }
    if all_created {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The whole program, with its arguments (without the program name) and its outputs.
pub(crate) async fn main_with(
    args: impl IntoIterator<Item = String>,
    out: &mut impl Write,
    err: &mut impl Write,
) -> ExitCode {
    let args: Vec<String> = args.into_iter().collect();
    if args.iter().any(|arg| arg == "--help" || arg == "-h") {
        let _ = writeln!(out, "{USAGE}");
        return ExitCode::SUCCESS;
    }
    match parse_args(args) {
        Ok(args) => run(&args, out, err).await,
        Err(why) => {
            let _ = writeln!(err, "orders_client: {why}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    main_with(
        std::env::args().skip(1),
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
    .await
}

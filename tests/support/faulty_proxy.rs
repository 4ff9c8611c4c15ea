//! A fault-injecting HTTP/1.1 proxy on a loopback port, in front of a real server.
//!
//! For every request a plan decides what happens to it (forward it, answer it with a status
//! of the proxy's own, reset the connection before forwarding, or forward it and drop the
//! server's answer), and the proxy logs what it saw and what the server answered. It speaks
//! one request per connection and answers with `connection: close`, so a client never reuses
//! a connection and every attempt of a client is one request here.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// What the proxy does with one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Forward it and relay the answer.
    Forward,
    /// Forward it, read the server's whole answer, then close the client's connection
    /// without a byte of it: the server did the work, the client sees a transport error.
    DropResponse,
    /// Answer this status without forwarding, with this `Retry-After` if there is one.
    Answer(u16, Option<String>),
    /// Reset the connection (TCP RST) without forwarding.
    Reset,
}

impl Fault {
    /// 503 from the proxy, without `Retry-After`.
    pub fn unavailable() -> Fault {
        Fault::Answer(503, None)
    }

    /// 503 from the proxy with `Retry-After: <value>`.
    pub fn retry_after(value: impl Into<String>) -> Fault {
        Fault::Answer(503, Some(value.into()))
    }
}

/// A request, as the plan sees it.
#[derive(Debug)]
pub struct Incoming<'a> {
    /// Its `Idempotency-Key`, if it has one.
    pub key: Option<&'a str>,
    /// How many requests with this key (or without a key) came before it.
    pub nth: usize,
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
}

/// A request the proxy handled.
#[derive(Debug, Clone)]
pub struct Seen {
    pub key: Option<String>,
    pub nth: usize,
    pub path: String,
    pub body: Vec<u8>,
    /// When the whole request had arrived (tokio's clock, so a paused clock works).
    pub at: Instant,
    pub fault: Fault,
    /// What the server answered, when it was asked.
    pub upstream: Option<Answer>,
}

/// A server's answer, as the proxy read it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

type Plan = dyn Fn(&Incoming<'_>) -> Fault + Send + Sync;

struct State {
    upstream: SocketAddr,
    plan: Box<Plan>,
    counts: Mutex<HashMap<Option<String>, usize>>,
    seen: Mutex<Vec<Seen>>,
}

/// The proxy, on `127.0.0.1:<free port>` until dropped.
pub struct FaultyProxy {
    pub addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// A proxy in front of `upstream` that does to each request what `plan` says.
    pub async fn start(
        upstream: SocketAddr,
        plan: impl Fn(&Incoming<'_>) -> Fault + Send + Sync + 'static,
    ) -> FaultyProxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(State {
            upstream,
            plan: Box::new(plan),
            counts: Mutex::default(),
            seen: Mutex::default(),
        });
        let serving = Arc::clone(&state);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&serving);
                tokio::spawn(async move {
                    // A client that hangs up midway is the client's business.
                    let _ = handle(&state, client).await;
                });
            }
        });
        FaultyProxy { addr, state, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Every request handled so far, in the order they arrived.
    pub fn seen(&self) -> Vec<Seen> {
        let mut seen = self.state.seen.lock().expect("log").clone();
        seen.sort_by_key(|s| s.at);
        seen
    }

    /// The requests with this key, in the order they arrived.
    pub fn seen_for(&self, key: &str) -> Vec<Seen> {
        let mut seen: Vec<Seen> = self
            .seen()
            .into_iter()
            .filter(|s| s.key.as_deref() == Some(key))
            .collect();
        seen.sort_by_key(|s| s.nth);
        seen
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A request or response head and its body.
struct Message {
    /// The first line, without its CRLF.
    start: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The head with `connection: close` in place of any connection header, and the body.
    fn to_bytes_closing(&self) -> Vec<u8> {
        let mut out = format!("{}\r\n", self.start).into_bytes();
        for (name, value) in &self.headers {
            if !name.eq_ignore_ascii_case("connection") && !name.eq_ignore_ascii_case("keep-alive")
            {
                out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
        }
        out.extend_from_slice(b"connection: close\r\n\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Read a head (up to its blank line) from `stream`, plus whatever of the body came with it.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<(Message, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let rest = buf[end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Some((
        Message {
            start,
            headers,
            body: Vec::new(),
        },
        rest,
    )))
}

/// Read one request: its head, then `content-length` bytes of body.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Message>> {
    let Some((mut request, mut body)) = read_head(stream).await? else {
        return Ok(None);
    };
    assert!(
        request.header("transfer-encoding").is_none(),
        "the proxy reads bodies with a content-length only"
    );
    let length: usize = request
        .header("content-length")
        .map_or(0, |v| v.parse().expect("a content-length"));
    let mut chunk = [0u8; 4096];
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&chunk[..n]);
    }
    request.body = body;
    Ok(Some(request))
}

/// Send `request` to the server and read its whole answer (it closes after it).
async fn exchange(upstream: SocketAddr, request: &Message) -> std::io::Result<Message> {
    let mut server = TcpStream::connect(upstream).await?;
    server.write_all(&request.to_bytes_closing()).await?;
    let mut raw = Vec::new();
    server.read_to_end(&mut raw).await?;
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let start = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut answer = Message {
        start,
        headers,
        body: raw[end + 4..].to_vec(),
    };
    if answer
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        answer.body = dechunk(&answer.body);
        answer
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("transfer-encoding"));
        answer
            .headers
            .push(("content-length".to_owned(), answer.body.len().to_string()));
    }
    Ok(answer)
}

/// A chunked body, decoded.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return body;
        };
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .expect("a chunk size");
        if size == 0 {
            return body;
        }
        let start = eol + 2;
        body.extend_from_slice(&raw[start..start + size]);
        raw = &raw[start + size + 2..];
    }
}

fn status_of(start: &str) -> u16 {
    start
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line")
}

async fn handle(state: &State, mut client: TcpStream) -> std::io::Result<()> {
    let Some(request) = read_request(&mut client).await? else {
        return Ok(());
    };
    let at = Instant::now();
    let key = request.header("idempotency-key").map(str::to_owned);
    let mut parts = request.start.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    let nth = {
        let mut counts = state.counts.lock().expect("counts");
        let count = counts.entry(key.clone()).or_default();
        *count += 1;
        *count - 1
    };
    let fault = (state.plan)(&Incoming {
        key: key.as_deref(),
        nth,
        method: &method,
        path: &path,
        body: &request.body,
    });
    let mut seen = Seen {
        key,
        nth,
        path,
        body: request.body.clone(),
        at,
        fault: fault.clone(),
        upstream: None,
    };
    match fault {
        Fault::Forward | Fault::DropResponse => {
            let answer = exchange(state.upstream, &request).await?;
            seen.upstream = Some(Answer {
                status: status_of(&answer.start),
                body: answer.body.clone(),
            });
            state.seen.lock().expect("log").push(seen);
            if fault == Fault::Forward {
                client.write_all(&answer.to_bytes_closing()).await?;
                client.shutdown().await?;
            }
            // DropResponse: the connection closes here, unanswered.
        }
        Fault::Answer(status, retry_after) => {
            state.seen.lock().expect("log").push(seen);
            let body = format!("the proxy answers {status}");
            let mut head = format!(
                "HTTP/1.1 {status} Proxy\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            if let Some(after) = retry_after {
                head.push_str(&format!("retry-after: {after}\r\n"));
            }
            head.push_str("\r\n");
            head.push_str(&body);
            client.write_all(head.as_bytes()).await?;
            client.shutdown().await?;
        }
        Fault::Reset => {
            state.seen.lock().expect("log").push(seen);
            client.set_zero_linger()?;
            drop(client);
        }
    }
    Ok(())
}

//! Serving a router on a loopback port and talking to it over real HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use tokio::sync::{Notify, Semaphore};

/// A router served on `127.0.0.1:<free port>` until dropped.
pub struct Server {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(app: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Server { addr, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `GET url` as JSON (e.g. the example's `/stats`).
pub async fn get_json(url: &str) -> serde_json::Value {
    client()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// A client that never pools across tests and fails fast.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("build an HTTP client")
}

/// Counts handler runs and lets a test hold handlers at a gate until it opens it.
#[derive(Clone)]
pub struct Probe {
    runs: Arc<AtomicUsize>,
    started: Arc<Notify>,
    gate: Arc<Semaphore>,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            runs: Arc::default(),
            started: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Probe {
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }

    /// Called by a handler when its body starts.
    pub fn enter(&self) -> usize {
        self.runs.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Called by a handler that must wait for the test: signals that it started, then
    /// waits until the test calls [`Probe::open`].
    pub async fn hold(&self) {
        self.started.notify_one();
        let permit = self.gate.acquire().await.expect("the gate is never closed");
        permit.forget();
    }

    /// Wait until a held handler has started.
    pub async fn wait_started(&self) {
        tokio::time::timeout(Duration::from_secs(10), self.started.notified())
            .await
            .expect("a handler should have started");
    }

    /// Let `n` held handlers go on.
    pub fn open(&self, n: usize) {
        self.gate.add_permits(n);
    }
}

/// Wait for a condition that the system under test makes true by itself (a record landing in
/// a store after the response, a server coming back), checking it every few milliseconds.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {within:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The `code` of a problem+json response, checking its shape.
pub async fn problem_code(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json"),
        "problem responses are application/problem+json"
    );
    let body: serde_json::Value = response.json().await.expect("a JSON problem");
    assert_eq!(body["status"].as_u64(), Some(u64::from(status)));
    assert!(body["type"].is_string() && body["title"].is_string());
    (
        status,
        body["code"].as_str().unwrap_or_default().to_owned(),
        body["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A store that forwards everything to `S` but cannot renew leases (the trait's default): a
/// running handler's lock expires after `lock_ttl`, as when its owner has died.
pub struct WithoutRenewal<S>(pub S);

#[idempotent_runtime::async_trait]
impl<S: idempotent_runtime::store::IdempotencyStore> idempotent_runtime::store::IdempotencyStore
    for WithoutRenewal<S>
{
    async fn claim(
        &self,
        key: &idempotent_runtime::store::StoreKey,
        claim: &idempotent_runtime::store::Claim,
    ) -> Result<idempotent_runtime::store::ClaimOutcome, idempotent_runtime::store::StoreError>
    {
        self.0.claim(key, claim).await
    }

    async fn complete(
        &self,
        key: &idempotent_runtime::store::StoreKey,
        token: &idempotent_runtime::store::Token,
        response: idempotent_runtime::store::StoredResponse,
        ttl: Duration,
    ) -> Result<idempotent_runtime::store::Fence, idempotent_runtime::store::StoreError> {
        self.0.complete(key, token, response, ttl).await
    }

    async fn release(
        &self,
        key: &idempotent_runtime::store::StoreKey,
        token: &idempotent_runtime::store::Token,
    ) -> Result<idempotent_runtime::store::Fence, idempotent_runtime::store::StoreError> {
        self.0.release(key, token).await
    }
}

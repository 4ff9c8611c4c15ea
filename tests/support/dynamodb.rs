//! A real DynamoDB API for tests: moto's server mode (`moto_server`, a Python
//! implementation of DynamoDB's API with condition expressions and `ALL_OLD` on condition
//! failures) on a free loopback port, which can be killed, paused and restarted on the same
//! port; SDK clients for it, one of which counts the requests it sends; fresh tables.
//!
//! `scripts/test.sh` installs `moto[server]` into a virtualenv of its own and says where
//! with `MOTO_SERVER`; without it, the tests look in that virtualenv's usual place.
//!
//! Starting moto takes a couple of seconds, so the tests of one file share one server
//! ([`shared`]), each with tables of its own; the tests that take a server down start a
//! private one ([`MotoServer::start`]). Every server is watched by a `sh` process reading
//! a pipe from the test process: when the test process ends, however it ends, the pipe
//! closes and the watcher kills the server, so that the shared one does not outlive it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents,
};
use aws_sdk_dynamodb::error::BoxError;
use idempotent_runtime::store::dynamodb::{DynamoOptions, DynamoStore};

use super::redis::{free_port, signal};

/// How long a server may take to answer after it is spawned.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// The pause between two readiness probes.
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// The virtualenv `scripts/test.sh` installs moto into.
fn default_venv() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("idempotent-tests").join("moto"))
}

/// The `moto_server` executable: `MOTO_SERVER`, else the one in `scripts/test.sh`'s
/// virtualenv.
fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("MOTO_SERVER") {
        return PathBuf::from(path);
    }
    let venv = default_venv();
    match venv.as_ref().map(|v| v.join("bin").join("moto_server")) {
        Some(path) if path.exists() => path,
        _ => panic!(
            "moto_server not found: these tests need moto's server mode. Run `bash scripts/test.sh`, \
             which installs moto[server] into {} (or set MOTO_SERVER to a moto_server executable)",
            venv.map_or_else(
                || "~/.cache/idempotent-tests/moto".to_owned(),
                |v| v.display().to_string()
            )
        ),
    }
}

/// moto's `moto_server`, run by the Python of its virtualenv, with requests served one at
/// a time. moto's own server serves each request on a thread of its own, and its DynamoDB
/// checks a write's condition and then writes without a lock, so that two concurrent
/// conditional writes of one item can both succeed there (seen under load), where DynamoDB
/// applies them one after the other. Serving one request at a time gives the tests
/// DynamoDB's guarantee; moto answers with `Connection: close`, so no client can hold the
/// server up between requests.
const SERVE_ONE_AT_A_TIME: &str = "import sys, moto.server as s
serve = s.run_simple
s.run_simple = lambda *a, **k: serve(*a, **{**k, 'threaded': False})
s.main(sys.argv[1:])";

fn log_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("idempotent-moto-{}-{port}.log", std::process::id()))
}

/// One `moto_server` process on `127.0.0.1`.
pub struct MotoServer {
    port: u16,
    child: Option<Child>,
    /// The `sh` that kills the server when its stdin (a pipe from this process) closes.
    watcher: Option<Child>,
}

impl MotoServer {
    /// Start a server on a free port and wait until it answers.
    pub fn start() -> Self {
        let mut last = String::new();
        for _ in 0..3 {
            let mut server = Self {
                port: free_port(),
                child: None,
                watcher: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(why) => last = why,
            }
        }
        panic!("moto_server did not start: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = std::fs::File::create(log_path(self.port))
            .map_err(|e| format!("cannot create {}: {e}", log_path(self.port).display()))?;
        let err_log = log
            .try_clone()
            .map_err(|e| format!("cannot share the log file: {e}"))?;
        let program = moto_server();
        let python = program.with_file_name("python3");
        let mut child = Command::new(&python)
            .args(["-c", SERVE_ONE_AT_A_TIME, "-H", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}), the interpreter of {}: run `bash scripts/test.sh`, \
                     which installs moto[server] into a virtualenv",
                    python.display(),
                    program.display()
                )
            });
        #[expect(
            clippy::zombie_processes,
            reason = "kept in `self.watcher` and waited for by `kill`, or waited for below when the server does not start"
        )]
        let mut watcher = Command::new("sh")
            .args([
                "-c",
                "read _; kill -9 \"$0\" 2>/dev/null",
                &child.id().to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh to watch moto_server: {e}"));
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let _ = watcher.kill();
                let _ = watcher.wait();
                return Err(format!("exited with {status}; log:\n{}", self.log()));
            }
            if self.answers() {
                self.child = Some(child);
                self.watcher = Some(watcher);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let _ = watcher.kill();
                let _ = watcher.wait();
                return Err(format!(
                    "not ready within {READY_WITHIN:?}; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(PROBE_EVERY);
        }
    }

    /// Whether a moto server answers on our port (its own API, which DynamoDB lacks).
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let request = format!(
            "GET /moto-api/data.json HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(log_path(self.port)).unwrap_or_default()
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("moto_server on port {} is not running", self.port))
    }

    /// An SDK client for this server: plain HTTP, a fixed region and test credentials.
    pub fn client(&self) -> aws_sdk_dynamodb::Client {
        Self::client_for(&self.endpoint())
    }

    /// An SDK client for the server at `endpoint` (see [`client`](Self::client)).
    pub fn client_for(endpoint: &str) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(config(endpoint).build())
    }

    /// A client that also records the operation of every request it sends.
    pub fn counting_client(&self) -> (aws_sdk_dynamodb::Client, Requests) {
        let requests = Requests::default();
        let config = config(&self.endpoint())
            .interceptor(requests.clone())
            .build();
        (aws_sdk_dynamodb::Client::from_conf(config), requests)
    }

    /// Kill the server (SIGKILL) and wait for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut watcher) = self.watcher.take() {
            let _ = watcher.kill();
            let _ = watcher.wait();
        }
    }

    /// Freeze the server (SIGSTOP): connections are accepted by the kernel, nothing is
    /// answered.
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Thaw a paused server (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    /// Kill the server if it runs, then start a fresh one (with no tables) on the same port.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(why) = self.spawn() {
            panic!("moto_server did not restart on port {}: {why}", self.port);
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(log_path(self.port));
    }
}

fn config(endpoint: &str) -> aws_sdk_dynamodb::config::Builder {
    aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
}

/// The server shared by the tests of this test binary. It is never dropped: its watcher
/// kills it when the test process exits.
pub fn shared() -> &'static MotoServer {
    static SHARED: OnceLock<MotoServer> = OnceLock::new();
    SHARED.get_or_init(MotoServer::start)
}

/// A table name no other test of this process uses.
pub fn table_name(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "idempotency-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store timeout for tests that are not about the timeout: moto answers in milliseconds,
/// but on a loaded machine a request (a 400 KB one above all) can take longer than the
/// default 250 ms.
pub const PATIENT: Duration = Duration::from_secs(10);

/// A store in a fresh table (made with [`DynamoStore::create_table`]), over `client`, with
/// the [`PATIENT`] timeout.
pub async fn store_in_fresh_table(client: aws_sdk_dynamodb::Client, what: &str) -> DynamoStore {
    store_in_fresh_table_with(client, what, DynamoOptions::default().timeout(PATIENT)).await
}

/// A store in a fresh table, over `client`, with `options`.
pub async fn store_in_fresh_table_with(
    client: aws_sdk_dynamodb::Client,
    what: &str,
    options: DynamoOptions,
) -> DynamoStore {
    let store = DynamoStore::with_options(client, table_name(what), options)
        .unwrap_or_else(|e| panic!("a store: {e}"));
    let created = store
        .create_table()
        .await
        .unwrap_or_else(|e| panic!("create table {}: {e}", store.table()));
    assert!(created, "the table {} is new", store.table());
    store
}

/// The operations of the requests a client sent (`PutItem`, `DeleteItem`, ...), one entry
/// per request on the wire, retries included, as an SDK interceptor sees them just before
/// they are transmitted.
#[derive(Debug, Clone, Default)]
pub struct Requests(Arc<Mutex<Vec<String>>>);

impl Requests {
    /// Forget what was recorded.
    pub fn clear(&self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// What was recorded since the last [`clear`](Self::clear) (or [`take`](Self::take)),
    /// then forget it.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Intercept for Requests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // `X-Amz-Target: DynamoDB_20120810.PutItem`
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .unwrap_or("?");
        let operation = target.rsplit('.').next().unwrap_or(target).to_owned();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(operation);
        Ok(())
    }
}

/// Run `work` to completion on a runtime of its own, on a thread of its own: for reading a
/// table from synchronous code inside an async test. Whatever `work` needs (a client
/// included) is made inside it, on that runtime.
pub fn on_own_runtime<F, Fut, T>(work: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T>,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a runtime: {e}"))
            .block_on(work())
    })
    .join()
    .unwrap_or_else(|_| panic!("the reading thread panicked"))
}

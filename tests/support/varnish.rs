//! A real Varnish Cache (`varnishd`) in front of an origin, playing the CDN of a keyed-read
//! flow: it keys its cache on the idempotency key, keeps a copy for a short TTL, and
//! revalidates a stale copy with `If-None-Match`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis::{free_port, fresh_dir, signal};

/// How long `varnishd` may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// One `varnishd -F` process on `127.0.0.1`, stopped on drop.
pub struct Varnish {
    port: u16,
    dir: PathBuf,
    child: Child,
}

/// The cache of the keyed-read flow: keyed `GET`s are looked up by URL and idempotency key,
/// kept for `ttl` seconds (the origin's `max-age` is an hour; a short TTL makes the copy stale
/// within the test) and then for an hour more in which Varnish revalidates them with a
/// conditional request instead of fetching them again.
fn vcl(origin: SocketAddr, ttl_seconds: u32) -> String {
    format!(
        r#"vcl 4.1;

backend origin {{
    .host = "{host}";
    .port = "{port}";
}}

sub vcl_recv {{
    if ((req.method != "GET" && req.method != "HEAD") || !req.http.Idempotency-Key) {{
        return (pass);
    }}
    return (hash);
}}

sub vcl_hash {{
    hash_data(req.url);
    hash_data(req.http.Idempotency-Key);
    return (lookup);
}}

sub vcl_backend_response {{
    set beresp.ttl = {ttl_seconds}s;
    set beresp.grace = 0s;
    set beresp.keep = 1h;
    return (deliver);
}}
"#,
        host = origin.ip(),
        port = origin.port(),
    )
}

impl Varnish {
    /// Start Varnish in front of `origin`, keeping fresh copies for `ttl_seconds`.
    pub fn start(origin: SocketAddr, ttl_seconds: u32) -> Varnish {
        let dir = fresh_dir();
        let vcl_path = dir.join("idempotency.vcl");
        std::fs::write(&vcl_path, vcl(origin, ttl_seconds))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", vcl_path.display()));
        let port = free_port();
        let child = Command::new("varnishd")
            .arg("-F")
            .arg("-n")
            .arg(dir.join("work"))
            .arg("-a")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-f")
            .arg(&vcl_path)
            .args(["-s", "malloc,32m", "-j", "none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start varnishd ({e}); `bash scripts/test.sh` installs Varnish")
            });
        let varnish = Varnish { port, dir, child };
        varnish.wait_ready();
        varnish
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_WITHIN;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "varnishd did not accept connections on port {} within {READY_WITHIN:?}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Varnish {
    fn drop(&mut self) {
        // The manager stops its cache process when asked to stop.
        signal(self.child.id(), "-TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.dir);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! Real `redis-server` processes for tests: a single server that can be killed, paused and
//! restarted on the same port, a cluster (with replicas, whose masters can be killed), a
//! `MONITOR` command counter, and a proxy that makes a server answer like Redis 6.2.
//!
//! Each server runs on a free loopback port, without persistence, in a directory of its
//! own that is removed with it; it is killed on drop. Readiness is polled (a connection and
//! `INFO server` naming the spawned process), with a bounded total wait.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// How long a server (or a cluster) may take to become ready.
const READY_WITHIN: Duration = Duration::from_secs(20);
/// The pause between two readiness probes.
const PROBE_EVERY: Duration = Duration::from_millis(5);

/// A free loopback port below the kernel's ephemeral range (32768+ on Linux), so that no
/// port the kernel hands out meanwhile (to `bind(0)` or to an outgoing connection) can take
/// the place of a server that is restarted on its old port. Each process starts at its own
/// offset and skips ports that are in use.
pub fn free_port() -> u16 {
    const FIRST: usize = 20_000;
    const SPAN: usize = 12_000;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let offset = std::process::id() as usize * 7_919;
    for _ in 0..SPAN {
        let port = FIRST + (offset + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let port = u16::try_from(port).unwrap_or_else(|_| panic!("port {port} out of range"));
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + SPAN)
}

pub fn fresh_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "idempotent-redis-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run `kill {sig} {pid}`: {e}"));
    assert!(status.success(), "`kill {sig} {pid}` failed: {status}");
}

/// One `redis-server` process on `127.0.0.1`.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Start a server on a free port and wait until it answers.
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    /// Start a server with extra `redis-server` arguments.
    pub fn start_with(extra: Vec<String>) -> Self {
        // The port is free when picked but may be taken before redis binds it: try again.
        let mut last = String::new();
        for _ in 0..5 {
            let mut server = Self {
                port: free_port(),
                dir: fresh_dir(),
                extra: extra.clone(),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let mut child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log_path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run `redis-server` ({e}): these tests need Redis 7 on PATH \
                     (Debian/Ubuntu: `apt-get install redis-server`; the CI script installs it)"
                )
            });
        let pid = child.id();
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited with {status}; log:\n{}", self.log()));
            }
            if self.answers_as(pid) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "not ready within {READY_WITHIN:?}; log:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(PROBE_EVERY);
        }
    }

    /// Whether the process `pid` answers on our port (and not some other server).
    fn answers_as(&self, pid: u32) -> bool {
        let Ok(client) = redis::Client::open(self.url()) else {
            return false;
        };
        let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
            return false;
        };
        let info: Result<String, _> = redis::cmd("INFO").arg("server").query(&mut con);
        info.is_ok_and(|info| {
            info.lines()
                .any(|l| l.trim() == format!("process_id:{pid}"))
        })
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `redis://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the server runs (it was not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("redis-server on port {} is not running", self.port))
    }

    /// A blocking connection, for setting up and inspecting keys directly.
    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(2)))
            .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url()))
    }

    /// `GET key`, directly.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.connection())
            .unwrap_or_else(|e| panic!("GET {key}: {e}"))
    }

    /// `SET key value`, directly (no expiry).
    pub fn set(&self, key: &str, value: &[u8]) {
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query::<()>(&mut self.connection())
            .unwrap_or_else(|e| panic!("SET {key}: {e}"));
    }

    /// `PTTL key`, directly.
    pub fn pttl(&self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query(&mut self.connection())
            .unwrap_or_else(|e| panic!("PTTL {key}: {e}"))
    }

    /// `DBSIZE`: how many keys the server holds.
    pub fn dbsize(&self) -> u64 {
        redis::cmd("DBSIZE")
            .query(&mut self.connection())
            .unwrap_or_else(|e| panic!("DBSIZE: {e}"))
    }

    /// Kill the server (SIGKILL) and wait for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freeze the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        signal(self.pid(), "-STOP");
    }

    /// Thaw a paused server (SIGCONT).
    pub fn resume(&self) {
        signal(self.pid(), "-CONT");
    }

    /// Kill the server if it runs, then start a fresh one (empty) on the same port.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(why) = self.spawn() {
            panic!("redis-server did not restart on port {}: {why}", self.port);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `cluster-node-timeout` of a cluster with replicas: how long a master may go
/// unanswered before the others count it failed and a replica takes over. Short, so that a
/// failover takes seconds, not the default 15 s.
pub const FAILOVER_NODE_TIMEOUT: Duration = Duration::from_millis(1000);

/// A Redis Cluster, each node a [`RedisServer`]: masters only ([`RedisCluster::start`]) or
/// masters with replicas ([`RedisCluster::with_replicas`]), whose masters can be killed to
/// make a replica take over.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// One node as `CLUSTER NODES` describes it.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    /// The node id.
    pub id: String,
    /// Its client port on `127.0.0.1`.
    pub port: u16,
    /// Whether it is a master (else a replica).
    pub master: bool,
    /// Whether the cluster counts it failed (`fail`, or `fail?` as the asked node sees it).
    pub failed: bool,
    /// The id of its master, for a replica.
    pub master_id: Option<String>,
    /// The slot ranges it serves, inclusive.
    pub slots: Vec<(u16, u16)>,
}

impl RedisCluster {
    /// Start `masters` nodes, create the cluster over them and wait until every node says
    /// `cluster_state:ok`.
    pub fn start(masters: usize) -> Self {
        Self::create(masters, 0, Duration::from_secs(5), &[])
    }

    /// Start `masters` masters with `replicas` replicas each (`cluster-node-timeout`
    /// [`FAILOVER_NODE_TIMEOUT`]) and wait until every node says `cluster_state:ok`, every
    /// node knows every replica and every replica has synced with its master.
    pub fn with_replicas(masters: usize, replicas: usize) -> Self {
        Self::with_replicas_and(masters, replicas, &[])
    }

    /// [`with_replicas`](Self::with_replicas), with extra `redis-server` arguments for every
    /// node (`["--cluster-require-full-coverage", "no"]`).
    pub fn with_replicas_and(masters: usize, replicas: usize, extra: &[&str]) -> Self {
        Self::create(masters, replicas, FAILOVER_NODE_TIMEOUT, extra)
    }

    fn create(masters: usize, replicas: usize, node_timeout: Duration, extra: &[&str]) -> Self {
        let nodes: Vec<RedisServer> = (0..masters * (1 + replicas))
            .map(|_| {
                let mut args: Vec<String> = vec![
                    "--cluster-enabled".into(),
                    "yes".into(),
                    "--cluster-config-file".into(),
                    "nodes.conf".into(),
                    "--cluster-port".into(),
                    free_port().to_string(),
                    "--cluster-node-timeout".into(),
                    node_timeout.as_millis().to_string(),
                ];
                args.extend(extra.iter().map(|a| (*a).to_owned()));
                RedisServer::start_with(args)
            })
            .collect();
        let output = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(RedisServer::addr))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `redis-cli` ({e}): install redis-tools / redis-server")
            });
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let cluster = Self { nodes };
        cluster.wait_ok();
        if replicas > 0 {
            cluster.wait_replicas(masters, masters * replicas);
        }
        cluster
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + READY_WITHIN;
        let mut pending: Vec<&RedisServer> = self.live().collect();
        while !pending.is_empty() {
            pending.retain(|node| cluster_state(node.port()).as_deref() != Some("ok"));
            assert!(
                Instant::now() < deadline,
                "cluster not ok within {READY_WITHIN:?} on {:?}",
                pending.iter().map(|n| n.port()).collect::<Vec<_>>()
            );
            std::thread::sleep(PROBE_EVERY);
        }
    }

    /// Until every node lists `masters` masters serving slots and `replicas` replicas of
    /// them, and every replica's link to its master is up.
    fn wait_replicas(&self, masters: usize, replicas: usize) {
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            let agreed = self.live().all(|node| {
                let Ok(nodes) = cluster_nodes(node.port()) else {
                    return false;
                };
                let serving = nodes
                    .iter()
                    .filter(|n| n.master && !n.failed && !n.slots.is_empty())
                    .count();
                let following = nodes
                    .iter()
                    .filter(|n| !n.master && !n.failed && n.master_id.is_some())
                    .count();
                serving == masters && following == replicas
            });
            let synced = agreed
                && self.topology().iter().filter(|n| !n.master).all(|n| {
                    info_field(n.port, "replication", "master_link_status") == Some("up".into())
                });
            if synced {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas not known to every node and synced within {READY_WITHIN:?}"
            );
            std::thread::sleep(PROBE_EVERY);
        }
    }

    /// The nodes (killed ones included).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The nodes that run.
    pub fn live(&self) -> impl Iterator<Item = &RedisServer> {
        self.nodes.iter().filter(|n| n.is_running())
    }

    /// The nodes' URLs.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The cluster as the first running node sees it (`CLUSTER NODES`).
    pub fn topology(&self) -> Vec<ClusterNode> {
        let node = self.live().next().expect("a running node");
        cluster_nodes(node.port()).unwrap_or_else(|e| panic!("CLUSTER NODES: {e}"))
    }

    /// The port of the master serving each slot (`16384` entries), as the first running node
    /// sees it; 0 for a slot nobody serves.
    pub fn masters_by_slot(&self) -> Vec<u16> {
        let mut by_slot = vec![0u16; 16384];
        for node in self.topology().iter().filter(|n| n.master) {
            for &(first, last) in &node.slots {
                by_slot[usize::from(first)..=usize::from(last)].fill(node.port);
            }
        }
        by_slot
    }

    /// The slot of each key (`CLUSTER KEYSLOT`, in one pipeline).
    pub fn slots_of(&self, keys: &[String]) -> Vec<u16> {
        let node = self.live().next().expect("a running node");
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("CLUSTER").arg("KEYSLOT").arg(key);
        }
        pipe.query(&mut node.connection())
            .unwrap_or_else(|e| panic!("CLUSTER KEYSLOT: {e}"))
    }

    /// The ports of the replicas of the master on `port`.
    pub fn replicas_of(&self, port: u16) -> Vec<u16> {
        let nodes = self.topology();
        let id = nodes
            .iter()
            .find(|n| n.port == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
            .id
            .clone();
        nodes
            .iter()
            .filter(|n| n.master_id.as_deref() == Some(id.as_str()))
            .map(|n| n.port)
            .collect()
    }

    /// Until every replica has received everything its master wrote so far (its replication
    /// offset has reached its master's).
    pub fn wait_replicated(&self) {
        let deadline = Instant::now() + READY_WITHIN;
        let nodes = self.topology();
        for replica in nodes.iter().filter(|n| !n.master && !n.failed) {
            let Some(master) = nodes
                .iter()
                .find(|n| Some(n.id.as_str()) == replica.master_id.as_deref())
            else {
                continue;
            };
            let offset = |port: u16, field: &str| {
                info_field(port, "replication", field).and_then(|v| v.parse::<u64>().ok())
            };
            let written = offset(master.port, "master_repl_offset")
                .unwrap_or_else(|| panic!("no replication offset on {}", master.port));
            while offset(replica.port, "slave_repl_offset").is_none_or(|o| o < written) {
                assert!(
                    Instant::now() < deadline,
                    "replica {} did not catch up with {} within {READY_WITHIN:?}",
                    replica.port,
                    master.port
                );
                std::thread::sleep(PROBE_EVERY);
            }
        }
    }

    /// Kill the node on `port` (SIGKILL) and wait for it to exit.
    pub fn kill(&mut self, port: u16) {
        self.nodes
            .iter_mut()
            .find(|n| n.port() == port)
            .unwrap_or_else(|| panic!("no node on port {port}"))
            .kill();
    }
}

/// `CLUSTER INFO`'s `cluster_state` on `127.0.0.1:port` (`ok`, `fail`); `None` if the node
/// does not answer.
pub fn cluster_state(port: u16) -> Option<String> {
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut quick_connection(port).ok()?)
        .ok()?;
    info.lines()
        .find_map(|l| l.trim().strip_prefix("cluster_state:"))
        .map(str::to_owned)
}

/// One field of `INFO section` on `127.0.0.1:port`; `None` if the node does not answer or
/// has no such field.
pub fn info_field(port: u16, section: &str, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut quick_connection(port).ok()?)
        .ok()?;
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .map(str::to_owned)
}

/// `CLUSTER NODES` of the node on `127.0.0.1:port`, parsed.
pub fn cluster_nodes(port: u16) -> Result<Vec<ClusterNode>, String> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut quick_connection(port).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [
                id,
                addr,
                flags,
                master,
                _ping,
                _pong,
                _epoch,
                _link,
                slots @ ..,
            ] = &fields[..]
            else {
                return Err(format!("unexpected CLUSTER NODES line {line:?}"));
            };
            let port = addr
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("no port in {addr:?}"))?;
            let flags: Vec<&str> = flags.split(',').collect();
            let slots = slots
                .iter()
                // `[slot->-node]` entries are slots being migrated: not served yet.
                .filter(|s| !s.starts_with('['))
                .map(|s| {
                    let (first, last) = s.split_once('-').unwrap_or((s, s));
                    match (first.parse(), last.parse()) {
                        (Ok(first), Ok(last)) => Ok((first, last)),
                        _ => Err(format!("bad slot range {s:?}")),
                    }
                })
                .collect::<Result<_, _>>()?;
            Ok(ClusterNode {
                id: (*id).to_owned(),
                port,
                master: flags.contains(&"master"),
                failed: flags.contains(&"fail") || flags.contains(&"fail?"),
                master_id: (*master != "-").then(|| (*master).to_owned()),
                slots,
            })
        })
        .collect()
}

/// A blocking connection to `127.0.0.1:port` that gives up quickly (a killed node).
pub fn quick_connection(port: u16) -> redis::RedisResult<redis::Connection> {
    let con = redis::Client::open(format!("redis://127.0.0.1:{port}"))?
        .get_connection_with_timeout(Duration::from_millis(200))?;
    con.set_read_timeout(Some(Duration::from_secs(2)))?;
    con.set_write_timeout(Some(Duration::from_secs(2)))?;
    Ok(con)
}

/// One command seen by [`Monitor`].
#[derive(Debug, Clone)]
pub struct Seen {
    /// The command name, uppercase (`EVALSHA`).
    pub name: String,
    /// The whole `MONITOR` line.
    pub line: String,
}

/// Counts the top-level commands a server receives, with `MONITOR` on a connection of its
/// own. Commands that scripts run inside Redis (`[0 lua]` lines) are not top-level and are
/// left out: a script call counts once, as a round trip.
pub struct Monitor {
    lines: mpsc::UnboundedReceiver<String>,
    marker: tokio::net::TcpStream,
    next_mark: usize,
}

impl Monitor {
    /// Start monitoring `server`.
    pub async fn start(server: &RedisServer) -> Self {
        let mut stream = tokio::net::TcpStream::connect(server.addr())
            .await
            .unwrap_or_else(|e| panic!("monitor: cannot connect: {e}"));
        stream
            .write_all(b"MONITOR\r\n")
            .await
            .unwrap_or_else(|e| panic!("monitor: {e}"));
        let mut reader = tokio::io::BufReader::new(stream);
        let mut ok = String::new();
        reader
            .read_line(&mut ok)
            .await
            .unwrap_or_else(|e| panic!("monitor: {e}"));
        assert_eq!(ok.trim_end(), "+OK", "monitor: unexpected reply");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = reader.lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let marker = tokio::net::TcpStream::connect(server.addr())
            .await
            .unwrap_or_else(|e| panic!("monitor: cannot connect: {e}"));
        Self {
            lines,
            marker,
            next_mark: 0,
        }
    }

    /// Send a marker command and wait until `MONITOR` shows it; return the lines before it.
    async fn mark(&mut self) -> Vec<String> {
        self.next_mark += 1;
        let mark = format!("idempotent-monitor-mark-{}", self.next_mark);
        let command = format!("*2\r\n$4\r\nECHO\r\n${}\r\n{mark}\r\n", mark.len());
        self.marker
            .write_all(command.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("monitor: {e}"));
        let mut reply = vec![0u8; format!("${}\r\n{mark}\r\n", mark.len()).len()];
        tokio::time::timeout(Duration::from_secs(5), self.marker.read_exact(&mut reply))
            .await
            .unwrap_or_else(|_| panic!("monitor: no reply to the marker within 5 s"))
            .unwrap_or_else(|e| panic!("monitor: {e}"));
        let mut before = Vec::new();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(5), self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("monitor: marker {mark} not seen within 5 s"))
                .unwrap_or_else(|| panic!("monitor: the MONITOR connection closed"));
            if line.contains(&mark) {
                return before;
            }
            before.push(line);
        }
    }

    /// Run `work` and return its output with the top-level commands the server received
    /// meanwhile (other than this monitor's markers).
    pub async fn commands_during<F: std::future::Future>(
        &mut self,
        work: F,
    ) -> (F::Output, Vec<Seen>) {
        self.mark().await;
        let output = work.await;
        let seen = self
            .mark()
            .await
            .into_iter()
            .filter_map(parse_monitor_line)
            .collect();
        (output, seen)
    }
}

/// `+1700000000.123456 [0 127.0.0.1:5555] "EVALSHA" "…"` → `EVALSHA`; `None` for commands
/// run by a script (`[0 lua]`) and lines that are not commands.
fn parse_monitor_line(line: String) -> Option<Seen> {
    let open = line.find('[')?;
    let close = open + line[open..].find(']')?;
    let client = line[open + 1..close].split_whitespace().nth(1)?;
    if client == "lua" {
        return None;
    }
    let rest = line[close + 1..].trim_start().strip_prefix('"')?;
    let name = rest[..rest.find('"')?].to_ascii_uppercase();
    Some(Seen { name, line })
}

/// A loopback proxy in front of a [`RedisServer`] that answers `SET` with both `NX` and
/// `GET` as Redis 6.2 does (and, for lack of `GET`, every version before it):
/// `-ERR syntax error`, without passing the command on. Every other command goes through
/// to the server, and its reply back, in order.
pub struct Redis62Proxy {
    port: u16,
    refused: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl Redis62Proxy {
    /// Start proxying to `server` on a free loopback port.
    pub async fn start(server: &RedisServer) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap_or_else(|e| panic!("proxy: cannot listen: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("proxy: no local address: {e}"))
            .port();
        let upstream = server.addr();
        let refused = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn({
            let refused = refused.clone();
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let upstream = upstream.clone();
                    let refused = refused.clone();
                    tokio::spawn(async move {
                        // A connection ends when either side closes it.
                        let _ = relay(client, &upstream, &refused).await;
                    });
                }
            }
        });
        Self {
            port,
            refused,
            accept,
        }
    }

    /// `redis://127.0.0.1:{port}` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// How many `SET … NX … GET` commands were answered `ERR syntax error`.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for Redis62Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Serve one client connection: each command in turn, refused or forwarded.
async fn relay(
    client: tokio::net::TcpStream,
    upstream: &str,
    refused: &AtomicUsize,
) -> std::io::Result<()> {
    let server = tokio::net::TcpStream::connect(upstream).await?;
    let (from_client, mut to_client) = client.into_split();
    let (from_server, mut to_server) = server.into_split();
    let mut from_client = tokio::io::BufReader::new(from_client);
    let mut from_server = tokio::io::BufReader::new(from_server);
    while let Some((raw, args)) = read_command(&mut from_client).await? {
        if is_set_nx_get(&args) {
            refused.fetch_add(1, Ordering::SeqCst);
            to_client.write_all(b"-ERR syntax error\r\n").await?;
        } else {
            to_server.write_all(&raw).await?;
            let reply = read_reply(&mut from_server).await?;
            to_client.write_all(&reply).await?;
        }
    }
    Ok(())
}

/// `SET key value … NX … GET …`, options in any order and case.
fn is_set_nx_get(args: &[Vec<u8>]) -> bool {
    let has = |option: &str| {
        args.iter()
            .skip(3)
            .any(|a| a.eq_ignore_ascii_case(option.as_bytes()))
    };
    args.first().is_some_and(|c| c.eq_ignore_ascii_case(b"SET")) && has("NX") && has("GET")
}

fn invalid(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

/// One line (`\r\n` included) appended to `raw`; the line without its type byte and `\r\n`.
async fn read_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    raw: &mut Vec<u8>,
) -> std::io::Result<Option<(u8, String)>> {
    let start = raw.len();
    if reader.read_until(b'\n', raw).await? == 0 {
        return Ok(None);
    }
    let line = &raw[start..];
    let body = line
        .strip_suffix(b"\r\n")
        .and_then(|l| l.split_first())
        .ok_or_else(|| invalid(format!("bad RESP line {:?}", String::from_utf8_lossy(line))))?;
    Ok(Some((
        *body.0,
        String::from_utf8_lossy(body.1).into_owned(),
    )))
}

fn length(text: &str) -> std::io::Result<i64> {
    text.parse()
        .map_err(|_| invalid(format!("bad RESP length {text:?}")))
}

/// `n` bytes and `\r\n`, appended to `raw`.
async fn read_blob(
    reader: &mut (impl AsyncBufRead + Unpin),
    raw: &mut Vec<u8>,
    n: i64,
) -> std::io::Result<()> {
    let n = usize::try_from(n).map_err(|_| invalid(format!("bad RESP length {n}")))?;
    let start = raw.len();
    raw.resize(start + n + 2, 0);
    reader.read_exact(&mut raw[start..]).await?;
    Ok(())
}

/// A client's command (an array of bulk strings): its bytes and its arguments; `None` at the
/// end of the stream.
async fn read_command(
    reader: &mut (impl AsyncBufRead + Unpin),
) -> std::io::Result<Option<(Vec<u8>, Vec<Vec<u8>>)>> {
    let mut raw = Vec::new();
    let Some((b'*', count)) = read_line(reader, &mut raw).await? else {
        return if raw.is_empty() {
            Ok(None)
        } else {
            Err(invalid("a command that is not an array"))
        };
    };
    let mut args = Vec::new();
    for _ in 0..length(&count)? {
        let Some((b'$', len)) = read_line(reader, &mut raw).await? else {
            return Err(invalid("an argument that is not a bulk string"));
        };
        let start = raw.len();
        read_blob(reader, &mut raw, length(&len)?).await?;
        args.push(raw[start..raw.len() - 2].to_vec());
    }
    Ok(Some((raw, args)))
}

/// One complete reply of the server (RESP2 or RESP3), as bytes.
async fn read_reply(reader: &mut (impl AsyncBufRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut raw = Vec::new();
    let mut pending: i64 = 1;
    while pending > 0 {
        pending -= 1;
        let (kind, text) = read_line(reader, &mut raw)
            .await?
            .ok_or_else(|| invalid("the server closed the connection mid-reply"))?;
        match kind {
            // Blob string, verbatim string, blob error.
            b'$' | b'=' | b'!' => {
                let n = length(&text)?;
                if n >= 0 {
                    read_blob(reader, &mut raw, n).await?;
                }
            }
            // Array, set, push.
            b'*' | b'~' | b'>' => pending += length(&text)?.max(0),
            // Map.
            b'%' => pending += 2 * length(&text)?.max(0),
            // Attributes, then the reply they describe.
            b'|' => pending += 2 * length(&text)?.max(0) + 1,
            // Simple string, error, integer, null, double, boolean, big number.
            _ => {}
        }
    }
    Ok(raw)
}

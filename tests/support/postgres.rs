//! Real, private PostgreSQL servers for tests: a fresh cluster (`initdb`) in a directory of
//! its own, served by `postgres` on a free loopback port, which can be killed, paused and
//! restarted on the same port with its data; a pool on it; the statements it logged.
//!
//! No test touches the machine's own PostgreSQL (port 5432) or any state of it: every
//! cluster is made by `initdb` for the test, listens on `127.0.0.1` only, without a Unix
//! socket, and trusts every local connection as `postgres`. Durability against a machine
//! crash is traded for speed (`fsync` and `full_page_writes` off), but not against a killed
//! server: `synchronous_commit` stays on, so every commit a client was told of has its WAL
//! in the OS, and a SIGKILLed cluster recovers it (the crash tests rely on that).
//!
//! The binaries are `PG_BIN`'s (a directory) if set, else `initdb` and `postgres` on
//! `PATH`, else those of the newest `/usr/lib/postgresql/*/bin/` (Debian keeps them off
//! `PATH`); `scripts/test.sh` installs Debian's `postgresql` when none is found. PostgreSQL
//! refuses to run as root: a test process running as root runs `initdb` and `postgres` as
//! the `postgres` system user (who then needs to reach the temporary directory, as under
//! `/tmp`).
//!
//! Every server is watched by a `sh` process reading a pipe from the test process, which
//! tells it what runs (`initdb`, then the postmaster): when the test process ends, however
//! it ends, the pipe closes and the watcher kills that and removes the server's directory,
//! so that the [`shared`] server, never dropped, does not outlive the test binary.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};

use super::redis::{free_port, signal};

/// How long a server may take to answer after it is spawned (recovery included).
const READY_WITHIN: Duration = Duration::from_secs(30);
/// The pause between two readiness probes, and between two looks at killed processes.
const PROBE_EVERY: Duration = Duration::from_millis(20);
/// How long one readiness probe (connect and query) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the processes of a SIGKILLed cluster may take to be gone.
const GONE_WITHIN: Duration = Duration::from_secs(10);

/// What the watcher runs, as `sh -c WATCHER <server dir>`. It reads lines from the test
/// process, each the pid of the process of the server that runs now (`initdb`, then the
/// postmaster) or empty when none does. When the pipe closes (the test process has ended),
/// it SIGKILLs the last one named and all its descendants (a process forked meanwhile is
/// not stopped, and exits when it sees its parent gone), waits (bounded) until they are
/// gone, removes the cluster's System V shared memory block (which a SIGKILLed postmaster
/// leaves behind) and the server's directory. It ignores the signals that could end it
/// first: SIGINT and SIGTERM sent to the test's process group (Ctrl-C), and the SIGHUP the
/// kernel sends to a process group left orphaned with a stopped member (a paused
/// postmaster) when the test process exits.
const WATCHER: &str = r#"trap '' HUP INT TERM
dir=$0
pm=
while read -r line; do pm=$line; done
if [ -n "$pm" ]; then
    pairs=$(for s in /proc/[0-9]*/stat; do
        read -r line < "$s" || continue
        set -- ${line##*) }
        echo "${line%% *} $2"
    done)
    tree=" $pm "
    grown=1
    while [ -n "$grown" ]; do
        grown=
        while read -r pid ppid; do
            case "$tree" in
                *" $pid "*) ;;
                *" $ppid "*) tree="$tree$pid "; grown=1 ;;
            esac
        done <<EOF
$pairs
EOF
    done
    kill -9 $tree
    for _ in $(seq 100); do
        alive=
        for pid in $tree; do
            read -r line < "/proc/$pid/stat" || continue
            set -- ${line##*) }
            if [ "$1" != Z ]; then alive=1; fi
        done
        if [ -z "$alive" ]; then break; fi
        sleep 0.1
    done
fi
shm=$(sed -n 7p "$dir/data/postmaster.pid")
set -- $shm
if [ -n "$2" ]; then ipcrm -m "$2"; fi
rm -rf "$dir""#;

/// The `sh` that cleans up after a server when the test process ends (see [`WATCHER`]).
struct Watcher {
    child: Child,
}

impl Watcher {
    fn start(dir: &Path) -> Self {
        let child = Command::new("sh")
            .args(["-c", WATCHER])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run sh to watch a PostgreSQL server: {e}"));
        Self { child }
    }

    /// Tell it the process of the server that runs now, or that none does.
    fn watch(&mut self, pid: Option<u32>) {
        if let Some(stdin) = self.child.stdin.as_mut() {
            let line = pid.map_or_else(|| "\n".to_owned(), |pid| format!("{pid}\n"));
            let _ = stdin.write_all(line.as_bytes());
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `initdb` and `postgres` executables.
struct Binaries {
    initdb: PathBuf,
    postgres: PathBuf,
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// `name` in the first directory of `PATH` that has it.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// The `bin` directory of the newest `/usr/lib/postgresql/<version>/` that has both.
fn newest_debian_bin() -> Option<PathBuf> {
    let entries = std::fs::read_dir("/usr/lib/postgresql").ok()?;
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_str()?.to_owned();
            let version: Vec<u32> = name
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            (is_executable(&bin.join("initdb")) && is_executable(&bin.join("postgres")))
                .then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

fn binaries() -> &'static Binaries {
    static BINARIES: OnceLock<Binaries> = OnceLock::new();
    BINARIES.get_or_init(|| {
        if let Some(dir) = std::env::var_os("PG_BIN").map(PathBuf::from) {
            let binaries = Binaries {
                initdb: dir.join("initdb"),
                postgres: dir.join("postgres"),
            };
            assert!(
                is_executable(&binaries.initdb) && is_executable(&binaries.postgres),
                "PG_BIN={} has no executable `initdb` and `postgres`: set PG_BIN to PostgreSQL's \
                 bin directory, or unset it and run `bash scripts/test.sh`, which installs \
                 Debian's postgresql",
                dir.display()
            );
            return binaries;
        }
        if let (Some(initdb), Some(postgres)) = (on_path("initdb"), on_path("postgres")) {
            return Binaries { initdb, postgres };
        }
        let bin = newest_debian_bin().unwrap_or_else(|| {
            panic!(
                "PostgreSQL's `initdb` and `postgres` not found (on PATH, in \
                 /usr/lib/postgresql/*/bin or in PG_BIN): these tests start their own \
                 PostgreSQL servers; run `bash scripts/test.sh`, which installs Debian's \
                 postgresql (or set PG_BIN to a directory holding them)"
            )
        });
        Binaries {
            initdb: bin.join("initdb"),
            postgres: bin.join("postgres"),
        }
    })
}

/// The user and group `initdb` and `postgres` run as: `None` for this process's own (when
/// it is not root), else the `postgres` system user's.
fn cluster_owner() -> Option<(u32, u32)> {
    static OWNER: OnceLock<Option<(u32, u32)>> = OnceLock::new();
    *OWNER.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status")
            .unwrap_or_else(|e| panic!("cannot read /proc/self/status: {e}"));
        // `Uid:	real	effective	saved	filesystem`
        let euid = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            .unwrap_or_else(|| panic!("no effective uid in /proc/self/status"));
        if euid != "0" {
            return None;
        }
        let passwd = std::fs::read_to_string("/etc/passwd")
            .unwrap_or_else(|e| panic!("cannot read /etc/passwd: {e}"));
        // `postgres:x:101:104:...`
        let owner = passwd.lines().find_map(|line| {
            let mut fields = line.split(':');
            (fields.next()? == "postgres").then_some(())?;
            let uid = fields.nth(1)?.parse().ok()?;
            let gid = fields.next()?.parse().ok()?;
            Some((uid, gid))
        });
        Some(owner.unwrap_or_else(|| {
            panic!(
                "the tests run as root, as which PostgreSQL refuses to run, and there is no \
                 `postgres` user in /etc/passwd to run it as: run `bash scripts/test.sh`, \
                 which installs Debian's postgresql (and with it that user)"
            )
        }))
    })
}

/// Run `command` as the cluster's owner (see [`cluster_owner`]).
fn as_cluster_owner(command: &mut Command) -> &mut Command {
    if let Some((uid, gid)) = cluster_owner() {
        command.uid(uid).gid(gid);
    }
    command
}

/// A new empty directory, owned by the cluster's owner.
fn fresh_dir() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "idempotent-postgres-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    if let Some((uid, gid)) = cluster_owner() {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("cannot give {} to user postgres: {e}", dir.display()));
    }
    dir
}

/// The state letter and the parent's pid of process `pid`, from `/proc/<pid>/stat`.
fn stat_of(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`, where comm may hold spaces and parentheses.
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// The postmaster `pid` and every process whose parent it is (the cluster's backends and
/// auxiliary processes). They call `setsid()`, so a process group does not find them.
pub fn processes_of(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        all.extend(
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
                .filter(|&other| other != pid && stat_of(other).is_some_and(|(_, p)| p == pid)),
        );
    }
    all
}

/// Send `sig` (`-KILL`, `-STOP`, ...) to each of `pids` that still exists, with one `kill`.
fn signal_all(sig: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(sig)
        .args(pids.iter().map(u32::to_string))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Wait (bounded) until none of `pids` runs: gone, or a zombie its new parent has not
/// reaped yet (which holds nothing).
fn wait_gone(pids: &[u32]) {
    let deadline = Instant::now() + GONE_WITHIN;
    while pids
        .iter()
        .any(|&pid| stat_of(pid).is_some_and(|(state, _)| state != 'Z'))
        && Instant::now() < deadline
    {
        std::thread::sleep(PROBE_EVERY);
    }
}

/// The pid of the backend serving a new connection to `url`, if one answers within
/// [`PROBE_TIMEOUT`]. Run on a thread and runtime of its own, so that synchronous code
/// inside an async test can call it.
fn backend_pid(url: &str) -> Option<u32> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            tokio::time::timeout(PROBE_TIMEOUT, async {
                let mut connection = PgConnection::connect(&url).await.ok()?;
                let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
                    .fetch_one(&mut connection)
                    .await
                    .ok()?;
                let _ = connection.close().await;
                u32::try_from(pid).ok()
            })
            .await
            .ok()
            .flatten()
        })
    })
    .join()
    .ok()
    .flatten()
}

/// The message of a log line that starts a record (`%m [%p] ` then `LOG:  ...`), `None`
/// for a line that continues the record before it (a statement of several lines).
fn record_message(line: &str) -> Option<&str> {
    if !line.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (prefix, message) = line.split_once("] ")?;
    let (_, pid) = prefix.rsplit_once(" [")?;
    pid.chars().all(|c| c.is_ascii_digit()).then_some(message)
}

/// The statements in the log text `log` (see [`PostgresServer::statements_since`]).
fn logged_statements(log: &str) -> Vec<String> {
    let mut statements = Vec::new();
    // Whether the last record was a statement, which a continuation line then extends.
    let mut in_statement = false;
    for line in log.lines() {
        match record_message(line) {
            Some(message) => {
                let statement = message.strip_prefix("LOG:  statement: ").or_else(|| {
                    // `execute <unnamed>: SELECT 1`, `execute sqlx_s_1: ...`, and with a
                    // named portal `execute sqlx_s_1/C_1: ...`.
                    let rest = message.strip_prefix("LOG:  execute ")?;
                    rest.split_once(": ").map(|(_, statement)| statement)
                });
                in_statement = statement.is_some();
                statements.extend(statement.map(str::to_owned));
            }
            // PostgreSQL starts each further line of a message with a tab.
            None if in_statement => {
                if let Some(last) = statements.last_mut() {
                    last.push('\n');
                    last.push_str(line.strip_prefix('\t').unwrap_or(line));
                }
            }
            None => {}
        }
    }
    statements
}

/// One PostgreSQL cluster on `127.0.0.1`: its directory (the data directory `data/` and
/// the server's log `postgres.log`), its postmaster and its watcher. Killed
/// (SIGKILL to every process of the cluster) and its directory removed on drop.
pub struct PostgresServer {
    port: u16,
    dir: PathBuf,
    settings: Vec<String>,
    child: Option<Child>,
    /// Cleans up if the test process ends without dropping this.
    watcher: Watcher,
}

impl PostgresServer {
    /// Make a fresh cluster and serve it on a free port; return once a connection answers.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`start`](Self::start) with extra settings, each passed as `-c name=value` (such as
    /// `("log_statement", "all")` or `("autovacuum", "off")`).
    pub fn start_with(settings: &[(&str, &str)]) -> Self {
        let dir = fresh_dir();
        let mut server = Self {
            watcher: Watcher::start(&dir),
            port: 0,
            dir,
            settings: settings
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect(),
            child: None,
        };
        if let Err(why) = server.init() {
            drop(server);
            panic!("{why}");
        }
        // The port is free when picked but may be taken before postgres binds it: try again.
        let mut last = String::new();
        for _ in 0..5 {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return server,
                Err(why) => last = why,
            }
        }
        drop(server);
        panic!("postgres did not start: {last}");
    }

    /// `initdb` a fresh cluster in `data/`, quickly (no syncing), trusting every local
    /// connection as `postgres`.
    fn init(&mut self) -> Result<(), String> {
        let initdb = &binaries().initdb;
        let mut command = Command::new(initdb);
        command
            .args([
                "--no-sync",
                "--auth=trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "-D",
            ])
            .arg(self.data_dir());
        let child = as_cluster_owner(&mut command)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): run `bash scripts/test.sh`, which installs Debian's \
                     postgresql (or set PG_BIN to PostgreSQL's bin directory)",
                    initdb.display()
                )
            });
        self.watcher.watch(Some(child.id()));
        let output = child
            .wait_with_output()
            .map_err(|e| format!("initdb in {}: {e}", self.dir.display()))?;
        self.watcher.watch(None);
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "initdb in {} failed with {}:\n{}{}",
                self.dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// The end of the server's log, for a panic message.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let start = log.len().saturating_sub(4_000);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        log[start..].to_owned()
    }

    /// Start the postmaster on `self.port` and wait until it answers; on failure, kill
    /// whatever it started.
    fn spawn(&mut self) -> Result<(), String> {
        // Left by a SIGKILLed postmaster; no process of this cluster runs now.
        let _ = std::fs::remove_file(self.data_dir().join("postmaster.pid"));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("cannot open {}: {e}", self.log_path().display()))?;
        let err_log = log
            .try_clone()
            .map_err(|e| format!("cannot share the log file: {e}"))?;
        let postgres = &binaries().postgres;
        let mut command = Command::new(postgres);
        command
            .arg("-D")
            .arg(self.data_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=100",
                "-c",
                "logging_collector=off",
                "-c",
                "log_destination=stderr",
                "-c",
                "log_line_prefix=%m [%p] ",
            ]);
        for setting in &self.settings {
            command.arg("-c").arg(setting);
        }
        let child = as_cluster_owner(&mut command)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {} ({e}): run `bash scripts/test.sh`, which installs Debian's \
                     postgresql (or set PG_BIN to PostgreSQL's bin directory)",
                    postgres.display()
                )
            });
        let pid = child.id();
        self.watcher.watch(Some(pid));
        self.child = Some(child);
        let url = self.url();
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.kill();
                return Err(format!(
                    "exited with {status} (port {}); log:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            // Answered by a backend of this postmaster, not some other server's.
            if backend_pid(&url)
                .and_then(stat_of)
                .is_some_and(|(_, ppid)| ppid == pid)
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "no answer to a query within {READY_WITHIN:?} (port {}); log:\n{}",
                    self.port,
                    self.log_tail()
                ));
            }
            std::thread::sleep(PROBE_EVERY);
        }
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres` (trusted: no password).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The postmaster's process id.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .map(Child::id)
            .unwrap_or_else(|| panic!("postgres on port {} is not running", self.port))
    }

    /// SIGKILL the postmaster and every process of the cluster, and wait until they are
    /// gone. The data directory stays, for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id();
            // Frozen first, the postmaster forks nothing after the children are listed.
            signal_all("-STOP", &[pid]);
            let all = processes_of(pid);
            signal_all("-KILL", &all);
            let _ = child.wait();
            wait_gone(&all);
            self.watcher.watch(None);
        }
    }

    /// Freeze the cluster (SIGSTOP, the postmaster first, then every child): connections
    /// stay open and new ones are accepted by the kernel, nothing is answered.
    pub fn pause(&self) {
        let pid = self.pid();
        signal(pid, "-STOP");
        signal_all("-STOP", &processes_of(pid)[1..]);
    }

    /// Thaw a paused cluster (SIGCONT, the children first, then the postmaster).
    pub fn resume(&self) {
        let pid = self.pid();
        signal_all("-CONT", &processes_of(pid)[1..]);
        signal(pid, "-CONT");
    }

    /// Kill the cluster if it runs, then start `postgres` again on the same port and data
    /// directory (a SIGKILLed cluster recovers from its WAL) and wait until it answers.
    pub fn restart(&mut self) {
        self.kill();
        if let Err(why) = self.spawn() {
            panic!("postgres did not restart on port {}: {why}", self.port);
        }
    }

    /// The current length of the server's log, to pass to
    /// [`statements_since`](Self::statements_since).
    pub fn log_mark(&self) -> u64 {
        std::fs::metadata(self.log_path())
            .map(|m| m.len())
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", self.log_path().display()))
    }

    /// The statements the server logged after `mark` (from [`log_mark`](Self::log_mark)),
    /// in order, for a server started with `("log_statement", "all")`: the text of each
    /// `LOG:  statement: ...` line (simple protocol) and `LOG:  execute <name>: ...` line
    /// (extended protocol, which sqlx uses: `execute sqlx_s_1: ...`, `execute <unnamed>:
    /// ...`); parse and bind steps are not logged as statements, and parameters (`DETAIL:`
    /// lines) are left out. A backend writes that line before it runs the statement, so
    /// once a client has its answer the statement is in the log.
    pub fn statements_since(&self, mark: u64) -> Vec<String> {
        let path = self.log_path();
        let mut file =
            File::open(&path).unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        file.seek(SeekFrom::Start(mark))
            .unwrap_or_else(|e| panic!("cannot seek {}: {e}", path.display()));
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        logged_statements(&String::from_utf8_lossy(&bytes))
    }

    /// A small pool on this server: at most 4 connections, 5 s to acquire one.
    pub async fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("cannot connect a pool to {}: {e}", self.url()))
    }

    /// Remove the System V shared memory block of the cluster's last postmaster, which a
    /// SIGKILLed postmaster leaves behind (a restart in the same directory reuses it).
    fn remove_shared_memory(&self) {
        let pidfile =
            std::fs::read_to_string(self.data_dir().join("postmaster.pid")).unwrap_or_default();
        // Line 7: `<key> <shmid>`.
        if let Some(shmid) = pidfile
            .lines()
            .nth(6)
            .and_then(|line| line.split_whitespace().nth(1))
        {
            let _ = Command::new("ipcrm")
                .args(["-m", shmid])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
        self.remove_shared_memory();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The server shared by the tests of this test binary, started on first use, for tests
/// that neither kill nor pause it (each in tables of its own, see [`table_name`]). It is
/// never dropped: its watcher kills it and removes its directory when the test process
/// exits.
pub fn shared() -> &'static PostgresServer {
    static SHARED: OnceLock<PostgresServer> = OnceLock::new();
    SHARED.get_or_init(PostgresServer::start)
}

/// A table name no other call in this process returns: `idem_{what}_{pid}_{n}`, lowercase,
/// of `[a-z0-9_]` only (other characters of `what` become `_`), at most 63 bytes
/// (PostgreSQL's limit; `what` is shortened to fit), so it needs no quoting.
pub fn table_name(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let suffix = format!(
        "_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let what: String = what
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '_') => c,
            _ => '_',
        })
        .take(63 - "idem_".len() - suffix.len())
        .collect();
    format!("idem_{what}{suffix}")
}

/// The first word of each statement (`WITH`, `INSERT`, `BEGIN`, ...), as
/// [`PostgresServer::statements_since`] returns them.
pub fn verbs(statements: &[String]) -> Vec<&str> {
    statements
        .iter()
        .map(|s| s.split_whitespace().next().unwrap_or(""))
        .collect()
}

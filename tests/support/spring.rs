//! The Spring side of a mixed deployment, for real: `tests/support/spring/SpringSide.java`
//! compiled against Debian's Jackson (`libjackson2-databind-java`) and run with the JDK.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::redis::fresh_dir;

/// Jackson's jars, as Debian installs them.
const JARS: [&str; 3] = [
    "/usr/share/java/jackson-databind.jar",
    "/usr/share/java/jackson-core.jar",
    "/usr/share/java/jackson-annotations.jar",
];

/// The class path with `SpringSide` compiled, once per test binary.
fn classpath() -> &'static str {
    static CLASSPATH: OnceLock<String> = OnceLock::new();
    CLASSPATH.get_or_init(|| {
        for jar in JARS {
            assert!(
                std::path::Path::new(jar).exists(),
                "{jar} is missing: `bash scripts/test.sh` installs libjackson2-databind-java"
            );
        }
        let out: PathBuf = fresh_dir();
        let source = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/spring/SpringSide.java"
        );
        let status = Command::new("javac")
            .arg("-cp")
            .arg(JARS.join(":"))
            .arg("-d")
            .arg(&out)
            .arg(source)
            .status()
            .unwrap_or_else(|e| {
                panic!("cannot run javac ({e}): `bash scripts/test.sh` installs the JDK")
            });
        assert!(status.success(), "javac {source} failed: {status}");
        format!("{}:{}", out.display(), JARS.join(":"))
    })
}

/// Run `SpringSide <args>` with `input` on stdin; its stdout.
fn run(args: &[&str], input: &str) -> String {
    let mut child = Command::new("java")
        .arg("-cp")
        .arg(classpath())
        .arg("SpringSide")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run java ({e}): `bash scripts/test.sh` installs the JDK")
        });
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("write to java");
    let output = child.wait_with_output().expect("java runs");
    assert!(output.status.success(), "java SpringSide {args:?} failed");
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// The aspect's fingerprint of each body, and the JSON Jackson wrote (`None` where Jackson
/// could not read the body).
pub fn fingerprints(bodies: &[&str]) -> Vec<Option<(String, String)>> {
    let input: String = bodies.iter().map(|b| format!("{b}\n")).collect();
    run(&["hash"], &input)
        .lines()
        .map(|line| {
            let (hash, json) = line.split_once('\t').expect("hash<TAB>json");
            (hash != "error").then(|| (hash.to_owned(), json.to_owned()))
        })
        .collect()
}

/// The record under `key` as the aspect reads it: `{statusCode, body, bodyHash}`.
pub fn read_record(redis_port: u16, key: &str) -> serde_json::Value {
    let out = run(&["get", &redis_port.to_string(), key], "");
    serde_json::from_str(out.trim()).expect("a CachedResponse as JSON")
}

/// Store the aspect's completed record for a request with `body` under `key`: 201
/// `{"id":"from-spring"}`, its `bodyHash` the aspect's fingerprint of `body`.
pub fn write_record(redis_port: u16, key: &str, body: &str, ttl_ms: u64) {
    run(
        &["put", &redis_port.to_string(), key, &ttl_ms.to_string()],
        &format!("{body}\n"),
    );
}

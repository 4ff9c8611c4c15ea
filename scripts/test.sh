#!/usr/bin/env bash
# Runs every test of the workspace (but the benchmarks'). The Redis tests start their own private redis-server
# processes on free loopback ports, so redis-server and redis-cli must be installed; this
# script installs them (Debian's redis-server package) when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "redis-server not found: installing Debian's redis-server package" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi

# The benchmark package (bench/) is left out: its tests are criterion's benchmarks, which
# `cargo bench` runs, and building it would build the peer crate it is measured against
# (axum-idempotent, with its session layer) and criterion for nothing. Clippy still lints it.
exec cargo test --workspace --all-features --exclude idempotent-bench "$@"

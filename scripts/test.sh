#!/usr/bin/env bash
# Runs every test of the workspace (but the benchmarks'). The Redis tests start their own private redis-server
# processes on free loopback ports, so redis-server and redis-cli must be installed; this
# script installs them (Debian's redis-server package) when they are missing. The DynamoDB
# tests do the same with moto's server, which this script installs below.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "redis-server not found: installing Debian's redis-server package" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
fi

# The DynamoDB tests start their own moto servers (moto's server mode, `moto_server`, a local
# DynamoDB API). moto comes from PyPI, into a virtualenv of this project's own (Debian's
# python refuses system-wide pip installs, PEP 668), made once and reused; the tests find it
# through MOTO_SERVER. A MOTO_SERVER already set is used as it is.
MOTO_VERSION="5.2.5"
MOTO_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/idempotent-tests/moto"
if [ -z "${MOTO_SERVER:-}" ]; then
    installed="$("$MOTO_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null || true)"
    if [ "$installed" != "$MOTO_VERSION" ] || [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
        echo "moto $MOTO_VERSION not found: installing moto[server] into $MOTO_VENV" >&2
        if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
            echo "python3 cannot make a virtualenv: installing Debian's python3-venv package" >&2
            if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
            $SUDO apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
        fi
        rm -rf "$MOTO_VENV"
        python3 -m venv "$MOTO_VENV"
        "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    fi
    export MOTO_SERVER="$MOTO_VENV/bin/moto_server"
fi

# The benchmark package (bench/) is left out: its tests are criterion's benchmarks, which
# `cargo bench` runs, and building it would build the peer crate it is measured against
# (axum-idempotent, with its session layer) and criterion for nothing. Clippy still lints it.
exec cargo test --workspace --all-features --exclude idempotent-bench "$@"

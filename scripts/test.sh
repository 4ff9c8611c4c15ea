#!/usr/bin/env bash
# Runs every test of the workspace (but the benchmarks'). The tests start their own private
# servers on free loopback ports: redis-server (and redis-cli) for the Redis tests, varnishd
# for the HTTP-cache flow, moto's server for the DynamoDB tests, and for the PostgreSQL tests
# clusters of their own (initdb in a temporary directory, then postgres; never the machine's
# server); the Spring-parity tests compile a small Java program against Jackson. This script
# installs what is missing (Debian's packages, without starting any system service; moto
# and openapi-spec-validator, for the example's OpenAPI document, from PyPI into a virtualenv
# below).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v varnishd >/dev/null 2>&1 || [ -x /usr/sbin/varnishd ] || missing+=(varnish)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
[ -e /usr/share/java/jackson-databind.jar ] || missing+=(libjackson2-databind-java)
# Debian keeps initdb and postgres off PATH, in /usr/lib/postgresql/<version>/bin.
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
    missing+=(postgresql)
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian's ${missing[*]} for the tests" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    # No package may start its service: the tests run their own servers.
    policy=/usr/sbin/policy-rc.d
    added_policy=""
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod +x "$policy"
        added_policy=1
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    if [ -n "$added_policy" ]; then $SUDO rm -f "$policy"; fi
fi
# varnishd lives in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin"

# The DynamoDB tests start their own moto servers (moto's server mode, `moto_server`, a local
# DynamoDB API), and tests/openapi.rs checks the example's OpenAPI document with
# openapi-spec-validator. Both come from PyPI, into one virtualenv of this project's own
# (Debian's python refuses system-wide pip installs, PEP 668), made once and remade when a
# pinned version changes; the tests find them through MOTO_SERVER and OPENAPI_SPEC_VALIDATOR.
# Either variable already set is used as it is.
MOTO_VERSION="5.2.5"
OPENAPI_SPEC_VALIDATOR_VERSION="0.9.0"
MOTO_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/idempotent-tests/moto"
if [ -z "${MOTO_SERVER:-}" ] || [ -z "${OPENAPI_SPEC_VALIDATOR:-}" ]; then
    versions="$("$MOTO_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"), m.version("openapi-spec-validator"))' 2>/dev/null || true)"
    if [ "$versions" != "$MOTO_VERSION $OPENAPI_SPEC_VALIDATOR_VERSION" ] \
        || [ ! -x "$MOTO_VENV/bin/moto_server" ] || [ ! -x "$MOTO_VENV/bin/openapi-spec-validator" ]; then
        echo "moto $MOTO_VERSION and openapi-spec-validator $OPENAPI_SPEC_VALIDATOR_VERSION not found: installing them into $MOTO_VENV" >&2
        if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
            echo "python3 cannot make a virtualenv: installing Debian's python3-venv package" >&2
            if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
            $SUDO apt-get update -qq
            DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3 python3-venv >/dev/null
        fi
        rm -rf "$MOTO_VENV"
        python3 -m venv "$MOTO_VENV"
        "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check \
            "moto[server]==$MOTO_VERSION" "openapi-spec-validator==$OPENAPI_SPEC_VALIDATOR_VERSION"
    fi
    export MOTO_SERVER="${MOTO_SERVER:-$MOTO_VENV/bin/moto_server}"
    export OPENAPI_SPEC_VALIDATOR="${OPENAPI_SPEC_VALIDATOR:-$MOTO_VENV/bin/openapi-spec-validator}"
fi

# The benchmark package (bench/) is left out: its tests are criterion's benchmarks, which
# `cargo bench` runs, and building it would build the peer crate it is measured against
# (axum-idempotent, with its session layer) and criterion for nothing. Clippy still lints it.
exec cargo test --workspace --all-features --exclude idempotent-bench "$@"

#!/usr/bin/env bash
# The load benchmark: requests/s and latency of one order handler served bare, under
# `#[idempotent]` (in-memory store, Redis, Redis behind the local cache, PostgreSQL and
# DynamoDB) and under the `axum-idempotent` crate, on loopback, driven by `wrk`. Writes the
# results into BENCHMARKS.md (between the `results` markers; the rest of the file is kept).
#
#   bash scripts/bench.sh                      # 5 rounds of 8 s per path, 32 connections
#   ROUNDS=9 DURATION=15s bash scripts/bench.sh
#   PATHS="bare postgres-fresh postgres-replay" ROUNDS=1 OUT=/tmp/pg.md bash scripts/bench.sh
#
# Settings (environment): ROUNDS (5), DURATION (8s), WARMUP (2s), CONNECTIONS (32),
# THREADS (wrk threads, 2), SESSIONS (session cookies the axum-idempotent fresh-key path
# spreads its keys over, 1024), REDIS (1; 0 skips the Redis paths), POSTGRES (1; 0 skips
# the PostgreSQL paths), DYNAMODB (1; 0 skips the DynamoDB paths), PG_KEEP (how many of
# its pool's 16 connections the PostgreSQL store keeps between its statements, 16; 0: each
# statement takes a connection from the pool and gives it back), PATHS (the paths to
# measure, separated by spaces, from: bare memory-fresh memory-replay peer-fresh
# peer-replay redis-fresh redis-replay redis-cached-replay postgres-fresh postgres-replay
# postgres-nosync-fresh dynamodb-fresh dynamodb-replay; default all of them, but those of
# a store skipped; when set, the stores started are those its paths need, whatever
# REDIS, POSTGRES and DYNAMODB say), OUT (BENCHMARKS.md).
#
# Each measurement starts a fresh server process (empty stores), warms it up, then runs
# wrk; the order of the paths rotates from round to round, so that a slow moment of a
# shared machine does not always land on the same path. The figures reported are the
# medians over the rounds. Redis is a private redis-server on a free loopback port,
# without persistence, stopped at the end; PostgreSQL a private cluster (initdb in a
# temporary directory, run as the `postgres` user under root, default settings: fsync on)
# on a free loopback port, stopped at the end; postgres-nosync-fresh is the fresh-key path
# on the same cluster over a second pool whose sessions commit with
# `synchronous_commit = off` (the commit does not wait for its WAL to reach the disk).
# DynamoDB is a private moto server (moto's `moto_server`, the local DynamoDB API the tests
# use, serving one request at a time as the tests run it) on a free loopback port, reset
# before each measurement, stopped at the end. wrk, redis-server and postgresql are
# installed from Debian's packages when missing; moto from PyPI into the virtualenv
# scripts/test.sh uses (same place, same pinned versions), unless MOTO_SERVER names a
# moto_server.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-2s}
CONNECTIONS=${CONNECTIONS:-32}
THREADS=${THREADS:-2}
SESSIONS=${SESSIONS:-1024}
REDIS=${REDIS:-1}
POSTGRES=${POSTGRES:-1}
DYNAMODB=${DYNAMODB:-1}
PG_KEEP=${PG_KEEP:-16}
OUT=${OUT:-BENCHMARKS.md}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
ALL_PATHS=(bare memory-fresh memory-replay peer-fresh peer-replay
    redis-fresh redis-replay redis-cached-replay
    postgres-fresh postgres-replay postgres-nosync-fresh
    dynamodb-fresh dynamodb-replay)
if [ -n "${PATHS:-}" ]; then
    read -r -a PATHS <<<"$PATHS"
    REDIS=0 POSTGRES=0 DYNAMODB=0
    for path in "${PATHS[@]}"; do
        case " ${ALL_PATHS[*]} " in *" $path "*) ;; *)
            echo "PATHS: unknown path $path (known: ${ALL_PATHS[*]})" >&2
            exit 1
            ;;
        esac
        case $path in
        redis-*) REDIS=1 ;;
        postgres-*) POSTGRES=1 ;;
        dynamodb-*) DYNAMODB=1 ;;
        esac
    done
    SELECTED="PATHS=\"${PATHS[*]}\" "
else
    PATHS=()
    for path in "${ALL_PATHS[@]}"; do
        case $path in
        redis-*) [ "$REDIS" = 1 ] || continue ;;
        postgres-*) [ "$POSTGRES" = 1 ] || continue ;;
        dynamodb-*) [ "$DYNAMODB" = 1 ] || continue ;;
        esac
        PATHS+=("$path")
    done
    SELECTED=""
fi
COMMAND="${SELECTED}ROUNDS=$ROUNDS DURATION=$DURATION WARMUP=$WARMUP CONNECTIONS=$CONNECTIONS THREADS=$THREADS SESSIONS=$SESSIONS REDIS=$REDIS POSTGRES=$POSTGRES PG_KEEP=$PG_KEEP DYNAMODB=$DYNAMODB bash scripts/bench.sh"

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
if [ "$REDIS" = 1 ]; then
    command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
    command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
fi
# Debian keeps initdb and postgres off PATH, in /usr/lib/postgresql/<version>/bin.
pg_bin() {
    if command -v initdb >/dev/null 2>&1; then
        # The directory of the real binary, where pg_isready and psql live too.
        dirname "$(readlink -f "$(command -v initdb)")"
    else
        find /usr/lib/postgresql -path '*/bin/initdb' 2>/dev/null | sort -V | tail -1 | xargs -r dirname
    fi
}
if [ "$POSTGRES" = 1 ] && [ -z "$(pg_bin)" ]; then need+=(postgresql); fi
if [ "$DYNAMODB" = 1 ] && [ -z "${MOTO_SERVER:-}" ]; then
    command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1 ||
        need+=(python3 python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}" >&2
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# moto: MOTO_SERVER, else the virtualenv scripts/test.sh installs (its pinned versions, read
# from it, so that the tests find the virtualenv as they expect it).
if [ "$DYNAMODB" = 1 ] && [ -z "${MOTO_SERVER:-}" ]; then
    MOTO_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/idempotent-tests/moto"
    moto_pin=$(sed -n 's/^MOTO_VERSION="\(.*\)"$/\1/p' scripts/test.sh)
    validator_pin=$(sed -n 's/^OPENAPI_SPEC_VALIDATOR_VERSION="\(.*\)"$/\1/p' scripts/test.sh)
    [ -n "$moto_pin" ] && [ -n "$validator_pin" ] ||
        { echo "cannot read moto's pinned version from scripts/test.sh" >&2; exit 1; }
    versions="$("$MOTO_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"), m.version("openapi-spec-validator"))' 2>/dev/null || true)"
    if [ "$versions" != "$moto_pin $validator_pin" ] || [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
        echo "moto $moto_pin not found: installing it into $MOTO_VENV (as scripts/test.sh does)" >&2
        rm -rf "$MOTO_VENV"
        python3 -m venv "$MOTO_VENV"
        "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check \
            "moto[server]==$moto_pin" "openapi-spec-validator==$validator_pin"
    fi
    MOTO_SERVER="$MOTO_VENV/bin/moto_server"
fi

echo "building the server (release)" >&2
cargo build --release --quiet -p idempotent-bench --bin loadbench_server
SERVER_BIN="$TARGET_DIR/release/loadbench_server"

WORK=$(mktemp -d)
SERVER_PID=""
REDIS_PID=""
PG_PID=""
MOTO_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; wait "$REDIS_PID" 2>/dev/null || true; fi
    if [ -n "$MOTO_PID" ]; then kill "$MOTO_PID" 2>/dev/null || true; wait "$MOTO_PID" 2>/dev/null || true; fi
    if [ -n "$PG_PID" ]; then
        kill -INT "$PG_PID" 2>/dev/null || true # fast shutdown
        for _ in $(seq 1 100); do kill -0 "$PG_PID" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# A loopback port nobody listens on (checked, then used at once).
free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "no free port found" >&2
    return 1
}

REDIS_URL=""
if [ "$REDIS" = 1 ]; then
    for _ in 1 2 3 4 5; do
        REDIS_PORT=$(free_port)
        mkdir -p "$WORK/redis"
        redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
            --dir "$WORK/redis" --daemonize no >"$WORK/redis.log" 2>&1 &
        REDIS_PID=$!
        for _ in $(seq 1 200); do
            pid=$(redis-cli -p "$REDIS_PORT" INFO server 2>/dev/null | tr -d '\r' | sed -n 's/^process_id://p' || true)
            [ "$pid" = "$REDIS_PID" ] && break
            sleep 0.05
        done
        if [ "${pid:-}" = "$REDIS_PID" ]; then
            REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
            break
        fi
        kill "$REDIS_PID" 2>/dev/null || true
        wait "$REDIS_PID" 2>/dev/null || true
        REDIS_PID=""
    done
    [ -n "$REDIS_URL" ] || { echo "could not start redis-server" >&2; exit 1; }
    echo "private redis-server on $REDIS_URL (pid $REDIS_PID)" >&2
fi

DATABASE_URL=""
if [ "$POSTGRES" = 1 ]; then
    PG_BIN=$(pg_bin)
    as_pg=()
    if [ "$(id -u)" -eq 0 ]; then
        # PostgreSQL refuses to run as root.
        chown postgres "$WORK"
        as_pg=(runuser -u postgres --)
    fi
    "${as_pg[@]}" "$PG_BIN/initdb" -D "$WORK/pg" -U postgres --auth=trust --no-sync -E UTF8 \
        --locale C >"$WORK/initdb.log" 2>&1 || { cat "$WORK/initdb.log" >&2; exit 1; }
    PG_PORT=$(free_port)
    "${as_pg[@]}" "$PG_BIN/postgres" -D "$WORK/pg" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
        -c unix_socket_directories= -c max_connections=100 >"$WORK/postgres.log" 2>&1 &
    for _ in $(seq 1 200); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
        sleep 0.05
    done
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || { cat "$WORK/postgres.log" >&2; exit 1; }
    PG_PID=$(head -1 "$WORK/pg/postmaster.pid")
    DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    echo "private PostgreSQL on 127.0.0.1:$PG_PORT (postmaster $PG_PID)" >&2
fi
psql_run() { "$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$1" >/dev/null; }

# moto's server, by the Python of its virtualenv, serving one request at a time (as
# tests/support/dynamodb.rs runs it: moto checks a write's condition and then writes without
# a lock, so that concurrent conditional writes of one item could both succeed; DynamoDB
# applies them one after the other). It answers with `Connection: close`.
DYNAMODB_ENDPOINT=""
if [ "$DYNAMODB" = 1 ]; then
    for _ in 1 2 3; do
        MOTO_PORT=$(free_port)
        "$(dirname "$MOTO_SERVER")/python3" -c 'import sys, moto.server as s
serve = s.run_simple
s.run_simple = lambda *a, **k: serve(*a, **{**k, "threaded": False})
s.main(sys.argv[1:])' -H 127.0.0.1 -p "$MOTO_PORT" >"$WORK/moto.log" 2>&1 &
        MOTO_PID=$!
        for _ in $(seq 1 600); do
            curl -sf -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/data.json" && break
            kill -0 "$MOTO_PID" 2>/dev/null || break
            sleep 0.1
        done
        if curl -sf -o /dev/null "http://127.0.0.1:$MOTO_PORT/moto-api/data.json"; then
            DYNAMODB_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
            break
        fi
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
        MOTO_PID=""
    done
    [ -n "$DYNAMODB_ENDPOINT" ] || { cat "$WORK/moto.log" >&2; echo "could not start moto_server" >&2; exit 1; }
    echo "private moto server on $DYNAMODB_ENDPOINT (pid $MOTO_PID)" >&2
fi

# Every path sends the same request: POST, a 14-byte JSON body, an Idempotency-Key and a
# session cookie (which only axum-idempotent reads). BENCH_MODE=fresh counts the key up on
# every request and spreads the cookies over BENCH_SESSIONS sessions; BENCH_MODE=replay
# sends key `replay-0` with cookie `session=s00000000000000000000A` every time, doing the
# same string work per request.
cat >"$WORK/bench.lua" <<'LUA'
local mode = os.getenv("BENCH_MODE") or "fresh"
local run = os.getenv("BENCH_RUN") or "run"
local sessions = tonumber(os.getenv("BENCH_SESSIONS") or "1024")
local nthreads = 0
local counter = 0

function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end

wrk.method = "POST"
wrk.body = '{"amount":100}'
wrk.headers["Content-Type"] = "application/json"

function request()
  local n = 0
  local key
  if mode == "fresh" then
    counter = counter + 1
    n = counter * 8 + tid
    key = run .. "-" .. n
  else
    key = "replay-" .. n
  end
  wrk.headers["Idempotency-Key"] = key
  wrk.headers["Cookie"] = string.format("session=s%020dA", n % sessions)
  return wrk.format()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d status_errors=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
LUA

# path: route, wrk mode, replay header to check (empty: none)
declare -A ROUTE=(
    [bare]=/bare
    [memory-fresh]=/memory [memory-replay]=/memory
    [redis-fresh]=/redis [redis-replay]=/redis [redis-cached-replay]=/redis-cached
    [postgres-fresh]=/postgres [postgres-replay]=/postgres [postgres-nosync-fresh]=/postgres-nosync
    [dynamodb-fresh]=/dynamodb [dynamodb-replay]=/dynamodb
    [peer-fresh]=/peer [peer-replay]=/peer
)
declare -A REPLAY_HEADER=(
    [memory-replay]=idempotent-replayed [redis-replay]=idempotent-replayed
    [redis-cached-replay]=idempotent-replayed [postgres-replay]=idempotent-replayed
    [dynamodb-replay]=idempotent-replayed [peer-replay]=idempotency-replayed
)

post() { # url key cookie -> headers of the response on stdout
    curl -sS -o /dev/null -D - -X POST "$1" -H 'Content-Type: application/json' \
        -H "Idempotency-Key: $2" -H "Cookie: session=$3" -d '{"amount":100}' | tr -d '\r'
}

start_server() {
    : >"$WORK/server.log"
    BIND=127.0.0.1:0 REDIS_URL="$REDIS_URL" DATABASE_URL="$DATABASE_URL" PG_KEEP="$PG_KEEP" \
        DYNAMODB_ENDPOINT="$DYNAMODB_ENDPOINT" "$SERVER_BIN" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        ADDR=$(sed -n 's/^loadbench server ready on \([^ ]*\).*/\1/p' "$WORK/server.log")
        [ -n "$ADDR" ] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat "$WORK/server.log" >&2
    echo "the server did not start" >&2
    exit 1
}

# CPU time (user + system, in clock ticks) a process has used so far.
HZ=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# The same for the postmaster and every backend and worker it forked.
pg_cpu_ticks() {
    local total=0 pid
    for pid in "$PG_PID" $(awk -v p="$PG_PID" '$4 == p { print $1 }' /proc/[0-9]*/stat 2>/dev/null); do
        total=$((total + $(cpu_ticks "$pid" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# measure PATH ROUND: one fresh server, checks, warm-up, measurement; appends to results.
measure() {
    local path=$1 round=$2 mode=fresh url
    case $path in *-replay) mode=replay ;; esac
    [ -n "$REDIS_URL" ] && redis-cli -u "$REDIS_URL" FLUSHALL >/dev/null
    # The server creates the tables again at start.
    [ -n "$DATABASE_URL" ] && psql_run "DROP TABLE IF EXISTS idempotency_keys"
    [ -n "$DYNAMODB_ENDPOINT" ] && curl -sf -o /dev/null -X POST "$DYNAMODB_ENDPOINT/moto-api/reset"
    start_server
    url="http://$ADDR${ROUTE[$path]}"
    local sample first replayed
    sample=$(post "$url" "check-$round-$RANDOM" s00000000000000000001A)
    case $sample in "HTTP/1.1 201"*) ;; *) echo "$path: unexpected answer: $sample" >&2; exit 1 ;; esac
    if [ "$mode" = replay ]; then
        first=$(post "$url" replay-0 s00000000000000000000A)
        replayed=$(post "$url" replay-0 s00000000000000000000A)
        if printf '%s' "$first" | grep -qi "^${REPLAY_HEADER[$path]}:" ||
            ! printf '%s' "$replayed" | grep -qi "^${REPLAY_HEADER[$path]}: true"; then
            echo "$path: the second request was not a replay:" >&2
            printf '%s\n---\n%s\n' "$first" "$replayed" >&2
            exit 1
        fi
    fi
    BENCH_MODE=$mode BENCH_RUN="w$round" BENCH_SESSIONS=$SESSIONS \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$WARMUP" -s "$WORK/bench.lua" "$url" >/dev/null
    local out cpu0 cpu1 rcpu0=0 rcpu1=0
    cpu0=$(cpu_ticks "$SERVER_PID")
    case $path in
    redis-*) rcpu0=$(cpu_ticks "$REDIS_PID") ;;
    postgres-*) rcpu0=$(pg_cpu_ticks) ;;
    dynamodb-*) rcpu0=$(cpu_ticks "$MOTO_PID") ;;
    esac
    out=$(BENCH_MODE=$mode BENCH_RUN="r$round" BENCH_SESSIONS=$SESSIONS \
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$WORK/bench.lua" "$url")
    cpu1=$(cpu_ticks "$SERVER_PID")
    case $path in
    redis-*) rcpu1=$(cpu_ticks "$REDIS_PID") ;;
    postgres-*) rcpu1=$(pg_cpu_ticks) ;;
    dynamodb-*) rcpu1=$(cpu_ticks "$MOTO_PID") ;;
    esac
    if [ "$mode" = replay ]; then
        replayed=$(post "$url" replay-0 s00000000000000000000A)
        printf '%s' "$replayed" | grep -qi "^${REPLAY_HEADER[$path]}: true" ||
            { echo "$path: no longer replaying after the run" >&2; exit 1; }
    fi
    stop_server
    # A store call that failed (a missed deadline on a busy machine) ran the handler without
    # idempotency (fail_open): said in the report, beside the figures.
    if grep -q 'idempotency' "$WORK/server.log"; then
        echo "$path: the server logged idempotency warnings (a store call failed):" >&2
        grep 'idempotency' "$WORK/server.log" | head -3 >&2
        echo "$path (round $round)" >>"$WORK/failures"
    fi
    local line
    line=$(printf '%s\n' "$out" | grep '^RESULT') || { printf '%s\n' "$out" >&2; exit 1; }
    local requests duration_us status_errors socket_errors p50_us p99_us
    eval "$(printf '%s' "${line#RESULT }" | tr ' ' '\n')"
    if [ "$status_errors" != 0 ] || [ "$socket_errors" != 0 ]; then
        echo "$path: $status_errors non-2xx answers, $socket_errors socket errors" >&2
        printf '%s\n' "$out" >&2
        exit 1
    fi
    local rps cpu rcpu
    rps=$(awk -v r="$requests" -v d="$duration_us" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
    cpu=$(awk -v t="$((cpu1 - cpu0))" -v hz="$HZ" -v r="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / r }')
    rcpu=$(awk -v t="$((rcpu1 - rcpu0))" -v hz="$HZ" -v r="$requests" 'BEGIN { printf "%.1f", t / hz * 1e6 / r }')
    printf '%s %s %s %s %s %s %s\n' "$path" "$round" "$rps" "$p50_us" "$p99_us" "$cpu" "$rcpu" >>"$WORK/results"
    printf '  round %s %-22s %8s req/s  p50 %6s us  p99 %6s us  server CPU %5s us/req  store CPU %5s us/req\n' \
        "$round" "$path" "$rps" "$p50_us" "$p99_us" "$cpu" "$rcpu" >&2
}

# CPU time of the whole machine so far, and the part of it the hypervisor gave to others
# (steal), in clock ticks.
cpu_total() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t }' /proc/stat; }
cpu_steal() { awk '$1 == "cpu" { print $9 }' /proc/stat; }
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
TOTAL_BEFORE=$(cpu_total)
STEAL_BEFORE=$(cpu_steal)
START=$(date -u '+%Y-%m-%d %H:%M UTC')
: >"$WORK/results"
: >"$WORK/failures"
n=${#PATHS[@]}
for round in $(seq 1 "$ROUNDS"); do
    echo "round $round of $ROUNDS" >&2
    for i in $(seq 0 $((n - 1))); do
        measure "${PATHS[$(((i + round - 1) % n))]}" "$round"
    done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
STEAL=$(awk -v s="$(($(cpu_steal) - STEAL_BEFORE))" -v t="$(($(cpu_total) - TOTAL_BEFORE))" \
    'BEGIN { printf "%.1f", (t > 0 ? 100 * s / t : 0) }')

# Medians over the rounds, per path: rps p50 p99.
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.0f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
median1() { sort -n | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A RPS P50 P99 CPU RCPU ROUNDS_RPS
for path in "${PATHS[@]}"; do
    CPU[$path]=$(awk -v p="$path" '$1 == p { print $6 }' "$WORK/results" | median1)
    RCPU[$path]=$(awk -v p="$path" '$1 == p { print $7 }' "$WORK/results" | median1)
    RPS[$path]=$(awk -v p="$path" '$1 == p { print $3 }' "$WORK/results" | median)
    P50[$path]=$(awk -v p="$path" '$1 == p { print $4 }' "$WORK/results" | median)
    P99[$path]=$(awk -v p="$path" '$1 == p { print $5 }' "$WORK/results" | median)
    ROUNDS_RPS[$path]=$(awk -v p="$path" '$1 == p { printf "%s%s", sep, $3; sep = ", " }' "$WORK/results")
done
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cost() { # server CPU per request; for the paths of a networked store, plus the store's
    local extra=0
    case $1 in redis-* | postgres-* | dynamodb-*) extra=${RCPU[$1]} ;; esac
    awk -v a="${CPU[$1]}" -v b="$extra" 'BEGIN { print a + b }'
}
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t ? "holds" : "**misses**") }'; }

label() {
    case $1 in
    bare) echo "bare handler (no idempotency)" ;;
    memory-fresh) echo "\`#[idempotent]\`, memory store, fresh key" ;;
    memory-replay) echo "\`#[idempotent]\`, memory store, replay" ;;
    redis-fresh) echo "\`#[idempotent]\`, Redis, fresh key" ;;
    redis-replay) echo "\`#[idempotent]\`, Redis, replay" ;;
    redis-cached-replay) echo "\`#[idempotent]\`, Redis behind the local cache, replay" ;;
    postgres-fresh) echo "\`#[idempotent]\`, PostgreSQL, fresh key" ;;
    postgres-replay) echo "\`#[idempotent]\`, PostgreSQL, replay" ;;
    postgres-nosync-fresh) echo "\`#[idempotent]\`, PostgreSQL with \`synchronous_commit = off\`, fresh key" ;;
    dynamodb-fresh) echo "\`#[idempotent]\`, DynamoDB (moto), fresh key" ;;
    dynamodb-replay) echo "\`#[idempotent]\`, DynamoDB (moto), replay" ;;
    peer-fresh) echo "axum-idempotent 0.6, in-memory, fresh key" ;;
    peer-replay) echo "axum-idempotent 0.6, in-memory, replay" ;;
    esac
}

{
    echo "<!-- results:start (written by scripts/bench.sh) -->"
    echo "### Load benchmark: $START"
    echo
    echo "- Machine: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(uname -sr)"
    echo "- Load average (1, 5, 15 min) before: $LOAD_BEFORE; after: $LOAD_AFTER; CPU time taken by the hypervisor for other guests (steal) during the run: $STEAL %"
    echo "- Command: \`$COMMAND\`"
    if [ -s "$WORK/failures" ]; then
        echo "- Store calls that failed (the handler then ran without idempotency, \`fail_open\`), logged by the server in: $(paste -sd, "$WORK/failures" | sed 's/,/, /g')"
    fi
    echo "- wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}'), $THREADS threads, $CONNECTIONS connections, $DURATION per path and round after a $WARMUP warm-up, $ROUNDS rounds (order rotated each round); a fresh server process per measurement; medians over the rounds"
    echo
    echo "| path | requests/s | p50 | p99 | server CPU per request | requests/s per round |"
    echo "|---|---:|---:|---:|---:|---|"
    for path in bare memory-fresh memory-replay redis-fresh redis-replay redis-cached-replay postgres-fresh postgres-replay postgres-nosync-fresh dynamodb-fresh dynamodb-replay peer-fresh peer-replay; do
        [ -n "${RPS[$path]:-}" ] || continue
        cpu="${CPU[$path]} µs"
        case $path in
        redis-*) cpu="$cpu (+ Redis ${RCPU[$path]} µs)" ;;
        postgres-*) cpu="$cpu (+ PostgreSQL ${RCPU[$path]} µs)" ;;
        dynamodb-*) cpu="$cpu (+ moto ${RCPU[$path]} µs)" ;;
        esac
        echo "| $(label "$path") | ${RPS[$path]} | $(ms "${P50[$path]}") ms | $(ms "${P99[$path]}") ms | $cpu | ${ROUNDS_RPS[$path]} |"
    done
    echo
    echo "Server CPU per request is the user + system time the server process used during the measurement, divided by the requests served. It moves less than requests/s with what else runs on the machine, though not by nothing."
    echo
    echo "| target | requests/s ratio | | server CPU ratio | requests/s ratio in each round |"
    echo "|---|---:|---|---:|---|"
    per_round() { # path a, path b: a's throughput over b's, round by round
        awk -v a="$1" -v b="$2" '$1 == a { x[$2] = $3 } $1 == b { y[$2] = $3 }
            END { for (r = 1; r in x; r++) { printf "%s%.2f", sep, x[r] / y[r]; sep = ", " } }' "$WORK/results"
    }
    target() { # label, path a, path b, threshold: a's throughput over b's
        local r c
        [ -n "${RPS[$2]:-}" ] && [ -n "${RPS[$3]:-}" ] || return 0
        r=$(ratio "${RPS[$2]}" "${RPS[$3]}")
        c=$(ratio "$(cost "$3")" "$(cost "$2")")
        echo "| $1 | $r | $(verdict "$r" "$4") | $c | $(per_round "$2" "$3") |"
    }
    target "memory store, fresh key ≥ 0.75× bare" memory-fresh bare 0.75
    target "memory store, replay ≥ 0.95× bare" memory-replay bare 0.95
    target "fresh key ≥ 1.2× axum-idempotent's" memory-fresh peer-fresh 1.2
    target "replay ≥ 1.1× axum-idempotent's" memory-replay peer-replay 1.1
    untargeted() { # label, path: its throughput over the bare handler's, no target
        local r c
        [ -n "${RPS[$2]:-}" ] && [ -n "${RPS[bare]:-}" ] || return 0
        r=$(ratio "${RPS[$2]}" "${RPS[bare]}")
        c=$(ratio "$(cost bare)" "$(cost "$2")")
        echo "| $1 (no target) | $r | | $c | $(per_round "$2" bare) |"
    }
    target "Redis, replay ≥ 0.5× bare" redis-replay bare 0.5
    target "Redis, fresh key ≥ 0.35× bare" redis-fresh bare 0.35
    target "Redis behind the local cache, replay ≥ 0.85× bare" redis-cached-replay bare 0.85
    for path in postgres-replay postgres-fresh postgres-nosync-fresh dynamodb-replay dynamodb-fresh; do
        untargeted "$(label "$path")" "$path"
    done
    echo
    echo "The server CPU ratio compares the CPU time each path costs per request (for Redis, PostgreSQL and DynamoDB, the server's and the store's together: Redis's process, the PostgreSQL cluster's processes, moto's process), leaving out the load generator, which shares the machine's cores and costs the same on every path; it is the stricter figure."
    echo "<!-- results:end -->"
} >"$WORK/section.md"

if [ -f "$OUT" ] && grep -q '^<!-- results:start' "$OUT" && grep -q '^<!-- results:end -->' "$OUT"; then
    awk -v section="$WORK/section.md" '
        /^<!-- results:start/ { while ((getline line < section) > 0) print line; skip = 1; next }
        /^<!-- results:end -->/ { skip = 0; next }
        !skip { print }
    ' "$OUT" >"$WORK/out.md"
    cp "$WORK/out.md" "$OUT"
else
    { echo "# Benchmarks"; echo; cat "$WORK/section.md"; } >"$OUT"
fi
cat "$WORK/section.md"
echo "results written to $OUT" >&2

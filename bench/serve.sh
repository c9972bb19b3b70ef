#!/usr/bin/env bash
# bench/serve.sh: how fast do the watch's /metrics and /api/status answer on a
# big SQLite ledger under load? A measurement, not a test (that no request
# fails under this load is tests/it/serve.rs's fifty_clients_... test).
#
# What it does
#   Builds a --rows deployment ledger with bench/status.sh (its generator:
#   deployments, releases and ~4 audit rows each), starts
#   `shipctl reconcile --watch --listen 127.0.0.1:0` on it with manifests that
#   manage no environment (the rounds write nothing), then runs --clients
#   concurrent keep-alive clients for --seconds, each alternating GET /metrics
#   and GET /api/status, and prints the count, errors, and p50/p99/max latency
#   per endpoint. Target: p99 under 20 ms on SQLite, no error. It exits 0
#   whatever the latency ("TARGET: MET" or "TARGET: NOT MET"), 1 on an error
#   answer or a failure to start.
#
# Usage
#   bench/serve.sh [--rows N] [--clients N] [--seconds N] [--no-build]
#   Needs cargo, python3 (standard library only) and the sqlite3 CLI.
set -euo pipefail

ROWS=100000
CLIENTS=50
SECONDS_=10
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rows) ROWS="${2:?--rows needs a number}"; shift 2 ;;
        --clients) CLIENTS="${2:?--clients needs a number}"; shift 2 ;;
        --seconds) SECONDS_="${2:?--seconds needs a number}"; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 1 ;;
    esac
done

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
SHIPCTL="$ROOT/target/release/shipctl"
if [[ $BUILD -eq 1 ]]; then
    echo "== building the release binary"
    (cd "$ROOT" && cargo build --release --quiet)
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/shipctl-serve-bench.XXXXXX")"
WATCH_PID=""
cleanup() {
    if [[ -n "$WATCH_PID" ]]; then kill -TERM "$WATCH_PID" 2>/dev/null || true; wait "$WATCH_PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "== a $ROWS-deployment ledger (bench/status.sh's generator)"
"$HERE/status.sh" --rows "$ROWS" --runs 1 --no-build --keep >"$WORK/status.log" 2>&1 \
    || { cat "$WORK/status.log" >&2; exit 1; }
KEPT="$(sed -n 's/^database kept: //p' "$WORK/status.log")"
[[ -f "$KEPT" ]] || { echo "bench/status.sh kept no database" >&2; cat "$WORK/status.log" >&2; exit 1; }
mv "$KEPT" "$WORK/ledger.db"
rm -rf "$(dirname "$KEPT")"

mkdir -p "$WORK/manifests"
printf 'releases: []\nenvironments: {}\n' >"$WORK/manifests/shipctl.yaml"
echo "== starting the watch with --listen"
(cd "$WORK" && exec "$SHIPCTL" --database-url "sqlite://$WORK/ledger.db" reconcile --watch \
    --manifests manifests --interval 1h --listen 127.0.0.1:0) >"$WORK/watch.out" 2>"$WORK/watch.err" &
WATCH_PID=$!
ADDR=""
for _ in $(seq 1 100); do
    ADDR="$(sed -n 's|^watch: serving http://\([^/]*\)/.*|\1|p' "$WORK/watch.err" | head -n 1)"
    [[ -n "$ADDR" ]] && break
    sleep 0.1
done
[[ -n "$ADDR" ]] || { echo "the watch did not start:" >&2; cat "$WORK/watch.err" >&2; exit 1; }
echo "   serving on $ADDR"

echo "== $CLIENTS clients for ${SECONDS_}s: GET /metrics and GET /api/status, alternating"
python3 - "$ADDR" "$CLIENTS" "$SECONDS_" <<'PY'
import asyncio, sys, time

addr, clients, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
host, port = addr.rsplit(":", 1)
lat = {"/metrics": [], "/api/status": []}
errors = []

async def one(reader, writer, path):
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    code = int(lines[0].split(" ")[1])
    length = next(int(l.split(":", 1)[1]) for l in lines if l.lower().startswith("content-length:"))
    await reader.readexactly(length)
    return code

async def client(n, until):
    reader, writer = await asyncio.open_connection(host, int(port))
    i = n
    while time.monotonic() < until:
        path = "/metrics" if i % 2 == 0 else "/api/status"
        i += 1
        t = time.perf_counter()
        code = await one(reader, writer, path)
        lat[path].append(time.perf_counter() - t)
        if code != 200:
            errors.append((path, code))
    writer.close()

async def main():
    # One warm-up request: the first reading of the ledger.
    r, w = await asyncio.open_connection(host, int(port))
    t = time.perf_counter()
    await one(r, w, "/metrics")
    print(f"   first reading: {(time.perf_counter() - t) * 1000:.1f} ms")
    w.close()
    until = time.monotonic() + seconds
    await asyncio.gather(*(client(n, until) for n in range(clients)))

asyncio.run(main())
worst = 0.0
for path, xs in lat.items():
    xs.sort()
    if not xs:
        continue
    q = lambda p: xs[min(len(xs) - 1, int(p * len(xs)))] * 1000
    worst = max(worst, q(0.99))
    print(f"   {path:12} {len(xs):7} requests  p50 {q(0.50):6.2f} ms  p99 {q(0.99):6.2f} ms  max {xs[-1] * 1000:6.2f} ms")
print(f"   errors: {len(errors)}")
print("TARGET: MET" if worst < 20 and not errors else "TARGET: NOT MET", "(p99 < 20 ms, no error)")
sys.exit(1 if errors else 0)
PY

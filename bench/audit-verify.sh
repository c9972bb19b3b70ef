#!/usr/bin/env bash
# bench/audit-verify.sh: how fast does `shipctl audit verify` recompute the
# audit log's hash chains on a big SQLite ledger? (DESIGN §12, issue 13)
#
# What it measures
#   The wall clock of whole `shipctl --database-url sqlite://DB audit verify`
#   processes (start, open read-only, one ordered read of every row, SHA-256 of
#   each, output to /dev/null) over --rows audit rows, median of --runs runs
#   after one warm-up, and the rows per second that gives. The target is at
#   least 500,000 rows/s; the script exits 0 whatever the speed (it is a
#   measurement, not a test) and prints "TARGET: MET" or "TARGET: NOT MET".
#   It also prints how long the migration that chains an existing ledger took
#   on those rows (the same code that chains a ledger upgraded to the chains).
#
# The data
#   A ledger created by shipctl itself, taken back to the schema before the
#   chains (migration 11's columns, index and table dropped, its version row
#   deleted: only while 11 is the newest migration), then --rows audit rows
#   inserted by python3's sqlite3 module in one statement: a quarter each in
#   dev, staging, prod and no environment, deployment-sized messages, dates a
#   tenth of a second apart. The next writing command (`release --create`)
#   migrates: its Rust step chains every row, as on a real upgrade.
#
# Correctness
#   Before timing: `audit verify --output json` must say intact, with every row.
#   After timing: one message changed with SQL must make it exit 1 naming the row.
#
# Usage
#   bench/audit-verify.sh [--rows N] [--runs N] [--keep] [--no-build]
#   Needs cargo and python3 (standard library only).
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: bench/audit-verify.sh [OPTIONS]

Times `shipctl audit verify` on a generated SQLite ledger of N audit rows,
chained by shipctl's own migration, and prints rows per second.

Options:
  --rows N     audit rows to generate (default 1000000)
  --runs N     timed runs, after one warm-up (default 5)
  --keep       keep the generated database and print its path
  --no-build   do not run `cargo build --release`; use target/release/shipctl as is
  -h, --help   this help

Exit status: 0 when measured (whether or not the 500,000 rows/s target is met),
1 on a wrong answer from shipctl or any other error.
USAGE
}

ROWS=1000000
RUNS=5
KEEP=0
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rows) ROWS="${2:?--rows needs a number}"; shift 2 ;;
        --runs) RUNS="${2:?--runs needs a number}"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1" >&2; usage >&2; exit 1 ;;
    esac
done
[[ "$ROWS" =~ ^[0-9]+$ && "$ROWS" -ge 1 ]] || { echo "--rows takes a positive number" >&2; exit 1; }
[[ "$RUNS" =~ ^[0-9]+$ && "$RUNS" -ge 1 ]] || { echo "--runs takes a positive number" >&2; exit 1; }

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHIPCTL="${SHIPCTL_BIN:-$ROOT/target/release/shipctl}"
if [[ "$BUILD" == 1 ]]; then
    echo "building the release binary..." >&2
    (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x "$SHIPCTL" ]] || { echo "no $SHIPCTL: build it or drop --no-build" >&2; exit 1; }

WORK="$(mktemp -d)"
if [[ "$KEEP" == 0 ]]; then
    trap 'rm -rf "$WORK"' EXIT
fi
DB="$WORK/ledger.db"
URL="sqlite://$DB"
export SHIPCTL_ACTOR=bench

"$SHIPCTL" --database-url "$URL" release --create 0.0 --tag v0.0 >/dev/null

echo "generating $ROWS audit rows..." >&2
python3 - "$DB" "$ROWS" <<'PY'
import sqlite3, sys
db, rows = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db, isolation_level=None)
newest = c.execute("SELECT MAX(version) FROM shipctl_migrations").fetchone()[0]
if newest != 11:
    sys.exit(f"the ledger is at schema {newest}: this script takes it back from 11 only")
c.execute("BEGIN IMMEDIATE")
c.execute("DROP INDEX audit_logs_chain_seq")
c.execute("DROP TABLE audit_chains")
for col in ("chain", "seq", "prev_hash", "hash"):
    c.execute(f"ALTER TABLE audit_logs DROP COLUMN {col}")
c.execute("DELETE FROM shipctl_migrations WHERE version = 11")
c.execute("""
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)
INSERT INTO audit_logs (id_deploiement, id_env, action, etat_avant, etat_apres, message, acteur, date_log)
SELECT NULL, NULLIF(i % 4, 0), 'deployment.started', 'validé', 'en_cours',
       '1.' || (i % 100) || ' to prod: attempt 1, held by ci-runner-' || (i % 7)
         || ':4242:0190ca8f (lease 30s, fencing token ' || i || ')',
       'ci-bot', strftime('%Y-%m-%d %H:%M:%f', '2026-01-01', '+' || (i / 10.0) || ' seconds')
FROM n
""", (rows,))
c.execute("COMMIT")
PY

echo "migrating (chaining every row)..." >&2
start=$(date +%s.%N)
"$SHIPCTL" --database-url "$URL" release --create 1.0 --tag v1.0 >/dev/null
end=$(date +%s.%N)
MIGRATE=$(python3 -c "print(f'{$end - $start:.2f}')")

TOTAL=$((ROWS + 2))
check=$("$SHIPCTL" --database-url "$URL" audit verify --output json)
python3 - "$check" "$TOTAL" <<'PY'
import json, sys
v, total = json.loads(sys.argv[1]), int(sys.argv[2])
if not v["intact"] or v["rows"] != total:
    sys.exit(f"audit verify is wrong: intact={v['intact']} rows={v['rows']} (want {total}): {v['problems'][:3]}")
PY

times=()
"$SHIPCTL" --database-url "$URL" audit verify >/dev/null
for _ in $(seq "$RUNS"); do
    start=$(date +%s.%N)
    "$SHIPCTL" --database-url "$URL" audit verify >/dev/null
    end=$(date +%s.%N)
    times+=("$(python3 -c "print($end - $start)")")
done

# After timing: a change made with SQL is found and named.
python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE audit_logs SET message = 'edited' WHERE id = 500\"); c.commit()" "$DB"
set +e
altered=$("$SHIPCTL" --database-url "$URL" audit verify 2>&1)
code=$?
set -e
if [[ "$code" != 1 || "$altered" != *"row 500 ("*"was changed"* ]]; then
    echo "audit verify did not name row 500 (exit $code):" >&2
    echo "$altered" >&2
    exit 1
fi

python3 - "$TOTAL" "$MIGRATE" "${times[@]}" <<'PY'
import statistics, sys
rows, migrate, times = int(sys.argv[1]), float(sys.argv[2]), [float(t) for t in sys.argv[3:]]
median = statistics.median(times)
rate = rows / median
print(f"rows:                  {rows:,}")
print(f"migration (chaining):  {migrate:.2f} s ({rows / migrate:,.0f} rows/s)")
print(f"audit verify, median:  {median:.3f} s over {len(times)} runs (min {min(times):.3f} s, max {max(times):.3f} s)")
print(f"rows per second:       {rate:,.0f}")
print(f"TARGET: {'MET' if rate >= 500_000 else 'NOT MET'} (at least 500,000 rows/s)")
PY
if [[ "$KEEP" == 1 ]]; then
    echo "kept: $DB (row 500 edited)"
fi

#!/usr/bin/env bash
# bench/status.sh: how fast is `shipctl status --env prod` on a big SQLite ledger?
#
# What it measures
#   The wall clock of one whole `shipctl --database-url sqlite://DB status --env prod`
#   process (start, connect, migration check, queries, output to /dev/null), against
#   the sqlite3 CLI answering the same three questions on the same file in one
#   invocation: the live release (newest réussi by fencing_token in prod, joined to
#   releases), the pending deployments (planifié/validé in prod), and the last ten
#   deployments in prod (joined to releases). Median of --runs runs each, after one
#   warm-up run each, the commands alternating; the CPU time (user + sys) of each
#   process is printed too, as it is less disturbed than the wall clock by other
#   load on the machine. The target is shipctl/sqlite3 <= 1.5x (medians). The
#   script exits 0 whatever the ratio (it is a measurement, not a test) and prints
#   "TARGET: MET" or "TARGET: NOT MET". A third, diagnostic line times the sqlite3
#   CLI running the exact statements shipctl sends (reconstructed from
#   src/store/ledger.rs), to separate the cost of the SQL from the cost of the Rust
#   process around it.
#
# The data
#   --rows deployments (default 100,000) over rows/100 releases, 50% dev, 30%
#   staging, 20% prod; ~72% réussi, ~15% annulé, ~13% échec, with attempts (0-3),
#   lease holders, dates spread over ~500 days, fencing tokens increasing per
#   environment (one per attempt) and environnements.fencing_token = the highest
#   token of each environment. The newest claimed prod deployment is réussi (the
#   live one) and the three newest prod deployments are planifié (pending). ~4
#   audit_logs rows per deployment (planned, validated, started, succeeded/failed/
#   ...) plus one per release. The schema is created by shipctl itself (its
#   embedded migration); the rows are bulk-inserted by the sqlite3 CLI in one
#   transaction (no ANALYZE, as in a real ledger).
#
# Query plans
#   --plans prints EXPLAIN QUERY PLAN of shipctl's statements as the system sqlite3
#   sees them; shipctl links its own, bundled SQLite (libsqlite3-sys), whose
#   planner may differ slightly.
#
# Correctness
#   Once, before timing: `status --output json` must report the same live version,
#   pending ids and recent ids as the sqlite3 queries; otherwise exit 1.
#
# Usage
#   bench/status.sh [--rows N] [--runs N] [--keep] [--no-build] [--plans]
#   Needs cargo, python3 (standard library only) and the sqlite3 CLI.
#   Example: bench/status.sh --rows 20000 --runs 10 --keep
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bench/status.sh [OPTIONS]

Times `shipctl status --env prod` against the sqlite3 CLI answering the same
three questions (live release, pending, last ten deployments) on a generated
SQLite ledger, and checks that both give the same answers.

Options:
  --rows N     deployments to generate (default 100000; releases = N/100)
  --runs N     timed runs of each command, after one warm-up (default 20)
  --keep       keep the generated database and print its path
  --no-build   do not run `cargo build --release`; use target/release/shipctl as is
  --plans      also print EXPLAIN QUERY PLAN of the statements shipctl sends
  -h, --help   this help

Exit status: 0 when measured (whether or not the 1.5x target is met),
1 on a wrong answer from shipctl or any other error.
EOF
}

ROWS=100000
RUNS=20
KEEP=0
BUILD=1
PLANS=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --rows) ROWS="${2:?--rows needs a number}"; shift 2 ;;
        --runs) RUNS="${2:?--runs needs a number}"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-build) BUILD=0; shift ;;
        --plans) PLANS=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown option: $1 (see --help)" >&2; exit 1 ;;
    esac
done
[[ "$ROWS" =~ ^[0-9]+$ && "$ROWS" -ge 100 ]] || { echo "--rows must be a number >= 100" >&2; exit 1; }
[[ "$RUNS" =~ ^[0-9]+$ && "$RUNS" -ge 1 ]] || { echo "--runs must be a number >= 1" >&2; exit 1; }

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
HELPER="$HERE/status_helper.py"
SHIPCTL="$ROOT/target/release/shipctl"

if ! command -v sqlite3 >/dev/null; then
    echo "the sqlite3 CLI is missing: apt-get install sqlite3" >&2
    exit 1
fi
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }

# ---------------------------------------------------------------- build

if [[ $BUILD -eq 1 ]]; then
    echo "== building the release binary"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[[ -x "$SHIPCTL" ]] || { echo "no binary at $SHIPCTL (run without --no-build)" >&2; exit 1; }

# ---------------------------------------------------------------- database

WORK="$(mktemp -d "${TMPDIR:-/tmp}/shipctl-bench.XXXXXX")"
DB="$WORK/ledger.db"
cleanup() {
    if [[ $KEEP -eq 1 ]]; then
        echo "database kept: $DB"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

RELEASES=$(( ROWS / 100 ))
STEP=$(( 43200000 / ROWS ))   # seconds between deployments: ~500 days in all
(( STEP >= 1 )) || STEP=1

echo "== creating the schema with shipctl ($DB)"
# A writing command creates the ledger (readers never do): a reconcile of
# manifests that manage nothing writes no row.
mkdir -p "$WORK/empty"
printf 'releases: []\nenvironments: {}\n' >"$WORK/empty/shipctl.yaml"
"$SHIPCTL" --database-url "sqlite://$DB" reconcile --manifests "$WORK/empty" >/dev/null

echo "== filling: $ROWS deployments, $RELEASES releases"
fill_start=$(date +%s%N)
sqlite3 -batch -init /dev/null "$DB" <<SQL
PRAGMA synchronous = OFF;
BEGIN;

-- One row per deployment. h1, h2: deterministic pseudo-random draws in 0..99.
-- Environment by id: 5 in 10 dev, 3 staging, 2 prod. Releases advance with time.
CREATE TEMP TABLE gen AS
WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < $ROWS)
SELECT i,
       (i - 1) * $RELEASES / $ROWS + 1                                 AS rel,
       CASE WHEN i % 10 < 5 THEN 1 WHEN i % 10 < 8 THEN 2 ELSE 3 END   AS env,
       ((i * 1103515245 + 12345) / 65536) % 100                        AS h1,
       ((i * 69069 + 1) / 256) % 100                                   AS h2
FROM seq;

-- State and attempts. The three newest prod rows are pending (planifié, never
-- claimed); the prod row before them is réussi: the live one, highest token.
CREATE TEMP TABLE dep AS
WITH ranked AS (
    SELECT g.*, row_number() OVER (PARTITION BY env ORDER BY i DESC) AS from_end FROM gen g
), drawn AS (
    SELECT i, rel, env,
           CASE WHEN env = 3 AND from_end <= 3 THEN 'planifié'
                WHEN env = 3 AND from_end = 4 THEN 'réussi'
                WHEN h1 < 72 THEN 'réussi'
                WHEN h1 < 87 THEN 'annulé'
                ELSE 'échec' END AS etat,
           CASE WHEN env = 3 AND from_end <= 3 THEN 0
                WHEN env = 3 AND from_end = 4 THEN 1
                WHEN h1 < 72 THEN CASE WHEN h2 < 95 THEN 1 ELSE 2 END  -- réussi, maybe after a retry
                WHEN h1 < 87 THEN CASE WHEN h2 < 90 THEN 0 ELSE 3 END  -- annulé: before a run, or all attempts used
                ELSE CASE WHEN h2 < 90 THEN 1 ELSE 2 END END           -- échec: lease expired
             AS attempts
    FROM ranked
)
-- Each attempt takes the environment's next fencing token; the row keeps its last.
SELECT i, rel, env, etat, attempts,
       CASE WHEN attempts > 0 THEN
           sum(attempts) OVER (PARTITION BY env ORDER BY i ROWS UNBOUNDED PRECEDING)
       END AS token,
       datetime('2024-01-01', '+' || (i * $STEP) || ' seconds') AS planned_at
FROM drawn;

INSERT INTO releases (id, version, tag_git, date_creation)
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < $RELEASES)
SELECT n, v, 'v' || v,
       strftime('%Y-%m-%d %H:%M:%f', '2024-01-01',
                printf('%+d seconds', ((n - 1) * $ROWS / $RELEASES) * $STEP - 600))
FROM (SELECT n, printf('%d.%d.%d', 1 + n / 250, (n / 10) % 25, n % 10) AS v FROM r);

-- date_deploiement is the last transition: planning, or the end of the last attempt.
INSERT INTO deploiements (id, id_release, id_env, etat, date_deploiement, attempts,
                          fencing_token, lease_holder, lease_expires_at, restores_id)
SELECT i, rel, env, etat,
       strftime('%Y-%m-%d %H:%M:%f', planned_at,
                '+' || (CASE WHEN attempts > 0 THEN 60 + 90 * attempts ELSE 0 END) || ' seconds'),
       attempts, token,
       CASE WHEN attempts > 0 THEN
           printf('runner-%d:%d:%08x', i % 4, 20000 + i % 30000, (i * 2654435761) % 4294967296)
       END,
       NULL, NULL
FROM dep ORDER BY i;

UPDATE environnements SET fencing_token =
    (SELECT coalesce(max(fencing_token), 0) FROM deploiements WHERE id_env = environnements.id);

-- Audit: per deployment "planned", then per attempt "validated", "started" and its
-- outcome; "cancelled" for the annulé rows never run. Plus one row per release.
-- step n of a deployment: 1 planned; then k = n - 2 gives attempt k/3 + 1, phase k%3.
INSERT INTO audit_logs (id_deploiement, action, etat_avant, etat_apres, message, acteur, date_log)
WITH RECURSIVE steps(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM steps WHERE n < 10),
step AS (
    SELECT d.*, r.version AS v, e.nom AS env_name, s.n, (s.n - 2) / 3 + 1 AS j,
           CASE WHEN s.n = 1 THEN 'planned'
                WHEN d.attempts = 0 THEN 'cancelled'
                WHEN (s.n - 2) % 3 = 0 THEN 'validated'
                WHEN (s.n - 2) % 3 = 1 THEN 'started'
                WHEN (s.n - 2) / 3 + 1 < d.attempts THEN 'retry'
                ELSE 'end' END AS what
    FROM dep d
    JOIN releases r ON r.id = d.rel
    JOIN environnements e ON e.id = d.env
    JOIN steps s ON s.n <= CASE WHEN d.attempts > 0 THEN 1 + 3 * d.attempts
                                WHEN d.etat = 'annulé' THEN 2 ELSE 1 END
),
logs AS (
    SELECT NULL AS id_deploiement, 'release.created' AS action, NULL AS etat_avant,
           NULL AS etat_apres,
           'release ' || version || ' (tag ' || tag_git || ') created with id ' || id AS message,
           'alice' AS acteur, date_creation AS date_log, 0 AS i, 0 AS n
    FROM releases
    UNION ALL
    SELECT i,
           CASE what WHEN 'end' THEN CASE etat WHEN 'réussi' THEN 'deployment.succeeded'
                                               WHEN 'échec' THEN 'lease.expired'
                                               ELSE 'deployment.failed' END
                     WHEN 'retry' THEN 'deployment.failed'
                     ELSE 'deployment.' || what END,
           CASE what WHEN 'planned' THEN NULL WHEN 'cancelled' THEN 'planifié'
                     WHEN 'validated' THEN 'planifié' WHEN 'started' THEN 'validé'
                     ELSE 'en_cours' END,
           CASE what WHEN 'planned' THEN 'planifié' WHEN 'cancelled' THEN 'annulé'
                     WHEN 'validated' THEN 'validé' WHEN 'started' THEN 'en_cours'
                     WHEN 'retry' THEN 'planifié' ELSE etat END,
           CASE what
               WHEN 'planned' THEN 'release ' || v || ' planned for ' || env_name
               WHEN 'cancelled' THEN 'pending deployment of ' || v || ' to ' || env_name
                                     || ' cancelled by rollback'
               WHEN 'validated' THEN v || ': no gates configured for ' || env_name
               WHEN 'started' THEN printf('%s to %s: attempt %d, held by runner-%d:%d:%08x '
                                          || '(lease 30s, fencing token %d)', v, env_name, j,
                                          i % 4, 20000 + i % 30000,
                                          (i * 2654435761) % 4294967296, token - attempts + j)
               WHEN 'retry' THEN printf('attempt %d/3 of %s to %s failed: exit status 1; '
                                        || 'rolled back to planifié, %d attempt(s) left',
                                        j, v, env_name, 3 - j)
               ELSE CASE etat
                   WHEN 'réussi' THEN printf('%s to %s: attempt %d succeeded', v, env_name, j)
                   WHEN 'échec' THEN 'lease held by runner-' || (i % 4) || ' expired without '
                                     || 'a heartbeat (the process crashed or was killed)'
                   ELSE printf('attempt 3/3 of %s to %s failed: exit status 1; '
                               || 'all 3 attempts used, cancelled', v, env_name) END
           END,
           CASE i % 5 WHEN 0 THEN 'alice' WHEN 1 THEN 'bob' WHEN 2 THEN 'carol'
                      ELSE 'deploy-bot' END,
           strftime('%Y-%m-%d %H:%M:%f', planned_at, '+' || (30 * (n - 1)) || ' seconds'),
           i, n
    FROM step
)
SELECT id_deploiement, action, etat_avant, etat_apres, message, acteur, date_log
FROM logs ORDER BY date_log, i, n;

COMMIT;
SQL
fill_ms=$(( ($(date +%s%N) - fill_start) / 1000000 ))
echo "filled in ${fill_ms}ms:" \
    "$(sqlite3 -batch -init /dev/null "$DB" "SELECT (SELECT count(*) FROM deploiements) || ' deployments, ' ||
                             (SELECT count(*) FROM audit_logs) || ' audit rows, ' ||
                             (SELECT group_concat(nom || ' token ' || fencing_token, ', ')
                                FROM environnements)")," \
    "$(du -h "$DB" | cut -f1)"

# ---------------------------------------------------------------- check, time

echo "== correctness: shipctl status --env prod --output json vs. sqlite3"
python3 "$HELPER" check --shipctl "$SHIPCTL" --db "$DB"

if [[ $PLANS -eq 1 ]]; then
    echo "== query plans of the statements shipctl sends (sqlite3 $(sqlite3 --version | cut -d' ' -f1))"
    python3 "$HELPER" plans --db "$DB"
fi

echo "== timing: wall clock of the whole process, output to /dev/null"
python3 "$HELPER" time --shipctl "$SHIPCTL" --db "$DB" --runs "$RUNS"

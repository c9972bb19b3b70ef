#!/usr/bin/env python3
"""Helper of bench/status.sh: correctness check, timing and query plans.

Python 3.11 standard library only. Subcommands:

  check  --shipctl BIN --db FILE             shipctl status --output json vs. sqlite3
  time   --shipctl BIN --db FILE --runs N    median wall clock (and CPU) of both, the ratio
  plans  --db FILE                           EXPLAIN QUERY PLAN of the SQL shipctl sends

The SQL below is in two flavours:

- BASELINE_SQL: the three questions of `status --env prod`, written by hand the
  way one would type them into the sqlite3 CLI. This is the reference the
  target (shipctl at most 1.5x sqlite3) is measured against.
- SHIPCTL_SQL: the statements `Engine::status` sends for one environment,
  reconstructed from src/store/ledger.rs with src/store/dialect.rs's SQLite
  expansion ({ts:X} -> substr(X, 1, 19), {now} -> strftime(...)). The bound
  parameters (environment id, env name, limit) are inlined. Used for the query
  plans and for a diagnostic timing (same SQL, but no Rust process around it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

TARGET_RATIO = 1.5
SQLITE3 = "sqlite3"
# -init /dev/null: ignore any ~/.sqliterc; -batch: no interactive niceties.
SQLITE_ARGS = ["-batch", "-init", "/dev/null"]

# ---------------------------------------------------------------- baseline SQL

# The best hand-written SQL for the three questions. `ORDER BY +d.id` (not
# `d.id`) keeps SQLite from walking the environment's whole history by
# (id_env, id) to avoid sorting the few pending rows: the sqlite3 side gets the
# same index seeks as shipctl, so the ratio measures shipctl, not a query plan.
# Columns comparable to what shipctl reads; the first column tags the question
# so that the check can parse the three answers from one invocation.
_COLS = (
    "d.id, r.version, r.tag_git, d.etat, d.date_deploiement, d.attempts, "
    "d.fencing_token, d.lease_holder"
)
_PROD = "(SELECT id FROM environnements WHERE nom = 'prod')"
BASELINE_SQL = f"""
SELECT 'live', {_COLS} FROM deploiements d JOIN releases r ON r.id = d.id_release
 WHERE d.id_env = {_PROD} AND d.etat = 'réussi'
 ORDER BY d.fencing_token DESC LIMIT 1;
SELECT 'pending', {_COLS} FROM deploiements d JOIN releases r ON r.id = d.id_release
 WHERE d.id_env = {_PROD} AND d.etat IN ('planifié', 'validé')
 ORDER BY +d.id;
SELECT 'recent', {_COLS} FROM deploiements d JOIN releases r ON r.id = d.id_release
 WHERE d.id_env = {_PROD}
 ORDER BY d.id DESC LIMIT 10;
"""

# ---------------------------------------------------------------- shipctl's SQL

_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
RECENT = 10  # engine::RECENT

_ENV_SELECT = (
    "SELECT e.id AS env_row_id, e.max_attempts, e.on_failure, e.pinned_release_id, "
    "p.version AS pinned_version, e.pin_blocks_release_id, b.version AS blocks_version, "
    "substr(e.pinned_at, 1, 19) AS pinned_at, e.policy FROM environnements e "
    "LEFT JOIN releases p ON p.id = e.pinned_release_id "
    "LEFT JOIN releases b ON b.id = e.pin_blocks_release_id WHERE e.nom = 'prod'"
)
_ENV_ID = "(SELECT id FROM environnements WHERE nom = 'prod')"
# ledger::overview: the environment row with the ids of its live, running,
# pending and recent deployments, joined once to their columns.
def _ids(kind, tail):
    return (f"SELECT '{kind}' AS part, y.id FROM (SELECT d.id FROM deploiements d "
            f"WHERE d.id_env = {_ENV_ID} {tail}) y")


SHIPCTL_QUERIES = {
    "overview": (
        f"SELECT en.*, x.part, d.id, d.id_release, r.version, r.tag_git, 'prod' AS nom, d.id_env, "
        "d.etat, substr(d.date_deploiement, 1, 19) AS date_deploiement, d.attempts, "
        "d.fencing_token, d.lease_holder, substr(d.lease_expires_at, 1, 19) AS lease_expires_at, "
        f"CASE WHEN d.etat = 'en_cours' AND d.lease_expires_at < {_NOW} THEN 1 ELSE 0 END "
        "AS lease_stale, d.restores_id "
        f"FROM ({_ENV_SELECT}) en LEFT JOIN ("
        + " UNION ALL ".join(
            [
                _ids("live", "AND d.etat = 'réussi' ORDER BY d.fencing_token DESC LIMIT 1"),
                _ids("running", "AND d.etat = 'en_cours'"),
                _ids("pending", "AND d.etat IN ('planifié', 'validé')"),
                _ids("recent", f"ORDER BY d.id DESC LIMIT {RECENT}"),
            ]
        )
        + ") x ON 1 = 1 LEFT JOIN deploiements d ON d.id = x.id "
        "LEFT JOIN releases r ON r.id = d.id_release"
    ),
}
# What one `shipctl status --env prod` runs after connecting: the migration
# check, then the one statement of Engine::status (no transaction for one environment).
SHIPCTL_SQL = (
    "SELECT MAX(version) FROM shipctl_migrations;\n"
    + ";\n".join(SHIPCTL_QUERIES.values())
    + ";\n"
)


# ---------------------------------------------------------------- helpers


def run(cmd: list[str]) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr}")
    return done.stdout


def shipctl_cmd(binary: str, db: str, *extra: str) -> list[str]:
    return [binary, "--database-url", f"sqlite://{db}", "status", "--env", "prod", *extra]


def sqlite_cmd(db: str, sql: str) -> list[str]:
    return [SQLITE3, *SQLITE_ARGS, db, sql]


# ---------------------------------------------------------------- check


def check(args: argparse.Namespace) -> int:
    status = json.loads(run(shipctl_cmd(args.shipctl, args.db, "--output", "json")))
    ship = {
        "live version": (status.get("live") or {}).get("version"),
        "pending ids": [d["id"] for d in status.get("pending", [])],
        "recent ids": [d["id"] for d in status.get("recent", [])],
    }
    rows = [line.split("|") for line in run(sqlite_cmd(args.db, BASELINE_SQL)).splitlines()]
    live = [r[2] for r in rows if r[0] == "live"]
    ref = {
        "live version": live[0] if live else None,
        "pending ids": [int(r[1]) for r in rows if r[0] == "pending"],
        "recent ids": [int(r[1]) for r in rows if r[0] == "recent"],
    }
    ok = True
    for key, want in ref.items():
        got = ship[key]
        same = got == want
        ok &= same
        print(f"  {key:<13} {'ok ' if same else 'DIFFERENT'}  sqlite3={want}"
              + ("" if same else f"  shipctl={got}"))
    if not ok:
        print("CORRECTNESS: FAILED, shipctl status disagrees with sqlite3")
        return 1
    print("CORRECTNESS: ok")
    return 0


# ---------------------------------------------------------------- time


def run_timed(cmd: list[str]) -> tuple[float, float]:
    """Wall clock of the whole process, and its CPU time (user + sys), in ms."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
    wall = (time.perf_counter() - start) * 1000.0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {' '.join(cmd)}\n"
                 + done.stderr.decode(errors="replace"))
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000.0
    return wall, cpu


def measure(cmds: dict[str, list[str]], runs: int) -> dict[str, list[tuple[float, float]]]:
    """One warm-up run each, then `runs` rounds, alternating the commands so that
    drift (other load, CPU frequency) affects all of them alike."""
    for cmd in cmds.values():
        run_timed(cmd)
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cmds}
    for i in range(runs):
        order = list(cmds.items())
        if i % 2:
            order.reverse()
        for name, cmd in order:
            samples[name].append(run_timed(cmd))
    return samples


def time_cmd(args: argparse.Namespace) -> int:
    cmds = {
        "shipctl status --env prod": shipctl_cmd(args.shipctl, args.db),
        "sqlite3 (3 queries)": sqlite_cmd(args.db, BASELINE_SQL),
        # Diagnostic only: shipctl's exact statements, run by the sqlite3 CLI.
        "sqlite3 (shipctl's SQL)": sqlite_cmd(args.db, SHIPCTL_SQL),
    }
    samples = measure(cmds, args.runs)
    med = {name: statistics.median(w for w, _ in s) for name, s in samples.items()}
    print(f"  {'wall clock, ms':<26} {'median':>7} {'min':>7} {'max':>7}   "
          f"{'CPU median':>10}   ({args.runs} runs each, after 1 warm-up)")
    for name, s in samples.items():
        walls = [w for w, _ in s]
        cpu = statistics.median(c for _, c in s)
        print(f"  {name:<26} {med[name]:>7.2f} {min(walls):>7.2f} {max(walls):>7.2f}   {cpu:>10.2f}")
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > 0.5 * cpus:
        print(f"  note: load average {load:.1f} on {cpus} CPUs while measuring; "
              "wall clock times are noisy")
    ship, base = med["shipctl status --env prod"], med["sqlite3 (3 queries)"]
    ratio = ship / base
    print(f"  ratio shipctl/sqlite3 (medians): {ratio:.2f}x   (target: at most {TARGET_RATIO}x)")
    if ratio <= TARGET_RATIO:
        print(f"TARGET: MET ({ratio:.2f}x <= {TARGET_RATIO}x)")
    else:
        print(f"TARGET: NOT MET ({ratio:.2f}x > {TARGET_RATIO}x)")
    return 0  # a measurement, not a test


# ---------------------------------------------------------------- plans


def plans(args: argparse.Namespace) -> int:
    for name, sql in SHIPCTL_QUERIES.items():
        print(f"-- {name}: {sql}")
        print(run(sqlite_cmd(args.db, f"EXPLAIN QUERY PLAN {sql}")).rstrip())
        print()
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("check", "time", "plans"):
        s = sub.add_parser(name)
        s.add_argument("--db", required=True)
        if name != "plans":
            s.add_argument("--shipctl", required=True)
        if name == "time":
            s.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    return {"check": check, "time": time_cmd, "plans": plans}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

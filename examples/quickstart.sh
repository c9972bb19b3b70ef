#!/usr/bin/env bash
# The seed's scenario on the embedded SQLite default, one command at a time:
# two releases, a successful deployment, a failed one rolled back and retried,
# status, then a rollback of the live release. Runs in ./quickstart-demo, which
# it recreates, so the ledger is ./quickstart-demo/shipctl.db.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet
bin="$PWD/target/debug/shipctl"
rm -rf quickstart-demo && mkdir quickstart-demo && cd quickstart-demo

bold='' plain=''
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; fi

step() {
  printf '\n%s$ shipctl %s%s\n' "$bold" "$*" "$plain"
  "$bin" "$@" || printf '(exit code %s)\n' "$?"
}

step release --create 1.0.1 --tag v1.0.1
step release --create 1.0.2 --tag v1.0.2
step deploy --release 1 --env prod
step validate --deploy-id 1 --duration 500ms --failure-rate 0
step deploy --release 2 --env prod
step validate --deploy-id 2 --duration 500ms --failure-rate 1   # forced failure: rolled back
step validate --deploy-id 2 --duration 500ms --failure-rate 0   # the retry succeeds
step status --env prod
step rollback --deploy-id 2 --duration 500ms --failure-rate 0   # 1.0.1 restored, prod pinned
step status --env prod
step audit --env prod --limit 6
printf '\nThe ledger is %s/shipctl.db\n' "$PWD"

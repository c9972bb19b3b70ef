#!/usr/bin/env bash
# prod guarded by a QA approval and a security scan, deployed by a real script
# and rolled back by it, one command at a time. Runs in ./gated-demo (recreated)
# with a copy of examples/gated, so the ledger is ./gated-demo/shipctl.db.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet
bin="$PWD/target/debug/shipctl"
rm -rf gated-demo && cp -r examples/gated gated-demo && cd gated-demo
rm -f demo.sh

bold='' plain=''
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; fi

step() {
  printf '\n%s$ shipctl %s%s\n' "$bold" "$*" "$plain"
  "$bin" "$@" 2>&1 || printf '(exit code %s)\n' "$?"
}
declare() {
  printf '\n%s# manifests: prod now declares %s%s\n' "$bold" "$1" "$plain"
  sed -i "s/^    release: .*/    release: \"$1\"/" manifests/shipctl.yaml
}

step reconcile --dry-run
step reconcile                                   # waits for QA
step status --env prod
step approve --deploy-id 1 --gate qa --by alice
step reconcile                                   # scan, then deploy.sh
declare 1.1.0
step reconcile
step approve --deploy-id 2 --gate qa --by bob
step reconcile
step rollback --deploy-id 2                      # deploy.sh restores 1.0.0
declare 1.2.0
step reconcile
step approve --deploy-id 4 --gate qa --by alice
step reconcile                                   # the scan rejects 1.2.0
step history --env prod
step audit --env prod
printf '\nlive/VERSION: %s\n' "$(cat live/VERSION)"

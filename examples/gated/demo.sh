#!/usr/bin/env bash
# prod guarded by a QA approval and a security scan, deployed by a real script
# and rolled back by it, one command at a time. Runs in ./gated-demo (recreated)
# with a copy of examples/gated, so the ledger is ./gated-demo/shipctl.db.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet
bin="$PWD/target/debug/shipctl"
. examples/demo-lib.sh
rm -rf gated-demo && cp -r examples/gated gated-demo && cd gated-demo
rm -f demo.sh

step reconcile --dry-run
step reconcile                                   # waits for QA
step status --env prod
step approve --deploy-id 1 --gate qa --by alice
step reconcile                                   # scan, then deploy.sh
declare_release 1.1.0
step reconcile
step approve --deploy-id 2 --gate qa --by bob
step reconcile
step rollback --deploy-id 2                      # deploy.sh restores 1.0.0
declare_release 1.2.0
step reconcile
step approve --deploy-id 4 --gate qa --by alice
step reconcile                                   # the scan rejects 1.2.0
step history --env prod
step audit --env prod
printf '\nlive/VERSION: %s\n' "$(cat live/VERSION)"

#!/usr/bin/env bash
# prod deployed by a script and verified by the version its service serves: a
# good release, a bad one caught by verification and rolled back, held, then a
# fixed one. Runs in ./verified-demo (recreated) with a copy of
# examples/verified, so the ledger is ./verified-demo/shipctl.db; the service
# listens on 127.0.0.1:$VERIFIED_PORT (default 27183) and is stopped at the end.
# SHIPCTL_BIN: the binary to use (default: `cargo build`, target/debug/shipctl);
# VERIFIED_DEMO_DIR: where to play it instead (a directory that does not exist).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -n "${SHIPCTL_BIN:-}" ]; then
  bin=$(cd "$(dirname "$SHIPCTL_BIN")" && pwd)/$(basename "$SHIPCTL_BIN")
else
  cargo build --quiet
  bin="$PWD/target/debug/shipctl"
fi
. examples/demo-lib.sh
port=${VERIFIED_PORT:-27183}
export SHIPCTL_DATABASE_URL=sqlite://shipctl.db   # the demo's own ledger, whatever is set
dir=${VERIFIED_DEMO_DIR:-verified-demo}
[ -z "${VERIFIED_DEMO_DIR:-}" ] && rm -rf "$dir"
if [ -e "$dir" ]; then
  echo "demo.sh: $dir exists; VERIFIED_DEMO_DIR must name a new directory" >&2
  exit 1
fi
cp -r examples/verified "$dir" && cd "$dir"
rm -f demo.sh
sed -i "s/127\.0\.0\.1:27183/127.0.0.1:$port/" manifests/shipctl.yaml
trap './service.sh stop >/dev/null' EXIT

serves() {
  printf 'http://127.0.0.1:%s/version serves: %s\n' "$port" \
    "$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode().strip())' \
      "http://127.0.0.1:$port/version")"
}

shown ./service.sh start
./service.sh start
step reconcile --dry-run                         # says which check would run
step reconcile                                   # deploy.sh, then GET /version
serves
declare_release 1.1.0                            # scripts/broken.txt lists it
step reconcile                                   # verification fails: rolled back
serves
step reconcile                                   # held: not planned again
step status --env prod
shown timeout -s TERM 3 shipctl reconcile --watch --interval 1s
timeout -s TERM 3 "$bin" reconcile --watch --interval 1s 2>&1 || true
step history --env prod                          # the watch deployed nothing
declare_release 1.1.1
step reconcile                                   # the hold lifts; 1.1.1 verified
serves
step history --env prod
step audit --env prod

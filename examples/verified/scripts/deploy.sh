#!/bin/sh
# A stand-in deploy script: it "installs" $SHIPCTL_VERSION by writing it to
# www/version, which the example's service serves at /version. A release
# listed in broken.txt installs, but what it serves does not say its version
# (as a build that fails to start would): the check after the deploy sees it.
# With --undo (shipctl's rollback command after a failed run or verification)
# SHIPCTL_VERSION is the release to restore.
set -eu
cd "$(dirname "$0")/.."
mkdir -p www
if [ "${1:-}" = "--undo" ]; then
  echo "restore $SHIPCTL_VERSION in $SHIPCTL_ENV"
  printf '%s\n' "$SHIPCTL_VERSION" > www/version.new
elif grep -qxF "$SHIPCTL_VERSION" scripts/broken.txt; then
  echo "deploy $SHIPCTL_VERSION to $SHIPCTL_ENV; was ${SHIPCTL_PREVIOUS_VERSION:-nothing}"
  printf 'error: config key "db.url" missing\n' > www/version.new
else
  echo "deploy $SHIPCTL_VERSION to $SHIPCTL_ENV; was ${SHIPCTL_PREVIOUS_VERSION:-nothing}"
  printf '%s\n' "$SHIPCTL_VERSION" > www/version.new
fi
mv www/version.new www/version

#!/bin/sh
# A stand-in deploy script: it "installs" $SHIPCTL_VERSION by writing it to
# ./live/VERSION, where a real one would switch a symlink or call an API.
# With --undo (shipctl's rollback command after a failed run) SHIPCTL_VERSION
# is the release to restore.
set -eu
mode=deploy
[ "${1:-}" = "--undo" ] && mode=restore
echo "$mode $SHIPCTL_VERSION ($SHIPCTL_TAG) to $SHIPCTL_ENV; was ${SHIPCTL_PREVIOUS_VERSION:-nothing}"
mkdir -p live
printf '%s\n' "$SHIPCTL_VERSION" > live/VERSION.new
mv live/VERSION.new live/VERSION
echo "health check passed"

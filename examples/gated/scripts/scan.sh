#!/bin/sh
# A stand-in security scan: a release listed in known-vulnerable.txt fails it.
# shipctl gives it the release as SHIPCTL_VERSION / SHIPCTL_TAG; exit 0 passes.
set -eu
echo "scanning $SHIPCTL_TAG for known vulnerabilities"
if grep -qxF "$SHIPCTL_VERSION" "$(dirname "$0")/known-vulnerable.txt" 2>/dev/null; then
  echo "CRITICAL: $SHIPCTL_VERSION is listed in known-vulnerable.txt" >&2
  exit 1
fi
echo "no known vulnerabilities"

#!/bin/sh
# The example's HTTP service: `./service.sh start` serves ./www on
# 127.0.0.1, on the port of the check's URL in manifests/shipctl.yaml (27183)
# or $VERIFIED_PORT; `./service.sh stop` stops it. It also stops on its own
# when this directory is removed, and after 10 minutes without a request
# ($VERIFIED_IDLE seconds), so that nothing is left listening.
set -eu
cd "$(dirname "$0")"
port=${VERIFIED_PORT:-$(sed -n 's#.*"http://127\.0\.0\.1:\([0-9]*\)/.*#\1#p' manifests/shipctl.yaml | head -n 1)}
port=${port:-27183}

running() { # the pid in service.pid, if that process is our server
  pid=$(cat service.pid 2>/dev/null) || return 1
  case "$(ps -p "$pid" -o args= 2>/dev/null)" in
    *scripts/service.py*) echo "$pid" ;;
    *) return 1 ;;
  esac
}

case "${1:-}" in
start)
  if running >/dev/null; then
    echo "service: already running; ./service.sh stop first" >&2
    exit 1
  fi
  mkdir -p www
  rm -f service.pid
  python3 scripts/service.py "$port" www </dev/null >/dev/null 2>service.log &
  started=$!
  # Ready once it listens: then it writes its pid to service.pid.
  tries=0
  until [ "$(cat service.pid 2>/dev/null)" = "$started" ]; do
    if ! kill -0 "$started" 2>/dev/null || [ "$tries" -ge 100 ]; then
      cat service.log >&2
      kill "$started" 2>/dev/null || true
      echo "service: did not start" >&2
      exit 1
    fi
    tries=$((tries + 1))
    sleep 0.1
  done
  echo "service: listening on http://127.0.0.1:$port, serving www/"
  ;;
stop)
  if ! pid=$(running); then
    rm -f service.pid
    echo "service: not running"
    exit 0
  fi
  rm -f service.pid   # the server sees it go and exits; the signal is quicker
  kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  echo "service: stopped"
  ;;
*)
  echo "usage: ./service.sh start|stop" >&2
  exit 2
  ;;
esac

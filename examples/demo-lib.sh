# shellcheck shell=bash
# What the demo scripts (examples/*/demo.sh) share, sourced once `bin` names
# the shipctl binary and the demo's manifests are in ./manifests.

bold='' plain=''
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; fi

# shown COMMAND: a command line as it would be typed, in bold on a terminal.
shown() {
  printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"
}

# step ARGS...: `shipctl ARGS`, shown, run, and its exit code when not 0.
step() {
  shown "shipctl $*"
  "$bin" "$@" 2>&1 || printf '(exit code %s)\n' "$?"
}

# declare_release VERSION: what a commit to the manifests would do, prod now
# declaring VERSION.
declare_release() {
  printf '\n%s# manifests: prod now declares %s%s\n' "$bold" "$1" "$plain"
  sed -i "s/^    release: .*/    release: \"$1\"/" manifests/shipctl.yaml
}

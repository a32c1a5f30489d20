#!/usr/bin/env bash
# The long-running verbs harden their process before they hold weights or keys:
# no core file (RLIMIT_CORE 0 0) and nothing in a dump that is taken anyway
# (coredump_filter 0). Read from /proc/PID of the running server. (That it is not
# dumpable cannot be seen from outside as root; tests/common checks it.)
set -euo pipefail
ms="$1"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Starts "$@" with stdout on a FIFO and waits for its first line (EOF if it dies).
start() {
  local name=$1; shift
  mkfifo "$work/$name.out"
  "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
  exec {fd}<"$work/$name.out"
  local line=""
  read -r line <&"$fd" || fail "$name exited before it was ready: $(cat "$work/$name.err")"
  echo "$name: $line" >&2
  started=$!
}

check() {
  local name=$1 pid=$2
  limits=$(grep "Max core file size" "/proc/$pid/limits")
  read -r -a f <<<"$limits"
  [ "${f[4]}" = 0 ] && [ "${f[5]}" = 0 ] || fail "$name: core files allowed: $limits"
  filter=$(cat "/proc/$pid/coredump_filter")
  [ $((16#$filter)) = 0 ] || fail "$name: coredump_filter is $filter"
}

# Symbols are bound at start-up: the lazy-binding resolver would save vector
# registers (which may hold key bytes) on the stack mid-computation.
readelf -d "$ms" | grep -q "BIND_NOW" || fail "the binary is not linked with -z now"

start serve "$ms" serve --listen 127.0.0.1:0
check serve "$started"
start kms "$ms" kms serve --state "$work/state" --listen 127.0.0.1:0
check kms "$started"
echo "ok"

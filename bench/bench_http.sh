#!/usr/bin/env bash
# HTTP front benchmark (not a test): the same small requests and the same streamed
# generation against two modelseal binaries in one run - a baseline (e.g. built from
# the commit before a change to the front) and the current build - and the ratios.
#
#   bench/bench_http.sh BASELINE_BIN [CURRENT_BIN] [SECONDS]
#
# Small request: GET /api/version with wrk (2 threads, 32 connections), kept alive and
# with a new connection per request. Streaming: /api/generate (raw, 256 tokens, NDJSON)
# read line by line; tokens per second from the first token to the last (not from the
# first byte: a server may send its head before the prompt is evaluated). Each binary
# is measured twice, alternating, and the better run is kept. Needs wrk (Debian) and
# python3.
set -euo pipefail
base=${1:?usage: bench_http.sh BASELINE_BIN [CURRENT_BIN] [SECONDS]}
root="$(cd "$(dirname "$0")/.." && pwd)"
cur=${2:-$root/build/src/cli/modelseal}
secs=${3:-8}
tmp=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

"$cur" dev make-test-model "$tmp/m.gguf" --layers 4 --dim 256 --ctx 1024 >/dev/null

start() {  # BIN -> sets pid and port
  "$1" serve --listen 127.0.0.1:0 --model "m=$tmp/m.gguf" --threads 1 >"$tmp/out" 2>"$tmp/err" &
  pid=$!
  for _ in $(seq 1 300); do
    port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/out")
    [ -n "$port" ] && return 0
    sleep 0.1
  done
  echo "server did not start: $(cat "$tmp/err")" >&2
  exit 1
}
stop() {
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
}

rps() {  # URL [extra wrk args] -> "requests/s p99_ms"
  wrk -t2 -c32 -d"${secs}s" --latency "$@" |
    awk '/Requests\/sec/ {r=$2} /^ +99%/ {v=$2; if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; p=v} END {printf "%.0f %.2f", r, p}'
}

stream() {  # -> tokens/s from the first token to the last (best of 3)
  python3 - "$port" <<'PY'
import http.client, json, sys, time
best = 0
for _ in range(3):
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=120)
    c.request("POST", "/api/generate", json.dumps({"model": "m", "prompt": "the sealed model",
              "raw": True, "options": {"seed": 1, "num_predict": 256, "temperature": 0}}))
    r = c.getresponse()
    first, n, last = None, 0, None
    for line in r:
        if json.loads(line).get("done"):
            last = time.monotonic()
            break
        if first is None:
            first = time.monotonic()
        else:
            n += 1
    c.close()
    if first is not None and last is not None and last > first:
        best = max(best, n / (last - first))
print(f"{best:.0f}")
PY
}

measure() {  # BIN -> "keepalive_rps keepalive_p99 close_rps close_p99 stream_tps"
  start "$1"
  local ka cl st
  ka=$(rps "http://127.0.0.1:$port/api/version")
  cl=$(rps "http://127.0.0.1:$port/api/version" -H "Connection: close")
  st=$(stream)
  stop
  echo "$ka $cl $st"
}

best() {  # two result lines -> per column the better (max rps/tps, min p99)
  paste -d' ' <(echo "$1") <(echo "$2") |
    awk '{printf "%d %.2f %d %.2f %d", ($1>$6?$1:$6), ($2<$7?$2:$7), ($3>$8?$3:$8), ($4<$9?$4:$9), ($5>$10?$5:$10)}'
}

b1=$(measure "$base"); c1=$(measure "$cur"); b2=$(measure "$base"); c2=$(measure "$cur")
b=$(best "$b1" "$b2")
c=$(best "$c1" "$c2")
read -r bka bkp bcl bcp bst <<<"$b"
read -r cka ckp ccl ccp cst <<<"$c"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", (b > 0 ? a / b : 0)}'; }
printf "%-44s %12s %12s %8s\n" "" "baseline" "current" "ratio"
printf "%-44s %12s %12s %8s\n" "GET /api/version keep-alive, requests/s" "$bka" "$cka" "$(ratio "$cka" "$bka")"
printf "%-44s %12s %12s %8s\n" "GET /api/version keep-alive, p99 ms" "$bkp" "$ckp" "$(ratio "$ckp" "$bkp")"
printf "%-44s %12s %12s %8s\n" "GET /api/version new connection, requests/s" "$bcl" "$ccl" "$(ratio "$ccl" "$bcl")"
printf "%-44s %12s %12s %8s\n" "GET /api/version new connection, p99 ms" "$bcp" "$ccp" "$(ratio "$ccp" "$bcp")"
printf "%-44s %12s %12s %8s\n" "streamed generation, tokens/s" "$bst" "$cst" "$(ratio "$cst" "$bst")"

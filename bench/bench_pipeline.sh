#!/usr/bin/env bash
# Publish and load of a ~1 GiB model on the embedded stack (modelseal up), once on
# the local store and once on loopback S3 (s3rver, the S3 server of the tests; skipped
# when it is not installed), each against a baseline measured in the same run:
#   publish job time / one `sha384sum` pass over the same file      (goal <= 1.1)
#   load job time / `modelseal store get` of the sealed object from the same store
#     into memory (a tmpfs, $DL_DIR) with the same number of parallel ranges (goal <= 1.1)
#   peak RSS of the server during the load / the model's size       (goal <= size + 64 MiB)
# Usage: bench/bench_pipeline.sh [MODELSEAL_BIN] [--layers N]
# Prints a table; nothing is written into the repository.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MS="${1:-$ROOT/build/src/cli/modelseal}"
LAYERS="${LAYERS:-8}"
RUNS="${RUNS:-3}"
# Where the download baseline writes: a tmpfs (default /dev/shm; a tmpfs mounted
# with huge=always gives the baseline huge pages too).
DL_DIR="${DL_DIR:-/dev/shm}"
work="$(mktemp -d /var/tmp/modelseal-bench-XXXXXX)"
state="$work/state"
s3pid=""
cleanup() {
  "$MS" down --state "$state" >/dev/null 2>&1 || true
  [ -z "$s3pid" ] || kill "$s3pid" 2>/dev/null || true
  rm -rf "$work" "$DL_DIR/modelseal-bench-dl"
}
trap cleanup EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
job_seconds() {  # the newest job's created -> finished, from the API
  "$MS" jobs --json --state "$state" | python3 -c '
import json, sys, datetime
j = json.load(sys.stdin)["jobs"]
j = max(j, key=lambda x: x["created"])
p = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
print("%.3f" % (p(j["finished"]) - p(j["created"])).total_seconds())'
}

model="$work/bench.gguf"
"$MS" dev make-test-model "$model" --layers "$LAYERS" --dim 2048 --heads 16 --type f16 >/dev/null
size=$(stat -c %s "$model")
printf 'model: %s bytes (%.2f GiB), %s, %s cores\n' "$size" "$(awk -v s="$size" 'BEGIN{print s/2^30}')" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" "$(nproc)"
# The kernel's huge page policy for shared memory, where the loaded model lives
# (docs/performance.md: what it did to loads here).
printf 'shared memory huge pages (shmem_enabled): %s\n' \
  "$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null || echo unknown)"

# lane NAME STORE_URL [up options...]: publishes and loads RUNS times on a fresh `up`
# and prints its rows.
lane() {
  local name="$1" url="$2"
  shift 2
  rm -rf "$state"
  "$MS" up --state "$state" --listen 127.0.0.1:0 --threads 1 "$@" >"$work/up.log" 2>&1 &
  local up_job=$!
  for _ in $(seq 300); do grep -q 'modelseal is up' "$work/up.log" && break; sleep 0.1; done
  grep -q 'modelseal is up' "$work/up.log" || { cat "$work/up.log"; exit 1; }
  local up_pid
  up_pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$state/up.json")
  "$MS" policy allow-attested --pcr 4 --pcr 7 --state "$state" >/dev/null 2>&1

  sha384sum "$model" >/dev/null  # warm the page cache for both sides
  local -a base_pub=() pub=() pub_cli=() base_dl=() load=() rss=()
  local run t0 t1 object threads
  for run in $(seq "$RUNS"); do
    t0=$(now); sha384sum "$model" >/dev/null; t1=$(now); base_pub+=("$(secs "$t0" "$t1")")
    t0=$(now)
    "$MS" publish "b$run" --gguf "$model" -q --state "$state" >/dev/null
    t1=$(now)
    pub_cli+=("$(secs "$t0" "$t1")")
    pub+=("$(job_seconds)")
    object=$("$MS" published ls --json --state "$state" |
      python3 -c 'import json,sys; print([m["object"] for m in json.load(sys.stdin)["models"] if m["name"] == sys.argv[1]][0])' "b$run")
    threads=$(sed -n 's/^threads = //p' "$state/modelseal.conf" | head -1)
    t0=$(now)
    "$MS" store get "$url" "$object" "$DL_DIR/modelseal-bench-dl" --threads "${threads:-2}" -q >/dev/null
    t1=$(now)
    rm -f "$DL_DIR/modelseal-bench-dl"
    base_dl+=("$(secs "$t0" "$t1")")
    echo 5 >"/proc/$up_pid/clear_refs"  # resets the peak RSS (VmHWM)
    "$MS" load "b$run" -q --state "$state" >/dev/null
    load+=("$(job_seconds)")
    rss+=("$(awk '/VmHWM/ { print $2 * 1024 }' "/proc/$up_pid/status")")
    "$MS" unload "b$run" --state "$state" >/dev/null
    "$MS" published rm "b$run" --state "$state" >/dev/null
  done
  "$MS" down --state "$state" >/dev/null 2>&1 || true
  wait "$up_job" || true

  local m_base_pub m_pub m_pub_cli m_base_dl m_load m_rss
  m_base_pub=$(printf '%s\n' "${base_pub[@]}" | median)
  m_pub=$(printf '%s\n' "${pub[@]}" | median)
  m_pub_cli=$(printf '%s\n' "${pub_cli[@]}" | median)
  m_base_dl=$(printf '%s\n' "${base_dl[@]}" | median)
  m_load=$(printf '%s\n' "${load[@]}" | median)
  m_rss=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
  row() { printf '%-56s %10s %10s %8.2f\n' "$1" "$2" "$3" "$(awk -v a="$2" -v b="$3" 'BEGIN{print a/b}')"; }
  row "$name: publish job / sha384sum" "$m_pub" "$m_base_pub"
  row "$name: publish incl. upload of the GGUF / sha384sum" "$m_pub_cli" "$m_base_pub"
  row "$name: load job / store get into $DL_DIR" "$m_load" "$m_base_dl"
  printf '%-56s %10s %10s\n' "$name: peak RSS during load - model size (MiB, max)" \
    "$(awk -v r="$m_rss" -v s="$size" 'BEGIN{printf "%.0f", (r-s)/2^20}')" "64"
  {
    echo "  $name, every run (s): sha384sum ${base_pub[*]}; publish ${pub[*]};" \
      "store get ${base_dl[*]}; load ${load[*]}"
    printf '  %s, every run: peak RSS - model size (MiB):' "$name"
    printf ' %s' $(printf '%s\n' "${rss[@]}" | awk -v s="$size" '{printf "%.0f\n", ($1-s)/2^20}')
    echo
  } >&2
}

echo
printf '%-56s %10s %10s %8s\n' "measure (median of $RUNS)" "ours s" "base s" "ratio"
lane local "file://$state/store/models"

s3rver_js="$ROOT/tests/js/aws/s3rver_start.mjs"
if [ -d "$ROOT/tests/js/aws/node_modules/s3rver" ]; then
  mkfifo "$work/s3in"
  # s3rver stops when its stdin closes: fd 4 holds it open while this script lives.
  node "$s3rver_js" "$work/s3data" <"$work/s3in" >"$work/s3rver.out" 2>&1 &
  s3pid=$!
  exec 4>"$work/s3in"
  for _ in $(seq 200); do grep -q '^PORT ' "$work/s3rver.out" && break; sleep 0.1; done
  port=$(awk '/^PORT /{print $2}' "$work/s3rver.out")
  [ -n "$port" ] || { cat "$work/s3rver.out"; exit 1; }
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_EC2_METADATA_DISABLED=true
  export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$port" AWS_REGION=us-east-1
  (cd "$ROOT/tests/js/aws" && node -e '
    const { S3Client, CreateBucketCommand } = require("@aws-sdk/client-s3");
    new S3Client({ endpoint: process.env.AWS_ENDPOINT_URL_S3, region: "us-east-1", forcePathStyle: true })
      .send(new CreateBucketCommand({ Bucket: "bench" })).catch((e) => { console.error(e); process.exit(1); });')
  lane "loopback S3" "s3://bench/published" --store s3://bench/published \
    --store-endpoint "http://127.0.0.1:$port" --store-region us-east-1
else
  echo "loopback S3: skipped (s3rver is not installed: source scripts/lib.sh && run_setup_hooks)"
fi

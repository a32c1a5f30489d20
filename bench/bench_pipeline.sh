#!/usr/bin/env bash
# Publish and load of a ~1 GiB model on the embedded stack (modelseal up, local
# store), each against a baseline measured in the same run:
#   publish job time / one `sha384sum` pass over the same file      (goal <= 1.1)
#   load job time / `modelseal store get` of the sealed object into
#     memory (/dev/shm) with the same number of parallel ranges     (goal <= 1.1)
#   peak RSS of the server during the load / the model's size       (goal <= size + 64 MiB)
# Usage: bench/bench_pipeline.sh [MODELSEAL_BIN] [--layers N]
# Prints a table; nothing is written into the repository.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MS="${1:-$ROOT/build/src/cli/modelseal}"
LAYERS="${LAYERS:-8}"
RUNS="${RUNS:-3}"
work="$(mktemp -d /var/tmp/modelseal-bench-XXXXXX)"
state="$work/state"
cleanup() {
  "$MS" down --state "$state" >/dev/null 2>&1 || true
  rm -rf "$work" /dev/shm/modelseal-bench-dl
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

"$MS" up --state "$state" --listen 127.0.0.1:0 --threads 1 >"$work/up.log" 2>&1 &
for _ in $(seq 300); do grep -q 'modelseal is up' "$work/up.log" && break; sleep 0.1; done
grep -q 'modelseal is up' "$work/up.log" || { cat "$work/up.log"; exit 1; }
up_pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$state/up.json")
"$MS" policy allow-attested --pcr 4 --pcr 7 --state "$state" >/dev/null 2>&1

sha384sum "$model" >/dev/null  # warm the page cache for both sides
declare -a base_pub=() pub=() pub_cli=() base_dl=() load=() rss=()
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
  "$MS" store get "file://$state/store/models" "$object" /dev/shm/modelseal-bench-dl \
    --threads "${threads:-2}" -q
  t1=$(now)
  rm -f /dev/shm/modelseal-bench-dl
  base_dl+=("$(secs "$t0" "$t1")")
  echo 5 >"/proc/$up_pid/clear_refs"  # resets the peak RSS (VmHWM)
  "$MS" load "b$run" -q --state "$state" >/dev/null
  load+=("$(job_seconds)")
  rss+=("$(awk '/VmHWM/ { print $2 * 1024 }' "/proc/$up_pid/status")")
  "$MS" unload "b$run" --state "$state" >/dev/null
  "$MS" published rm "b$run" --state "$state" >/dev/null
done

m_base_pub=$(printf '%s\n' "${base_pub[@]}" | median)
m_pub=$(printf '%s\n' "${pub[@]}" | median)
m_pub_cli=$(printf '%s\n' "${pub_cli[@]}" | median)
m_base_dl=$(printf '%s\n' "${base_dl[@]}" | median)
m_load=$(printf '%s\n' "${load[@]}" | median)
m_rss=$(printf '%s\n' "${rss[@]}" | sort -n | tail -1)
echo
printf '%-48s %10s %10s %8s\n' "measure (median of $RUNS)" "ours s" "base s" "ratio"
printf '%-48s %10s %10s %8.2f\n' "publish job / sha384sum" "$m_pub" "$m_base_pub" \
  "$(awk -v a="$m_pub" -v b="$m_base_pub" 'BEGIN{print a/b}')"
printf '%-48s %10s %10s %8.2f\n' "publish incl. upload of the GGUF / sha384sum" "$m_pub_cli" \
  "$m_base_pub" "$(awk -v a="$m_pub_cli" -v b="$m_base_pub" 'BEGIN{print a/b}')"
printf '%-48s %10s %10s %8.2f\n' "load job / store get into /dev/shm" "$m_load" "$m_base_dl" \
  "$(awk -v a="$m_load" -v b="$m_base_dl" 'BEGIN{print a/b}')"
printf '%-48s %10s %10s\n' "peak RSS during load - model size (MiB, max)" \
  "$(awk -v r="$m_rss" -v s="$size" 'BEGIN{printf "%.0f", (r-s)/2^20}')" "64"

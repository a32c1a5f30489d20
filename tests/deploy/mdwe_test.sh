#!/usr/bin/env bash
# MemoryDenyWriteExecute=yes in deploy/systemd/modelseal.service holds for
# modelseal on the CPU: the built binary runs under the kernel's own W^X policy
# (PR_SET_MDWE, through mdwe_exec) while it seals and unseals, makes a test model,
# and serves a chat completion from llama.cpp. A dependency that starts to need
# writable-and-executable memory (a JIT) makes this fail.
# Usage: mdwe_test.sh PATH/TO/modelseal PATH/TO/mdwe_exec
# Exit 77 (skipped) when the kernel has no PR_SET_MDWE (before Linux 6.3).
set -euo pipefail
ms="$1"
mdwe="$2"
fail() { echo "FAIL: $*" >&2; exit 1; }

work=$(mktemp -d)
pid=""
cleanup() {
  [ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT

rc=0
"$mdwe" true || rc=$?
[ "$rc" != 77 ] || { echo "SKIP: the kernel has no PR_SET_MDWE"; exit 77; }
[ "$rc" = 0 ] || fail "mdwe_exec does not work (exit $rc)"
# The policy is really in force for the command it runs.
if "$mdwe" python3 -c 'import mmap; mmap.mmap(-1, 4096, prot=7)' 2>/dev/null; then
  fail "a W+X mapping was allowed under mdwe_exec"
fi

"$mdwe" "$ms" selfcheck >"$work/selfcheck" 2>&1 || fail "selfcheck under W^X: $(cat "$work/selfcheck")"
"$mdwe" "$ms" dev make-test-model "$work/t.gguf" --layers 2 --dim 64 >"$work/make" 2>&1 ||
  fail "make-test-model under W^X: $(cat "$work/make")"

mkfifo "$work/serve.out"
"$mdwe" "$ms" serve --listen 127.0.0.1:0 --model "t=$work/t.gguf" --threads 2 \
  >"$work/serve.out" 2>"$work/serve.err" &
pid=$!
exec {fd}<"$work/serve.out"
line=""
read -r line <&"$fd" || fail "serve under W^X exited: $(cat "$work/serve.err")"
url=$(sed -n 's/^listening on \(http:\/\/[0-9.]*:[0-9]*\).*/\1/p' <<<"$line")
[ -n "$url" ] || fail "serve printed '$line'"
reply=$(curl -sS --fail -H 'Content-Type: application/json' \
  -d '{"model": "t", "prompt": "Hello", "stream": false, "options": {"num_predict": 8}}' \
  "$url/api/generate") || fail "generate under W^X failed: $(cat "$work/serve.err")"
jq -e '.done == true and (.eval_count // 0) > 0' <<<"$reply" >/dev/null ||
  fail "no tokens generated under W^X: $reply"
kill -0 "$pid" || fail "serve died under W^X: $(cat "$work/serve.err")"
echo "modelseal under PR_SET_MDWE: selfcheck, test model, inference ok"

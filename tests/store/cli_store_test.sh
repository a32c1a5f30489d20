#!/usr/bin/env bash
# Black-box test of `modelseal store` on a local directory store, and of
# `modelseal hub` error reporting when the Hub cannot be reached.
set -euo pipefail
ms="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

url="file://$work/store"
"$ms" store ls "$url" 2>"$work/err" && fail "ls of a missing store succeeded"
grep -q "does not exist" "$work/err" || fail "missing store error: $(cat "$work/err")"
"$ms" store mb "$url" | grep -q "^created" || fail "mb"
head -c 2000000 /dev/urandom >"$work/model.gguf"
"$ms" store put "$url" "models/tiny model.gguf" "$work/model.gguf" -q >/dev/null || fail "put"
"$ms" store ls "$url" | grep -q "2000000  models/tiny model.gguf" || fail "ls text"
"$ms" store ls "$url" models/ --json | grep -q '"size": 2000000' || fail "ls json"
"$ms" store head "$url" "models/tiny model.gguf" | grep -q '"size": 2000000' || fail "head"
"$ms" store get "$url" "models/tiny model.gguf" "$work/back.gguf" -q >/dev/null || fail "get"
cmp -s "$work/model.gguf" "$work/back.gguf" || fail "downloaded bytes differ"
set +e
"$ms" store put "$url" "../escape" "$work/model.gguf" -q 2>"$work/err"
rc=$?
"$ms" store head "$url" "nope" 2>"$work/err2"
rc2=$?
set -e
[ "$rc" -ne 0 ] || fail "a '..' key was accepted"
grep -q "invalid object key" "$work/err" || fail "bad key message: $(cat "$work/err")"
[ "$rc2" -eq 4 ] || fail "head of a missing key should exit 4, got $rc2"
"$ms" store rm "$url" "models/tiny model.gguf" || fail "rm"
[ -z "$("$ms" store ls "$url")" ] || fail "store not empty after rm"

set +e
HF_ENDPOINT=http://127.0.0.1:1 MODELSEAL_HUB_CACHE="$work/hub" \
  "$ms" hub download org/model model.gguf -q 2>"$work/err"
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "download from an unreachable hub succeeded"
grep -q "cannot reach" "$work/err" || fail "unreachable message: $(cat "$work/err")"
echo "cli store test passed"

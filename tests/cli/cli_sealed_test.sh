#!/usr/bin/env bash
# Black-box test of the container verbs of the built binary.
set -euo pipefail
ms="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$ms" --help | grep -q inspect || fail "--help does not list inspect"
"$ms" selfcheck | grep -q "self-check passed" || fail "selfcheck"

head -c 32 /dev/urandom >"$work/key"
head -c 300000 /dev/urandom >"$work/model.gguf"
"$ms" dev seal "$work/model.gguf" "$work/model.sealed" --data-key-file "$work/key" \
  --name tiny --chunk-size 65536 -q >"$work/seal.out"
want=$(sha384sum "$work/model.gguf" | cut -d' ' -f1)
grep -q "sha384 $want" "$work/seal.out" || fail "seal did not print the plaintext SHA-384"
ls "$work" | grep -q partial && fail "temporary file left behind"

"$ms" inspect "$work/model.sealed" | grep -q "model name       tiny" || fail "inspect text"
json=$("$ms" inspect --json "$work/model.sealed")
node -e '
  const h = JSON.parse(process.argv[1]);
  if (h.sha384 !== process.argv[2] || h.chunk_count !== 5 || h.plaintext_size !== 300000 ||
      h.format_version !== 1 || h.authenticated !== false) { console.error(h); process.exit(1); }
' "$json" "$want" || fail "inspect --json fields"

"$ms" dev verify "$work/model.sealed" --data-key-file "$work/key" -q | grep -q verified \
  || fail "verify of an intact object"

# A flipped byte in the body: specific error, exit status 3.
cp "$work/model.sealed" "$work/bad.sealed"
size=$(stat -c %s "$work/bad.sealed")
printf '\x00' | dd of="$work/bad.sealed" bs=1 seek=$((size - 70000)) conv=notrunc status=none
set +e
err=$("$ms" dev verify "$work/bad.sealed" --data-key-file "$work/key" -q 2>&1)
rc=$?
set -e
[ "$rc" = 3 ] || fail "tampered verify exit status $rc"
echo "$err" | grep -q "chunk 4 of 5 failed authentication" || fail "tamper message: $err"

# Not a container.
set +e
err=$("$ms" inspect "$work/model.gguf" 2>&1)
rc=$?
set -e
[ "$rc" != 0 ] || fail "inspect of a non-container succeeded"
echo "$err" | grep -q "not a modelseal container" || fail "non-container message: $err"
echo "cli_sealed: all checks passed"

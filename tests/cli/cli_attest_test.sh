#!/usr/bin/env bash
# Black-box test of `pcr` and `attest` verbs against a swtpm this script starts.
set -euo pipefail
ms="$1"
work=$(mktemp -d)
swtpm_pid=""
cleanup() {
  if [ -n "$swtpm_pid" ]; then kill "$swtpm_pid" 2>/dev/null || true; wait "$swtpm_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect_rc() {  # expect_rc WANT command...
  local want="$1"; shift
  set +e; "$@" >"$work/out" 2>"$work/err"; local rc=$?; set -e
  [ "$rc" = "$want" ] || { cat "$work/out" "$work/err" >&2; fail "exit $rc, wanted $want: $*"; }
}

swtpm_setup --tpm2 --tpmstate "$work/tpm" --pcr-banks sha256,sha384 --config /dev/null \
  >"$work/setup.log" 2>&1 || { mkdir -p "$work/tpm"; swtpm_setup --tpm2 --tpmstate "$work/tpm" \
  --pcr-banks sha256,sha384 --config /dev/null >"$work/setup.log" 2>&1; } || fail "swtpm_setup"

# A free loopback port pair (command N, control N+1), a bounded number of tries.
for try in $(seq 1 20); do
  port=$(( 20000 + RANDOM % 40000 ))
  swtpm socket --tpm2 --tpmstate dir="$work/tpm" \
    --server type=tcp,port=$port,bindaddr=127.0.0.1 \
    --ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 \
    --flags not-need-init,startup-clear >"$work/swtpm.log" 2>&1 &
  swtpm_pid=$!
  up=""
  for i in $(seq 1 200); do
    if ! kill -0 "$swtpm_pid" 2>/dev/null; then break; fi
    if TPM2TOOLS_TCTI="swtpm:host=127.0.0.1,port=$port" tpm2_getcap properties-fixed >/dev/null 2>&1; then up=1; break; fi
    sleep 0.05
  done
  [ -n "$up" ] && break
  kill "$swtpm_pid" 2>/dev/null || true; wait "$swtpm_pid" 2>/dev/null || true; swtpm_pid=""
done
[ -n "$swtpm_pid" ] || fail "swtpm did not start"
export MODELSEAL_TPM_TCTI="swtpm:host=127.0.0.1,port=$port"
export MODELSEAL_STATE_DIR="$work/state"
export TPM2TOOLS_TCTI="$MODELSEAL_TPM_TCTI"

# pcr read equals tpm2_pcrread.
"$ms" pcr read --bank sha384 --json >"$work/pcrs.json"
want=$(tpm2_pcrread sha384:7 | sed -n 's/^ *7 *: *0x//p' | tr 'A-F' 'a-f')
[ -n "$want" ] || fail "could not read tpm2_pcrread output"
node -e 'const j=require(process.argv[1]); if (j.banks.sha384["7"] !== process.argv[2]) process.exit(1)' \
  "$work/pcrs.json" "$want" || fail "pcr read differs from tpm2_pcrread"
"$ms" pcr read >"$work/pcrs.txt"
grep -q "^sha256:" "$work/pcrs.txt" || fail "pcr read lists the sha256 bank"

# predict: one model from a fresh boot.
d=$(printf 'model' | sha384sum | cut -d' ' -f1)
p=$("$ms" pcr predict --model-digest "$d")
tpm2_pcrextend "15:sha384=$d" >/dev/null
live=$(tpm2_pcrread sha384:15 | sed -n 's/^ *15 *: *0x//p' | tr 'A-F' 'a-f')
[ "$p" = "$live" ] || fail "pcr predict $p != live $live"
expect_rc 2 "$ms" pcr predict --model-digest zz

# That extend was not logged: the log reports the mismatch (exit 3).
expect_rc 3 "$ms" pcr log
grep -q MISMATCH "$work/out" || fail "pcr log does not say MISMATCH"

# attest: development document (swtpm is no NitroTPM), labelled as such.
printf 'hello' >"$work/ud"
head -c 65 /dev/urandom >"$work/pk"
expect_rc 0 "$ms" attest --nonce a1b2 --user-data "$work/ud" --public-key "$work/pk" -o "$work/doc.cbor"
grep -q DEVELOPMENT "$work/err" || fail "attest does not say DEVELOPMENT"
[ "$(stat -c %a "$work/state/dev-authority/root.key")" = 600 ] || fail "root key not 0600"

expect_rc 3 "$ms" attest verify "$work/doc.cbor"             # AWS root only
grep -q "chain *FAILED" "$work/out" || fail "chain failure not named"
expect_rc 0 "$ms" attest verify "$work/doc.cbor" --root dev --nonce a1b2 --max-age 600
grep -q "VERIFIED as a DEVELOPMENT document" "$work/out" || fail "dev verify text"
# --max-age strictly: no sign, no space, nothing that overflows into milliseconds.
for bad in -1 " 600" +600 600s 0x10 18446744073709552; do
  expect_rc 2 "$ms" attest verify "$work/doc.cbor" --root dev --max-age "$bad"
  grep -q "max-age" "$work/err" || fail "--max-age '$bad' refused without naming it"
done
expect_rc 0 "$ms" attest verify "$work/doc.cbor" --root "$work/state/dev-authority/root.crt"
expect_rc 3 "$ms" attest verify "$work/doc.cbor" --root dev --nonce a1b3
grep -q "nonce *FAILED" "$work/out" || fail "nonce failure not named"
expect_rc 3 "$ms" attest verify "$work/doc.cbor" --root dev --at 2099-01-01T00:00:00Z
grep -q "validity *FAILED" "$work/out" || fail "validity failure not named"
expect_rc 0 "$ms" attest verify "$work/doc.cbor" --root dev --json
node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1]));
  if (!j.verified || !j.development || j.document.nitrotpm_pcrs["15"] !== process.argv[2] ||
      j.document.user_data !== "68656c6c6f" || j.document.nonce !== "a1b2") process.exit(1)' \
  "$work/out" "$live" || fail "verify --json fields"

# A flipped byte anywhere in the signed payload fails.
python3 - "$work/doc.cbor" "$work/bad.cbor" <<'PY' || cp "$work/doc.cbor" "$work/bad.cbor"
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
i = d.find(b'hello')
d[i] ^= 1
open(sys.argv[2], 'wb').write(d)
PY
expect_rc 3 "$ms" attest verify "$work/bad.cbor" --root dev
grep -q "signature *FAILED" "$work/out" || fail "tampered document not caught by the signature"

# A large file (a sealed model, say) is refused at once for its size, not read.
truncate -s 1G "$work/large.bin"
expect_rc 2 "$ms" attest show "$work/large.bin"
grep -q "is 1073741824 bytes; an attestation document (CBOR or its base64) is at most" "$work/err" ||
  { cat "$work/err" >&2; fail "large document not refused for its size"; }
expect_rc 2 "$ms" attest verify "$work/large.bin" --root dev
head -c 1025 /dev/zero >"$work/ud-large"
expect_rc 2 "$ms" attest --user-data "$work/ud-large" -o "$work/none.cbor"
grep -q "user data is at most 1024 bytes" "$work/err" || fail "large user data not refused"

# show: every field and decoded certificates.
expect_rc 0 "$ms" attest show "$work/doc.cbor"
grep -q "NOT verified" "$work/out" || fail "show must say it did not verify"
grep -q "subject   CN=modelseal development" "$work/out" || grep -q "subject   .*modelseal development" "$work/out" || fail "show certs"
expect_rc 0 "$ms" attest show "$work/doc.cbor" --json
node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1]));
  if (j.cabundle.length !== 2 || j.certificate.key !== "EC P-384" || !j.claims_development) process.exit(1)' \
  "$work/out" || fail "show --json"
# A PEM public key goes into the document as DER SubjectPublicKeyInfo.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.key" 2>/dev/null
openssl pkey -in "$work/rsa.key" -pubout -out "$work/rsa.pub"
want_pk=$(openssl pkey -pubin -in "$work/rsa.pub" -outform DER | od -An -tx1 -v | tr -d ' \n')
expect_rc 0 "$ms" attest --public-key "$work/rsa.pub" -o "$work/doc2.cbor"
expect_rc 0 "$ms" attest show "$work/doc2.cbor" --json
node -e 'const j=JSON.parse(require("fs").readFileSync(process.argv[1]));
  if (j.public_key !== process.argv[2]) process.exit(1)' "$work/out" "$want_pk" \
  || fail "PEM public key not carried as DER"

base64 -w0 "$work/doc.cbor" >"$work/doc.b64"
expect_rc 0 "$ms" attest verify "$work/doc.b64" --root dev

# No TPM: a clear error, not a crash.
expect_rc 1 "$ms" pcr read --tcti swtpm:host=127.0.0.1,port=1
grep -q "no TPM reachable" "$work/err" || fail "no-TPM message"
echo "cli attest/pcr: all checks passed"

#!/usr/bin/env bash
# Black-box test of `modelseal kms ...` against `modelseal kms serve`.
set -euo pipefail
ms="$1"
state=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$state"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$ms" kms serve --state "$state" --listen 127.0.0.1:0 >"$state/serve.out" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$state/serve.out" && break; sleep 0.1; done
port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$state/serve.out")
[ -n "$port" ] || fail "key service did not start: $(cat "$state/serve.out")"
[ "$(stat -c %a "$state/kms/credentials.json")" = 600 ] || fail "credentials file is not 0600"
eval "$(node -e '
  const c = JSON.parse(require("fs").readFileSync(process.argv[1])).credentials[0];
  console.log(`export AWS_ACCESS_KEY_ID=${c.access_key_id} AWS_SECRET_ACCESS_KEY=${c.secret_access_key}`);
' "$state/kms/credentials.json")"
export AWS_ENDPOINT_URL_KMS="http://127.0.0.1:$port" AWS_REGION=us-east-1

key=$("$ms" kms create-key --description cli | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).KeyMetadata.KeyId))')
[ -n "$key" ] || fail "create-key"
"$ms" kms list-keys | grep -q "$key" || fail "list-keys"
"$ms" kms describe-key "$key" | grep -q '"Description": "cli"' || fail "describe-key"

consumer="arn:aws:iam::444455556666:role/consumer"
pcr4=$(printf 'a%.0s' $(seq 96))
pcr7=$(printf 'b%.0s' $(seq 96))
"$ms" kms policy allow-attested "$key" --principal "$consumer" --pcr "4=$pcr4" --pcr "7=$pcr7" >/dev/null
policy=$("$ms" kms policy get "$key")
echo "$policy" | grep -q AttestedDecrypt || fail "statement not added"
echo "$policy" | grep -q "Enable IAM User Permissions" || fail "existing statement was dropped"

out=$("$ms" kms policy check "$key" --principal "$consumer" --pcr "4=$pcr4" --pcr "7=$pcr7") \
  || fail "check with matching PCRs denied: $out"
echo "$out" | grep -q "^ALLOW kms:Decrypt" || fail "check output: $out"
set +e
out=$("$ms" kms policy check "$key" --principal "$consumer" --pcr "4=$pcr4" --pcr "7=$pcr4")
rc=$?
set -e
[ "$rc" = 3 ] || fail "check with a wrong PCR7 exited $rc"
echo "$out" | grep -q "\[FAIL\] StringEqualsIgnoreCase kms:RecipientAttestation:NitroTPMPCR7" \
  || fail "check did not name the failing PCR: $out"
echo "$out" | grep -q "\[ok\]   StringEqualsIgnoreCase kms:RecipientAttestation:NitroTPMPCR4" \
  || fail "check did not show the matching PCR: $out"

set +e
err=$("$ms" kms policy allow-attested "$key" --principal "$consumer" --pcr 4=abc 2>&1)
rc=$?
set -e
[ "$rc" != 0 ] && echo "$err" | grep -q "96 hex digits" || fail "bad --pcr accepted: $err"
# The index strictly: "x=" and "4x=" are errors, not PCR0 and PCR4.
for bad in "x=$pcr4" "4x=$pcr4" "=$pcr4" "123=$pcr4"; do
  set +e
  err=$("$ms" kms policy allow-attested "$key" --principal "$consumer" --pcr "$bad" --pcr "7=$pcr7" 2>&1)
  rc=$?
  set -e
  [ "$rc" != 0 ] && echo "$err" | grep -q "N in 0..23" || fail "--pcr $bad accepted: $err"
done
# A statement pinning no boot PCR (0-7) is refused: PCR15 alone can be replayed.
set +e
err=$("$ms" kms policy allow-attested "$key" --principal "$consumer" --pcr "15=$pcr4" 2>&1)
rc=$?
set -e
[ "$rc" != 0 ] && echo "$err" | grep -q "boot PCR" || fail "PCR15-only statement accepted: $err"

# The check prints the deciding statement as the audit log records it.
echo "$out" | grep -q "^statement: (none)" || fail "check did not print the deciding statement: $out"
out=$("$ms" kms policy check "$key" --principal "$consumer" --pcr "4=$pcr4" --pcr "7=$pcr7")
echo "$out" | grep -q "^statement: 2 AttestedDecrypt$" || fail "deciding statement: $out"

# Lint: the default owner statement releases Decrypt without PCRs and nothing
# denies a plain Decrypt.
set +e
lint=$("$ms" kms policy lint --key "$key" --json)
rc=$?
set -e
[ "$rc" = 3 ] || fail "lint exited $rc: $lint"
echo "$lint" | grep -q '"code": "decrypt-without-pcr"' || fail "lint: $lint"
echo "$lint" | grep -q '"code": "no-deny-without-attestation"' || fail "lint: $lint"
cat >"$state/good.json" <<JSON
{"Statement": [
 {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "NotAction": "kms:Decrypt", "Resource": "*"},
 {"Effect": "Allow", "Principal": {"AWS": "$consumer"}, "Action": "kms:Decrypt", "Resource": "*",
  "Condition": {"StringEquals": {"kms:RecipientAttestation:NitroTPMPCR4": "$pcr4", "kms:RecipientAttestation:NitroTPMPCR7": "$pcr7"}}},
 {"Effect": "Deny", "Principal": {"AWS": "$consumer"}, "Action": "kms:Decrypt", "Resource": "*",
  "Condition": {"Null": {"kms:RecipientAttestation:NitroTPMPCR4": "true"}}}]}
JSON
"$ms" kms policy lint --file "$state/good.json" | grep -q "^no warnings$" || fail "good policy has warnings"

# The key store is private to its owner.
[ "$(stat -c %a "$state/kms/keys/keys.json")" = 600 ] || fail "keys.json is not 0600"
echo "kms cli: all checks passed"

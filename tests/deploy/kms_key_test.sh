#!/usr/bin/env bash
# deploy/aws/create-kms-key run for real, with Debian's AWS CLI, against
# `modelseal kms serve`; the key policy is read back and what it allows is
# checked: attested decrypt only with the pinned PCRs, never without attestation,
# the owner administers but cannot decrypt. A second run with other PCRs
# replaces the policy of the same key instead of creating another.
# Usage: kms_key_test.sh PATH/TO/modelseal
set -euo pipefail
ms="$1"
here="$(cd "$(dirname "$0")" && pwd)"
script="$here/../../deploy/aws/create-kms-key"
fail() { echo "FAIL: $*" >&2; exit 1; }

real_aws=/usr/bin/aws
[ -x "$real_aws" ] || real_aws=$(command -v aws) || fail "no AWS CLI (apt-get install awscli)"

state=$(mktemp -d)
pid=""
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  rm -rf "$state"
}
trap cleanup EXIT

owner=arn:aws:iam::111122223333:role/modelseal-owner
consumer=arn:aws:iam::111122223333:role/modelseal-consumer
owner_key=AKIADEPLOYOWNER00001 owner_secret=$(openssl rand -hex 20)
consumer_key=AKIADEPLOYCONSUMER01 consumer_secret=$(openssl rand -hex 20)
jq -n --arg ok "$owner_key" --arg os "$owner_secret" --arg op "$owner" \
  --arg ck "$consumer_key" --arg cs "$consumer_secret" --arg cp "$consumer" '{credentials: [
  {access_key_id: $ok, secret_access_key: $os, principal_arn: $op, role: "admin"},
  {access_key_id: $ck, secret_access_key: $cs, principal_arn: $cp, role: "consumer"}]}' \
  >"$state/credentials.json"
chmod 600 "$state/credentials.json"

"$ms" kms serve --state "$state" --listen 127.0.0.1:0 --credentials "$state/credentials.json" \
  --account 111122223333 --service-region us-east-2 >"$state/serve.out" 2>&1 &
pid=$!
for _ in $(seq 200); do
  grep -q "listening on" "$state/serve.out" && break
  kill -0 "$pid" 2>/dev/null || fail "key service exited: $(cat "$state/serve.out")"
  sleep 0.1
done
port=$(sed -n 's/.*listening on http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$state/serve.out")
[ -n "$port" ] || fail "key service did not start: $(cat "$state/serve.out")"
endpoint="http://127.0.0.1:$port"

export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_REGION=us-east-2
export AWS_ACCESS_KEY_ID="$owner_key" AWS_SECRET_ACCESS_KEY="$owner_secret"
export AWS_ENDPOINT_URL_KMS="$endpoint"
export AWS_CLI="$here/aws_recorder" MS_REAL_AWS="$real_aws" MS_AWS_LOG="$state/calls.log"
kms() { "$real_aws" --endpoint-url "$endpoint" --region us-east-2 kms "$@"; }
as_consumer() {
  AWS_ACCESS_KEY_ID="$consumer_key" AWS_SECRET_ACCESS_KEY="$consumer_secret" "$@"
}

pcr4=$(printf 'A%.0s' $(seq 96))
pcr7=$(printf '0123456789abcdef%.0s' $(seq 6))
pcr7b=$(printf 'fedcba9876543210%.0s' $(seq 6))
pcr15=$(openssl rand -hex 48)

# First run: creates the key and its alias.
: >"$MS_AWS_LOG"
key=$("$script" --region us-east-2 --endpoint-url "$endpoint" --owner-arn "$owner" \
  --instance-role-arn "$consumer" --pcr "4=$pcr4" --pcr "7=$pcr7" --pcr "15=$pcr15" \
  --alias alias/deploy-test 2>"$state/err") || fail "create-kms-key: $(cat "$state/err")"
[[ "$key" =~ ^arn:aws:kms:us-east-2:111122223333:key/ ]] || fail "not a key ARN: '$key'"
grep -q "kms create-key" "$MS_AWS_LOG" || fail "no create-key call"
[ "$(kms describe-key --key-id alias/deploy-test --query KeyMetadata.Arn --output text)" = "$key" ] ||
  fail "alias/deploy-test does not name $key"

# The policy as the key service holds it.
policy=$(kms get-key-policy --key-id "$key" --policy-name default --query Policy --output text)
check() { jq -e "$1" <<<"$policy" >/dev/null || fail "policy: $2: $policy"; }
check '.Statement | length == 4' "four statements"
jq -e --arg o "$owner" '.Statement[] | select(.Sid == "OwnerAdministers")
  | .Effect == "Allow" and .Principal.AWS == $o and .NotAction == "kms:Decrypt" and (has("Condition") | not)' \
  <<<"$policy" >/dev/null || fail "owner statement: $policy"
jq -e --arg c "$consumer" --arg p4 "${pcr4,,}" --arg p7 "$pcr7" --arg p15 "$pcr15" '
  .Statement[] | select(.Sid == "AttestedDecrypt")
  | .Effect == "Allow" and .Principal.AWS == $c and .Action == "kms:Decrypt"
    and .Condition == {StringEqualsIgnoreCase: {
      "kms:RecipientAttestation:NitroTPMPCR4": $p4,
      "kms:RecipientAttestation:NitroTPMPCR7": $p7,
      "kms:RecipientAttestation:NitroTPMPCR15": $p15}}' <<<"$policy" >/dev/null ||
  fail "attested statement does not pin exactly PCR4, PCR7, PCR15: $policy"
jq -e --arg c "$consumer" '.Statement[] | select(.Sid == "DenyDecryptWithoutAttestation")
  | .Effect == "Deny" and .Principal.AWS == $c and .Action == "kms:Decrypt"
    and .Condition == {Null: {"kms:RecipientAttestation:NitroTPMPCR4": "true"}}' \
  <<<"$policy" >/dev/null || fail "deny statement: $policy"

# What the policy allows, as the key service decides it.
"$ms" kms policy check "$key" --principal "$consumer" --pcr "4=$pcr4" --pcr "7=$pcr7" \
  --pcr "15=$pcr15" >"$state/check" || fail "matching PCRs denied: $(cat "$state/check")"
rc=0
"$ms" kms policy check "$key" --principal "$consumer" --pcr "4=$pcr4" --pcr "7=$pcr7b" \
  --pcr "15=$pcr15" >"$state/check" || rc=$?
[ "$rc" = 3 ] || fail "a wrong PCR7 was not denied (exit $rc): $(cat "$state/check")"
rc=0
"$ms" kms policy check "$key" --principal "$consumer" >"$state/check" || rc=$?
[ "$rc" = 3 ] || fail "decrypt without attestation was not denied (exit $rc)"
"$ms" kms policy lint --key "$key" >"$state/lint" || fail "kms policy lint: $(cat "$state/lint")"

# The owner seals (GenerateDataKey) but cannot decrypt; the consumer cannot
# decrypt without an attestation document, and may describe the key.
blob=$(kms generate-data-key --key-id alias/deploy-test --key-spec AES_256 \
  --query CiphertextBlob --output text) || fail "owner GenerateDataKey refused"
printf '%s' "$blob" | base64 -d >"$state/blob"
kms decrypt --ciphertext-blob "fileb://$state/blob" >/dev/null 2>"$state/err" &&
  fail "the owner decrypted"
grep -q AccessDenied "$state/err" || fail "owner decrypt: $(cat "$state/err")"
as_consumer kms decrypt --ciphertext-blob "fileb://$state/blob" >/dev/null 2>"$state/err" &&
  fail "the consumer decrypted without attestation"
grep -q AccessDenied "$state/err" || fail "consumer decrypt: $(cat "$state/err")"
as_consumer kms describe-key --key-id "$key" >/dev/null || fail "the consumer cannot describe the key"

# Second run, new PCR7: same key, policy replaced, nothing created.
: >"$MS_AWS_LOG"
key2=$("$script" --region us-east-2 --endpoint-url "$endpoint" --owner-arn "$owner" \
  --instance-role-arn "$consumer" --pcr "4=$pcr4" --pcr "7=$pcr7b" \
  --alias alias/deploy-test 2>"$state/err") || fail "second run: $(cat "$state/err")"
[ "$key2" = "$key" ] || fail "second run returned another key: $key2"
grep -q "kms create-key" "$MS_AWS_LOG" && fail "second run created a key"
grep -q "kms put-key-policy" "$MS_AWS_LOG" || fail "second run did not replace the policy"
"$ms" kms policy check "$key" --principal "$consumer" --pcr "4=$pcr4" --pcr "7=$pcr7b" \
  >"$state/check" || fail "new PCR7 denied after the update: $(cat "$state/check")"
rc=0
"$ms" kms policy check "$key" --principal "$consumer" --pcr "4=$pcr4" --pcr "7=$pcr7" \
  >"$state/check" || rc=$?
[ "$rc" = 3 ] || fail "old PCR7 still allowed after the update (exit $rc)"
[ "$(kms list-keys --query 'length(Keys)' --output text)" = 1 ] || fail "more than one key exists"
echo "create-kms-key against modelseal kms serve: ok"

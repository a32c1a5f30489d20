#!/usr/bin/env bash
# deploy/aws/create-bucket run for real, with Debian's AWS CLI, against s3rver
# (the third-party S3 server of the store tests). s3rver creates buckets but
# implements none of the bucket settings (public access block, encryption,
# versioning, policy: NotImplemented), so this checks that the bucket is created
# once (a second run does not create it again) and that the script stops with an
# error naming the setting it could not apply, never reporting a bucket as
# protected when it is not.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
script="$root/deploy/aws/create-bucket"
fail() { echo "FAIL: $*" >&2; exit 1; }

real_aws=/usr/bin/aws
[ -x "$real_aws" ] || real_aws=$(command -v aws) || fail "no AWS CLI (apt-get install awscli)"
[ -d "$root/tests/js/aws/node_modules/s3rver" ] ||
  fail "s3rver is not installed: source scripts/lib.sh && run_setup_hooks"

work=$(mktemp -d)
pid=""
cleanup() {
  exec 4>&- || true
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkfifo "$work/stdin"
# s3rver stops when its stdin closes: fd 4 holds it open while this test lives.
node "$root/tests/js/aws/s3rver_start.mjs" "$work/data" <"$work/stdin" >"$work/s3rver.out" 2>&1 &
pid=$!
exec 4>"$work/stdin"
for _ in $(seq 200); do
  grep -q '^PORT ' "$work/s3rver.out" && break
  kill -0 "$pid" 2>/dev/null || fail "s3rver exited: $(cat "$work/s3rver.out")"
  sleep 0.1
done
port=$(awk '/^PORT /{print $2}' "$work/s3rver.out")
[ -n "$port" ] || fail "s3rver did not start: $(cat "$work/s3rver.out")"
endpoint="http://127.0.0.1:$port"

export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export AWS_CLI="$here/aws_recorder" MS_REAL_AWS="$real_aws" MS_AWS_LOG="$work/calls.log"

# run N: runs create-bucket; its exit code in $rc, calls in calls.N.
run() {
  : >"$MS_AWS_LOG"
  rc=0
  "$script" --bucket sealed-models --region us-east-2 --endpoint-url "$endpoint" \
    >"$work/out.$1" 2>"$work/err.$1" || rc=$?
  cp "$MS_AWS_LOG" "$work/calls.$1"
}

run 1
[ "$rc" = 1 ] || fail "first run exited $rc, want 1 (settings not applied): $(cat "$work/err.1")"
grep -q "'aws s3api put-public-access-block' failed" "$work/err.1" ||
  fail "the error does not name the setting: $(cat "$work/err.1")"
grep -q "TLS only" "$work/err.1" && fail "reported a protected bucket: $(cat "$work/err.1")"
sed 's/ --.*//' "$work/calls.1" >"$work/ops.1"
printf 'aws s3api head-bucket\naws s3api create-bucket\naws s3api put-public-access-block\n' |
  diff -u - "$work/ops.1" || fail "first run made other calls"
grep -q -- "--create-bucket-configuration LocationConstraint=us-east-2" "$work/calls.1" ||
  fail "create-bucket without the region's location constraint: $(cat "$work/calls.1")"

# The bucket is really there.
"$real_aws" --endpoint-url "$endpoint" --region us-east-2 s3api head-bucket --bucket sealed-models ||
  fail "head-bucket after create-bucket"
"$real_aws" --endpoint-url "$endpoint" --region us-east-2 s3api list-buckets --query 'Buckets[].Name' \
  --output text | grep -qw sealed-models || fail "list-buckets lacks the bucket"

# Second run: the bucket exists, so it is not created again.
run 2
[ "$rc" = 1 ] || fail "second run exited $rc"
sed 's/ --.*//' "$work/calls.2" >"$work/ops.2"
printf 'aws s3api head-bucket\naws s3api put-public-access-block\n' |
  diff -u - "$work/ops.2" || fail "second run did not skip create-bucket"

# A name S3 refuses never reaches the server.
: >"$MS_AWS_LOG"
rc=0
"$script" --bucket Sealed_Models --region us-east-2 --endpoint-url "$endpoint" 2>/dev/null || rc=$?
if [ "$rc" != 2 ] || [ -s "$MS_AWS_LOG" ]; then
  fail "a bad bucket name reached the server (exit $rc)"
fi
echo "create-bucket against s3rver: ok"

#!/usr/bin/env bash
# launch-instance run (not dry) against an AWS CLI that answers from a plan
# (fake_aws): EC2 waiters that give up are run again until the instance runs;
# a waiter that keeps giving up, or a refused call, ends the script with exit 1
# and a message; an instance of the same Name is reused, not launched again.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
script="$here/../../deploy/aws/launch-instance"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export AWS_CLI="$here/fake_aws" MS_AWS_LOG="$work/calls" FAKE_AWS_PLAN="$work/plan" MS_WAIT_ROUNDS=3
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
args=(--region us-east-2 --image-id ami-0123456789abcdef0 --subnet-id subnet-01234567
  --instance-profile-arn arn:aws:iam::111122223333:instance-profile/p --security-group-id sg-01234567)
tab=$'\t'
waiter_gave_up="Waiter InstanceRunning failed: Max attempts exceeded"

# run NAME PLAN-LINES...: runs launch-instance; exit code in $rc.
run() {
  local name="$1"
  shift
  printf '%s\n' "$@" >"$FAKE_AWS_PLAN"
  : >"$MS_AWS_LOG"
  rc=0
  "$script" "${args[@]}" >"$work/out.$name" 2>"$work/err.$name" || rc=$?
}

run slow "ec2 describe-instances *${tab}0${tab}None" \
  "ec2 run-instances *${tab}0${tab}i-0abc" \
  "ec2 wait instance-running *${tab}255${tab}$waiter_gave_up" \
  "ec2 wait instance-running *${tab}255${tab}$waiter_gave_up" \
  "ec2 wait instance-running *${tab}0${tab}"
[ "$rc" = 0 ] || fail "slow start: exit $rc: $(cat "$work/err.slow")"
[ "$(cat "$work/out.slow")" = i-0abc ] || fail "slow start printed '$(cat "$work/out.slow")'"
[ "$(grep -c 'wait instance-running' "$MS_AWS_LOG")" = 3 ] || fail "slow start: waiter not run 3 times"

run never "ec2 describe-instances *${tab}0${tab}None" \
  "ec2 run-instances *${tab}0${tab}i-0abc" \
  "ec2 wait instance-running *${tab}255${tab}$waiter_gave_up" \
  "ec2 wait instance-running *${tab}255${tab}$waiter_gave_up" \
  "ec2 wait instance-running *${tab}255${tab}$waiter_gave_up"
[ "$rc" = 1 ] || fail "waiter that never ends: exit $rc"
grep -q "gave up waiting" "$work/err.never" || fail "no 'gave up' message: $(cat "$work/err.never")"

run stopped "ec2 describe-instances *${tab}0${tab}None" \
  "ec2 run-instances *${tab}0${tab}i-0abc" \
  "ec2 wait instance-running *${tab}255${tab}Waiter InstanceRunning failed: Waiter encountered a terminal failure state"
[ "$rc" = 1 ] || fail "terminal waiter state: exit $rc"
[ "$(grep -c 'wait instance-running' "$MS_AWS_LOG")" = 1 ] || fail "a terminal waiter failure was retried"

run denied "ec2 describe-instances *${tab}254${tab}An error occurred (UnauthorizedOperation) when calling the DescribeInstances operation"
[ "$rc" = 1 ] || fail "refused describe-instances: exit $rc"
grep -q "run-instances" "$MS_AWS_LOG" && fail "launched although the check was refused"

run exists "ec2 describe-instances *${tab}0${tab}i-0existing"
if [ "$rc" != 0 ] || [ "$(cat "$work/out.exists")" != i-0existing ]; then
  fail "existing instance: exit $rc, '$(cat "$work/out.exists")'"
fi
grep -q "run-instances" "$MS_AWS_LOG" && fail "launched a second instance of the same Name"

[ "$failures" = 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "launch-instance waiters and refusals: ok"

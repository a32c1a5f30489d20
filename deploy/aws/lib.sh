# shellcheck shell=bash
# Shared by the deploy/aws scripts. Source it; do not run it.
#
# Every AWS call goes through ms_call (changes something) or ms_query (reads
# something). With --dry-run, both print the exact command line instead of
# running it, one per line, quoted so that it can be pasted into a shell; values
# that only an earlier call would return are shown as <placeholders>. A dry run
# assumes that nothing exists yet, so it prints the whole path of a first run.
set -euo pipefail

# The AWS CLI that runs the calls (printed as "aws" in a dry run).
AWS_CLI="${AWS_CLI:-aws}"
# No pager, whatever the user's AWS CLI configuration says: output is parsed.
export AWS_PAGER=""

MS_DRY_RUN=0
MS_PROG="$(basename "$0")"
# fd 3: where a dry run prints its calls (the script's stdout, also from inside $(...)).
exec 3>&1

ms_die() {
  printf '%s: %s\n' "$MS_PROG" "$*" >&2
  exit 2
}
# Progress on stderr; silent in a dry run, whose stdout is only the calls.
ms_log() {
  [ "$MS_DRY_RUN" = 1 ] || printf '%s: %s\n' "$MS_PROG" "$*" >&2
}

# ms_quote ARG: ARG as a shell word; plain words stay unquoted.
ms_quote() {
  local a="$1"
  if [[ -n "$a" && "$a" =~ ^[A-Za-z0-9_./:=,@+%-]+$ ]]; then
    printf '%s' "$a"
  else
    printf "'%s'" "${a//\'/\'\\\'\'}"
  fi
}

ms_print_call() {
  local out="aws" a
  for a in "$@"; do
    out+=" $(ms_quote "$a")"
  done
  printf '%s\n' "$out" >&3
}

# Exit codes of every script: 0 done, 1 an AWS call or a read-back check failed,
# 2 bad or missing arguments (nothing was called).
ms_fail() {
  printf '%s: %s\n' "$MS_PROG" "$*" >&2
  exit 1
}

# ms_call ARGS...: runs `aws ARGS...` (prints it with --dry-run); its output goes
# to stdout. A failure stops the script, naming the call.
ms_call() {
  if [ "$MS_DRY_RUN" = 1 ]; then
    ms_print_call "$@"
    return 0
  fi
  "$AWS_CLI" "$@" || ms_fail "'aws $1 $2' failed (exit $?); nothing after it was done"
}

# ms_value PLACEHOLDER ARGS...: runs a read-only `aws ARGS...` and prints its
# output; a dry run prints the call and PLACEHOLDER stands for the output, so
# that later calls show where the value goes: v=$(ms_value '<ami-id>' ec2 ...)
ms_value() {
  local placeholder="$1"
  shift
  if [ "$MS_DRY_RUN" = 1 ]; then
    ms_print_call "$@"
    printf '%s' "$placeholder"
    return 0
  fi
  "$AWS_CLI" "$@" || ms_fail "'aws $1 $2' failed (exit $?)"
}

# ms_wait ARGS...: runs an `aws ... wait ...` call; an AWS CLI waiter gives up
# after a fixed number of polls ("Max attempts exceeded"), so it is run again,
# up to MS_WAIT_ROUNDS times, before the script fails.
MS_WAIT_ROUNDS="${MS_WAIT_ROUNDS:-6}"
ms_wait() {
  if [ "$MS_DRY_RUN" = 1 ]; then
    ms_print_call "$@"
    return 0
  fi
  local round err
  for ((round = 1; round <= MS_WAIT_ROUNDS; round++)); do
    if err=$("$AWS_CLI" "$@" 2>&1); then
      return 0
    fi
    [[ "$err" == *"Max attempts exceeded"* ]] || ms_fail "'aws $*' failed: $err"
    ms_log "still waiting ($round/$MS_WAIT_ROUNDS): aws $*"
  done
  ms_fail "gave up waiting: aws $*"
}

# ms_exists ARGS...: runs a read-only `aws ARGS...` that fails when the thing
# does not exist. A dry run prints the check and answers "does not exist".
# Only a not-found answer counts as "does not exist": any other failure
# (credentials, throttling, a typo in a region) stops the script.
ms_exists() {
  if [ "$MS_DRY_RUN" = 1 ]; then
    ms_print_call "$@"
    return 1
  fi
  local err rc=0
  err=$("$AWS_CLI" "$@" 2>&1 >/dev/null) || rc=$?
  if [ "$rc" = 0 ]; then
    return 0
  fi
  if [[ "$err" =~ (NotFound|NoSuchEntity|NoSuchBucket|InvalidAMIID|\(404\)) ]]; then
    return 1
  fi
  ms_fail "checking with 'aws $1 $2' failed: $err"
}

# --- validation: each refuses with a message naming the option ---------------

ms_need() { # NAME VALUE
  [ -n "$2" ] || ms_die "missing $1 (see --help)"
}

ms_check_region() { # VALUE [OPTION]
  [[ "$1" =~ ^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$ ]] ||
    ms_die "${2:---region}: '$1' is not an AWS region name (like us-east-2)"
}

ms_check_bucket() { # VALUE
  local b="$1"
  [[ ${#b} -ge 3 && ${#b} -le 63 ]] || ms_die "--bucket: '$b' must be 3 to 63 characters"
  [[ "$b" =~ ^[a-z0-9][a-z0-9.-]*[a-z0-9]$ ]] ||
    ms_die "--bucket: '$b' may hold only lower-case letters, digits, '.' and '-', and must start and end with a letter or digit"
  [[ "$b" != *..* && "$b" != *.-* && "$b" != *-.* ]] ||
    ms_die "--bucket: '$b' has adjacent '.' or '-.' characters"
  [[ ! "$b" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || ms_die "--bucket: '$b' looks like an IP address"
  [[ "$b" != xn--* && "$b" != sthree-* && "$b" != *-s3alias && "$b" != *--ol-s3 ]] ||
    ms_die "--bucket: '$b' uses a prefix or suffix that S3 reserves"
}

ms_check_prefix() { # VALUE: an S3 key prefix without leading or trailing '/'
  [[ "$1" =~ ^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$ ]] ||
    ms_die "--prefix: '$1' must be path segments of letters, digits, '_', '.' and '-' joined by '/' (no leading or trailing '/')"
  [[ "/$1/" != */../* && "/$1/" != */./* ]] || ms_die "--prefix: '$1' has a '.' or '..' segment"
}

ms_check_name() { # OPTION VALUE MAX: an IAM-style name
  [[ "$2" =~ ^[A-Za-z0-9+=,.@_-]+$ && ${#2} -le $3 ]] ||
    ms_die "$1: '$2' must be 1 to $3 of the characters A-Z a-z 0-9 + = , . @ _ -"
}

ms_check_role_arn() { # OPTION VALUE
  [[ "$2" =~ ^arn:aws(-[a-z]+)*:iam::[0-9]{12}:role/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64}$ ]] ||
    ms_die "$1: '$2' is not an IAM role ARN (arn:aws:iam::<12-digit account>:role/<name>)"
}

ms_check_principal_arn() { # OPTION VALUE: a role, a user or an account root
  [[ "$2" =~ ^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(root|(role|user)/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,64})$ ]] ||
    ms_die "$1: '$2' is not an IAM principal ARN (arn:aws:iam::<account>:root, :role/<name> or :user/<name>)"
}

ms_check_kms_key_arn() { # OPTION VALUE
  [[ "$2" =~ ^arn:aws(-[a-z]+)*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]{1,128}$ ]] ||
    ms_die "$1: '$2' is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)"
}

ms_check_arch() { # VALUE
  [[ "$1" = x86_64 || "$1" = arm64 ]] || ms_die "--arch: '$1' must be x86_64 or arm64"
}

ms_check_account() { # OPTION VALUE
  [[ "$2" =~ ^[0-9]{12}$ ]] || ms_die "$1: '$2' is not a 12-digit AWS account id"
}

ms_check_url() { # OPTION VALUE
  [[ "$2" =~ ^https?://[^/?#@[:space:]]+(/[^?#@[:space:]]*)?$ ]] ||
    ms_die "$1: '$2' is not an http(s) URL without query or credentials"
}

# ms_check_pcr SPEC: N=HEX with N in 0-23 and HEX 96 hex digits (SHA-384);
# prints "N lower-case-hex".
ms_check_pcr() {
  local spec="$1" n hex
  [[ "$spec" == *=* ]] || ms_die "--pcr: '$spec' must be N=HEX (a PCR index and its SHA-384 value)"
  n="${spec%%=*}"
  hex="${spec#*=}"
  if ! [[ "$n" =~ ^(0|[1-9][0-9]?)$ ]] || [ "$n" -gt 23 ]; then
    ms_die "--pcr: '$n' is not a PCR index (0-23)"
  fi
  [[ "$hex" =~ ^[0-9A-Fa-f]{96}$ ]] ||
    ms_die "--pcr $n: the value must be 96 hex digits (a SHA-384 PCR), got ${#hex} characters"
  printf '%s %s\n' "$n" "${hex,,}"
}

ms_require_tools() { # TOOL...
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || ms_die "needs '$t' (Debian: apt-get install $t)"
  done
}

# ms_optarg OPTION "$@": the value after OPTION, refusing a missing one.
ms_optarg() {
  if [ $# -lt 2 ] || [ -z "$2" ] || [[ "$2" == --* ]]; then
    ms_die "$1 needs a value"
  fi
  printf '%s' "$2"
}

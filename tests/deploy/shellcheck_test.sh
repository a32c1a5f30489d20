#!/usr/bin/env bash
# Runs shellcheck on every deploy script (AWS scripts, package maintainer
# scripts) and on these tests; any finding fails.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
command -v shellcheck >/dev/null || { echo "shellcheck is not installed (scripts/apt-packages.txt)" >&2; exit 1; }
files=("$root"/deploy/aws/* "$root"/deploy/debian/* "$root"/tests/deploy/*.sh "$root"/tests/deploy/aws_recorder "$root"/tests/deploy/fake_aws)
[ ${#files[@]} -ge 18 ] || { echo "too few scripts found: ${files[*]}" >&2; exit 1; }
cd "$root"
shellcheck --severity=style --external-sources "${files[@]#"$root"/}"
echo "shellcheck: ${#files[@]} scripts clean"

#!/usr/bin/env bash
# Runs the AWS SDK compatibility tests (tests/js/kms) against the built binary.
set -euo pipefail
here="$(cd "$(dirname "$0")/../js/kms" && pwd)"
[ -d "$here/node_modules/@aws-sdk/client-kms" ] || { echo "npm dependencies missing: run scripts/test"; exit 1; }
cd "$here"
# The suites are named: a renamed or missing file fails instead of running nothing.
MODELSEAL="$1" node --test kms.test.js policy.test.js

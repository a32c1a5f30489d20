#!/usr/bin/env bash
# Runs the AWS SDK compatibility tests (tests/js/kms) against the built binary.
set -euo pipefail
here="$(cd "$(dirname "$0")/../js/kms" && pwd)"
[ -d "$here/node_modules/@aws-sdk/client-kms" ] || { echo "npm dependencies missing: run scripts/test"; exit 1; }
cd "$here"
MODELSEAL="$1" node --test

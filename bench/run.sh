#!/usr/bin/env bash
# Builds the release tree and runs every benchmark. Not part of the tests.
source "$(dirname "$0")/../scripts/lib.sh"
ensure_packages
build_release
"$ROOT/build/bench/bench_sealed" "$@"
"$ROOT/build/bench/bench_store"
"$ROOT/build/bench/bench_engine"

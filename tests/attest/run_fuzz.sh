#!/usr/bin/env bash
# Builds the attestation document fuzzer with clang (libFuzzer + ASan + UBSan)
# and runs it for a bounded number of inputs from a seed corpus of real
# documents. Usage: run_fuzz.sh SOURCE_DIR BUILD_DIR [RUNS]
set -euo pipefail
src="$1"; out="$2"; runs="${3:-20000}"
cxx=$(command -v clang++ || command -v clang++-14 || true)
[ -n "$cxx" ] || { echo "clang++ is not installed (Debian: clang, libclang-rt-14-dev)" >&2; exit 1; }
mkdir -p "$out/corpus" "$out/artifacts"
bin="$out/fuzz_document"
sources=(tests/attest/fuzz_document.cpp src/attest/cbor.cpp src/attest/document.cpp
         src/attest/x509.cpp src/attest/verify.cpp src/common/error.cpp src/common/bytes.cpp
         src/common/ossl.cpp src/common/io.cpp)
newest=$(cd "$src" && ls -t "${sources[@]}" src/attest/*.h src/common/*.h | head -1)
if [ ! -x "$bin" ] || [ "$src/$newest" -nt "$bin" ]; then
  (cd "$src" && "$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined \
     -fno-sanitize-recover=undefined -I src "${sources[@]}" -lcrypto -o "$bin")
fi
cp "$src/tests/attest/data/dev_doc.cbor" "$out/corpus/dev_doc"
base64 -d "$src/tests/attest/data/aws_enclave_doc.b64" >"$out/corpus/aws_enclave_doc"
# -runs bounds the work (no wall-clock limit); -seed makes a run repeatable.
"$bin" -runs="$runs" -seed=1 -max_len=8192 -artifact_prefix="$out/artifacts/" \
  "$out/corpus"

# llama.cpp, pinned to the release that npm node-llama-cpp carries, built once for
# the CPU into $MODELSEAL_CACHE/llama/<version>/ (skipped when that build is complete).
# Layout of the cache directory:
#   prefix/include, prefix/lib (shared libllama + libggml*), prefix/bin/llama-bench
#   vocab/ggml-vocab-llama-spm.gguf   tokenizer used by `modelseal dev make-test-model`
#   BUILD-INFO                        llama.cpp commit, tag, cmake options
# Also installs the npm clients for the chat tests (tests/js/chat).
# shellcheck shell=bash

MODELSEAL_LLAMA_NPM_VERSION=3.21.1
# Bump when the build recipe below changes, so caches are rebuilt.
MODELSEAL_LLAMA_RECIPE=1
MODELSEAL_LLAMA_DIR="$MODELSEAL_CACHE/llama/$MODELSEAL_LLAMA_NPM_VERSION"
export MODELSEAL_LLAMA_DIR

ensure_llama() {
  local dir="$MODELSEAL_LLAMA_DIR" stamp want
  stamp="$dir/.complete"
  want="recipe=$MODELSEAL_LLAMA_RECIPE"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "llama.cpp (node-llama-cpp@$MODELSEAL_LLAMA_NPM_VERSION): building into $dir"
  mkdir -p "$dir"
  local work="$dir/work"
  rm -rf "$work" "$dir/prefix" "$dir/vocab"
  mkdir -p "$work"
  (cd "$work" && npm pack --silent "node-llama-cpp@$MODELSEAL_LLAMA_NPM_VERSION" >/dev/null)
  tar -xzf "$work/node-llama-cpp-$MODELSEAL_LLAMA_NPM_VERSION.tgz" -C "$work" \
    package/llama/gitRelease.bundle package/llama/llama.cpp.info.json package/llama/patches
  git clone -q "$work/package/llama/gitRelease.bundle" "$work/src" 2>/dev/null
  # The patches node-llama-cpp applies to this release (skipped when already in it).
  local p
  for p in "$work"/package/llama/patches/*.diff; do
    [ -e "$p" ] || continue
    if git -C "$work/src" apply --check "$p" 2>/dev/null; then
      git -C "$work/src" apply "$p"
    fi
  done
  local opts=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON
    -DGGML_OPENMP=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON
    "-DCMAKE_INSTALL_RPATH=\$ORIGIN/../lib" -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON)
  cmake -S "$work/src" -B "$work/build" -G Ninja "${opts[@]}" >"$work/cmake.log" 2>&1 ||
    { log "llama.cpp configure failed: see $work/cmake.log"; return 1; }
  ninja -C "$work/build" -j "$JOBS" llama ggml llama-bench >"$work/build.log" 2>&1 ||
    { log "llama.cpp build failed: see $work/build.log"; return 1; }
  mkdir -p "$dir/prefix/include" "$dir/prefix/lib" "$dir/prefix/bin" "$dir/vocab"
  cp "$work/src/include/llama.h" "$work/src/include/llama-cpp.h" "$dir/prefix/include/"
  cp "$work"/src/ggml/include/*.h "$dir/prefix/include/"
  find "$work/build" -name 'lib*.so*' \( -name 'libllama*' -o -name 'libggml*' \) \
    -exec cp -P {} "$dir/prefix/lib/" \;
  cp "$work/build/bin/llama-bench" "$dir/prefix/bin/"
  cp "$work/src/models/ggml-vocab-llama-spm.gguf" "$dir/vocab/"
  {
    echo "node-llama-cpp $MODELSEAL_LLAMA_NPM_VERSION"
    echo "llama.cpp $(tr -d '\n ' <"$work/package/llama/llama.cpp.info.json")"
    echo "commit $(git -C "$work/src" rev-parse HEAD)"
    echo "cmake ${opts[*]}"
  } >"$dir/BUILD-INFO"
  rm -rf "$work"
  echo "$want" >"$stamp"
  log "llama.cpp ready in $dir"
}

ensure_llama
ensure_npm "$ROOT/tests/js/chat"

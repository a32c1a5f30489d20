# llama.cpp, pinned to the release that npm node-llama-cpp carries, built once into
# $MODELSEAL_CACHE/llama/<version>-r<recipe>/ (skipped when that build is complete).
# The CPU backend is built the way llama.cpp's releases ship it: GGML_BACKEND_DL with
# GGML_CPU_ALL_VARIANTS, one libggml-cpu-<variant>.so per x86 family, picked at run
# time (src/engine/cpu.h); nothing is compiled for the build machine (no GGML_NATIVE).
# Layout of the cache directory:
#   prefix/include                    llama.h, ggml*.h, gguf.h
#   prefix/include/llama-common       llama.cpp's common library (chat, sampling, jinja/)
#   prefix/lib                        libllama, libggml, libggml-base, libllama-common
#                                     (shared) and libggml-cpu-<variant>.so
#   prefix/bin                        llama-bench, llama-batched-bench, llama-embedding
#                                     (they load the CPU variant named by
#                                     GGML_BACKEND_PATH; see bench/bench_engine.cpp)
#   src/models/templates/*.jinja      the release's chat templates (tests)
#   vocab/ggml-vocab-llama-spm.gguf   tokenizer used by `modelseal dev make-test-model`
#   vocab/ggml-vocab-qwen2.gguf       Qwen2's byte-level BPE tokenizer (tool-call tests)
#   BUILD-INFO                        llama.cpp commit, tag, cmake options
#   cuda/<N>/libggml-cuda.so          only on machines with an NVIDIA GPU: node-llama-cpp's
#                                     prebuilt CUDA backend for CUDA runtime N (same
#                                     llama.cpp release), loaded by the engine at run time
# Also installs the npm clients for the chat tests (tests/js/chat).
# shellcheck shell=bash

MODELSEAL_LLAMA_NPM_VERSION=3.21.1
# Bump when the build recipe below changes: a new recipe builds into a new directory
# (cmake/llama.cmake must name the same number), so an older checkout keeps its own.
MODELSEAL_LLAMA_RECIPE=3
MODELSEAL_LLAMA_DIR="$MODELSEAL_CACHE/llama/$MODELSEAL_LLAMA_NPM_VERSION-r$MODELSEAL_LLAMA_RECIPE"
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
  rm -rf "$work" "$dir/prefix" "$dir/vocab" "$dir/src"
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
  # Ours (scripts/setup.d/llama-patches/, each explained at its top): they must apply.
  for p in "$ROOT"/scripts/setup.d/llama-patches/*.diff; do
    [ -e "$p" ] || continue
    git -C "$work/src" apply "$p" ||
      { log "llama.cpp: patch ${p#"$ROOT"/} does not apply to this release"; return 1; }
  done
  local opts=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF
    -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_OPENMP=ON -DLLAMA_CURL=OFF
    -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON
    -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_TOOLS=ON
    "-DCMAKE_INSTALL_RPATH=\$ORIGIN/../lib" -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON)
  cmake -S "$work/src" -B "$work/build" -G Ninja "${opts[@]}" >"$work/cmake.log" 2>&1 ||
    { log "llama.cpp configure failed: see $work/cmake.log"; return 1; }
  # ggml builds every CPU variant (GGML_BACKEND_DL makes them its dependencies).
  ninja -C "$work/build" -j "$JOBS" llama ggml llama-common llama-bench llama-batched-bench \
    llama-embedding >"$work/build.log" 2>&1 ||
    { log "llama.cpp build failed: see $work/build.log"; return 1; }
  mkdir -p "$dir/prefix/include/llama-common/jinja" "$dir/prefix/lib" "$dir/prefix/bin" \
    "$dir/vocab" "$dir/src/models"
  cp "$work/src/include/llama.h" "$work/src/include/llama-cpp.h" "$dir/prefix/include/"
  cp "$work"/src/ggml/include/*.h "$dir/prefix/include/"
  cp "$work"/src/common/*.h "$dir/prefix/include/llama-common/"
  cp "$work"/src/common/jinja/*.h "$dir/prefix/include/llama-common/jinja/"
  find "$work/build" \( -name 'libllama*.so*' -o -name 'libggml*.so*' \) \
    -exec cp -P {} "$dir/prefix/lib/" \;
  cp "$work/build/bin/llama-bench" "$work/build/bin/llama-batched-bench" \
    "$work/build/bin/llama-embedding" "$dir/prefix/bin/"
  cp "$work/src/models/ggml-vocab-llama-spm.gguf" "$work/src/models/ggml-vocab-qwen2.gguf" \
    "$dir/vocab/"
  cp -r "$work/src/models/templates" "$dir/src/models/"
  {
    echo "node-llama-cpp $MODELSEAL_LLAMA_NPM_VERSION"
    echo "llama.cpp $(tr -d '\n ' <"$work/package/llama/llama.cpp.info.json")"
    echo "commit $(git -C "$work/src" rev-parse HEAD)"
    echo "patched $(git -C "$work/src" diff --stat | tail -1)"
    echo "cmake ${opts[*]}"
    echo "cpu variants $(cd "$dir/prefix/lib" && ls libggml-cpu-*.so | sed 's/libggml-cpu-//; s/\.so//' | tr '\n' ' ')"
  } >"$dir/BUILD-INFO"
  rm -rf "$work"
  echo "$want" >"$stamp"
  log "llama.cpp ready in $dir"
}

# Vocabulary files that a build made by an earlier version of this script lacks, taken
# from the same release's source (the npm package's git bundle) without rebuilding.
ensure_llama_vocab() {
  local dir="$MODELSEAL_LLAMA_DIR" f missing=() work
  for f in ggml-vocab-llama-spm.gguf ggml-vocab-qwen2.gguf; do
    [ -f "$dir/vocab/$f" ] || missing+=("$f")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "llama.cpp: adding ${missing[*]} to $dir/vocab"
  work=$(mktemp -d)
  if ! (cd "$work" && npm pack --silent "node-llama-cpp@$MODELSEAL_LLAMA_NPM_VERSION" >/dev/null &&
    tar -xzf "node-llama-cpp-$MODELSEAL_LLAMA_NPM_VERSION.tgz" package/llama/gitRelease.bundle &&
    git clone -q --no-checkout package/llama/gitRelease.bundle src 2>/dev/null); then
    rm -rf "$work"
    log "cannot read llama.cpp's source from the npm package"
    return 1
  fi
  mkdir -p "$dir/vocab"
  for f in "${missing[@]}"; do
    git -C "$work/src" show "HEAD:models/$f" >"$dir/vocab/$f.tmp" && mv "$dir/vocab/$f.tmp" "$dir/vocab/$f"
  done
  rm -rf "$work"
}

# A GPU is there when the NVIDIA driver answers (MODELSEAL_GPU=off skips all of this).
have_nvidia_gpu() {
  [ "${MODELSEAL_GPU:-auto}" != off ] || return 1
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1
}

# node-llama-cpp's CUDA backends (for CUDA 13 and, in -ext, CUDA 12), unpacked next to
# the CPU build. Each is filed under the CUDA runtime it needs, with a libggml-base.so
# link to the cache's own so that it binds to the one the program already loaded.
ensure_llama_cuda() {
  have_nvidia_gpu || return 0
  local dir="$MODELSEAL_LLAMA_DIR/cuda" v="$MODELSEAL_LLAMA_NPM_VERSION"
  [ -f "$dir/.complete" ] && return 0
  log "NVIDIA GPU found: unpacking llama.cpp's CUDA backends (node-llama-cpp@$v) into $dir"
  rm -rf "$dir"
  mkdir -p "$dir/work"
  local pkg lib major
  for pkg in linux-x64-cuda linux-x64-cuda-ext; do
    if ! (cd "$dir/work" && npm pack --silent "@node-llama-cpp/$pkg@$v" >/dev/null); then
      log "could not fetch @node-llama-cpp/$pkg@$v; skipped"
      continue
    fi
    tar -xzf "$dir/work/node-llama-cpp-$pkg-$v.tgz" -C "$dir/work" --wildcards \
      'package/bins/*/libggml-cuda.so' 'package/bins/*/*/libggml-cuda.so' 2>/dev/null || true
    while IFS= read -r lib; do
      major=$(readelf -d "$lib" | grep -o 'libcudart\.so\.[0-9]*' | head -1 | sed 's/.*\.//')
      [ -n "$major" ] || continue
      mkdir -p "$dir/$major"
      mv "$lib" "$dir/$major/libggml-cuda.so"
      ln -sf ../../prefix/lib/libggml-base.so.0 "$dir/$major/libggml-base.so"
      log "CUDA backend for CUDA runtime $major: $dir/$major"
    done < <(find "$dir/work/package" -name libggml-cuda.so)
    rm -rf "$dir/work/package" "$dir/work"/*.tgz
  done
  rm -rf "$dir/work"
  if ! ls "$dir"/*/libggml-cuda.so >/dev/null 2>&1; then
    log "no CUDA backend unpacked; inference stays on the CPU"
    rm -rf "$dir"
    return 0
  fi
  date -u +%FT%TZ >"$dir/.complete"
}

ensure_llama
ensure_llama_vocab
ensure_llama_cuda
ensure_npm "$ROOT/tests/js/chat"

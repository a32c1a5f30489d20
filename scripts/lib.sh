# Shared by scripts/up and scripts/test. Source it; do not run it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Pinned third-party builds (llama.cpp, npm tools) are cached here by version,
# outside the repository, so a fresh clone reuses them.
export MODELSEAL_CACHE="${MODELSEAL_CACHE:-/var/cache/modelseal}"
JOBS="${JOBS:-$(nproc)}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# Installs the Debian packages listed in scripts/apt-packages.txt that are missing.
ensure_packages() {
  local wanted missing=()
  mapfile -t wanted < <(grep -v '^\s*#' "$ROOT/scripts/apt-packages.txt" | grep -v '^\s*$')
  for p in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  # Debian's nodejs lacks npm (a separate package); other builds of nodejs bundle it.
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  log "installing ${missing[*]}"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build_tree DIR [cmake options...]: configures once, then builds incrementally.
build_tree() {
  local dir="$1"
  shift
  if [ ! -f "$ROOT/$dir/build.ninja" ]; then
    log "configuring $dir"
    cmake -S "$ROOT" -B "$ROOT/$dir" -G Ninja "$@" >/dev/null
  fi
  log "building $dir"
  ninja -C "$ROOT/$dir" -j "$JOBS" | grep -v '^\[' || true
  # ninja's status goes through the pipe: check the build really finished.
  ninja -C "$ROOT/$dir" -n | grep -q 'no work to do' || { log "build of $dir failed"; return 1; }
}

build_release() { build_tree build -DCMAKE_BUILD_TYPE=RelWithDebInfo; }
build_asan() {
  build_tree build-asan -DCMAKE_BUILD_TYPE=Debug -DMODELSEAL_SANITIZE=ON -DMODELSEAL_BUILD_BENCH=OFF
}

# ensure_npm DIR: installs DIR's package-lock.json exactly (npm ci), only when the
# lock file changed since the last install. Install scripts are not run: nothing
# may download outside the npm registry.
ensure_npm() {
  local dir="$1" stamp="$1/node_modules/.modelseal-lock-sha256" want
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "npm ci in ${dir#$ROOT/}"
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  echo "$want" >"$stamp"
}

# Runs every scripts/setup.d/*.sh in name order: each module's extra setup
# (third-party builds into $MODELSEAL_CACHE, npm test clients, ...). Each is
# idempotent and sourced with this file's functions available.
run_setup_hooks() {
  local f
  for f in "$ROOT"/scripts/setup.d/*.sh; do
    [ -e "$f" ] || continue
    # shellcheck disable=SC1090
    source "$f"
  done
}

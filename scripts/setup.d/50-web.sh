# The web UI: its npm packages (exactly as locked), then web/dist, built again
# only when the UI's sources changed (a stamp holds the hash of the sources).
# `modelseal up` serves web/dist; the browser test (tests/web) drives it.
build_web_ui() {
  local dir="$ROOT/web" stamp="$ROOT/web/dist/.build-stamp" want
  ensure_npm "$dir"
  want=$(cd "$dir" && find index.html package.json package-lock.json tsconfig.json vite.config.ts src -type f -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
  if [ -f "$dir/dist/index.html" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  log "building the web UI (web/dist)"
  (cd "$dir" && npm run --silent build >/dev/null) || { log "web UI build failed: npm --prefix web run build"; return 1; }
  echo "$want" >"$stamp"
}
build_web_ui

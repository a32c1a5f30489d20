#!/usr/bin/env bash
# Every tracked C++ source and header is formatted as .clang-format says: prints the
# files that are not and fails. Usage: check_format.sh SOURCE_DIR
set -euo pipefail
cd "$1"
fmt=$(command -v clang-format || command -v clang-format-14 || true)
[ -n "$fmt" ] || { echo "clang-format is not installed (Debian: clang-format)" >&2; exit 1; }
mapfile -t files < <(git ls-files '*.cpp' '*.h')
[ ${#files[@]} -gt 0 ] || { echo "no tracked sources found (not a git checkout?)" >&2; exit 1; }
bad=()
for f in "${files[@]}"; do
  "$fmt" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'not clang-formatted (run: clang-format -i FILE):\n' >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "${#files[@]} files formatted"

#!/usr/bin/env bash
# The Debian package: `cpack -G DEB` from the build tree (into a temporary
# directory), its contents and control data, then an install into an empty root
# with `dpkg --root` (maintainer scripts run outside a chroot with DPKG_ROOT, as
# they are written to), `modelseal --version` from that root with the packaged
# llama.cpp libraries, and a purge.
# Usage: package_test.sh BUILD_DIR PATH/TO/modelseal
set -euo pipefail
build="$1"
ms="$2"
fail() { echo "FAIL: $*" >&2; exit 1; }
for t in cpack dpkg dpkg-deb dpkg-shlibdeps; do
  command -v "$t" >/dev/null || fail "$t is not installed (scripts/apt-packages.txt)"
done
sudo=()
[ "$(id -u)" = 0 ] || sudo=(fakeroot)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cpack -G DEB -B "$work/out" --config "$build/CPackConfig.cmake" >"$work/cpack.log" 2>&1 ||
  fail "cpack: $(cat "$work/cpack.log")"
debs=("$work"/out/modelseal_*.deb)
if [ ${#debs[@]} != 1 ] || [ ! -f "${debs[0]}" ]; then
  fail "cpack made no single .deb: $(ls "$work/out")"
fi
deb="${debs[0]}"
version=$("$ms" --version)

dpkg-deb -c "$deb" | awk '{print $1, $6}' >"$work/contents"
has() { # MODE PATH
  grep -qxF -- "$1 ./$2" "$work/contents" || fail "the package lacks $2 ($1):
$(cat "$work/contents")"
}
has -rwxr-xr-x usr/bin/modelseal
has -rw-r--r-- usr/lib/systemd/system/modelseal.service
has -rw-r--r-- usr/lib/sysusers.d/modelseal.conf
has -rw-r--r-- usr/lib/udev/rules.d/61-modelseal-tpm.rules
has -rw-r--r-- usr/share/doc/modelseal/aws.md
has -rw-r--r-- usr/share/doc/modelseal/config.md
has -rw-r--r-- usr/share/doc/modelseal/README.md
has -rw-r--r-- usr/share/doc/modelseal/examples/modelseal.conf
has -rw-r--r-- usr/share/doc/modelseal/examples/gpu.conf
for lib in libllama.so.0 libggml.so.0 libggml-base.so.0 libllama-common.so.0 \
  libggml-cpu-x64.so libggml-cpu-haswell.so; do
  grep -q " ./usr/lib/modelseal/lib/$lib" "$work/contents" || fail "the package lacks $lib"
done
# Build-only files: headers, the benchmarks, unversioned link names (the CPU backend
# variants have no soname: they are loaded by name at run time).
if grep -E 'llama-bench|llama-batched-bench|/include/|\.so$' "$work/contents" |
  grep -vqE '/libggml-cpu-[a-z0-9]+\.so$'; then
  fail "the package carries build-only files: $(grep -E 'llama-bench|/include/|\.so$' "$work/contents" | grep -vE '/libggml-cpu-[a-z0-9]+\.so$')"
fi
# The unit in the package is the one in deploy/.
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/modelseal.service |
  cmp - "$(dirname "$0")/../../deploy/systemd/modelseal.service" || fail "packaged unit differs"

dpkg-deb -f "$deb" Package Version Architecture Depends >"$work/control"
grep -qx "Package: modelseal" "$work/control" || fail "control: $(cat "$work/control")"
grep -qx "Version: ${version#modelseal }" "$work/control" ||
  fail "control version is not '$version': $(cat "$work/control")"
for dep in libssl3 libcurl4 libtss2-esys libtss2-tcti-device0 libgomp1 systemd; do
  grep -q "^Depends:.*\b$dep" "$work/control" || fail "Depends lacks $dep: $(cat "$work/control")"
done
dpkg-deb -I "$deb" postinst >/dev/null || fail "no postinst"

# Install into an empty root.
root="$work/root"
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/var/log" "$root/etc"
: >"$root/var/lib/dpkg/status"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
dpkg_root() {
  "${sudo[@]}" dpkg --root="$root" --force-script-chrootless --force-depends \
    --log=/dev/null --no-triggers "$@"
}
dpkg_root -i "$deb" >"$work/dpkg.log" 2>&1 || fail "dpkg -i: $(cat "$work/dpkg.log")"
dpkg_root -s modelseal | grep -qx "Status: install ok installed" || fail "not installed"
grep -q '^modelseal:' "$root/etc/passwd" || fail "no user modelseal in the root: $(cat "$root/etc/passwd")"
gid=$(awk -F: '$1 == "modelseal" { print $3 }' "$root/etc/group")
[ -n "$gid" ] || fail "no group modelseal in the root"
[ "$(stat -c '%a %u %g' "$root/etc/modelseal")" = "750 0 $gid" ] ||
  fail "/etc/modelseal: $(stat -c '%a %u %g' "$root/etc/modelseal")"
[ "$(stat -c '%a %u %g' "$root/etc/modelseal/modelseal.conf")" = "640 0 $gid" ] ||
  fail "/etc/modelseal/modelseal.conf: $(stat -c '%a %u %g' "$root/etc/modelseal/modelseal.conf")"
# Nothing outside the root was touched.
if [ -e /usr/lib/sysusers.d/modelseal.conf ] && ! dpkg -S /usr/lib/sysusers.d/modelseal.conf >/dev/null 2>&1; then
  fail "the install wrote outside its root"
fi
if grep -q '^modelseal:' /etc/passwd && ! dpkg -s modelseal >/dev/null 2>&1; then
  fail "the install made the user outside its root"
fi

# It runs from the root, with the packaged llama.cpp, not the build's.
out=$("$root/usr/bin/modelseal" --version) || fail "modelseal --version from the root failed"
[ "$out" = "$version" ] || fail "--version from the root: '$out', want '$version'"
ldd "$root/usr/bin/modelseal" >"$work/ldd"
for lib in libllama.so.0 libggml.so.0 libggml-base.so.0 libllama-common.so.0; do
  path=$(awk -v l="$lib" '$1 == l && $2 == "=>" { print $3 }' "$work/ldd")
  if [ -z "$path" ] || [ "$(realpath "$path")" != "$(realpath "$root/usr/lib/modelseal/lib/$lib")" ]; then
    fail "$lib does not come from the package: $(grep "$lib" "$work/ldd")"
  fi
done
! grep -q "not found" "$work/ldd" || fail "unresolved libraries: $(grep 'not found' "$work/ldd")"
"$root/usr/bin/modelseal" selfcheck >"$work/selfcheck" 2>&1 ||
  fail "selfcheck from the root: $(cat "$work/selfcheck")"

# The unit's command with the installed example configuration (its commented
# keys switched on, a free port, a temporary state directory) starts the product
# server from the root and answers.
sed -e 's/^# \([a-z_]* = \)/\1/' -e 's|^listen = .*|listen = 127.0.0.1:0|' \
  -e "s|^dir = /var/lib/modelseal$|dir = $work/state|" \
  "$root/etc/modelseal/modelseal.conf" >"$work/serve.conf"
grep -q "^dir = $work/state$" "$work/serve.conf" || fail "the example sets no [state] dir = /var/lib/modelseal"
grep -q '^key_id = arn:' "$work/serve.conf" || fail "the example has no [kms] key_id line"
mkdir -m 0700 "$work/state"
mkfifo "$work/serve.out"
AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:9 \
  "$root/usr/bin/modelseal" serve --config "$work/serve.conf" >"$work/serve.out" 2>"$work/serve.err" &
serve_pid=$!
exec {serve_fd}<"$work/serve.out"
line=""
read -r line <&"$serve_fd" || fail "serve --config with the example exited: $(cat "$work/serve.err")"
url=$(sed -n 's/.*\(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' <<<"$line")
[ -n "$url" ] || fail "serve --config printed '$line'"
curl -sS --fail "$url/ms/v1/health" >"$work/health" || fail "no health answer from $url"
echo "serve --config from the root: $(head -c 300 "$work/health")" >&2
kill "$serve_pid"
wait "$serve_pid" || true
exec {serve_fd}<&-

# A second install (upgrade in place) keeps an edited configuration.
echo "# edited" >>"$root/etc/modelseal/modelseal.conf"
dpkg_root -i "$deb" >"$work/dpkg.log" 2>&1 || fail "reinstall: $(cat "$work/dpkg.log")"
grep -qx "# edited" "$root/etc/modelseal/modelseal.conf" || fail "reinstall replaced the configuration"

dpkg_root --purge modelseal >"$work/dpkg.log" 2>&1 || fail "purge: $(cat "$work/dpkg.log")"
if [ -e "$root/usr/bin/modelseal" ] || [ -e "$root/etc/modelseal" ]; then
  fail "purge left files: $(find "$root/usr" "$root/etc" -name '*modelseal*')"
fi
echo "package: $(basename "$deb") installs into an empty root and runs; purge cleans up"

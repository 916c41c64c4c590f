#!/usr/bin/env bash
# On a GPU machine that reaches no package registry: unpacks the Debian packages Loom builds
# against (carried in .debs/, made on a machine that has apt with
#   apt-get download libpcre2-dev libkissfft-dev libfmt-dev ... as listed in scripts/setup.sh
# and their library packages) for each package the machine does not have installed. A -dev
# package's unversioned .so link may name a library version the machine has in another
# build; such a dangling link is pointed at the version that is there.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
debs=${1:-$root/.debs}
[ -d "$debs" ] || { echo "gpu_deps: no $debs"; exit 0; }
unpacked=()
for deb in "$debs"/*.deb; do
  pkg=$(dpkg-deb -f "$deb" Package)
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" && continue
  dpkg -x "$deb" / && unpacked+=("$pkg")
done
for link in /usr/lib/x86_64-linux-gnu/*.so; do
  [ -L "$link" ] && [ ! -e "$link" ] || continue
  target=$(ls "$link".* 2>/dev/null | sort -V | tail -1)
  [ -n "$target" ] && ln -sf "$(basename "$target")" "$link"
done
ldconfig
echo "gpu_deps: unpacked ${unpacked[*]:-nothing}"

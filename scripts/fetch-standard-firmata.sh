#!/usr/bin/env bash
# Fetches a stock StandardFirmata for the Arduino Uno into firmware/build/standard-firmata.hex: the second rig firmware the
# HIL suite must pass with (issue 12), run by the virtual rig (hardware/sim/virtual-rig.ts) and flashable onto a real rig.
#
# Where it comes from: the npm package avrgirl-arduino (MIT licence) ships prebuilt sketches as test fixtures;
# junk/hex/uno/StandardFirmata.cpp.hex is StandardFirmata (firmata/arduino, LGPL-2.1) built for the Uno. We use that
# binary unchanged as a test fixture, fetched at setup into the build directory (git-ignored): nothing of it is copied
# into our sources, and we do not distribute it. `npm pack` fetches only the tarball, so none of avrgirl's dependencies
# (serialport bindings that do not build here) are installed.
#
# Idempotent: an existing hex that parses is kept; the tarball is cached in firmware/build/.cache. Offline without a
# cache, it says so and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

package=avrgirl-arduino
version=5.0.1  # pinned: the fixture must not change under the suite
member=package/junk/hex/uno/StandardFirmata.cpp.hex
out=firmware/build/standard-firmata.hex
cache=firmware/build/.cache

# A valid Intel HEX ends with the end-of-file record; a partial download does not.
if [ -f "$out" ] && tail -n 1 "$out" | tr -d '\r' | grep -qx ':00000001FF'; then
  echo "fetch-standard-firmata: $out present"
  exit 0
fi

mkdir -p "$cache"
tarball="$cache/$package-$version.tgz"
if [ ! -f "$tarball" ]; then
  echo "fetch-standard-firmata: fetching $package@$version from the npm registry (npm pack, no dependencies) ..."
  if ! packed=$(npm pack "$package@$version" --pack-destination "$cache" --silent 2>"$cache/npm-pack.log"); then
    echo "fetch-standard-firmata: cannot fetch $package@$version from the npm registry (offline?); see $cache/npm-pack.log." >&2
    echo "  Retry when online (bash scripts/fetch-standard-firmata.sh), or put an Uno StandardFirmata hex at $out." >&2
    exit 1
  fi
  [ "$cache/$packed" = "$tarball" ] || mv "$cache/$packed" "$tarball"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! tar -xzf "$tarball" -C "$tmp" "$member" 2>/dev/null; then
  echo "fetch-standard-firmata: $tarball has no $member: delete it and retry, or pin another version" >&2
  exit 1
fi
cp "$tmp/$member" "$out.part"
mv "$out.part" "$out"
echo "fetch-standard-firmata: wrote $out ($(wc -c <"$out") bytes, from $package@$version)"

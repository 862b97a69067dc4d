#!/usr/bin/env bash
# Setup: installs the firmware toolchain (Debian: gcc-avr avr-libc make), Optiboot's source (arduino-core-avr: the
# bootloader is built from it) and avrdude (pen flash, make flash), clang with libFuzzer's runtime (the firmware logic's
# host tests and fuzzer), socat (a pty pair for the serial transport's tests) and xmllint (libxml2-utils: the tests parse
# the HIL suite's JUnit XML with it) when missing, then the npm packages,
# then builds the firmware and the bootloader and fetches the HIL rig's stock StandardFirmata (scripts/fetch-standard-firmata.sh).
# Where it cannot install, it prints the exact command to run and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(gcc-avr avr-libc binutils-avr make arduino-core-avr avrdude socat clang libclang-rt-14-dev libxml2-utils)
missing=()
command -v avr-gcc >/dev/null 2>&1 || missing+=(gcc-avr binutils-avr)
[ -f /usr/lib/avr/include/avr/io.h ] || missing+=(avr-libc)
command -v make >/dev/null 2>&1 || missing+=(make)
[ -f /usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot/optiboot.c ] || missing+=(arduino-core-avr)
command -v avrdude >/dev/null 2>&1 || missing+=(avrdude)
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v xmllint >/dev/null 2>&1 || missing+=(libxml2-utils)
# libFuzzer ships in compiler-rt (Debian 12: libclang-rt-14-dev); a clang without it cannot link -fsanitize=fuzzer.
clang=$(command -v clang || command -v clang-14 || true)
if [ -z "$clang" ]; then
  missing+=(clang libclang-rt-14-dev)
elif ! printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' |
    "$clang" -fsanitize=fuzzer -x c - -o /dev/null >/dev/null 2>&1; then
  missing+=(libclang-rt-14-dev)
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: missing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: cannot install it from here (needs root on Debian). Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${packages[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${packages[*]} with apt-get ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${packages[@]}" >/dev/null
fi
echo "setup: $(avr-gcc --version | head -n 1)"
echo "setup: $( (avrdude -? 2>&1 || true) | grep -m 1 -i 'version')"
echo "setup: $($(command -v clang || command -v clang-14) --version | head -n 1)"

node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is needed, this is $(node --version)" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages (npm ci) ..."
  npm ci --no-audit --no-fund
fi

make -s -C firmware
# The stock StandardFirmata the HIL suite also runs on the rig (a prebuilt third-party fixture, fetched, not vendored).
bash scripts/fetch-standard-firmata.sh
echo "setup: done"

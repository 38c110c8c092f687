#!/usr/bin/env bash
# The whole test suite from a fresh Debian machine: installs the build
# dependencies, then builds and runs every test twice:
#   1. Release, warnings as errors;
#   2. Debug with AddressSanitizer + UndefinedBehaviorSanitizer (the IR
#      verifier also runs after every pass there); any report fails;
#   3. each libFuzzer target (tests/fuzz, a clang tree in build/fuzz) for
#      MICA_FUZZ_SECONDS (default 30) from its seed corpus: a crash, leak,
#      timeout or oracle failure fails (tools/fuzz.sh). Saved crash inputs
#      are replayed by test_fuzz_replay in both trees above.
# Golden data is read from ../shared/golden beside the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
# The default real model (SmolLM2-135M-Instruct) for the end-to-end tests.
MICA_DEFAULT_MODEL=$(tools/fetch-model.sh)
export MICA_DEFAULT_MODEL

jobs=$(nproc 2>/dev/null || echo 2)
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
# Criterion's forked test processes otherwise skip exit-time leak checks.
export CRITERION_NO_EARLY_EXIT=1

run() { # name cmake-args...
  local dir=build/$1; shift
  echo "== $dir" >&2
  cmake -S . -B "$dir" -DMICA_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  ctest --test-dir "$dir" --output-on-failure -j"$jobs"
}

run release -DCMAKE_BUILD_TYPE=Release
# the sanitized tree reuses the Release tree's aarch64 sub-build (qemu runs
# Release binaries either way) instead of cross-building it again
run sanitize -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" -DMICA_SANITIZE=ON \
  -DMICA_AARCH64_DIR="$PWD/build/release/aarch64"
echo "== build/fuzz" >&2
tools/fuzz.sh -s "${MICA_FUZZ_SECONDS:-30}" -j "$jobs"

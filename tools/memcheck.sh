#!/usr/bin/env bash
# Valgrind memcheck on short runs: the default model (SmolLM2-135M-Instruct)
# compiled for x86-avx2 (valgrind does not decode AVX-512) and run on the
# device runtime, and a golden model on the reference path. Any memory
# error or leak (definite, indirect or possible) fails.
#   tools/memcheck.sh [-n TOKENS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=8
while getopts "n:" opt; do
  case $opt in
    n) n=$OPTARG ;;
    *) echo "usage: tools/memcheck.sh [-n TOKENS]" >&2; exit 2 ;;
  esac
done
model=$(tools/fetch-model.sh)
build=build/release
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target mica >/dev/null
art=$build/memcheck-smollm2-avx2
[ -f "$art/manifest" ] || "$build/tools/mica" compile "$model" -t x86-avx2 -q w4a8 -o "$art" --force
vg=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect,possible
    --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99 -q)
echo "memcheck: $art (device runtime), $n tokens" >&2
"${vg[@]}" "$build/tools/mica" run "$art" -p "Write a haiku about rain." -n "$n" --temp 0 -t 1
golden=../shared/golden/llama-tiny.q4_0.gguf
echo "memcheck: $golden (reference path), $n tokens" >&2
"${vg[@]}" "$build/tools/mica" run "$golden" -p "Once upon a time" -n "$n" --temp 0
echo "memcheck: no errors, no leaks" >&2

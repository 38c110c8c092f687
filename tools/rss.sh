#!/usr/bin/env bash
# Resident memory over a long generation: compiles the default model
# (SmolLM2-135M-Instruct) for this machine with a context of 64 tokens (so
# the KV cache, whose pages cost memory once written, is full within the
# first 100 tokens), then
# generates N tokens (default 10000) through the public API, shifting the
# context whenever the KV cache fills, and checks that anonymous RSS never
# rises more than 1 MiB above its value at token 100
# (tools/examples/rss_probe.c says what it measures).
#   tools/rss.sh [-n N] [-c CTX] [-t THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=10000 ctx=64 threads=$(nproc 2>/dev/null || echo 2)
while getopts "n:c:t:" opt; do
  case $opt in
    n) n=$OPTARG ;;
    c) ctx=$OPTARG ;;
    t) threads=$OPTARG ;;
    *) echo "usage: tools/rss.sh [-n N] [-c CTX] [-t THREADS]" >&2; exit 2 ;;
  esac
done
model=$(tools/fetch-model.sh)
build=build/release
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$threads" --target mica mica_rss_probe >/dev/null
art=$build/rss-smollm2-c$ctx
[ -f "$art/manifest" ] || "$build/tools/mica" compile "$model" -t host -q w4a8 -c "$ctx" -o "$art" --force
"$build/tools/mica_rss_probe" "$art" "$n" -t "$threads"

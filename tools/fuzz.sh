#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz for a bounded time each.
#   tools/fuzz.sh [-s SECONDS] [-j JOBS] [TARGET...]   (default 60 s, all targets)
# Targets: gguf ir tokenizer region artifact. Builds build/fuzz with clang
# (-fsanitize=fuzzer,address,undefined), starts from the seed corpus in
# tests/fuzz/corpus/TARGET and keeps what it learns in
# build/fuzz/corpus/TARGET (not committed). A crash, leak, timeout or
# out-of-memory input is written to build/fuzz/findings/TARGET/ and fails the
# run: fix it, then copy the input to tests/fuzz/crashes/TARGET/, which
# tests/test_fuzz_replay.c replays in the normal suite. Each run's last
# status line (executions, cov, ft) is printed per target.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=60
jobs=1
while getopts "s:j:" opt; do
  case $opt in
    s) seconds=$OPTARG ;;
    j) jobs=$OPTARG ;;
    *) echo "usage: tools/fuzz.sh [-s SECONDS] [-j JOBS] [TARGET...]" >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
all=(gguf ir tokenizer region artifact)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
for t in "${targets[@]}"; do
  [ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz: no target '$t' (have: ${all[*]})" >&2; exit 2; }
done

dir=build/fuzz
if [ ! -f "$dir/CMakeCache.txt" ]; then
  CC=clang cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" \
    -DMICA_FUZZ=ON -DMICA_TESTS=OFF >/dev/null
fi
build_targets=()
for t in "${targets[@]}"; do build_targets+=("fuzz_$t"); done
cmake --build "$dir" -j"$(nproc 2>/dev/null || echo 2)" --target "${build_targets[@]}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
status=0
run_one() { # target
  local t=$1 corpus=$dir/corpus/$1 found=$dir/findings/$1 log=$dir/fuzz-$1.log
  mkdir -p "$corpus" "$found"
  # every limit is a finding: 10 s for one input, 2 GiB of RSS, no single
  # allocation over 1 GiB (a hostile file must not size one that big)
  if "$dir/tests/fuzz/fuzz_$t" "$corpus" "tests/fuzz/corpus/$t" -max_total_time="$seconds" \
      -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 \
      -artifact_prefix="$found/" -print_final_stats=1 >"$log" 2>&1; then
    echo "fuzz $t: ${seconds}s, $(grep -E '^#[0-9]+' "$log" | tail -1)" >&2
  else
    echo "fuzz $t: FINDING (see $log, input in $found/)" >&2
    grep -E 'ERROR|SUMMARY|fuzz check failed|runtime error' "$log" | head -5 >&2
    return 1
  fi
}
pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then
    wait "${pids[0]}" || status=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || status=1; done
exit $status

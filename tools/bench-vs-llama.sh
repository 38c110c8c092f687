#!/usr/bin/env bash
# mica beside llama.cpp on one GGUF: llama-bench and `mica bench` (the GGUF
# on the reference path, and the artifact compiled from it), alternated
# round by round because the machine is shared and noisy, each engine's
# best round kept, then one table of both and the ratios on stdout.
#
# llama.cpp is not part of mica: point -l at a build of it made elsewhere
# (default /tmp/llama-build/bin, holding llama-bench).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: tools/bench-vs-llama.sh [options] MODEL.gguf

  -l DIR          llama.cpp's bin directory, with llama-bench (default /tmp/llama-build/bin)
  -m PATH         the mica binary (default: build/release/tools/mica of this checkout)
  -a DIR          bench this artifact (default: compile MODEL for --target into a
                  temporary directory)
  --target T      target to compile for (default host)
  --no-artifact   bench no artifact
  --no-gguf       do not bench the GGUF on mica's reference path
  -R N            rounds; each runs every engine once (default 3)
  -t N            threads (default 2)
  -p N            prompt length (default 512)
  -n N            generated tokens (default 128)
  -r N            repetitions inside each engine's run (default 1)
  -k DIR          keep every run's JSON in DIR

Progress goes to stderr; the table to stdout. The fraction of the machine's
limits (int8 peak for pp, read bandwidth for tg) comes from mica's JSON
(mica bench --limits measured them); llama.cpp's is the same bytes and
parameters of the same GGUF at its own speed.
EOF
}

here=$(cd "$(dirname "$0")" && pwd)
llama_dir=/tmp/llama-build/bin
mica="$here/../build/release/tools/mica"
artifact=""
target=host
want_artifact=1
want_gguf=1
rounds=3
threads=2
n_prompt=512
n_gen=128
reps=1
keep=""
model=""

die() {
    echo "bench-vs-llama: $*" >&2
    exit 2
}
need() { [[ $# -ge 2 && -n "$2" ]] || die "$1 needs a value"; }
count() { [[ "$2" =~ ^[0-9]+$ ]] || die "$1 takes a number, not '$2'"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    -l) need "$@"; llama_dir=$2; shift 2 ;;
    -m) need "$@"; mica=$2; shift 2 ;;
    -a) need "$@"; artifact=$2; shift 2 ;;
    --target) need "$@"; target=$2; shift 2 ;;
    --no-artifact) want_artifact=0; shift ;;
    --no-gguf) want_gguf=0; shift ;;
    -R) need "$@"; count "$@"; rounds=$2; shift 2 ;;
    -t) need "$@"; count "$@"; threads=$2; shift 2 ;;
    -p) need "$@"; count "$@"; n_prompt=$2; shift 2 ;;
    -n) need "$@"; count "$@"; n_gen=$2; shift 2 ;;
    -r) need "$@"; count "$@"; reps=$2; shift 2 ;;
    -k) need "$@"; keep=$2; shift 2 ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [[ -z "$model" ]] || die "more than one model given"; model=$1; shift ;;
    esac
done
[[ -n "$model" ]] || die "no model given (see --help)"
[[ -f "$model" ]] || { echo "bench-vs-llama: $model: no such file" >&2; exit 1; }
[[ "$rounds" -ge 1 && "$reps" -ge 1 ]] || die "-R and -r must be at least 1"
llama_bench="$llama_dir/llama-bench"
[[ -x "$llama_bench" ]] || { echo "bench-vs-llama: $llama_bench: not there (build llama.cpp's llama-bench outside this repo)" >&2; exit 1; }
[[ -x "$mica" ]] || { echo "bench-vs-llama: $mica: not built" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-vs-llama.XXXXXX")
trap 'rm -rf "$work"' EXIT
out="${keep:-$work/json}"
mkdir -p "$out"

if [[ $want_artifact == 1 && -z "$artifact" ]]; then
    artifact="$work/model.mica"
    echo "bench-vs-llama: compiling $model for $target" >&2
    "$mica" compile "$model" -t "$target" -o "$artifact" >&2
fi

# engine label and command, one per line; the label names its JSON files
engines=(llama)
[[ $want_gguf == 1 ]] && engines+=(mica-gguf)
[[ $want_artifact == 1 ]] && engines+=(mica-artifact)

# -p 0 / -n 0 drop a test in both engines
run_engine() { # label round
    local json="$out/$1.$2.json"
    case "$1" in
    llama) "$llama_bench" -m "$model" -t "$threads" -p "$n_prompt" -n "$n_gen" -r "$reps" -o json \
        >"$json" 2>"$work/stderr" ;;
    mica-gguf) "$mica" bench "$model" -t "$threads" -p "$n_prompt" -n "$n_gen" -r "$reps" -o json \
        >"$json" 2>"$work/stderr" ;;
    mica-artifact) "$mica" bench "$artifact" -t "$threads" -p "$n_prompt" -n "$n_gen" -r "$reps" \
        -o json >"$json" 2>"$work/stderr" ;;
    esac || {
        echo "bench-vs-llama: $1 failed:" >&2
        cat "$work/stderr" >&2
        exit 1
    }
}

n=${#engines[@]}
for ((r = 0; r < rounds; r++)); do
    # each round starts with the next engine, so none always runs first
    for ((k = 0; k < n; k++)); do
        e=${engines[$(((r + k) % n))]}
        echo "bench-vs-llama: round $((r + 1))/$rounds: $e" >&2
        run_engine "$e" "$r"
    done
done

python3 - "$out" "$model" "$threads" "$rounds" "${engines[@]}" <<'EOF'
import json, os, sys

out, model, threads, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
engines = sys.argv[5:]
names = {"llama": "llama.cpp", "mica-gguf": "mica GGUF", "mica-artifact": "mica artifact"}

# best[engine][(n_prompt, n_gen)] = the object of the round with the highest avg_ts
best = {}
for e in engines:
    best[e] = {}
    for r in range(rounds):
        with open(os.path.join(out, "%s.%d.json" % (e, r))) as f:
            for o in json.load(f):
                key = (o["n_prompt"], o["n_gen"])
                if key not in best[e] or o["avg_ts"] > best[e][key]["avg_ts"]:
                    best[e][key] = o

def test_name(key):
    p, n = key
    return "pp%d+tg%d" % key if p and n else ("pp%d" % p if p else "tg%d" % n)

def fraction(o):
    """the mica object's fraction of the machine limit that bounds its test"""
    v = o.get("peak_fraction") if o["n_gen"] == 0 else o.get("bw_fraction")
    return v

keys = sorted(best["llama"], key=lambda k: (k[1] != 0, k))
head = ["test", "llama.cpp t/s"]
for e in engines[1:]:
    head += [names[e] + " t/s", "x llama.cpp", "of limit"]
head += ["llama.cpp of limit"]
print("best of %d rounds, %s threads, %s" % (rounds, threads, os.path.basename(model)))
print()
print("| " + " | ".join(head) + " |")
print("|" + "|".join([" --- "] + [" ---: "] * (len(head) - 1)) + "|")
for key in keys:
    ll = best["llama"][key]
    row = [test_name(key), "%.2f ± %.2f" % (ll["avg_ts"], ll["stddev_ts"])]
    llama_frac = None
    for e in engines[1:]:
        o = best[e].get(key)
        if o is None:
            row += ["-", "-", "-"]
            continue
        fr = fraction(o)
        row += ["%.2f ± %.2f" % (o["avg_ts"], o["stddev_ts"]),
                "%.3fx" % (o["avg_ts"] / ll["avg_ts"]),
                "-" if fr is None else "%.1f %%" % (100 * fr)]
        # llama.cpp reads the same GGUF: the GGUF engine's bytes and params
        if e == "mica-gguf" and fr is not None:
            llama_frac = fr * ll["avg_ts"] / o["avg_ts"]
    row.append("-" if llama_frac is None else "%.1f %%" % (100 * llama_frac))
    print("| " + " | ".join(row) + " |")
print()
for e in engines[1:]:
    o = next(iter(best[e].values()), None)
    if o:
        print("%s: %.1f MiB of weights read per token, %.1f M params; limits (mica bench "
              "--limits) at %s threads: read %.1f GB/s, int8 %.1f GOP/s" % (
                  names[e], o["bytes_per_token"] / 1048576.0, o["model_n_params"] / 1e6,
                  threads, o["limits_bw_gbs"], o["limits_int8_gops"]))
EOF

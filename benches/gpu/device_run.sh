#!/usr/bin/env bash
# The GPU benchmark as run on a lent NVIDIA machine (see BENCHMARKS.md):
# cellm's decoder via Vulkan next to PyTorch eager on the same card, full-size
# SmolVLM-256M text decoder with random weights. Expects, carried into the
# checkout: .gl/ (Vulkan loader .debs), .devrun/cellm-run (release build),
# .devrun/decoder_skeleton.onnx (benches/gpu/make_skeleton.py of the full-size
# decoder) and .devrun/config.json. Results go to $OUT.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export NODEVICE_SELECT=1 CELLM_CACHE_DIR=/tmp/cellm-cache
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
R=./.devrun/cellm-run
if ! $R devices 2>&1 | grep -qi nvidia; then
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
$R devices 2>&1 | tee "$OUT/devices.txt"
python3 benches/gpu/regen_weights.py .devrun/decoder_skeleton.onnx /tmp/full/decoder_model_merged.onnx
# Correctness on this GPU: the bundled micro model, greedy, CPU vs GPU.
for b in cpu gpu; do $R vlm --backend $b --max-new-tokens 24 --json 2>/dev/null | tail -1 > "$OUT/vlm_$b.json"; done
python3 - "$OUT" <<'PY'
import json, sys
c, g = (json.load(open(f"{sys.argv[1]}/vlm_{b}.json")) for b in ("cpu", "gpu"))
print("greedy tokens CPU == GPU:", c["generated_ids"] == g["generated_ids"], len(c["generated_ids"]))
PY
CTX=${CTX:-64,512,2048}; STEPS=${STEPS:-32}
# Correctness on this card: full-size decoder, GPU vs onnxruntime, 700-position prefill + a step.
timeout 120 python3 benches/gpu/check_decoder.py $R /tmp/full/decoder_model_merged.onnx /tmp/chk --prefill 700 2>&1 | tee "$OUT/check_decoder.txt"
# Optional baseline build (an earlier commit) timed in the same call: .devrun/cellm-run-base.xz.
B=""; if [ -f .devrun/cellm-run-base.xz ]; then xz -dc .devrun/cellm-run-base.xz > /tmp/cellm-run-base && chmod +x /tmp/cellm-run-base && B=/tmp/cellm-run-base; fi
bench() { timeout $1 $2 bench decoder /tmp/full/decoder_model_merged.onnx --backend gpu --ctx $CTX --steps $STEPS --reps 3 --json "${@:3}" 2>&1; }
bench 120 $R | tee "$OUT/cellm_gpu.txt"
[ -n "$B" ] && bench 120 $B | tee -a "$OUT/base_gpu.txt"
timeout 90 python3 benches/gpu/torch_decode.py --config .devrun/config.json --ctx $CTX --steps $STEPS --dtype float32 2>&1 | tee "$OUT/torch_fp32.txt"
bench 90 $R --dtype f16 | tee "$OUT/cellm_gpu_f16.txt"
timeout 60 python3 benches/gpu/torch_decode.py --config .devrun/config.json --ctx $CTX --steps $STEPS --dtype float16 2>&1 | tee "$OUT/torch_fp16.txt"

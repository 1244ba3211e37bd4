#!/usr/bin/env python3
"""cellm CPU vs onnxruntime CPU on the full-size SmolVLM look-alike, side by side.

Usage:
    bash ../shared/fixtures/make-full.sh            # once: builds ~/.cache/cellm-fixtures/full
    cargo build --release -p cellm-run
    python3 benches/smolvlm_full_cpu.py [--model-dir ~/.cache/cellm-fixtures/full] [--reps 3]

Needs numpy and onnxruntime (pip). Runs A B A B … (onnxruntime, then cellm's
`cellm-run exec --backend cpu`, which reports its own load and run seconds),
prints medians and cellm/onnxruntime ratios for: graph load, vision encoder (one
512² image), 80-token prefill, one decode step after 80 tokens. Also checks that
both produce the same numbers (max relative difference).
"""
import argparse, os, re, statistics, subprocess, sys, tempfile, time
import numpy as np
import onnxruntime as ort

ap = argparse.ArgumentParser()
ap.add_argument("--model-dir", default=os.path.expanduser("~/.cache/cellm-fixtures/full"))
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--cellm", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "cellm-run"))
args = ap.parse_args()
onnx_dir = os.path.join(args.model_dir, "onnx")
rng = np.random.default_rng(0)
tmp = tempfile.mkdtemp(prefix="cellm-bench-")

so = ort.SessionOptions()
so.log_severity_level = 3
so.intra_op_num_threads = os.cpu_count()

def ort_session(name):
    t = time.time()
    s = ort.InferenceSession(os.path.join(onnx_dir, name + ".onnx"), so, providers=["CPUExecutionProvider"])
    return s, time.time() - t

def save(folder, feeds):
    os.makedirs(folder, exist_ok=True)
    for k, v in feeds.items():
        np.save(os.path.join(folder, k + ".npy"), v)

def cellm(name, folder, out):
    r = subprocess.run([args.cellm, "exec", os.path.join(onnx_dir, name + ".onnx"), "--inputs", folder,
                        "--outputs", out, "--backend", "cpu"], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"cellm-run failed: {r.stderr}")
    m = re.search(r"loaded in ([0-9.]+) s, ran in ([0-9.]+) s", r.stderr)
    return float(m.group(1)), float(m.group(2))

vis, vis_load = ort_session("vision_encoder")
dec, dec_load = ort_session("decoder_model_merged")
hidden = dec.get_inputs()[0].shape[2]
kv = dec.get_inputs()[3].shape
layers = sum(1 for i in dec.get_inputs() if i.name.endswith(".key"))
L = 80
pv = rng.uniform(-1, 1, (1, 1, 3, 512, 512)).astype(np.float32)
cases = {}
cases["vision"] = ("vision_encoder", vis, {"pixel_values": pv, "pixel_attention_mask": np.ones((1, 1, 512, 512), bool)})
past0 = {f"past_key_values.{i}.{k}": np.zeros((1, kv[1], 0, kv[3]), np.float32) for i in range(layers) for k in ("key", "value")}
emb = (rng.standard_normal((1, L, hidden)) * 0.5).astype(np.float32)
pre = dict(inputs_embeds=emb, attention_mask=np.ones((1, L), np.int64), position_ids=np.arange(L)[None], **past0)
cases["prefill_80"] = ("decoder_model_merged", dec, pre)
o = dec.run(None, pre)
names = [x.name for x in dec.get_outputs()]
past = {n.replace("present", "past_key_values"): v for n, v in zip(names, o) if n.startswith("present")}
step = dict(inputs_embeds=emb[:, -1:], attention_mask=np.ones((1, L + 1), np.int64), position_ids=np.array([[L]]), **past)
cases["decode_step_at_80"] = ("decoder_model_merged", dec, step)

rows = []
for key, (name, sess, feeds) in cases.items():
    folder = os.path.join(tmp, key, "in")
    save(folder, feeds)
    t_ort, t_cellm, loads = [], [], []
    ref = None
    for _ in range(args.reps):
        t = time.time(); ref = sess.run(None, feeds); t_ort.append(time.time() - t)
        l, r = cellm(name, folder, os.path.join(tmp, key, "out")); t_cellm.append(r); loads.append(l)
    out0 = sess.get_outputs()[0].name
    ours = np.load(os.path.join(tmp, key, "out", out0 + ".npy"))
    rel = float(np.abs(ours - ref[0]).max() / max(1.0, np.abs(ref[0]).max()))
    a, b = statistics.median(t_ort), statistics.median(t_cellm)
    rows.append((key, a, b, b / a, rel, statistics.median(loads)))

print(f"machine: {os.cpu_count()} cores; onnxruntime {ort.__version__}; model {args.model_dir}")
print(f"onnxruntime session load: vision {vis_load:.2f} s, decoder {dec_load:.2f} s")
print(f"| case | onnxruntime s | cellm s | cellm/ort | max rel diff | cellm load s |")
print(f"|---|---:|---:|---:|---:|---:|")
for k, a, b, r, rel, l in rows:
    print(f"| {k} | {a:.3f} | {b:.3f} | {r:.2f} | {rel:.1e} | {l:.2f} |")

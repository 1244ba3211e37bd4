"""Correctness of cellm's GPU backend on a real card, full-size decoder: runs the
same random prefill (PREFILL positions) and one KV-fed decode step through
onnxruntime (CPU) and `cellm-run exec --backend gpu [--dtype f16]`, and prints the
worst max|d|/max(1, max|ref|) over the logits and present K/V of each run.

    python3 check_decoder.py CELLM_RUN DECODER.onnx WORKDIR [--prefill 700]
"""
import argparse
import os
import subprocess
import sys

import numpy as np
import onnxruntime as ort

ap = argparse.ArgumentParser()
ap.add_argument("cellm")
ap.add_argument("model")
ap.add_argument("work")
ap.add_argument("--prefill", type=int, default=700)
a = ap.parse_args()

rng = np.random.default_rng(1)
so = ort.SessionOptions()
so.log_severity_level = 3
sess = ort.InferenceSession(a.model, so, providers=["CPUExecutionProvider"])
ins = sess.get_inputs()
hidden = ins[0].shape[2]
kv = next(i for i in ins if i.name.endswith(".key")).shape
layers = sum(1 for i in ins if i.name.endswith(".key"))
names = [o.name for o in sess.get_outputs()]
L = a.prefill
past0 = {f"past_key_values.{i}.{k}": np.zeros((1, kv[1], 0, kv[3]), np.float32)
         for i in range(layers) for k in ("key", "value")}
emb = (rng.standard_normal((1, L + 1, hidden)) * 0.5).astype(np.float32)
prefill = dict(inputs_embeds=emb[:, :L], attention_mask=np.ones((1, L), np.int64),
               position_ids=np.arange(L)[None], **past0)
ref_prefill = dict(zip(names, sess.run(None, prefill)))
past = {n.replace("present", "past_key_values"): v for n, v in ref_prefill.items() if n.startswith("present")}
step = dict(inputs_embeds=emb[:, L:], attention_mask=np.ones((1, L + 1), np.int64),
            position_ids=np.array([[L]]), **past)
ref_step = dict(zip(names, sess.run(None, step)))

worst_all = {}
for case, feeds, ref in (("prefill", prefill, ref_prefill), ("step", step, ref_step)):
    d_in = os.path.join(a.work, case + "_in")
    os.makedirs(d_in, exist_ok=True)
    for k, v in feeds.items():
        np.save(os.path.join(d_in, k + ".npy"), v)
    for dtype in ("f32", "f16"):
        d_out = os.path.join(a.work, f"{case}_{dtype}_out")
        r = subprocess.run([a.cellm, "exec", a.model, "--inputs", d_in, "--outputs", d_out,
                            "--backend", "gpu", "--dtype", dtype], capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{case} {dtype}: cellm failed: {r.stderr.strip()[-400:]}")
            worst_all[(case, dtype)] = float("inf")
            continue
        worst = 0.0
        for n, want in ref.items():
            got = np.load(os.path.join(d_out, n.replace("/", "_") + ".npy"))
            err = float(np.abs(got.astype(np.float64) - want).max() / max(1.0, np.abs(want).max()))
            worst = max(worst, err)
        same_argmax = bool((np.load(os.path.join(d_out, "logits.npy"))[0, -1].argmax()
                            == ref["logits"][0, -1].argmax()))
        worst_all[(case, dtype)] = worst
        print(f"{case} ({L} past/positions) {dtype} weights: worst rel err {worst:.2e} over "
              f"{len(ref)} outputs, last-position argmax equal: {same_argmax}")
ok = all(v < 1e-3 for (c, d), v in worst_all.items() if d == "f32") and \
    all(v < 2e-2 for (c, d), v in worst_all.items() if d == "f16")
print("GPU decoder matches onnxruntime (f32 within 1e-3, f16 weights within 2e-2):", ok)
sys.exit(0 if ok else 1)

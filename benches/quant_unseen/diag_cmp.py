#!/usr/bin/env python3
"""Find where cellm first departs from onnxruntime inside one graph: copy the run's model with the
outputs of every node of the given op types added as graph outputs, run it with onnxruntime and with
`cellm-run exec --backend B`, and compare tensor by tensor in graph order.
Usage: venv/bin/python diag_cmp.py RUN BACKEND OP [OP ...]
  e.g. diag_cmp.py vision_uint8 cpu DynamicQuantizeLinear MatMulInteger ConvInteger
DIAG_EXACT_INT=1: onnxruntime runs the int8 weights re-encoded as uint8 (exact integer reference).
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
run, backend, ops = sys.argv[1], sys.argv[2], set(sys.argv[3:])
d = os.path.join(HERE, os.environ.get("CELLM_RUNS", "runs"), run)
info = json.load(open(os.path.join(d, "run.json")))
m = onnx.load(os.path.join(HERE, info["model"]))
existing = {o.name for o in m.graph.output}
# shape inference gives output types (cellm needs typed outputs)
try:
    inf = onnx.shape_inference.infer_shapes(m)
    vi = {v.name: v for v in list(inf.graph.value_info) + list(inf.graph.output)}
except Exception:  # noqa: BLE001
    vi = {}
want = []
for n in m.graph.node:
    if n.op_type in ops:
        for t in n.output:
            if t and t not in existing and t not in want:
                want.append(t)
# graph outputs named dbg_<i> through Identity nodes: cellm-run writes <output name>.npy, and the
# exported tensor names contain '/'
alias = {}
for i, t in enumerate(want):
    a = f"dbg_{i:03d}"
    alias[t] = a
    m.graph.node.append(onnx.helper.make_node("Identity", [t], [a], name=f"dbg_id_{i}"))
    if t in vi and vi[t].type.tensor_type.elem_type:
        v = onnx.ValueInfoProto()
        v.CopyFrom(vi[t])
        v.name = a
        m.graph.output.append(v)
    else:
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(a))
work = os.path.join(HERE, "diag", f"{run}_{backend}")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
mp = os.path.join(work, "model.onnx")
onnx.save(m, mp)
so = ort.SessionOptions()
so.log_severity_level = 3
so.enable_mem_reuse = False
if os.environ.get("DIAG_EXACT_INT"):
    # onnxruntime runs the int8 weights re-encoded as uint8 (exact u8u8 path, see diag_ort_noise.py);
    # cellm runs the original file
    from diag_ort_noise import int8_to_uint8
    s = ort.InferenceSession(int8_to_uint8(onnx.load(mp))[0].SerializeToString(), so, providers=["CPUExecutionProvider"])
else:
    s = ort.InferenceSession(mp, so, providers=["CPUExecutionProvider"])
feeds = {k: np.load(os.path.join(d, "inputs", f"{k}.npy")) for k in info["inputs"]}
ref = dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))
env = dict(os.environ, NODEVICE_SELECT="1")
binp = os.environ.get("CELLM_BIN", os.path.join(HERE, "cellm-run.bin"))
r = subprocess.run([binp, "exec", mp, "--inputs", os.path.join(d, "inputs"), "--outputs",
                    os.path.join(work, "out"), "--backend", backend], capture_output=True, text=True, env=env)
if r.returncode:
    print(r.stdout[-2000:], r.stderr[-3000:])
    sys.exit(1)
shown = 0
for t in want + [o for o in existing]:
    cands = [os.path.join(work, "out", alias.get(t, t) + ".npy")]
    got = None
    for c in cands:
        if os.path.exists(c):
            got = np.load(c)
            break
    if got is None:
        files = os.listdir(os.path.join(work, "out"))
        print(f"{t}: no cellm output (files like {files[:3]})")
        continue
    e = ref[alias.get(t, t)]
    if got.shape != e.shape:
        print(f"{t}: shape cellm {got.shape} vs ort {e.shape}")
        continue
    if e.dtype == np.uint8 or e.dtype == np.int8 or e.dtype == np.int32:
        dif = np.abs(got.astype(np.int64) - e.astype(np.int64))
        nd = int((dif != 0).sum())
        line = f"{t[:70]:70s} {e.dtype}: {nd}/{e.size} differ, max {int(dif.max()) if dif.size else 0}"
    else:
        dif = np.abs(got.astype(np.float64) - e.astype(np.float64))
        sc = max(1.0, float(np.abs(e).max())) if e.size else 1.0
        line = f"{t[:70]:70s} {e.dtype}: rel {float(dif.max()) / sc if dif.size else 0:.3e} (max|ort| {sc:.3g})"
        if e.size == 1:
            line += f" ort {e.item()!r} cellm {got.item()!r}"
    print(line)

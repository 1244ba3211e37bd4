#!/usr/bin/env python3
"""Is onnxruntime exact on its own integer ops? For one reference run of an int8/uint8 graph,
expose every DynamicQuantizeLinear / MatMulInteger / ConvInteger output, run onnxruntime, and
recompute each node from onnxruntime's OWN inputs to it with exact numpy arithmetic:
  DynamicQuantizeLinear (ONNX spec: scale = (max(0,max x) - min(0,min x)) / 255,
    zp = sat(round_half_even(-min/scale)), y = sat(round_half_even(x/scale) + zp))
  MatMulInteger / ConvInteger: (A - a_zp) @ (B - b_zp) in int64.
Prints per node the number of differing elements and max |diff|.
Usage: venv/bin/python diag_int.py RUN  (e.g. dec_int8_step0, vision_int8)
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
run = sys.argv[1]
d = os.path.join(HERE, os.environ.get("CELLM_RUNS", "runs"), run)
info = json.load(open(os.path.join(d, "run.json")))
m = onnx.load(os.path.join(HERE, info["model"]))
inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
nodes = [n for n in m.graph.node if n.op_type in ("DynamicQuantizeLinear", "MatMulInteger", "ConvInteger")]
want = []
for n in nodes:
    for t in list(n.input) + list(n.output):
        if t and t not in inits and t not in want and t not in info["inputs"]:
            want.append(t)
existing = {o.name for o in m.graph.output}
for t in want:
    if t not in existing:
        m.graph.output.append(onnx.helper.make_empty_tensor_value_info(t))
so = ort.SessionOptions()
so.log_severity_level = 3
so.enable_mem_reuse = False
s = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
feeds = {k: np.load(os.path.join(d, "inputs", f"{k}.npy")) for k in info["inputs"]}
names = [o.name for o in s.get_outputs()]
vals = dict(zip(names, s.run(None, feeds)))
vals.update(inits)
vals.update(feeds)


def dql(x):
    x = x.astype(np.float32)
    mx, mn = max(np.float32(0), x.max()), min(np.float32(0), x.min())
    scale = np.float32((mx - mn) / np.float32(255))
    zp = np.clip(np.round(-mn / scale), 0, 255).astype(np.uint8) if scale != 0 else np.uint8(0)
    y = np.clip(np.round(x / scale) + zp, 0, 255).astype(np.uint8) if scale != 0 else np.zeros_like(x, np.uint8)
    return y, scale, zp


def conv_int(x, w, xz, wz, attrs):
    import torch
    xi = torch.from_numpy(x.astype(np.int64) - int(xz)).double()
    wi = torch.from_numpy(w.astype(np.int64) - int(wz)).double()
    st = attrs.get("strides", [1, 1])
    return torch.nn.functional.conv2d(xi, wi, stride=st).numpy().round().astype(np.int64)


tot_bad = 0
for n in nodes:
    a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
    if n.op_type == "DynamicQuantizeLinear":
        y, sc, zp = dql(vals[n.input[0]])
        oy, osc, ozp = vals[n.output[0]], vals[n.output[1]], vals[n.output[2]]
        nd = int((y != oy).sum())
        msg = f"y differs at {nd}/{y.size} (max {int(np.abs(y.astype(int) - oy.astype(int)).max())}), scale {'==' if sc == osc else f'{sc!r} vs ort {osc!r}'}, zp {int(zp)} vs {int(ozp)}"
    else:
        A, B = vals[n.input[0]], vals[n.input[1]]
        az = vals[n.input[2]] if len(n.input) > 2 and n.input[2] else 0
        bz = vals[n.input[3]] if len(n.input) > 3 and n.input[3] else 0
        if n.op_type == "MatMulInteger":
            exact = (A.astype(np.int64) - np.int64(az)) @ (B.astype(np.int64) - np.int64(bz))
        else:
            exact = conv_int(A, B, az, bz, a)
        o = vals[n.output[0]].astype(np.int64)
        diff = np.abs(exact - o)
        nd = int((diff != 0).sum())
        msg = (f"A {A.dtype} B {B.dtype}{list(B.shape)}: {nd}/{o.size} elements differ from exact int64, "
               f"max |diff| {int(diff.max())}, max |exact| {int(np.abs(exact).max())}")
    tot_bad += nd
    print(f"{n.op_type:22s} {n.name[:60]:60s} {msg}")
print("total differing elements:", tot_bad)

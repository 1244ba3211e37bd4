#!/usr/bin/env python3
"""At the first DynamicQuantizeLinear whose uint8 output differs between cellm and onnxruntime
(found by diag_cmp.py), show the float input x, x/scale for both, and how far x/scale is from a
rounding boundary (k + 0.5): a flip there is float noise (last-bit differences in the attention
that feeds it), not a rounding-rule bug.
Usage: venv/bin/python diag_flip.py RUN BACKEND TENSOR   (TENSOR = the DQL's float input name)
"""
import json, os, subprocess, sys, shutil
import numpy as np, onnx, onnxruntime as ort
HERE = os.path.dirname(os.path.abspath(__file__))
run, backend, t = sys.argv[1:4]
d = os.path.join(HERE, os.environ.get("CELLM_RUNS", "runs"), run)
info = json.load(open(os.path.join(d, "run.json")))
m = onnx.load(os.path.join(HERE, info["model"]))
q = next(n for n in m.graph.node if n.op_type == "DynamicQuantizeLinear" and n.input[0] == t)
outs = [t] + list(q.output)
inf = {v.name: v for v in onnx.shape_inference.infer_shapes(m).graph.value_info}
for i, name in enumerate(outs):
    m.graph.node.append(onnx.helper.make_node("Identity", [name], [f"flip_{i}"]))
    v = onnx.ValueInfoProto(); v.CopyFrom(inf[name]); v.name = f"flip_{i}"
    m.graph.output.append(v)
work = os.path.join(HERE, "diag", f"flip_{run}_{backend}")
shutil.rmtree(work, ignore_errors=True); os.makedirs(work)
mp = os.path.join(work, "model.onnx"); onnx.save(m, mp)
so = ort.SessionOptions(); so.log_severity_level = 3
s = ort.InferenceSession(mp, so, providers=["CPUExecutionProvider"])
feeds = {k: np.load(os.path.join(d, "inputs", f"{k}.npy")) for k in info["inputs"]}
ref = dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))
subprocess.run([os.path.join(HERE, "cellm-run.bin"), "exec", mp, "--inputs", os.path.join(d, "inputs"),
                "--outputs", os.path.join(work, "out"), "--backend", backend], check=True,
               capture_output=True, env=dict(os.environ, NODEVICE_SELECT="1"))
got = {f"flip_{i}": np.load(os.path.join(work, "out", f"flip_{i}.npy")) for i in range(4)}
xo, yo, so_, zo = (ref[f"flip_{i}"] for i in range(4))
xc, yc, sc, zc = (got[f"flip_{i}"] for i in range(4))
print(f"scale ort {so_!r} cellm {sc!r}; zp ort {zo} cellm {zc}")
idx = np.argwhere(yo != yc)
print(f"{len(idx)} flipped of {yo.size}; float input max|diff| {np.abs(xo - xc).max():.3g} (max|x| {np.abs(xo).max():.3g})")
for ix in idx[:10]:
    ix = tuple(ix)
    print(f"  at {ix}: x ort {xo[ix]!r} cellm {xc[ix]!r}; x/scale ort {xo[ix] / so_:.7f} cellm {xc[ix] / sc:.7f}; "
          f"y ort {yo[ix]} cellm {yc[ix]}")

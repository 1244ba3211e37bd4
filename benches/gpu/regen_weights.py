"""Rebuilds a skeleton made by make_skeleton.py with random weights: writes the
skeleton's external data file next to `out` (normal(0, 0.02) for matrices,
ones for 1-D norm weights, so activations stay in range) and copies the graph.

    python3 regen_weights.py skeleton.onnx out_dir/decoder_model_merged.onnx
"""
import os
import shutil
import sys

import numpy as np
import onnx

skel, out = sys.argv[1], sys.argv[2]
m = onnx.load(skel, load_external_data=False)
os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
rng = np.random.default_rng(0)
np_of = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16}
files = {}
for t in m.graph.initializer:
    if t.data_location != onnx.TensorProto.EXTERNAL:
        continue
    info = {e.key: e.value for e in t.external_data}
    dt = np_of[t.data_type]
    shape = tuple(t.dims)
    if len(shape) == 1:
        a = np.ones(shape, dtype=dt)
    else:
        a = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(dt)
    path = os.path.join(os.path.dirname(out) or ".", info["location"])
    f = files.get(path) or open(path, "wb")
    files[path] = f
    f.seek(int(info["offset"]))
    f.write(a.tobytes())
for f in files.values():
    f.close()
shutil.copy(skel, out)
print(f"{out}: {len(m.graph.initializer)} initializers, data in {list(files)}")

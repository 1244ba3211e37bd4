#!/usr/bin/env python3
"""Op histogram and quantized-node attributes (K, N, block, B/scales shapes) of every unseenq file."""
import collections, glob, os, sys
import onnx
from onnx import numpy_helper
d = sys.argv[1] if len(sys.argv) > 1 else "unseenq/onnx"
for p in sorted(glob.glob(os.path.join(d, "*.onnx"))):
    m = onnx.load(p)
    inits = {t.name: t for t in m.graph.initializer}
    hist = collections.Counter((n.domain + ":" if n.domain else "") + n.op_type for n in m.graph.node)
    q = {k: v for k, v in hist.items() if any(s in k for s in ("MatMul", "Conv", "Quantize", "Gather", "Dequant"))}
    print(os.path.basename(p), dict(q))
    seen = collections.Counter()
    for n in m.graph.node:
        if n.op_type in ("MatMulNBits", "MatMulBnb4"):
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            shp = [tuple(inits[i].dims) if i in inits else "act" for i in n.input[1:]]
            key = f"  {n.op_type} K={a['K']} N={a['N']} block={a['block_size']} " + " ".join(f"{k}={a[k]}" for k in sorted(a) if k not in ("K", "N", "block_size")) + f" inputs[1:]={shp}"
            seen[key] += 1
        if n.op_type in ("MatMulInteger", "ConvInteger", "DequantizeLinear"):
            shp = [(tuple(inits[i].dims), onnx.TensorProto.DataType.Name(inits[i].data_type)) if i in inits else "act" for i in n.input]
            seen[f"  {n.op_type} {shp}"] += 1
    for k, c in seen.items():
        print(k, "x", c)

"""Strips the weights out of an ONNX model so it can travel (e.g. to a lent GPU
machine) and be rebuilt there with random weights of the same shapes:

    python3 make_skeleton.py full/onnx/decoder_model_merged.onnx skeleton.onnx
    python3 regen_weights.py skeleton.onnx out/decoder_model_merged.onnx

Initializers over 1 KiB become external data in `<out>.data`, to be written by
regen_weights.py; small ones (shape constants) stay inline.
"""
import sys

import onnx
from onnx import TensorProto

src, dst = sys.argv[1], sys.argv[2]
m = onnx.load(src)
data_name = dst.rsplit("/", 1)[-1].replace(".onnx", ".data").replace("skeleton", "weights")
offset = 0
for t in m.graph.initializer:
    if len(t.raw_data) <= 1024:
        continue
    n = len(t.raw_data)
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    del t.external_data[:]
    for k, v in (("location", data_name), ("offset", str(offset)), ("length", str(n))):
        e = t.external_data.add()
        e.key, e.value = k, v
    offset += (n + 63) // 64 * 64
onnx.save(m, dst)
print(f"{dst}: weights of {offset} bytes go to {data_name}")

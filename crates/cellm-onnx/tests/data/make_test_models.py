"""Regenerates the small ONNX files the importer tests read, with the python
`onnx` package (an outside writer, so the hand-written prost field numbers
are checked against the real schema). Run: python3 make_test_models.py"""
import os
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

here = os.path.dirname(os.path.abspath(__file__))

# 1. Weights in an external file, at a non-zero offset (two tensors share it).
w = np.arange(6, dtype=np.float32).reshape(2, 3) * 0.5 - 1.0   # [-1, -0.5, 0, 0.5, 1, 1.5]
b = np.array([10, 20, 30], dtype=np.int64)
ext_dir = os.path.join(here, "external")
os.makedirs(ext_dir, exist_ok=True)
wt = numpy_helper.from_array(w, "w")
bt = numpy_helper.from_array(b, "b")
graph = helper.make_graph(
    [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
    "external",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
    [wt, bt],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
model.ir_version = 8
from onnx.external_data_helper import convert_model_to_external_data
convert_model_to_external_data(model, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
onnx.save(model, os.path.join(ext_dir, "model.onnx"))

# 2. Initializers in the typed fields (no raw_data), one per dtype, and
#    Constant nodes in every attribute form. Unsorted node order on purpose.
def typed(name, dt, dims, field, vals):
    t = TensorProto(name=name, data_type=dt, dims=dims)
    getattr(t, field).extend(vals)
    return t

f16_bits = [int(v) for v in np.array([1.5, -2.0], dtype=np.float16).view(np.uint16)]
inits = [
    typed("t_f32", TensorProto.FLOAT, [2], "float_data", [1.25, -3.5]),
    typed("t_f64", TensorProto.DOUBLE, [2], "double_data", [0.1, -7.0]),
    typed("t_i64", TensorProto.INT64, [3], "int64_data", [-1, 0, 1 << 40]),
    typed("t_i32", TensorProto.INT32, [2], "int32_data", [-5, 7]),
    typed("t_i8", TensorProto.INT8, [2], "int32_data", [-128, 127]),
    typed("t_u8", TensorProto.UINT8, [2], "int32_data", [0, 255]),
    typed("t_bool", TensorProto.BOOL, [3], "int32_data", [1, 0, 1]),
    typed("t_f16", TensorProto.FLOAT16, [2], "int32_data", f16_bits),
]
nodes = [
    # consumer before the producers of its inputs
    helper.make_node("Mul", ["s", "c_float"], ["y"], name="mul"),
    helper.make_node("Add", ["x", "c_floats"], ["s"], name="add"),
    helper.make_node("Constant", [], ["c_float"], name="cf", value_float=2.0),
    helper.make_node("Constant", [], ["c_floats"], name="cfs", value_floats=[1.0, 2.0]),
    helper.make_node("Constant", [], ["c_int"], name="ci", value_int=-3),
    helper.make_node("Constant", [], ["c_ints"], name="cis", value_ints=[4, 5, 6]),
    helper.make_node("Constant", [], ["c_tensor"], name="ct",
                     value=numpy_helper.from_array(np.array([[1, 2]], dtype=np.int32))),
]
graph = helper.make_graph(
    nodes, "typed",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
     # an input that is also an initializer: an initializer, not an input
     helper.make_tensor_value_info("t_f32", TensorProto.FLOAT, [2])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
    inits,
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.save(model, os.path.join(here, "typed_fields.onnx"))

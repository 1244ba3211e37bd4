#!/usr/bin/env python3
"""Per-op conformance suite: single-node ONNX graphs with onnxruntime goldens.

Regenerate (from the repository root):

    python3 graphs/make_conformance.py

Needs `onnx`, `numpy` and `onnxruntime` 1.32 (CPU). For every case it writes
`graphs/conformance/<case>/model.onnx`, `inputs/<graph input name>.npy` and the
onnxruntime results as `outputs/<graph output name>.npy`, plus
`graphs/conformance/manifest.json` (case -> op, domain, opset, tolerance class).
Inputs use a fixed numpy seed, so the committed goldens are reproducible.
Cases that onnxruntime rejects are dropped and listed at the end of the run.

The Rust runner is `crates/cellm-conformance/tests/conformance.rs`
(`cargo test -p cellm-conformance --test conformance`).

Tolerance classes (applied by the runner to the largest element error,
scaled by max(1, max|reference|)):
  exact  integer / bool outputs: bit-exact
  f32    float32 outputs: 1e-5
  f16    float16 outputs: 2e-3 (2 ulp of f16 near 1; onnxruntime may round
         intermediates to f16 where the reference keeps f32, or vice versa)
A case may widen its tolerance with `rel_tol` (the reason is in `note`).
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

ROOT = Path(__file__).resolve().parent / "conformance"
rng = np.random.default_rng(20240611)
I64_MAX = np.iinfo(np.int64).max
I64_MIN = np.iinfo(np.int64).min

CASES = []  # (name, spec) in definition order


def f32(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float32)


def f16(*shape, lo=-2.0, hi=2.0):
    return rng.uniform(lo, hi, size=shape).astype(np.float16)


def i64(*shape, lo=-9, hi=10):
    return rng.integers(lo, hi, size=shape, dtype=np.int64)


def boolean(*shape):
    return rng.integers(0, 2, size=shape).astype(bool)


def ints(values):
    return np.array(values, dtype=np.int64)


def inp(name, arr):
    """A graph input fed from `inputs/<name>.npy`."""
    return ("input", name, np.asarray(arr))


def const(name, arr):
    """An initializer (known before the graph runs, like a model's constants)."""
    return ("const", name, np.asarray(arr))


def case(name, op, inputs, outputs=("y",), attrs=None, domain="", opset=None, rel_tol=None, note=None, sym=None):
    """Registers one single-node case. `inputs` items: inp(), const() or None
    (an omitted optional input). `outputs` may contain "" for an unused output.
    `sym` maps an input name to its declared shape with named (symbolic) dims."""
    assert name not in dict(CASES), f"duplicate case {name}"
    CASES.append(
        (
            name,
            dict(
                op=op,
                inputs=inputs,
                outputs=list(outputs),
                attrs=attrs or {},
                domain=domain,
                opset=opset,
                rel_tol=rel_tol,
                note=note,
                sym=sym or {},
            ),
        )
    )


# ---------------------------------------------------------------- binary ops
for op in ["Add", "Sub", "Mul", "Div"]:
    lo_div = dict(lo=0.5, hi=3.0) if op == "Div" else {}
    b = f32(1, 4, **lo_div)
    case(f"{op.lower()}_f32_bcast_3x1_1x4", op, [inp("a", f32(3, 1)), inp("b", b)])
    case(f"{op.lower()}_f32_scalar", op, [inp("a", f32(2, 3)), inp("b", np.float32(1.75))])
    case(f"{op.lower()}_f32_rank_mismatch", op, [inp("a", f32(2, 3, 4)), inp("b", f32(4, **lo_div))])
    bi = i64(1, 4, lo=1, hi=7) * np.where(boolean(1, 4), 1, -1) if op == "Div" else i64(1, 4)
    case(f"{op.lower()}_i64_bcast", op, [inp("a", i64(3, 1, lo=-50, hi=50)), inp("b", bi)])
    case(f"{op.lower()}_f16_bcast", op, [inp("a", f16(2, 3)), inp("b", f16(3, **lo_div))])
case("add_f32_const_operand", "Add", [inp("a", f32(2, 5)), const("b", f32(5))])
case("mul_i64_scalar_const", "Mul", [inp("a", i64(4)), const("b", np.int64(3))])
case("add_f32_empty", "Add", [inp("a", np.zeros((0, 3), np.float32)), inp("b", f32(1, 3))])

case("pow_f32", "Pow", [inp("a", f32(2, 3, lo=0.1, hi=3.0)), inp("b", f32(2, 3, lo=-2, hi=2.5))])
case("pow_f32_square_neg_base", "Pow", [inp("a", f32(3, 4)), const("b", np.float32(2.0))])
case("pow_f32_cube_bcast", "Pow", [inp("a", f32(3, 4)), inp("b", np.array([3.0, 1.0, 0.0, -1.0], np.float32))])
case("pow_f32_i64_exponent", "Pow", [inp("a", f32(2, 3)), inp("b", ints([2, 3, 0]))])
case("pow_i64", "Pow", [inp("a", i64(2, 3, lo=-4, hi=5)), inp("b", ints([0, 1, 3]))])

mod_b = np.array([3, -3, 4, -5], np.int64)
case("mod_i64_fmod0", "Mod", [inp("a", i64(3, 4, lo=-20, hi=20)), inp("b", mod_b)], attrs=dict(fmod=0))
case("mod_i64_fmod1", "Mod", [inp("a", i64(3, 4, lo=-20, hi=20)), inp("b", mod_b)], attrs=dict(fmod=1))
case(
    "mod_i32_fmod0",
    "Mod",
    [inp("a", i64(3, 4, lo=-20, hi=20).astype(np.int32)), inp("b", mod_b.astype(np.int32))],
    attrs=dict(fmod=0),
)
case(
    "mod_f32_fmod1",
    "Mod",
    [inp("a", f32(3, 4, lo=-10, hi=10)), inp("b", np.array([2.5, -1.5, 3.0, -4.0], np.float32))],
    attrs=dict(fmod=1),
)

# Integer-valued floats so that Equal sees both outcomes.
ea = rng.integers(-2, 3, size=(3, 1)).astype(np.float32)
eb = rng.integers(-2, 3, size=(1, 4)).astype(np.float32)
case("equal_f32_bcast", "Equal", [inp("a", ea), inp("b", eb)])
case("equal_i64_scalar", "Equal", [inp("a", i64(2, 5, lo=0, hi=3)), inp("b", np.int64(1))])
case("equal_bool", "Equal", [inp("a", boolean(2, 3)), inp("b", boolean(3))])
case("less_f32_bcast", "Less", [inp("a", ea), inp("b", eb)])
case("less_i64_rank_mismatch", "Less", [inp("a", i64(2, 3, 4, lo=-3, hi=3)), inp("b", i64(4, lo=-3, hi=3))])
case("less_f16", "Less", [inp("a", ea.astype(np.float16)), inp("b", eb.astype(np.float16))])
case("lessorequal_f32_bcast", "LessOrEqual", [inp("a", ea), inp("b", eb)])
case("lessorequal_i64", "LessOrEqual", [inp("a", i64(3, 1, lo=-3, hi=3)), inp("b", i64(1, 4, lo=-3, hi=3))])
case("greater_f32_scalar", "Greater", [inp("a", ea), inp("b", np.float32(0.0))])
case("greater_i64_bcast", "Greater", [inp("a", i64(3, 1, lo=-3, hi=3)), inp("b", i64(1, 4, lo=-3, hi=3))])
case("greaterorequal_f32", "GreaterOrEqual", [inp("a", ea), inp("b", eb)])
case("greaterorequal_i64_rank_mismatch", "GreaterOrEqual", [inp("a", i64(2, 3, 4, lo=-3, hi=3)), inp("b", np.int64(0))])
case("and_bool_bcast", "And", [inp("a", boolean(3, 1)), inp("b", boolean(1, 4))])
case("or_bool_bcast", "Or", [inp("a", boolean(3, 1)), inp("b", boolean(2, 1, 4))])

# ---------------------------------------------------------------- unary ops
edge = np.array([-100.0, -30.0, -20.0, -5.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 5.0, 20.0, 30.0, 100.0], np.float32)
case("neg_f32", "Neg", [inp("x", f32(3, 4))])
case("neg_i64", "Neg", [inp("x", i64(3, 4))])
case("neg_f16", "Neg", [inp("x", f16(3, 4))])
case("sqrt_f32", "Sqrt", [inp("x", np.concatenate([[0.0, 1e-6, 4.0, 1e4], f32(8, lo=0, hi=10)]).astype(np.float32))])
case("reciprocal_f32", "Reciprocal", [inp("x", np.array([-4.0, -0.5, 0.25, 1.0, 3.0, 1e3], np.float32))])
case("sigmoid_f32_edges", "Sigmoid", [inp("x", np.concatenate([edge, f32(8, lo=-6, hi=6)]))])
case("sigmoid_f16", "Sigmoid", [inp("x", f16(2, 5, lo=-8, hi=8))])
case("tanh_f32_edges", "Tanh", [inp("x", np.concatenate([edge, f32(8, lo=-3, hi=3)]))])
case("cos_f32", "Cos", [inp("x", f32(3, 5, lo=-10, hi=10))])
case("sin_f32", "Sin", [inp("x", f32(3, 5, lo=-10, hi=10))])
case("exp_f32", "Exp", [inp("x", np.concatenate([[-100.0, -20.0, 0.0, 20.0, 80.0], f32(8, lo=-5, hi=5)]).astype(np.float32))])
case("log_f32", "Log", [inp("x", np.concatenate([[1e-6, 1.0, 1e6], f32(8, lo=0.01, hi=20)]).astype(np.float32))])
case("abs_f32", "Abs", [inp("x", f32(3, 4))])
case("abs_i64", "Abs", [inp("x", i64(3, 4))])
case("relu_f32", "Relu", [inp("x", f32(3, 4))])
case("erf_f32", "Erf", [inp("x", np.concatenate([[-10.0, -4.0, 0.0, 4.0, 10.0], f32(10, lo=-3, hi=3)]).astype(np.float32))])
case("not_bool", "Not", [inp("x", boolean(2, 5))])
case("identity_f32", "Identity", [inp("x", f32(2, 3))])
case("identity_i64", "Identity", [inp("x", i64(5))])

# ---------------------------------------------------------------- Cast
T = onnx.TensorProto
neg_frac = np.array([-3.7, -2.5, -1.5, -0.7, -0.0, 0.0, 0.4, 0.5, 1.5, 2.5, 3.9, 100.6], np.float32)
pos_frac = np.array([0.0, 0.4, 0.5, 1.5, 2.5, 3.9, 100.6, 254.9], np.float32)
case("cast_f32_i64_trunc", "Cast", [inp("x", neg_frac)], attrs=dict(to=T.INT64))
case("cast_f32_i32_trunc", "Cast", [inp("x", neg_frac)], attrs=dict(to=T.INT32))
case("cast_f32_i8", "Cast", [inp("x", neg_frac)], attrs=dict(to=T.INT8))
case("cast_f32_u8", "Cast", [inp("x", pos_frac)], attrs=dict(to=T.UINT8))
case("cast_f32_f16", "Cast", [inp("x", np.concatenate([f32(10, lo=-100, hi=100), [1e-5, 65504.0, 0.1]]).astype(np.float32))], attrs=dict(to=T.FLOAT16))
case("cast_f16_f32", "Cast", [inp("x", f16(3, 4, lo=-100, hi=100))], attrs=dict(to=T.FLOAT))
case("cast_f16_i64", "Cast", [inp("x", neg_frac.astype(np.float16))], attrs=dict(to=T.INT64))
case("cast_f32_bool", "Cast", [inp("x", np.array([0.0, -0.0, 1.0, -2.5, 1e-30, 0.0], np.float32))], attrs=dict(to=T.BOOL))
case("cast_i64_f32", "Cast", [inp("x", ints([-(2**40), -7, 0, 3, 2**24 + 1, 123456789]))], attrs=dict(to=T.FLOAT))
case("cast_i64_f16", "Cast", [inp("x", ints([-2048, -7, 0, 3, 1000, 2049]))], attrs=dict(to=T.FLOAT16))
case("cast_i64_i32", "Cast", [inp("x", ints([-(2**31), -7, 0, 3, 2**31 - 1]))], attrs=dict(to=T.INT32))
case("cast_i32_i64", "Cast", [inp("x", np.array([-(2**31), -7, 0, 3, 2**31 - 1], np.int32))], attrs=dict(to=T.INT64))
case("cast_i64_bool", "Cast", [inp("x", ints([0, 1, -1, 5, 0]))], attrs=dict(to=T.BOOL))
case("cast_i64_u8", "Cast", [inp("x", ints([0, 1, 127, 128, 255]))], attrs=dict(to=T.UINT8))
case("cast_i64_i8", "Cast", [inp("x", ints([-128, -1, 0, 1, 127]))], attrs=dict(to=T.INT8))
case("cast_bool_f32", "Cast", [inp("x", boolean(2, 4))], attrs=dict(to=T.FLOAT))
case("cast_bool_i64", "Cast", [inp("x", boolean(2, 4))], attrs=dict(to=T.INT64))
case("cast_u8_f32", "Cast", [inp("x", np.array([0, 1, 127, 128, 255], np.uint8))], attrs=dict(to=T.FLOAT))
case("cast_u8_i64", "Cast", [inp("x", np.array([0, 1, 127, 128, 255], np.uint8))], attrs=dict(to=T.INT64))
case("cast_i8_f32", "Cast", [inp("x", np.array([-128, -1, 0, 1, 127], np.int8))], attrs=dict(to=T.FLOAT))
case("cast_i8_i64", "Cast", [inp("x", np.array([-128, -1, 0, 1, 127], np.int8))], attrs=dict(to=T.INT64))
case("cast_f32_f32", "Cast", [inp("x", f32(4))], attrs=dict(to=T.FLOAT))

# ---------------------------------------------------------------- Where
case("where_f32_bcast", "Where", [inp("c", boolean(3, 1)), inp("x", f32(1, 4)), inp("other", np.float32(-7.0))])
case("where_i64_bcast", "Where", [inp("c", boolean(2, 3, 4)), inp("x", i64(4)), inp("other", i64(3, 1))])

# ---------------------------------------------------------------- Concat
case("concat_f32_axis0", "Concat", [inp("a", f32(2, 3)), inp("b", f32(1, 3))], attrs=dict(axis=0))
case("concat_f32_axis_neg1_three", "Concat", [inp("a", f32(2, 1)), inp("b", f32(2, 3)), inp("c", f32(2, 2))], attrs=dict(axis=-1))
case(
    "concat_empty_past",
    "Concat",
    [inp("past", np.zeros((1, 2, 0, 8), np.float32)), inp("new", f32(1, 2, 3, 8))],
    attrs=dict(axis=2),
)
case("concat_i64_shapes", "Concat", [inp("a", ints([1, 2])), const("b", ints([-1])), inp("c", ints([7]))], attrs=dict(axis=0))

# ---------------------------------------------------------------- ConstantOfShape
def tensor_attr(arr):
    return numpy_helper.from_array(np.asarray(arr), "value")


case("constantofshape_f32", "ConstantOfShape", [inp("shape", ints([2, 3]))], attrs=dict(value=tensor_attr(np.array([1.5], np.float32))))
case("constantofshape_i64", "ConstantOfShape", [inp("shape", ints([4]))], attrs=dict(value=tensor_attr(ints([-3]))))
case("constantofshape_default_zero", "ConstantOfShape", [inp("shape", ints([3, 1]))])
case("constantofshape_scalar", "ConstantOfShape", [inp("shape", np.zeros((0,), np.int64))], attrs=dict(value=tensor_attr(np.array([2.0], np.float32))))
case("constantofshape_zero_dim", "ConstantOfShape", [inp("shape", ints([2, 0]))], attrs=dict(value=tensor_attr(ints([1]))))

# ---------------------------------------------------------------- Conv
case("conv2d_basic_bias", "Conv", [inp("x", f32(1, 2, 5, 5)), const("w", f32(3, 2, 3, 3)), const("b", f32(3))])
case("conv2d_pads_strides", "Conv", [inp("x", f32(2, 2, 6, 7)), const("w", f32(4, 2, 3, 3))], attrs=dict(pads=[1, 2, 0, 1], strides=[2, 2]))
case("conv2d_dilations", "Conv", [inp("x", f32(1, 2, 7, 7)), const("w", f32(2, 2, 3, 2)), const("b", f32(2))], attrs=dict(dilations=[2, 3]))
case("conv2d_group", "Conv", [inp("x", f32(1, 4, 5, 5)), const("w", f32(6, 2, 3, 3)), const("b", f32(6))], attrs=dict(group=2, pads=[1, 1, 1, 1]))
case("conv2d_depthwise", "Conv", [inp("x", f32(1, 3, 5, 5)), const("w", f32(3, 1, 3, 3))], attrs=dict(group=3, strides=[2, 1]))
case("conv2d_auto_pad_valid", "Conv", [inp("x", f32(1, 2, 6, 5)), const("w", f32(2, 2, 2, 2))], attrs=dict(auto_pad="VALID", strides=[2, 2]))
case("conv2d_auto_pad_same_upper", "Conv", [inp("x", f32(1, 2, 6, 5)), const("w", f32(2, 2, 3, 2))], attrs=dict(auto_pad="SAME_UPPER", strides=[2, 2]))
case("conv2d_patch_embed", "Conv", [inp("x", f32(1, 3, 8, 8)), const("w", f32(4, 3, 4, 4)), const("b", f32(4))], attrs=dict(kernel_shape=[4, 4], strides=[4, 4]))
case("conv2d_weight_input", "Conv", [inp("x", f32(1, 2, 4, 4)), inp("w", f32(2, 2, 1, 1))])
case("conv1d", "Conv", [inp("x", f32(2, 3, 9)), const("w", f32(4, 3, 3)), const("b", f32(4))], attrs=dict(pads=[1, 2], strides=[2]))

# ---------------------------------------------------------------- Expand
case("expand_bidirectional", "Expand", [inp("x", f32(3, 1)), inp("shape", ints([2, 1, 4]))])
case("expand_shape_shorter", "Expand", [inp("x", f32(2, 3)), const("shape", ints([3]))])
case("expand_shape_ones", "Expand", [inp("x", f32(2, 3)), inp("shape", ints([2, 1, 1]))])
case("expand_i64_scalar", "Expand", [inp("x", np.int64(5)), inp("shape", ints([2, 3]))])

# ---------------------------------------------------------------- Flatten
case("flatten_axis0", "Flatten", [inp("x", f32(2, 3, 4))], attrs=dict(axis=0))
case("flatten_default", "Flatten", [inp("x", f32(2, 3, 4))])
case("flatten_axis_neg1", "Flatten", [inp("x", f32(2, 3, 4))], attrs=dict(axis=-1))
case("flatten_axis3", "Flatten", [inp("x", i64(2, 3, 2))], attrs=dict(axis=3))

# ---------------------------------------------------------------- Gather
case("gather_axis0_neg_indices", "Gather", [inp("x", f32(5, 4)), inp("i", ints([[0, -1], [3, -5]]))], attrs=dict(axis=0))
case("gather_axis1", "Gather", [inp("x", f32(2, 5, 3)), inp("i", ints([4, 0, -2]))], attrs=dict(axis=1))
case("gather_axis_neg1_scalar_index", "Gather", [inp("x", f32(2, 3, 4)), const("i", np.int64(-1))], attrs=dict(axis=-1))
case("gather_i32_indices", "Gather", [inp("x", f32(6, 2)), inp("i", np.array([5, 0, -6], np.int32))])
case("gather_shape_scalar", "Gather", [inp("x", ints([1, 7, 32])), const("i", np.int64(1))], attrs=dict(axis=0))
case("gather_embedding", "Gather", [const("table", f32(10, 4)), inp("ids", ints([[1, 9, 0], [3, 3, 2]]))])

# ---------------------------------------------------------------- GatherND
case("gathernd_full_index", "GatherND", [inp("x", f32(3, 4)), inp("i", ints([[0, 1], [2, 3], [1, 0]]))])
case("gathernd_partial_index", "GatherND", [inp("x", f32(3, 4, 2)), inp("i", ints([[[2], [0]], [[1], [1]]]))])
case("gathernd_batch_dims1", "GatherND", [inp("x", f32(2, 3, 4)), inp("i", ints([[[1, 2]], [[0, 3]]]))], attrs=dict(batch_dims=1))
case("gathernd_i64_data_neg_index", "GatherND", [inp("x", i64(3, 2)), inp("i", ints([[-1], [0]]))])

# ---------------------------------------------------------------- MatMul
case("matmul_2d", "MatMul", [inp("a", f32(3, 5)), inp("b", f32(5, 4))])
case("matmul_batched", "MatMul", [inp("a", f32(2, 3, 5)), inp("b", f32(2, 5, 4))])
case("matmul_bcast_batch", "MatMul", [inp("a", f32(2, 1, 3, 5)), inp("b", f32(3, 5, 4))])
case("matmul_bcast_weight", "MatMul", [inp("a", f32(2, 3, 5)), const("b", f32(5, 4))])
case("matmul_1d_left", "MatMul", [inp("a", f32(5)), inp("b", f32(2, 5, 4))])
case("matmul_1d_right", "MatMul", [inp("a", f32(2, 3, 5)), inp("b", f32(5))])
case("matmul_1d_both", "MatMul", [inp("a", f32(5)), inp("b", f32(5))])
case("matmul_long_k", "MatMul", [inp("a", f32(2, 300)), inp("b", f32(300, 3))])
case("matmul_f16", "MatMul", [inp("a", f16(2, 3, 8)), inp("b", f16(8, 4))])
case("matmul_empty_m", "MatMul", [inp("a", np.zeros((1, 0, 5), np.float32)), inp("b", f32(5, 3))])

# ---------------------------------------------------------------- NonZero
case("nonzero_f32", "NonZero", [inp("x", np.array([[0.0, 1.5, 0.0], [-2.0, 0.0, 3.0]], np.float32))])
case("nonzero_none", "NonZero", [inp("x", np.zeros((2, 3), np.float32))])
case("nonzero_bool_3d", "NonZero", [inp("x", boolean(2, 2, 3))])
case("nonzero_i64_1d", "NonZero", [inp("x", ints([0, 4, 0, -1, 7]))])

# ---------------------------------------------------------------- Range
case("range_i64", "Range", [inp("start", np.int64(2)), inp("limit", np.int64(9)), inp("delta", np.int64(3))])
case("range_i64_neg_delta", "Range", [inp("start", np.int64(5)), inp("limit", np.int64(-2)), inp("delta", np.int64(-2))])
case("range_i64_empty", "Range", [inp("start", np.int64(5)), inp("limit", np.int64(5)), inp("delta", np.int64(1))])
case("range_i64_empty_wrong_dir", "Range", [inp("start", np.int64(5)), inp("limit", np.int64(1)), inp("delta", np.int64(1))])
case("range_f32", "Range", [inp("start", np.float32(0.5)), inp("limit", np.float32(3.1)), inp("delta", np.float32(0.7))])
case("range_f32_neg_delta", "Range", [inp("start", np.float32(1.0)), inp("limit", np.float32(-1.0)), inp("delta", np.float32(-0.5))])
case("range_i64_const", "Range", [const("start", np.int64(0)), inp("limit", np.int64(4)), const("delta", np.int64(1))])

# ---------------------------------------------------------------- reductions
x_red = f32(2, 3, 4)
case("reducemean_opset13_attr_axes", "ReduceMean", [inp("x", x_red)], attrs=dict(axes=[-1]), opset=13)
case("reducemean_opset13_keepdims0", "ReduceMean", [inp("x", x_red)], attrs=dict(axes=[0, 2], keepdims=0), opset=13)
case("reducemean_opset13_all", "ReduceMean", [inp("x", x_red)], opset=13)
case("reducemean_opset18_input_axes", "ReduceMean", [inp("x", x_red), const("axes", ints([-1]))], opset=18)
case("reducemean_opset18_dyn_axes", "ReduceMean", [inp("x", x_red), inp("axes", ints([1]))], attrs=dict(keepdims=0), opset=18)
case("reducemean_opset18_no_axes_all", "ReduceMean", [inp("x", x_red)], attrs=dict(keepdims=0), opset=18)
case("reducemean_opset18_noop_empty", "ReduceMean", [inp("x", x_red)], attrs=dict(noop_with_empty_axes=1), opset=18)
case("reducesum_opset13_input_axes", "ReduceSum", [inp("x", x_red), const("axes", ints([-2, 0]))], opset=13)
case("reducesum_keepdims0", "ReduceSum", [inp("x", x_red), const("axes", ints([1]))], attrs=dict(keepdims=0), opset=13)
case("reducesum_i64", "ReduceSum", [inp("x", i64(3, 4)), const("axes", ints([0]))], opset=13)
case("reducesum_noop_empty_axes", "ReduceSum", [inp("x", x_red), const("axes", np.zeros((0,), np.int64))], attrs=dict(noop_with_empty_axes=1), opset=13)
case("reducesum_empty_axes_all", "ReduceSum", [inp("x", x_red), const("axes", np.zeros((0,), np.int64))], opset=13)
case("reducemax_opset13_attr", "ReduceMax", [inp("x", x_red)], attrs=dict(axes=[1], keepdims=0), opset=13)
case("reducemax_opset18_input", "ReduceMax", [inp("x", x_red), const("axes", ints([-1]))], opset=18)
case("reducemax_i64_all", "ReduceMax", [inp("x", i64(3, 4))], attrs=dict(keepdims=0), opset=18)
case("reducemin_opset18", "ReduceMin", [inp("x", x_red), const("axes", ints([0]))], opset=18)
case("reduceprod_opset18", "ReduceProd", [inp("x", f32(2, 3, lo=0.5, hi=1.5)), const("axes", ints([1]))], attrs=dict(keepdims=0), opset=18)

# ---------------------------------------------------------------- Reshape
case("reshape_copy_zero_and_infer", "Reshape", [inp("x", f32(2, 3, 4)), const("shape", ints([0, -1]))])
case("reshape_dyn_shape", "Reshape", [inp("x", f32(2, 3, 4)), inp("shape", ints([4, 1, -1, 2]))])
case("reshape_to_scalar", "Reshape", [inp("x", f32(1, 1)), const("shape", np.zeros((0,), np.int64))])
case("reshape_allowzero", "Reshape", [inp("x", np.zeros((0, 3), np.float32)), const("shape", ints([3, 0]))], attrs=dict(allowzero=1), opset=14)
case("reshape_i64", "Reshape", [inp("x", i64(6)), const("shape", ints([3, -1]))])

# ---------------------------------------------------------------- ScatterND
case("scatternd_none", "ScatterND", [inp("x", f32(4, 3)), inp("i", ints([[1], [3]])), inp("u", f32(2, 3))], opset=13)
case("scatternd_elements", "ScatterND", [inp("x", f32(2, 3, 2)), inp("i", ints([[0, 2, 1], [1, 0, 0]])), inp("u", f32(2))], attrs=dict(reduction="none"), opset=16)
case("scatternd_add_dup", "ScatterND", [inp("x", f32(4, 3)), inp("i", ints([[1], [1], [-1]])), inp("u", f32(3, 3))], attrs=dict(reduction="add"), opset=16)
case("scatternd_i64", "ScatterND", [inp("x", i64(5)), inp("i", ints([[4], [0]])), inp("u", ints([100, -100]))], opset=13)

# ---------------------------------------------------------------- Shape
x_sh = f32(2, 3, 4, 5)
case("shape_default", "Shape", [inp("x", x_sh)], opset=15)
case("shape_start1", "Shape", [inp("x", x_sh)], attrs=dict(start=1), opset=15)
case("shape_end_neg1", "Shape", [inp("x", x_sh)], attrs=dict(end=-1), opset=15)
case("shape_start_neg2", "Shape", [inp("x", x_sh)], attrs=dict(start=-2), opset=15)
case("shape_clamped_end", "Shape", [inp("x", x_sh)], attrs=dict(start=1, end=10), opset=15)
case("shape_scalar", "Shape", [inp("x", np.float32(3.0))], opset=15)

# ---------------------------------------------------------------- Slice
x_sl = f32(4, 6)
case("slice_basic", "Slice", [inp("x", x_sl), const("s", ints([1, 2])), const("e", ints([3, 5])), const("a", ints([0, 1]))])
case("slice_negative", "Slice", [inp("x", x_sl), const("s", ints([-3])), const("e", ints([-1])), const("a", ints([1]))])
case("slice_int64_max_end", "Slice", [inp("x", x_sl), const("s", ints([2])), const("e", ints([I64_MAX])), const("a", ints([-1]))])
case("slice_step_neg1_reverse", "Slice", [inp("x", x_sl), const("s", ints([-1])), const("e", ints([I64_MIN])), const("a", ints([1])), const("st", ints([-1]))])
case("slice_step2", "Slice", [inp("x", x_sl), const("s", ints([0, 1])), const("e", ints([4, 6])), const("a", ints([0, 1])), const("st", ints([3, 2]))])
case("slice_omitted_axes", "Slice", [inp("x", x_sl), const("s", ints([1, 1])), const("e", ints([100, -1]))])
case("slice_step_neg2", "Slice", [inp("x", x_sl), const("s", ints([4])), const("e", ints([0])), const("a", ints([1])), const("st", ints([-2]))])
case("slice_empty_result", "Slice", [inp("x", x_sl), const("s", ints([3])), const("e", ints([1])), const("a", ints([0]))])
case("slice_dynamic_inputs", "Slice", [inp("x", f32(2, 3, 4)), inp("s", ints([0, -2])), inp("e", ints([1, I64_MAX])), inp("a", ints([0, 2]))])
case("slice_i64_data", "Slice", [inp("x", ints([1, 7, 32, 8])), const("s", ints([-2])), const("e", ints([I64_MAX])), const("a", ints([0]))])

# ---------------------------------------------------------------- Softmax
case("softmax_axis_last", "Softmax", [inp("x", f32(2, 3, 5))], attrs=dict(axis=-1))
case("softmax_axis1", "Softmax", [inp("x", f32(2, 3, 5))], attrs=dict(axis=1))
case("softmax_large_values", "Softmax", [inp("x", np.array([[1000.0, 999.0, -1000.0], [-50.0, -50.0, -50.0]], np.float32))])
case("softmax_f16", "Softmax", [inp("x", f16(2, 6, lo=-4, hi=4))])

# ---------------------------------------------------------------- Split
x_sp = f32(2, 7)
case("split_opset11_attr", "Split", [inp("x", x_sp)], outputs=["y0", "y1"], attrs=dict(axis=1, split=[3, 4]), opset=11)
case("split_opset13_input", "Split", [inp("x", x_sp), const("split", ints([2, 0, 5]))], outputs=["y0", "y1", "y2"], attrs=dict(axis=-1), opset=13)
case("split_opset13_equal", "Split", [inp("x", f32(6, 2))], outputs=["y0", "y1", "y2"], opset=13)
case("split_opset18_num_outputs_uneven", "Split", [inp("x", x_sp)], outputs=["y0", "y1", "y2"], attrs=dict(axis=1, num_outputs=3), opset=18)
case("split_i64", "Split", [inp("x", i64(4, 3))], outputs=["y0", "y1"], attrs=dict(axis=0), opset=13)

# ---------------------------------------------------------------- Squeeze / Unsqueeze
case("squeeze_opset11_attr", "Squeeze", [inp("x", f32(1, 3, 1, 2))], attrs=dict(axes=[0, -2]), opset=11)
case("squeeze_opset13_input", "Squeeze", [inp("x", f32(1, 3, 1, 2)), const("axes", ints([2]))], opset=13)
case("squeeze_opset13_all", "Squeeze", [inp("x", f32(1, 3, 1, 2))], opset=13)
case("squeeze_neg_axes", "Squeeze", [inp("x", i64(2, 1, 1)), const("axes", ints([-1, -2]))], opset=13)
case("unsqueeze_opset11_attr", "Unsqueeze", [inp("x", f32(3, 2))], attrs=dict(axes=[0, 3]), opset=11)
case("unsqueeze_opset13_input", "Unsqueeze", [inp("x", f32(3, 2)), const("axes", ints([1]))], opset=13)
case("unsqueeze_neg_axes", "Unsqueeze", [inp("x", f32(3, 2)), const("axes", ints([-1, 0]))], opset=13)
case("unsqueeze_scalar", "Unsqueeze", [inp("x", np.int64(7)), const("axes", ints([0]))], opset=13)

# ---------------------------------------------------------------- Tile / Transpose / Trilu
case("tile_2d", "Tile", [inp("x", f32(2, 3)), inp("r", ints([2, 3]))])
case("tile_ones", "Tile", [inp("x", i64(2, 1, 3)), const("r", ints([1, 4, 1]))])
case("transpose_perm", "Transpose", [inp("x", f32(2, 3, 4, 5))], attrs=dict(perm=[0, 2, 1, 3]))
case("transpose_default", "Transpose", [inp("x", f32(2, 3, 4))])
case("transpose_i64_2d", "Transpose", [inp("x", i64(3, 5))], attrs=dict(perm=[1, 0]))
case("trilu_upper", "Trilu", [inp("x", f32(4, 4))])
case("trilu_lower", "Trilu", [inp("x", f32(4, 4))], attrs=dict(upper=0))
case("trilu_upper_k1_nonsquare", "Trilu", [inp("x", f32(3, 5)), const("k", np.int64(1))])
case("trilu_lower_kneg1_nonsquare", "Trilu", [inp("x", f32(5, 3)), const("k", np.int64(-1))], attrs=dict(upper=0))
case("trilu_upper_kneg2_batched", "Trilu", [inp("x", f32(2, 4, 3)), inp("k", np.int64(-2))])
case("trilu_lower_k_large", "Trilu", [inp("x", i64(3, 4)), const("k", np.int64(10))], attrs=dict(upper=0))

# ---------------------------------------------------------------- normalizations
case("layernorm_last_axis", "LayerNormalization", [inp("x", f32(2, 3, 8)), const("g", f32(8)), const("b", f32(8))], attrs=dict(epsilon=1e-5))
case("layernorm_no_bias", "LayerNormalization", [inp("x", f32(3, 8)), const("g", f32(8))], attrs=dict(axis=-1, epsilon=1e-6))
case("layernorm_axis_neg2", "LayerNormalization", [inp("x", f32(2, 3, 4)), const("g", f32(3, 4)), const("b", f32(3, 4))], attrs=dict(axis=-2))
case("layernorm_offset_input", "LayerNormalization", [inp("x", f32(2, 16, lo=90, hi=110)), inp("g", f32(16)), inp("b", f32(16))])
case("layernorm_f16", "LayerNormalization", [inp("x", f16(2, 8)), const("g", f16(8)), const("b", f16(8))])
case("simplifiedlayernorm", "SimplifiedLayerNormalization", [inp("x", f32(2, 3, 8)), const("g", f32(8))], attrs=dict(axis=-1, epsilon=1e-5, stash_type=1))
case("simplifiedlayernorm_f16", "SimplifiedLayerNormalization", [inp("x", f16(2, 8)), const("g", f16(8))], attrs=dict(axis=-1, epsilon=1e-5))
MS = "com.microsoft"
case(
    "skipsimplifiedlayernorm",
    "SkipSimplifiedLayerNormalization",
    [inp("x", f32(2, 3, 8)), inp("skip", f32(2, 3, 8)), const("g", f32(8))],
    outputs=["y", "", "", "sum"],
    attrs=dict(epsilon=1e-5),
    domain=MS,
)
case(
    "skipsimplifiedlayernorm_bias",
    "SkipSimplifiedLayerNormalization",
    [inp("x", f32(2, 8)), inp("skip", f32(2, 8)), const("g", f32(8)), const("bias", f32(8))],
    outputs=["y", "", "", "sum"],
    attrs=dict(epsilon=1e-6),
    domain=MS,
)
case(
    "skipsimplifiedlayernorm_out_only",
    "SkipSimplifiedLayerNormalization",
    [inp("x", f32(1, 4, 16)), inp("skip", f32(1, 4, 16)), const("g", f32(16))],
    attrs=dict(epsilon=1e-5),
    domain=MS,
)

# ---------------------------------------------------------------- RotaryEmbedding
def rope_cache(max_pos, half):
    inv = 1.0 / (10000.0 ** (np.arange(half, dtype=np.float64) / half))
    ang = np.arange(max_pos, dtype=np.float64)[:, None] * inv[None, :]
    return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)


cos8, sin8 = rope_cache(16, 4)  # head_dim 8
for inter in (0, 1):
    case(
        f"rotary_3d_interleaved{inter}",
        "RotaryEmbedding",
        [inp("x", f32(2, 3, 2 * 8)), inp("pos", ints([[0, 1, 2], [5, 9, 15]])), const("cos", cos8), const("sin", sin8)],
        attrs=dict(interleaved=inter, num_heads=2),
        domain=MS,
    )
    case(
        f"rotary_4d_interleaved{inter}",
        "RotaryEmbedding",
        [inp("x", f32(1, 2, 3, 8)), inp("pos", ints([[3, 4, 5]])), const("cos", cos8), const("sin", sin8)],
        attrs=dict(interleaved=inter),
        domain=MS,
    )
case(
    "rotary_3d_num_heads0",
    "RotaryEmbedding",
    [inp("x", f32(1, 2, 2 * 8)), inp("pos", ints([[6, 7]])), const("cos", cos8), const("sin", sin8)],
    attrs=dict(interleaved=0, num_heads=0, rotary_embedding_dim=0),
    domain=MS,
    note="as in the decoder: head size inferred from the cache width",
)
case(
    "rotary_partial_dim",
    "RotaryEmbedding",
    [inp("x", f32(1, 2, 2 * 8)), inp("pos", ints([[0, 4]])), const("cos", rope_cache(16, 2)[0]), const("sin", rope_cache(16, 2)[1])],
    attrs=dict(interleaved=0, num_heads=2, rotary_embedding_dim=4),
    domain=MS,
)
case(
    "rotary_scalar_pos_offset",
    "RotaryEmbedding",
    [inp("x", f32(1, 3, 2 * 8)), inp("pos", ints([2])), const("cos", cos8), const("sin", sin8)],
    attrs=dict(num_heads=2),
    domain=MS,
)

# ---------------------------------------------------------------- MultiHeadAttention
N, H = 2, 4  # heads, head size
D = N * H


def attn(name, q, k, v, bias=None, kpm=None, attn_bias=None, past_k=None, past_v=None, outputs=("y",), **attrs):
    ins = [inp("q", q), inp("k", k), inp("v", v)]
    opt = [("bias", bias), ("key_padding_mask", kpm), ("attention_bias", attn_bias), ("past_key", past_k), ("past_value", past_v)]
    last = max([i for i, (_, a) in enumerate(opt) if a is not None], default=-1)
    for i in range(last + 1):
        nm, a = opt[i]
        ins.append(None if a is None else inp(nm, a))
    case(name, "MultiHeadAttention", ins, outputs=outputs, attrs=dict(num_heads=N, **attrs), domain=MS)


attn("mha_basic", f32(2, 3, D), f32(2, 5, D), f32(2, 5, D))
attn("mha_scale", f32(1, 3, D), f32(1, 3, D), f32(1, 3, D), scale=0.125)
attn(
    "mha_attention_bias",
    f32(2, 3, D),
    f32(2, 4, D),
    f32(2, 4, D),
    attn_bias=np.where(boolean(1, 1, 3, 4), 0.0, -10000.0).astype(np.float32),
)
attn("mha_attention_bias_full", f32(2, 3, D), f32(2, 4, D), f32(2, 4, D), attn_bias=f32(2, N, 3, 4))
past_bias = np.zeros((1, 1, 2, 5), np.float32)
past_bias[..., 4] = np.finfo(np.float32).min  # masks the last key, as the decoder's mask does
attn(
    "mha_past_present",
    f32(1, 2, D),
    f32(1, 2, D),
    f32(1, 2, D),
    attn_bias=past_bias,
    past_k=f32(1, N, 3, H),
    past_v=f32(1, N, 3, H),
    outputs=("y", "present_key", "present_value"),
)
attn(
    "mha_decode_step",
    f32(2, 1, D),
    f32(2, 1, D),
    f32(2, 1, D),
    attn_bias=np.zeros((2, 1, 1, 5), np.float32),
    past_k=f32(2, N, 4, H),
    past_v=f32(2, N, 4, H),
    outputs=("y", "present_key", "present_value"),
)
causal = np.triu(np.full((3, 3), -1e9, np.float32), 1)[None, None]
attn("mha_causal_bias", f32(1, 3, D), f32(1, 3, D), f32(1, 3, D), attn_bias=causal)
attn("mha_unidirectional", f32(1, 3, D), f32(1, 3, D), f32(1, 3, D), unidirectional=1)
attn("mha_key_padding_mask", f32(2, 3, D), f32(2, 4, D), f32(2, 4, D), kpm=np.array([[1, 1, 1, 0], [1, 1, 0, 0]], np.int32))
attn("mha_bnsh_kv", f32(1, 3, D), f32(1, N, 4, H), f32(1, N, 4, H))
attn("mha_mask_filter_value", f32(1, 2, D), f32(1, 3, D), f32(1, 3, D), kpm=np.array([[1, 0, 1]], np.int32), mask_filter_value=-1000.0)


# ---------------------------------------------------------------- f16 variants
# The fp16 decoder runs these ops on f16 tensors.
case("concat_f16_past", "Concat", [inp("past", f16(1, 2, 3, 4)), inp("new", f16(1, 2, 1, 4))], attrs=dict(axis=-2))
case("transpose_f16", "Transpose", [inp("x", f16(1, 3, 2, 4))], attrs=dict(perm=[0, 2, 1, 3]))
case("reshape_f16", "Reshape", [inp("x", f16(2, 6)), const("shape", ints([0, 2, -1]))])
case("where_f16", "Where", [inp("c", boolean(2, 3)), inp("x", f16(2, 3)), inp("other", np.float16(-1.0))])
case("gather_f16", "Gather", [const("table", f16(10, 4)), inp("ids", ints([[1, 9, 0]]))])
case("slice_f16", "Slice", [inp("x", f16(3, 8)), const("s", ints([4])), const("e", ints([I64_MAX])), const("a", ints([-1]))])
case("expand_f16", "Expand", [inp("x", f16(1, 1, 3)), const("shape", ints([2, 2, 1]))])
case(
    "skipsimplifiedlayernorm_f16",
    "SkipSimplifiedLayerNormalization",
    [inp("x", f16(1, 3, 16)), inp("skip", f16(1, 3, 16)), const("g", f16(16))],
    outputs=["y", "", "", "sum"],
    attrs=dict(epsilon=1e-5),
    domain=MS,
)
case(
    "rotary_3d_f16",
    "RotaryEmbedding",
    [inp("x", f16(1, 3, 2 * 8)), inp("pos", ints([[0, 1, 2]])), const("cos", cos8.astype(np.float16)), const("sin", sin8.astype(np.float16))],
    attrs=dict(interleaved=0, num_heads=0, rotary_embedding_dim=0),
    domain=MS,
)
attn(
    "mha_f16_attention_bias",
    f16(1, 3, D),
    f16(1, 3, D),
    f16(1, 3, D),
    attn_bias=np.triu(np.full((3, 3), -10000.0, np.float16), 1)[None, None],
)

# ---------------------------------------------------------------- symbolic dims
# Graph inputs declared with named dims (as in the real models); outputs are
# declared without a shape, so cellm must bind the dims from the inputs.
case("add_sym_batch", "Add", [inp("a", f32(3, 4)), inp("b", f32(4))], sym=dict(a=["batch", 4]))
case("matmul_sym_seq", "MatMul", [inp("a", f32(1, 5, 8)), const("w", f32(8, 3))], sym=dict(a=["batch", "seq", 8]))
case(
    "concat_sym_past",
    "Concat",
    [inp("past", f32(1, 2, 3, 4)), inp("new", f32(1, 2, 2, 4))],
    attrs=dict(axis=2),
    sym=dict(past=["batch", 2, "past_seq", 4], new=["batch", 2, "seq", 4]),
)
case("reshape_sym", "Reshape", [inp("x", f32(2, 3, 4)), const("shape", ints([0, 0, 2, 2]))], sym=dict(x=["batch", "seq", 4]))
case(
    "mha_sym_seq",
    "MultiHeadAttention",
    [inp("q", f32(1, 3, D)), inp("k", f32(1, 3, D)), inp("v", f32(1, 3, D))],
    attrs=dict(num_heads=N),
    domain=MS,
    sym=dict(q=["batch", "seq", D], k=["batch", "seq", D], v=["batch", "seq", D]),
)


# ---------------------------------------------------------------- driver
def tol_class(arrays):
    kinds = {a.dtype for a in arrays}
    if any(k == np.float16 for k in kinds):
        return "f16"
    if any(k in (np.float32, np.float64) for k in kinds):
        return "f32"
    return "exact"


def build(name, spec, out_types=None):
    graph_inputs, inits, node_inputs = [], [], []
    for item in spec["inputs"]:
        if item is None:
            node_inputs.append("")
            continue
        kind, nm, arr = item
        node_inputs.append(nm)
        if kind == "const":
            inits.append(numpy_helper.from_array(arr, nm))
        else:
            elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
            shape = spec["sym"].get(nm, list(arr.shape))
            assert len(shape) == arr.ndim, f"{name}: symbolic shape of {nm} has the wrong rank"
            graph_inputs.append(helper.make_tensor_value_info(nm, elem, shape))
    # Trailing omitted inputs are dropped (ONNX allows either form).
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()
    node = helper.make_node(
        spec["op"], node_inputs, spec["outputs"], name=f"{name}_node", domain=spec["domain"], **spec["attrs"]
    )
    outs = []
    for o in spec["outputs"]:
        if not o:
            continue
        if out_types is None:
            outs.append(onnx.ValueInfoProto(name=o))
        else:
            arr = out_types[o]
            shape = None if spec["sym"] else list(arr.shape)
            outs.append(helper.make_tensor_value_info(o, helper.np_dtype_to_tensor_dtype(arr.dtype), shape))
    g = helper.make_graph([node], name, graph_inputs, outs, initializer=inits)
    opsets = [helper.make_opsetid("", spec["opset"] or 17)]
    if spec["domain"] == MS:
        opsets.append(helper.make_opsetid(MS, 1))
    m = helper.make_model(g, opset_imports=opsets, producer_name="cellm make_conformance.py")
    m.ir_version = 8
    return m


def run_ort(model, feeds):
    so = ort.SessionOptions()
    # A single kernel, no rewrites: the golden is the op's own CPU kernel.
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def main():
    if ROOT.exists():
        shutil.rmtree(ROOT)
    ROOT.mkdir(parents=True)
    manifest, dropped = [], []
    for name, spec in CASES:
        feeds = {nm: arr for kind, nm, arr in (i for i in spec["inputs"] if i) if kind == "input"}
        try:
            outs = run_ort(build(name, spec), feeds)
            model = build(name, spec, outs)  # now with typed, shaped outputs
            again = run_ort(model, feeds)
            for o in outs:
                np.testing.assert_array_equal(outs[o], again[o])
        except Exception as e:  # onnxruntime rejects the case: leave it out
            dropped.append((name, str(e).strip().splitlines()[0][:200]))
            continue
        d = ROOT / name
        (d / "inputs").mkdir(parents=True)
        (d / "outputs").mkdir()
        onnx.save(model, d / "model.onnx")
        for nm, arr in feeds.items():
            np.save(d / "inputs" / f"{nm}.npy", arr)
        for nm, arr in outs.items():
            np.save(d / "outputs" / f"{nm}.npy", arr)
        entry = dict(
            case=name,
            op=spec["op"],
            domain=spec["domain"],
            opset=spec["opset"] or 17,
            tol_class=tol_class(outs.values()),
            inputs=sorted(feeds),
            outputs=[o for o in spec["outputs"] if o],
        )
        if spec["rel_tol"] is not None:
            entry["rel_tol"] = spec["rel_tol"]
        if spec["note"]:
            entry["note"] = spec["note"]
        manifest.append(entry)
    with open(ROOT / "manifest.json", "w") as f:
        json.dump(dict(onnxruntime=ort.__version__, onnx=onnx.__version__, cases=manifest), f, indent=1)
        f.write("\n")
    size = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    ops = sorted({e["op"] for e in manifest})
    print(f"wrote {len(manifest)} cases covering {len(ops)} ops, {size / 1e6:.2f} MB, to {ROOT}")
    if dropped:
        print(f"dropped {len(dropped)} cases that onnxruntime rejects:")
        for name, why in dropped:
            print(f"  {name}: {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Generates onnxruntime reference data for tests/ops_b.rs.

Each case is a single-node ONNX model run by onnxruntime (CPU). Inputs and outputs
are saved as .npy under ops_b/<case>/: in<i>.npy for node input i (omitted
optional inputs have no file) and out<j>.npy for node output j. The op attributes
of each case are repeated in ops_b.rs (keep the two in sync).

Run from this folder:  python3 make_ops_b.py   (needs numpy, onnx, onnxruntime)
"""
import os
import shutil

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "ops_b")
rng = np.random.default_rng(20240601)

ONNX_TYPE = {np.float32: TensorProto.FLOAT, np.int64: TensorProto.INT64, np.int32: TensorProto.INT32}


def run_case(name, op_type, domain, inputs, n_outputs, **attrs):
    """inputs: list of arrays or None (omitted optional input)."""
    in_names = [f"in{i}" if a is not None else "" for i, a in enumerate(inputs)]
    out_names = [f"out{j}" for j in range(n_outputs)]
    node = helper.make_node(op_type, in_names, out_names, domain=domain, **attrs)
    g_inputs = [
        helper.make_tensor_value_info(n, ONNX_TYPE[a.dtype.type], list(a.shape))
        for n, a in zip(in_names, inputs)
        if a is not None
    ]
    g_outputs = [helper.make_empty_tensor_value_info(n) for n in out_names]
    graph = helper.make_graph([node], name, g_inputs, g_outputs)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {n: a for n, a in zip(in_names, inputs) if a is not None}
    outs = sess.run(out_names, feeds)
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    for i, a in enumerate(inputs):
        if a is not None:
            np.save(os.path.join(d, f"in{i}.npy"), a)
    for j, o in enumerate(outs):
        np.save(os.path.join(d, f"out{j}.npy"), np.asarray(o))
    print(name, [tuple(np.shape(o)) for o in outs])


def f32(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)

    # --- MultiHeadAttention ---
    # With past and a per-(batch, head) attention_bias: B=2, S=3, L=3, P=2, H=2, D=4.
    B, S, L, P, H, D = 2, 3, 3, 2, 2, 4
    ab = f32(B, H, S, P + L)
    ab[0, 1, 2, 1] = -1e4  # a strongly masked key
    run_case("mha_past_bias", "MultiHeadAttention", "com.microsoft",
             [f32(B, S, H * D), f32(B, L, H * D), f32(B, L, H * D), None, None, ab,
              f32(B, H, P, D), f32(B, H, P, D)], 3, num_heads=H)
    # Causal + key padding mask [B, T] + qkv bias + broadcast attention_bias [1, 1, S, T], explicit scale.
    B, S, L, P, H, D = 2, 4, 4, 3, 3, 2
    T = P + L
    kpm = np.ones((B, T), np.int32)
    kpm[1, :2] = 0  # left padding in batch 1
    run_case("mha_causal_mask", "MultiHeadAttention", "com.microsoft",
             [f32(B, S, H * D), f32(B, L, H * D), f32(B, L, H * D), f32(3 * H * D), kpm, f32(1, 1, S, T),
              f32(B, H, P, D), f32(B, H, P, D)], 3, num_heads=H, unidirectional=1, scale=0.3,
             mask_filter_value=-5000.0)
    # Like the micro decoder: keys already concatenated and GQA-repeated, additive bias with float-min.
    B, S, H, D = 1, 5, 4, 8
    kv_heads = 2
    k = np.repeat(f32(B, S, kv_heads, 1, D), H // kv_heads, axis=3).reshape(B, S, H * D)
    v = np.repeat(f32(B, S, kv_heads, 1, D), H // kv_heads, axis=3).reshape(B, S, H * D)
    causal = np.triu(np.full((S, S), np.finfo(np.float32).min, np.float32), 1)
    ab = np.tile(causal[None, None], (B, H, 1, 1)).astype(np.float32)
    run_case("mha_decoder_like", "MultiHeadAttention", "com.microsoft",
             [f32(B, S, H * D), k, v, None, None, ab, None, None], 1, num_heads=H, scale=float(1 / np.sqrt(D)))
    # Key/value given as [B, H, L, D] (cross-attention layout).
    B, S, L, H, D = 2, 3, 5, 2, 4
    run_case("mha_bnsh_kv", "MultiHeadAttention", "com.microsoft",
             [f32(B, S, H * D), f32(B, H, L, D), f32(B, H, L, D)], 1, num_heads=H)

    # --- RotaryEmbedding ---
    max_pos, B, S, H, D = 16, 2, 3, 2, 8

    def caches(rot_dim):
        inv = 1.0 / (10000 ** (np.arange(0, rot_dim, 2) / rot_dim))
        ang = np.arange(max_pos)[:, None] * inv[None, :]
        return np.cos(ang).astype(np.float32), np.sin(ang).astype(np.float32)

    pos = rng.integers(0, max_pos, (B, S)).astype(np.int64)
    cos, sin = caches(D)
    run_case("rope_3d_halves", "RotaryEmbedding", "com.microsoft", [f32(B, S, H * D), pos, cos, sin], 1)
    run_case("rope_3d_interleaved", "RotaryEmbedding", "com.microsoft", [f32(B, S, H * D), pos, cos, sin], 1,
             interleaved=1)
    run_case("rope_4d_halves", "RotaryEmbedding", "com.microsoft", [f32(B, H, S, D), pos, cos, sin], 1)
    run_case("rope_4d_interleaved", "RotaryEmbedding", "com.microsoft", [f32(B, H, S, D), pos, cos, sin], 1,
             interleaved=1, num_heads=H)
    run_case("rope_offset_pos", "RotaryEmbedding", "com.microsoft",
             [f32(B, S, H * D), np.array([4], np.int64), cos, sin], 1)
    pcos, psin = caches(4)  # rotary_dim 4 of head size 8
    run_case("rope_partial_halves", "RotaryEmbedding", "com.microsoft", [f32(B, S, H * D), pos, pcos, psin], 1,
             num_heads=H, rotary_embedding_dim=4)
    run_case("rope_partial_interleaved", "RotaryEmbedding", "com.microsoft", [f32(B, S, H * D), pos, pcos, psin],
             1, num_heads=H, rotary_embedding_dim=4, interleaved=1)

    # --- (Skip)SimplifiedLayerNormalization ---
    run_case("sln_last_axis", "SimplifiedLayerNormalization", "", [f32(2, 3, 16, scale=3.0), f32(16)], 2,
             axis=-1, epsilon=1e-5)
    run_case("sln_axis1", "SimplifiedLayerNormalization", "", [f32(2, 3, 5), f32(3, 5)], 2, axis=1, epsilon=1e-3)
    run_case("skip_sln_bias", "SkipSimplifiedLayerNormalization", "com.microsoft",
             [f32(2, 3, 16), f32(2, 3, 16), f32(16), f32(16)], 4, epsilon=1e-5)
    run_case("skip_sln_nobias", "SkipSimplifiedLayerNormalization", "com.microsoft",
             [f32(2, 3, 16), f32(2, 3, 16), f32(16)], 4, epsilon=1e-6)


if __name__ == "__main__":
    main()

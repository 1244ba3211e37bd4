#!/usr/bin/env python3
"""Builds `unseenq/` here: a SmolVLM look-alike no test has seen, for issue #7's check.

Made by the shared fixtures' own tools (../shared/fixtures/tools/export.py and quantize.py:
transformers + torch.onnx + the onnxruntime-genai builder, then the transformers.js quantize
recipe), so it is made exactly as the fixtures are, with one size they do not have: text hidden
48 (MatMulNBits K = 48, not a multiple of block 32; down_proj K = 80), 6 heads / 2 KV heads /
head_dim 8, 3 layers; vision 48 wide, 4 heads (head_dim 12), ffn 112 (fc2 K = 112), 3 layers;
its own seed. Variants: fp32, fp16, quantized, int8, uint8, q4, q4f16, bnb4.

Usage (the fixtures' venv has torch, transformers, onnxruntime):
    ~/.cache/cellm-fixtures/venv/bin/python benches/quant_unseen/make_model.py
CELLM_FIXTURES overrides where the fixtures are (default: ../shared/fixtures beside the repo).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.environ.get("CELLM_FIXTURES", os.path.join(HERE, "..", "..", "..", "shared", "fixtures"))
sys.path.insert(0, os.path.join(FIXTURES, "tools"))

import export  # noqa: E402  (the fixtures' exporter)
import quantize  # noqa: E402  (the fixtures' quantizer)

export.SIZES["unseenq"] = dict(
    init_std=0.5,
    seed=48480048,
    text=dict(hidden_size=48, intermediate_size=80, num_hidden_layers=3,
              num_attention_heads=6, num_key_value_heads=2),
    vision=dict(hidden_size=48, intermediate_size=112, num_hidden_layers=3, num_attention_heads=4),
)
# quantize.py reads and writes <its folder>/<size>/onnx: point it here.
quantize.HERE = HERE

sys.argv = ["export.py", "--size", "unseenq", "--fp16", "--out", HERE]
export.main()
sys.argv = ["quantize.py", "--size", "unseenq"]
quantize.main()

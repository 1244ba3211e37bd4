"""PyTorch eager baseline for the GPU decoder benchmark: the SmolVLM-256M text
model (llama: hidden 576, 30 layers, 9 heads, 3 KV heads, vocab 49280) with
random weights, fed random embeddings like `cellm-run bench decoder`: for each
context length, prefill that many positions, then time single-token decode
steps with the KV cache. Prints one JSON line.

    python3 torch_decode.py --config config.json --ctx 64,512,2048 --steps 32 --dtype float32
"""
import argparse
import json
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("--config", required=True, help="model config.json (its text_config is used)")
ap.add_argument("--ctx", default="64,512,2048")
ap.add_argument("--steps", type=int, default=32)
ap.add_argument("--reps", type=int, default=3)
ap.add_argument("--dtype", default="float32")
a = ap.parse_args()

cfg = json.load(open(a.config))
cfg = cfg.get("text_config", cfg)
keys = ["hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
        "num_key_value_heads", "vocab_size", "rms_norm_eps", "rope_theta",
        "max_position_embeddings", "head_dim", "tie_word_embeddings"]
config = LlamaConfig(**{k: cfg[k] for k in keys if k in cfg})
config._attn_implementation = "eager"
dtype = getattr(torch, a.dtype)
dev = "cuda"
torch.manual_seed(0)
model = LlamaForCausalLM(config).to(dev, dtype).eval()
hidden = config.hidden_size


def sync():
    torch.cuda.synchronize()


cases = []
with torch.inference_mode():
    for ctx in [int(c) for c in a.ctx.split(",")]:
        prefill, steps = [], []
        for _ in range(a.reps + 1):  # the first rep warms up
            x = torch.randn(1, ctx, hidden, device=dev, dtype=dtype) * 0.5
            sync()
            t0 = time.perf_counter()
            out = model(inputs_embeds=x, use_cache=True)
            out.logits[:, -1].argmax(-1).item()
            sync()
            prefill.append(time.perf_counter() - t0)
            past = out.past_key_values
            row = torch.randn(1, 1, hidden, device=dev, dtype=dtype) * 0.5
            sync()
            t0 = time.perf_counter()
            for _ in range(a.steps):
                out = model(inputs_embeds=row, past_key_values=past, use_cache=True)
                past = out.past_key_values
                out.logits[:, -1].argmax(-1).item()  # the token goes back to the host, as in cellm
            sync()
            steps.append((time.perf_counter() - t0) / a.steps)
        p, s = statistics.median(prefill[1:]), statistics.median(steps[1:])
        cases.append({"ctx": ctx, "prefill_s": p, "prefill_tok_s": ctx / p,
                      "decode_s_per_token": s, "decode_tok_s": 1 / s})
        print(f"  torch ctx {ctx:>5}: prefill {p:.4f} s, decode {s*1e3:.2f} ms/token ({1/s:.1f} tok/s)", flush=True)
print(json.dumps({"bench": "decoder", "engine": f"pytorch {torch.__version__} eager {a.dtype}",
                  "device": torch.cuda.get_device_name(0), "cases": cases}))

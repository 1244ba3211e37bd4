#!/usr/bin/env python3
"""onnxruntime (CPU EP) reference runs for every variant of the unseenq look-alike.

Per variant V (fp32 and fp16 as baselines, then quantized, int8, uint8, q4, q4f16, bnb4), the
variant's own pipeline, as golden_variants.py does it: vision_encoder_V on 5 slots (slot 2 an
all-zero padding image, dropped by the graph) -> embed_tokens_V on a 330-token prompt with
4 x 64 <image> tokens -> image rows replaced by vision_V's features -> decoder_V prefill (empty
past, position ids 0..329) -> 3 greedy decode steps (argmax of the last logits row, embedded with
embed_tokens_V, present.* fed back as past_key_values.*). Every run's inputs are exactly what
onnxruntime saw, so cellm is compared op-for-op on the same data.

Writes runs/<run>/{inputs,expected}/*.npy + run.json ("precision" selects compare_q.py's
tolerance), runs/summary.json (greedy tokens per variant).
Usage: venv/bin/python check_q.py [--seed N] [--variants ...]
"""
import argparse
import json
import os
import shutil

import numpy as np
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "unseenq")
RUNS = os.path.join(HERE, os.environ.get("CELLM_RUNS", "runs"))  # CELLM_RUNS: another runs folder
IMAGE = 49190
PROMPT_LEN = 330
N_DECODE = 3
VARIANTS = ("fp32", "fp16", "quantized", "int8", "uint8", "q4", "q4f16", "bnb4")
PRECISION = {"fp32": "fp32", "fp16": "fp16"}  # everything else: "quant" (1e-3)


def sess(path, mem_reuse=True):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.enable_mem_reuse = mem_reuse
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def save_run(name, model, feeds, outs, precision, decoder_step=None):
    d = os.path.join(RUNS, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "inputs"))
    os.makedirs(os.path.join(d, "expected"))
    for k, v in feeds.items():
        np.save(os.path.join(d, "inputs", f"{k}.npy"), v)
    for k, v in outs.items():
        np.save(os.path.join(d, "expected", f"{k}.npy"), v)
    info = {"model": os.path.relpath(model, HERE), "precision": precision, "decoder_step": decoder_step,
            "inputs": {k: [str(v.dtype), list(v.shape)] for k, v in feeds.items()},
            "outputs": {k: [str(v.dtype), list(v.shape)] for k, v in outs.items()}}
    json.dump(info, open(os.path.join(d, "run.json"), "w"), indent=1)


def run_graph(s, feeds):
    names = [o.name for o in s.get_outputs()]
    return dict(zip(names, s.run(None, feeds)))


def make_pixels(rng):
    """[1, 5, 3, 512, 512] in [-1, 1]: smooth patterns plus noise, slot 2 all-zero padding."""
    y, x = np.mgrid[0:512, 0:512].astype(np.float32) / 511.0
    frames = []
    for i in range(5):
        if i == 2:
            frames.append(np.zeros((3, 512, 512), np.float32))
            continue
        f = rng.uniform(0.5, 4.0, size=3).astype(np.float32)
        ph = rng.uniform(0, 2 * np.pi, size=3).astype(np.float32)
        base = np.stack([np.sin(2 * np.pi * f[c] * (x + (c + 1) * y) + ph[c]) for c in range(3)])
        noise = rng.uniform(-1, 1, size=(3, 512, 512)).astype(np.float32)
        frames.append(np.clip(0.7 * base + 0.3 * noise, -1, 1).astype(np.float32))
    return np.stack(frames)[None]


def make_prompt(rng, n_images):
    """330 ids: SmolVLM layout (specials real), text ids random in [3, 49152), 64 <image> per frame."""
    ids = [1] + list(rng.integers(3, 49152, size=5))
    for _ in range(n_images):
        ids += [49189, 49152] + [IMAGE] * 64
    ids += [49189]
    rest = PROMPT_LEN - len(ids) - 4
    ids += list(rng.integers(3, 49152, size=rest)) + [49279, 198, 9519, 42]
    ids[-10] = 49153 + 7
    ids[-20] = 49191 + 5
    arr = np.array([ids], dtype=np.int64)
    assert arr.shape == (1, PROMPT_LEN) and (arr == IMAGE).sum() == 64 * n_images
    return arr


def input_dtype(s, name):
    t = {i.name: i.type for i in s.get_inputs()}[name]
    return np.float16 if t == "tensor(float16)" else np.float32


def decoder_chain(tag, path, embeds0, emb_sess, cfg, prec):
    tc = cfg["text_config"]
    n_layers, n_kv, hd = tc["num_hidden_layers"], tc["num_key_value_heads"], tc["head_dim"]
    for mem_reuse in (True, False):  # ORT 1.32 CPU buffer-reuse bug with fp16 graphs: retry without
        try:
            dec = sess(path, mem_reuse)
            dtype = input_dtype(dec, "inputs_embeds")
            L = embeds0.shape[1]
            embeds, mask = embeds0, np.ones((1, L), np.int64)
            pos = np.arange(L, dtype=np.int64)[None]
            past = {f"past_key_values.{i}.{kv}": np.zeros((1, n_kv, 0, hd), dtype)
                    for i in range(n_layers) for kv in ("key", "value")}
            tokens, runs = [], []
            for step in range(N_DECODE + 1):
                feeds = dict(inputs_embeds=embeds.astype(dtype), attention_mask=mask, position_ids=pos, **past)
                outs = run_graph(dec, feeds)
                runs.append((f"{tag}_step{step}", feeds, outs, step))
                tokens.append(int(outs["logits"][0, -1].astype(np.float32).argmax()))
                embeds = emb_sess.run(None, {"input_ids": np.array([[tokens[-1]]], np.int64)})[0]
                past = {k.replace("present", "past_key_values"): v for k, v in outs.items() if k.startswith("present")}
                mask = np.ones((1, L + step + 1), np.int64)
                pos = np.array([[L + step]], np.int64)
            for name, feeds, outs, step in runs:
                save_run(name, path, feeds, outs, prec, step)
            return tokens, mem_reuse
        except Exception as e:  # noqa: BLE001
            if not mem_reuse:
                raise
            print(f"{tag}: ORT failed with mem reuse ({str(e)[:200]}); retrying without")


def suffix(v):
    return "" if v == "fp32" else f"_{v}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=4848)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    cfg = json.load(open(os.path.join(MODEL, "config.json")))
    onnx_dir = os.path.join(MODEL, "onnx")
    os.makedirs(RUNS, exist_ok=True)
    spath = os.path.join(RUNS, "summary.json")
    summary = json.load(open(spath)) if os.path.exists(spath) else {}
    summary.update(seed=args.seed, onnxruntime=ort.__version__)
    pv = make_pixels(rng)
    pam = np.ones((1, 5, 512, 512), dtype=bool)
    ids = make_prompt(rng, 4)
    H = cfg["text_config"]["hidden_size"]
    for v in args.variants:
        prec = PRECISION.get(v, "quant")
        vpath = os.path.join(onnx_dir, f"vision_encoder{suffix(v)}.onnx")
        feeds = {"pixel_values": pv, "pixel_attention_mask": pam}
        outs = run_graph(sess(vpath), feeds)
        feats = outs["image_features"]
        assert feats.shape == (4, 64, H), feats.shape
        save_run(f"vision_{v}", vpath, feeds, outs, prec)
        epath = os.path.join(onnx_dir, f"embed_tokens{suffix(v)}.onnx")
        es = sess(epath)
        outs = run_graph(es, {"input_ids": ids})
        save_run(f"embed_{v}", epath, {"input_ids": ids}, outs, prec)
        embeds0 = outs["inputs_embeds"].astype(np.float32).copy()
        embeds0[ids == IMAGE] = feats.astype(np.float32).reshape(-1, H)
        dpath = os.path.join(onnx_dir, f"decoder_model_merged{suffix(v)}.onnx")
        tokens, mem_reuse = decoder_chain(f"dec_{v}", dpath, embeds0, es, cfg, prec)
        summary[f"tokens_{v}"] = tokens
        if not mem_reuse:
            summary[f"ort_mem_reuse_off_{v}"] = True
        print(v, tokens, flush=True)
    json.dump(summary, open(spath, "w"), indent=1)


if __name__ == "__main__":
    main()

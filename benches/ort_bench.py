#!/usr/bin/env python3
"""onnxruntime side of benches/run.py: the measurements of `cellm-run bench
decoder|vision` on the same ONNX files, with onnxruntime's CPU provider.

    python3 benches/ort_bench.py decoder MODEL_DIR --ctx 64,512,2048 --steps 16 --reps 3 --threads 2
    python3 benches/ort_bench.py vision MODEL_DIR --reps 3 --threads 2

decoder: per ctx, prefill `ctx` random embeddings (empty past), then `steps`
single-token steps, each feeding the previous step's present.* back as past;
prefill is timed alone, decode is the median step; --warmup untimed one-row
runs come first. vision: one random 512² frame per run, after --warmup untimed
images. Times are medians over --reps (decode: median over reps of each rep's
median step). Session creation is the
load time. Prints one human line per case and ends with one JSON object line.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("what", choices=["decoder", "vision"])
ap.add_argument("model", help="SmolVLM model folder (onnx/<graph>.onnx) or one .onnx file")
ap.add_argument("--ctx", default="64,512,2048")
ap.add_argument("--steps", type=int, default=16)
ap.add_argument("--reps", type=int, default=3, help="timed repetitions (0: only create the session)")
ap.add_argument("--warmup", type=int, default=1)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()


def graph_path(stem):
    if os.path.isdir(args.model):
        return os.path.join(args.model, "onnx", stem + ".onnx")
    return args.model


def session(path):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = args.threads
    so.inter_op_num_threads = 1
    t = time.perf_counter()
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return s, time.perf_counter() - t


NP = {"tensor(float)": np.float32, "tensor(float16)": np.float16}
rng = np.random.default_rng(args.seed)
med = statistics.median


def bench_decoder():
    path = graph_path("decoder_model_merged")
    sess, load_s = session(path)
    inputs = {i.name: i for i in sess.get_inputs()}
    emb_in = inputs["inputs_embeds"]
    hidden = emb_in.shape[-1]
    emb_dtype = NP[emb_in.type]
    kv_in = inputs["past_key_values.0.key"]
    kv_heads, head_dim, kv_dtype = kv_in.shape[1], kv_in.shape[3], NP[kv_in.type]
    layers = sum(1 for n in inputs if n.startswith("past_key_values.") and n.endswith(".key"))
    out_names = [o.name for o in sess.get_outputs()]
    print(f"onnxruntime {ort.__version__} decoder {path}: session in {load_s:.3f} s, {args.threads} threads")

    def run(embeds, past, past_len):
        n = embeds.shape[1]
        feeds = dict(
            inputs_embeds=embeds,
            attention_mask=np.ones((1, past_len + n), np.int64),
            position_ids=np.arange(past_len, past_len + n, dtype=np.int64)[None],
            **past,
        )
        outs = sess.run(None, feeds)
        present = {
            name.replace("present", "past_key_values"): v
            for name, v in zip(out_names, outs)
            if name.startswith("present")
        }
        return present

    empty = {
        f"past_key_values.{i}.{k}": np.zeros((1, kv_heads, 0, head_dim), kv_dtype)
        for i in range(layers)
        for k in ("key", "value")
    }
    cases = []
    # Untimed one-row runs: first-touch costs of the weights stay out of the first case.
    for _ in range(args.warmup if args.reps > 0 else 0):
        run((rng.uniform(-1, 1, (1, 1, hidden)) * 0.5).astype(emb_dtype), empty, 0)
    for ctx in ([int(c) for c in args.ctx.split(",")] if args.reps > 0 else []):
        prompt = (rng.uniform(-1, 1, (1, ctx, hidden)) * 0.5).astype(emb_dtype)
        row = (rng.uniform(-1, 1, (1, 1, hidden)) * 0.5).astype(emb_dtype)
        prefill, step_medians = [], []
        for rep in range(args.reps):
            t = time.perf_counter()
            past = run(prompt, empty, 0)
            p = time.perf_counter() - t
            steps = []
            for i in range(args.steps):
                t = time.perf_counter()
                past = run(row, past, ctx + i)
                steps.append(time.perf_counter() - t)
            prefill.append(p)
            step_medians.append(med(steps) if steps else 0.0)
        p, s = med(prefill), med(step_medians)
        case = dict(ctx=ctx, prefill_s=p, prefill_tok_s=ctx / p, decode_s_per_token=s,
                    decode_tok_s=1 / s if s > 0 else 0.0)
        print(f"  ctx {ctx:>5}: prefill {p:.4f} s ({ctx / p:.1f} tok/s), decode {s * 1e3:.2f} ms/token "
              f"({case['decode_tok_s']:.1f} tok/s)")
        cases.append(case)
    return dict(bench="decoder", model=path, load_s=load_s, steps=args.steps, hidden=hidden, cases=cases)


def bench_vision():
    path = graph_path("vision_encoder")
    sess, load_s = session(path)
    inputs = {i.name: i for i in sess.get_inputs()}
    pv_in = inputs["pixel_values"]
    side = pv_in.shape[-1] if isinstance(pv_in.shape[-1], int) else 512
    feeds = {"pixel_values": rng.uniform(-1, 1, (1, 1, 3, side, side)).astype(NP[pv_in.type])}
    if "pixel_attention_mask" in inputs:
        feeds["pixel_attention_mask"] = np.ones((1, 1, side, side), bool)
    print(f"onnxruntime {ort.__version__} vision {path}: session in {load_s:.3f} s, {args.threads} threads")
    times = []
    for rep in range(args.warmup + args.reps if args.reps > 0 else 0):
        t = time.perf_counter()
        sess.run(None, feeds)
        if rep >= args.warmup:
            times.append(time.perf_counter() - t)
    per = med(times) if times else 0.0
    if times:
        print(f"  one {side}x{side} image: {per:.4f} s (median of {len(times)})")
    return dict(bench="vision", model=path, load_s=load_s, image_side=side, s_per_image=per, times_s=times)


result = bench_decoder() if args.what == "decoder" else bench_vision()
result.update(engine="onnxruntime", version=ort.__version__, backend="cpu", threads=args.threads,
              reps=args.reps, warmup=args.warmup)
sys.stdout.flush()
print(json.dumps(result))

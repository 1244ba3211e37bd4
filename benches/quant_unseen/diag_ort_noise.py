#!/usr/bin/env python3
"""How far is onnxruntime from itself / from exact math on a run, next to cellm's distance?

For each RUN prints rel = max|a - b| / max(1, max|ort|) per output for:
  cellm_cpu, cellm_gpu   cellm-run exec outputs (runs/<run>/cellm_<backend>/) vs onnxruntime
  ort_noopt              onnxruntime with graph optimisations disabled vs onnxruntime (default)
  ort_ulp8               worst of 8 draws of +-1 ulp on a random half of the elements
  ort_ulp                onnxruntime fed the float inputs moved by 1 ulp (np.nextafter away from
                         zero, every non-zero element) vs onnxruntime on the exact inputs: the graph's own sensitivity
  ort_exact_int (int8 graphs only)   the same graph with every int8 weight (MatMulInteger /
                         ConvInteger B and its zero point) re-encoded as uint8 (+128, exactly the
                         same integers after zero-point subtraction), so onnxruntime takes its u8u8
                         path, which diag_int.py shows is exact; its u8s8 AVX2 path saturates
  ort_fp32 (fp16 graphs) the same graph with every float16 tensor / Cast / type made float32:
                         the same arithmetic without fp16 rounding
and the reference each cellm output is measured against in the last columns (cellm vs that
reference), so one sees whether cellm is closer to exact math than onnxruntime is.
Usage: venv/bin/python diag_ort_noise.py RUN [RUN ...]
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper, TensorProto

HERE = os.path.dirname(os.path.abspath(__file__))


def sess(model, opt=True):
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.enable_mem_reuse = False
    if not opt:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    src = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def run(s, feeds):
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def int8_to_uint8(m):
    inits = {t.name: t for t in m.graph.initializer}
    done = set()
    for n in m.graph.node:
        if n.op_type not in ("MatMulInteger", "ConvInteger") or len(n.input) < 2:
            continue
        for name in [n.input[1]] + ([n.input[3]] if len(n.input) > 3 and n.input[3] else []):
            t = inits.get(name)
            if t is None or t.data_type != TensorProto.INT8 or name in done:
                continue
            a = numpy_helper.to_array(t).astype(np.int16) + 128
            t.CopyFrom(numpy_helper.from_array(a.astype(np.uint8), name))
            done.add(name)
        if len(n.input) < 4 or not n.input[3]:  # implicit zero point 0 (int8) -> 128 (uint8)
            zp = n.name + "_u8zp"
            m.graph.initializer.append(numpy_helper.from_array(np.array(128, np.uint8), zp))
            while len(n.input) < 4:
                n.input.append("")
            n.input[3] = zp
    return m, len(done)


def fp16_to_fp32(m):
    def fix_tensor(t):
        if t.data_type == TensorProto.FLOAT16:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))

    def walk(g):
        for t in g.initializer:
            fix_tensor(t)
        for v in list(g.input) + list(g.output) + list(g.value_info):
            if v.type.tensor_type.elem_type == TensorProto.FLOAT16:
                v.type.tensor_type.elem_type = TensorProto.FLOAT
        for n in g.node:
            for a in n.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT16:
                    a.i = TensorProto.FLOAT
                if a.type == onnx.AttributeProto.TENSOR:
                    fix_tensor(a.t)
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
    walk(m.graph)
    return m


def rel(a, b):
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    return float(np.abs(a64 - b64).max()) / max(1.0, float(np.abs(b64).max())) if a.size else 0.0


def main():
    for name in sys.argv[1:]:
        d = os.path.join(HERE, os.environ.get("CELLM_RUNS", "runs"), name)
        info = json.load(open(os.path.join(d, "run.json")))
        mpath = os.path.join(HERE, info["model"])
        feeds = {k: np.load(os.path.join(d, "inputs", f"{k}.npy")) for k in info["inputs"]}
        exp = {k: np.load(os.path.join(d, "expected", f"{k}.npy")) for k in info["outputs"]}
        cols = {}
        for be in ("cpu", "gpu"):
            od = os.path.join(d, f"cellm_{be}")
            if os.path.isdir(od):
                cols[f"cellm_{be}"] = {k: np.load(os.path.join(od, f"{k}.npy")) for k in exp
                                       if os.path.exists(os.path.join(od, f"{k}.npy"))}
        cols["ort_noopt"] = run(sess(mpath, opt=False), feeds)
        # every non-zero element moved 1 ulp away from zero (zeros kept: all-zero padding images
        # are detected by the graph)
        pert = {k: (np.where(v != 0, np.nextafter(v, np.where(v < 0, -np.inf, np.inf).astype(v.dtype)), v).astype(v.dtype)
                    if v.dtype in (np.float32, np.float16) and k in ("pixel_values", "inputs_embeds") else v)
                for k, v in feeds.items()}
        s0 = sess(mpath)
        cols["ort_ulp"] = run(s0, pert)
        # ort_ulp8: 8 draws of +-1 ulp on a random half of the float inputs' non-zero elements
        # (seeded); per output the worst draw is kept
        rng = np.random.default_rng(8)
        worst = {}
        for _ in range(8):
            fe = {}
            for k, v in feeds.items():
                if v.dtype in (np.float32, np.float16) and k in ("pixel_values", "inputs_embeds"):
                    tgt = np.where(rng.random(v.shape) < 0.5, np.inf, -np.inf).astype(v.dtype)
                    sel = (v != 0) & (rng.random(v.shape) < 0.5)
                    fe[k] = np.where(sel, np.nextafter(v, tgt), v).astype(v.dtype)
                else:
                    fe[k] = v
            o = run(s0, fe)
            for k, v in o.items():
                if k not in worst or rel(v.astype(np.float32), exp[k].astype(np.float32)) > rel(worst[k].astype(np.float32), exp[k].astype(np.float32)):
                    worst[k] = v
        cols["ort_ulp8"] = worst
        ref_name, ref = None, None
        m = onnx.load(mpath)
        if "_int8" in mpath:
            m8, n = int8_to_uint8(m)
            ref_name, ref = "ort_exact_int", run(sess(m8), feeds)
        elif "fp16" in mpath or "q4f16" in mpath:
            f32 = {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in feeds.items()}
            ref_name, ref = "ort_fp32", run(sess(fp16_to_fp32(m)), f32)
        if ref is not None:
            cols[ref_name] = ref
        print(f"== {name} ({info['model']}); rel vs onnxruntime default:")
        keys = list(cols)
        hdr = f"  {'output':<18}" + "".join(f"{k:>14}" for k in keys)
        if ref is not None:
            hdr += "".join(f"{k + '~' + ref_name[4:]:>22}" for k in keys if k.startswith("cellm")) + f"{'ort~' + ref_name[4:]:>18}"
        print(hdr)
        for k in sorted(exp):
            line = f"  {k:<18}" + "".join(f"{rel(cols[c][k].astype(np.float32), exp[k].astype(np.float32)) if k in cols[c] else float('nan'):>14.2e}" for c in keys)
            if ref is not None:
                line += "".join(f"{rel(cols[c][k].astype(np.float32), ref[k].astype(np.float32)) if k in cols[c] else float('nan'):>22.2e}" for c in keys if c.startswith("cellm"))
                line += f"{rel(exp[k].astype(np.float32), ref[k].astype(np.float32)):>18.2e}"
            print(line)
        if info["decoder_step"] is not None:
            toks = {c: int(v["logits"][0, -1].astype(np.float32).argmax()) for c, v in cols.items() if "logits" in v}
            print(f"  greedy token: ort {int(exp['logits'][0, -1].astype(np.float32).argmax())}, " + ", ".join(f"{c} {t}" for c, t in toks.items()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Compare cellm-run exec outputs (runs/<run>/cellm/) with onnxruntime's (runs/<run>/expected/).

Per output tensor: same shape and dtype, all finite, and
  max|cellm - ort| <= tol * max(1, max|ort|),  tol = 1e-4 (fp32 graphs), 2e-2 (fp16 graphs)
("rel" below is max|d| / max(1, max|ort|)). Decoder steps additionally need the greedy token
(argmax of the last position's logits) to be identical. Exit status 1 if anything fails.
Usage: venv/bin/python compare_q.py [RUN ...]   (default: every run under runs/); CELLM_OUT=cellm_gpu compares runs/<run>/cellm_gpu instead
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, os.environ.get("CELLM_RUNS", "runs"))  # CELLM_RUNS: another runs folder
OUT = os.environ.get("CELLM_OUT", "cellm")
TOL = {"fp32": 1e-4, "fp16": 2e-2, "quant": 1e-3}


def compare_run(name):
    d = os.path.join(RUNS, name)
    info = json.load(open(os.path.join(d, "run.json")))
    tol = TOL[info["precision"]]
    res = {"run": name, "model": info["model"], "tol": tol, "ok": True, "outputs": {}, "errors": []}
    for out in sorted(info["outputs"]):
        exp = np.load(os.path.join(d, "expected", f"{out}.npy"))
        p = os.path.join(d, OUT, f"{out}.npy")
        if not os.path.exists(p):
            res["ok"] = False
            res["errors"].append(f"{out}: cellm wrote no output")
            continue
        got = np.load(p)
        r = {"shape": list(got.shape), "dtype": str(got.dtype)}
        if got.shape != exp.shape or got.dtype != exp.dtype:
            res["ok"] = False
            res["errors"].append(f"{out}: cellm {got.dtype}{list(got.shape)} vs ort {exp.dtype}{list(exp.shape)}")
            res["outputs"][out] = r
            continue
        e64, g64 = exp.astype(np.float64), got.astype(np.float64)
        finite = bool(np.isfinite(g64).all())
        diff = float(np.max(np.abs(g64 - e64))) if got.size else 0.0
        scale = max(1.0, float(np.max(np.abs(e64))) if got.size else 0.0)
        r.update(max_abs_diff=diff, max_abs_ort=scale, rel=diff / scale, finite=finite,
                 ok=finite and diff <= tol * scale)
        if not r["ok"]:
            res["ok"] = False
            if got.size:
                idx = np.unravel_index(int(np.argmax(np.abs(g64 - e64))), got.shape)
                r["worst_at"] = [int(i) for i in idx]
            res["errors"].append(f"{out}: max|d| {diff:.3g} > {tol:g} * {scale:.3g}" + ("" if finite else " (non-finite)"))
        res["outputs"][out] = r
    if info["decoder_step"] is not None and "logits" in res["outputs"] and "max_abs_diff" in res["outputs"]["logits"]:
        exp = np.load(os.path.join(d, "expected", "logits.npy")).astype(np.float32)
        got = np.load(os.path.join(d, OUT, "logits.npy")).astype(np.float32)
        t_ort, t_cellm = int(exp[0, -1].argmax()), int(got[0, -1].argmax())
        srt = np.sort(exp[0, -1])
        res["token_ort"], res["token_cellm"] = t_ort, t_cellm
        res["ort_top1_top2_margin"] = float(srt[-1] - srt[-2])
        res["token_ok"] = t_ort == t_cellm
        # every position of the prefill, for information
        res["argmax_mismatch_positions"] = int((exp[0].argmax(-1) != got[0].argmax(-1)).sum())
        if not res["token_ok"]:
            res["ok"] = False
            res["errors"].append(f"greedy token cellm {t_cellm} != ort {t_ort}")
    worst = [o for o in res["outputs"].values() if "rel" in o]
    res["worst_rel"] = max((o["rel"] for o in worst), default=None)
    return res


def main():
    names = sys.argv[1:] or sorted(n for n in os.listdir(RUNS) if os.path.isfile(os.path.join(RUNS, n, "run.json")))
    results = [compare_run(n) for n in names]
    json.dump(results, open(os.path.join(RUNS, f"compare_{OUT}.json"), "w"), indent=1)
    print(f"{'run':<16} {'tol':>6} {'worst rel':>10} {'worst output':<24} {'token ort/cellm':>16} result")
    for r in results:
        wo = max(((k, o["rel"]) for k, o in r["outputs"].items() if "rel" in o), key=lambda t: t[1], default=("-", None))
        tok = f"{r['token_ort']}/{r['token_cellm']}" if "token_ort" in r else ""
        wr = f"{r['worst_rel']:.2e}" if r["worst_rel"] is not None else "n/a"
        print(f"{r['run']:<16} {r['tol']:>6g} {wr:>10} {wo[0]:<24} {tok:>16} {'PASS' if r['ok'] else 'FAIL'}")
        for e in r["errors"]:
            print(f"    {e}")
    bad = [r["run"] for r in results if not r["ok"]]
    print(f"{len(results) - len(bad)}/{len(results)} runs pass" + (f"; failing: {', '.join(bad)}" if bad else ""))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Markdown table variant x graph x backend from runs/compare_cellm_{cpu,gpu}.json: worst rel
(max|cellm - ort| / max(1, max|ort|) over all outputs; decoder: over prefill + 3 decode steps) and
greedy-token agreement (decoder steps whose last-row argmax equals onnxruntime's).
Usage: venv/bin/python table_q.py   (CELLM_RUNS picks the runs folder)"""
import json, os
HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, os.environ.get("CELLM_RUNS", "runs"))
res = {}
for be in ("cpu", "gpu"):
    p = os.path.join(RUNS, f"compare_cellm_{be}.json")
    if os.path.exists(p):
        for r in json.load(open(p)):
            res[(r["run"], be)] = r
variants = ["q4", "q4f16", "int8", "uint8", "quantized", "bnb4", "fp32", "fp16"]
print("| variant | backend | vision rel | embed rel | decoder rel (4 steps) | greedy tokens = ORT | within tol |")
print("|---|---|---:|---:|---:|---:|---|")
for v in variants:
    for be in ("cpu", "gpu"):
        if (f"vision_{v}", be) not in res:
            continue
        vi, em = res[(f"vision_{v}", be)], res[(f"embed_{v}", be)]
        steps = [res[(f"dec_{v}_step{i}", be)] for i in range(4)]
        dec = max(s["worst_rel"] for s in steps)
        tok = sum(bool(s.get("token_ok")) for s in steps)
        bad = [r["run"].replace(f"_{v}", "") for r in [vi, em] + steps if not r["ok"]]
        tol = vi["tol"]
        print(f"| {v} | {be} | {vi['worst_rel']:.2e} | {em['worst_rel']:.2e} | {dec:.2e} | {tok}/4 | "
              f"{'yes' if not bad else 'no: ' + ', '.join(bad)} (tol {tol:g}) |")

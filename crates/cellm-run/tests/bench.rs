//! `cellm-run bench` on the micro fixtures: the JSON line is there, describes
//! the cases asked for, and its rates agree with its times. Timing values
//! themselves cannot be checked beyond being positive and finite.

mod common;

use common::{cellm_run, fixture};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// Seed of the synthetic inputs, from the clock (printed, to rerun a failure).
fn seed() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    eprintln!("seed {s}");
    s.to_string()
}

/// Runs the command and parses its last stdout line as JSON.
fn last_json(cmd: &mut Command) -> Value {
    let out = cmd.output().expect("run cellm-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "cellm-run bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("some stdout");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

fn positive(j: &Value, key: &str) -> f64 {
    let v = j[key]
        .as_f64()
        .unwrap_or_else(|| panic!("'{key}' missing or not a number in {j}"));
    assert!(v.is_finite() && v > 0.0, "'{key}' = {v} is not positive");
    v
}

/// `rate` must be `tokens / seconds` (both come from the same measurement).
fn consistent(j: &Value, tokens: f64, seconds: &str, rate: &str) {
    let (s, r) = (positive(j, seconds), positive(j, rate));
    // Only float rounding separates the two.
    assert!(
        (r * s / tokens - 1.0).abs() < 1e-9,
        "{rate} {r} != {tokens} / {seconds} {s}"
    );
}

#[test]
fn bench_decoder_micro_json() {
    let model = fixture("micro");
    let j = last_json(cellm_run().args([
        "bench",
        "decoder",
        model.to_str().expect("utf-8 path"),
        "--ctx",
        "8,3",
        "--steps",
        "2",
        "--reps",
        "2",
        "--backend",
        "cpu",
        "--seed",
        &seed(),
        "--json",
    ]));
    assert_eq!(j["bench"], "decoder");
    assert_eq!(j["engine"], "cellm");
    assert_eq!(j["backend"], "cpu");
    positive(&j, "threads");
    positive(&j, "load_s");
    // micro's text model: hidden 32.
    assert_eq!(j["hidden"], 32);
    let cases = j["cases"].as_array().expect("cases array");
    let ctx: Vec<u64> = cases.iter().filter_map(|c| c["ctx"].as_u64()).collect();
    assert_eq!(ctx, [8, 3], "one case per --ctx value, in order");
    for (c, n) in cases.iter().zip([8.0, 3.0]) {
        consistent(c, n, "prefill_s", "prefill_tok_s");
        consistent(c, 1.0, "decode_s_per_token", "decode_tok_s");
        assert!(c["gpu_dispatches_per_decode_step"].is_null(), "{c}");
    }
}

/// On the GPU each case reports the device's dispatch count for a decode
/// step, which is what `stats` promises (and null on the CPU).
#[test]
fn bench_decoder_gpu_reports_dispatches() {
    let model = fixture("micro");
    let mut cmd = cellm_run();
    cmd.args([
        "bench",
        "decoder",
        model.to_str().expect("utf-8 path"),
        "--ctx",
        "8",
        "--steps",
        "2",
        "--reps",
        "1",
        "--backend",
        "gpu",
        "--json",
    ]);
    let Some(out) = common::run_checked("bench decoder --backend gpu", &mut cmd) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let j: Value = serde_json::from_str(stdout.lines().last().expect("stdout")).expect("json");
    let stats =
        last_json(cellm_run().args(["stats", model.to_str().expect("utf-8 path"), "--json"]));
    let want = &stats["graphs"]["decoder_model_merged"]["dispatches_per_decode_step"];
    assert!(want.as_u64().is_some(), "{stats}");
    assert_eq!(&j["cases"][0]["gpu_dispatches_per_decode_step"], want);
}

#[test]
fn bench_vision_micro_json() {
    let model = fixture("micro");
    let j = last_json(cellm_run().args([
        "bench",
        "vision",
        model.to_str().expect("utf-8 path"),
        "--reps",
        "3",
        "--warmup",
        "0",
        "--backend",
        "cpu",
        "--seed",
        &seed(),
        "--json",
    ]));
    assert_eq!(j["bench"], "vision");
    // micro's vision_config.image_size.
    assert_eq!(j["image_side"], 512);
    positive(&j, "load_s");
    let per_image = positive(&j, "s_per_image");
    let times: Vec<f64> = j["times_s"]
        .as_array()
        .expect("times_s")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert_eq!(times.len(), 3, "one time per rep");
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    assert_eq!(per_image, sorted[1], "s_per_image is the median of times_s");
}

#[test]
fn bench_rejects_a_missing_model() {
    let out = cellm_run()
        .args(["bench", "decoder", "/nonexistent/cellm-model", "--json"])
        .output()
        .expect("run cellm-run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/cellm-model"), "{err}");
}

/// No .cellm file is committed under models/, so the test makes one with
/// `cellm-run convert` from micro's HF safetensors (its idefics3 text model is a
/// 2-layer llama) and benchmarks that.
#[test]
fn bench_llm_micro_cellm_json() {
    let src = fixture("micro").join("pytorch");
    assert!(
        src.join("model.safetensors").exists(),
        "fixture {} is missing",
        src.display()
    );
    let tmp = std::env::temp_dir().join(format!("cellm-bench-llm-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("temp dir");
    let cellm = tmp.join("micro-text.cellm");
    let conv = cellm_run()
        .args(["convert", path(&src), "-o", path(&cellm), "--dtype", "f32"])
        .output()
        .expect("run cellm-run convert");
    assert!(
        conv.status.success(),
        "convert failed:\n{}",
        String::from_utf8_lossy(&conv.stderr)
    );
    let j = last_json(cellm_run().args([
        "bench",
        "llm",
        path(&cellm),
        "--prompt-tokens",
        "7",
        "--steps",
        "3",
        "--reps",
        "2",
        "--backend",
        "cpu",
        "--seed",
        &seed(),
        "--json",
    ]));
    let _ = std::fs::remove_dir_all(&tmp);
    assert_eq!(j["bench"], "llm");
    assert_eq!(j["prompt_tokens"], 7);
    assert_eq!(j["steps"], 3);
    positive(&j, "load_s");
    consistent(&j, 7.0, "prefill_s", "prefill_tok_s");
    consistent(&j, 1.0, "decode_s_per_token", "decode_tok_s");
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

//! End to end through the CLI on the GPU backend: `cellm-run vlm --backend gpu
//! --temperature 0 --json` on the tiny look-alike must give the prompt ids,
//! the 24 greedy tokens and the text HF produced (models/e2e/tiny/<case>/), and
//! `cellm-run exec --backend gpu` on the micro decoder's step-0 inputs must
//! match `--backend cpu`.
//!
//! Like every GPU test this fails when no adapter is found, unless
//! CELLM_ALLOW_NO_GPU=1 (then it is skipped with a message). Run with
//! `NODEVICE_SELECT=1` to silence Mesa's device-select layer warning.

use cellm_ir::{npy, Tensor};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixture(rel: &str) -> PathBuf {
    let local = root().join("models").join(rel);
    if local.exists() {
        return local;
    }
    root().join("../shared/fixtures").join(rel)
}

fn ids(path: &Path) -> Vec<i64> {
    npy::read(path)
        .unwrap_or_else(|e| panic!("{e:#}"))
        .to_i64_vec()
        .expect("int ids")
}

/// Runs the command; `None` when it failed for lack of an adapter and
/// CELLM_ALLOW_NO_GPU=1 (skip), panics on any other failure.
fn run_gpu(what: &str, cmd: &mut Command) -> Option<Output> {
    let out = cmd.output().expect("run cellm-run");
    if out.status.success() {
        return Some(out);
    }
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("no GPU adapter") && std::env::var("CELLM_ALLOW_NO_GPU").as_deref() == Ok("1") {
        eprintln!("skipping {what} (CELLM_ALLOW_NO_GPU=1): {err}");
        return None;
    }
    panic!("{what}: cellm-run failed:\n{err}");
}

fn vlm_case(case: &str) {
    let dir = fixture(&format!("e2e/tiny/{case}"));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).expect("case.json"))
            .expect("json");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cellm-run"));
    cmd.arg("vlm")
        .arg("--model-dir")
        .arg(fixture("tiny"))
        .args(["--backend", "gpu", "--temperature", "0", "--json"]);
    for img in meta["images"].as_array().expect("images") {
        // Lossless PNG of PIL's JPEG decode, as in e2e.rs (JPEG decoders differ).
        let name = match img.as_str().expect("name") {
            "grace_hopper.jpg" => "grace_hopper_decoded.png",
            other => other,
        };
        cmd.arg("--image").arg(fixture(&format!("images/{name}")));
    }
    let split = meta["do_image_splitting"].as_bool().expect("split flag");
    cmd.arg(if split {
        "--split-image"
    } else {
        "--no-split-image"
    });
    cmd.args([
        "--max-new-tokens",
        &meta["generation"]["max_new_tokens"].to_string(),
    ]);
    cmd.args(["--prompt", meta["prompt_text"].as_str().expect("prompt")]);
    let Some(out) = run_gpu(case, &mut cmd) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("output");
    let got: Value = serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"));
    let as_ids = |v: &Value| {
        v.as_array()
            .expect("list")
            .iter()
            .map(|x| x.as_i64().expect("int"))
            .collect::<Vec<_>>()
    };
    let want_prompt = ids(&dir.join("prompt_ids.npy"));
    assert_eq!(
        as_ids(&got["prompt_ids"]),
        want_prompt,
        "{case}: prompt ids"
    );
    let want_gen = ids(&dir.join("generated_ids.npy"));
    assert_eq!(
        as_ids(&got["generated_ids"]),
        want_gen,
        "{case}: greedy tokens on the GPU differ from HF generate"
    );
    let want_text = std::fs::read_to_string(dir.join("text.txt")).expect("text.txt");
    assert_eq!(
        got["text"].as_str().expect("text"),
        want_text,
        "{case}: text"
    );
    println!(
        "tiny/{case} on the GPU: {} prompt tokens, {} tokens identical to HF; timings {}",
        want_prompt.len(),
        want_gen.len(),
        got["timings"]
    );
}

#[test]
fn e2e_gpu_tiny_coffee_split0() {
    vlm_case("coffee_split0");
}

#[test]
fn e2e_gpu_tiny_coffee_coins_split0() {
    vlm_case("coffee_coins_split0");
}

/// `exec --backend gpu` vs `exec --backend cpu` on the micro decoder's
/// step-0 inputs (empty past). Tolerance 1e-4·max(1, max|cpu|), the goldens'
/// fp32 bound: summation order differs between the backends.
#[test]
fn exec_gpu_matches_cpu_on_micro_decoder_step0() {
    let model = fixture("micro/onnx/decoder_model_merged.onnx");
    let graph = cellm_onnx::load(&model).unwrap_or_else(|e| panic!("{e:#}"));
    let tmp = std::env::temp_dir().join(format!("cellm-e2e-gpu-exec-{}", std::process::id()));
    let inputs = tmp.join("in");
    std::fs::create_dir_all(&inputs).expect("tmp");
    for &v in &graph.inputs {
        let name = graph.value_name(v);
        let dst = inputs.join(format!("{name}.npy"));
        let golden = fixture(&format!("micro/golden/step0_{name}.npy"));
        if golden.exists() {
            std::fs::copy(&golden, &dst).expect("copy input");
        } else {
            // past_key_values.*: empty at step 0, [1, kv_heads, 0, head_dim].
            let fact = graph.values[v].fact.as_ref().expect("input fact");
            let dims = fact.shape.as_ref().expect("input rank");
            let shape: Vec<usize> = dims
                .iter()
                .enumerate()
                .map(|(i, d)| if i == 2 { 0 } else { d.known().unwrap_or(1) })
                .collect();
            npy::write(&dst, &Tensor::zeros(fact.dtype, shape)).expect("write past");
        }
    }
    let run = |backend: &str| -> Option<PathBuf> {
        let out_dir = tmp.join(backend);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cellm-run"));
        cmd.arg("exec")
            .arg(&model)
            .arg("--inputs")
            .arg(&inputs)
            .arg("--outputs")
            .arg(&out_dir)
            .args(["--backend", backend]);
        run_gpu(&format!("exec --backend {backend}"), &mut cmd)?;
        Some(out_dir)
    };
    let cpu = run("cpu").expect("cpu backend always runs");
    let Some(gpu) = run("gpu") else {
        let _ = std::fs::remove_dir_all(&tmp);
        return;
    };
    let mut compared = 0;
    for &v in &graph.outputs {
        let name = graph.value_name(v);
        let want = npy::read(&cpu.join(format!("{name}.npy"))).expect("cpu output");
        let got = npy::read(&gpu.join(format!("{name}.npy"))).expect("gpu output");
        assert_eq!(got.shape(), want.shape(), "{name} shape");
        assert_eq!(got.dtype(), want.dtype(), "{name} dtype");
        let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
        let scale = w.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        let err = g
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs())
            .fold(
                0.0f64,
                |m, e| if e.is_nan() { f64::INFINITY } else { m.max(e) },
            );
        println!("{name}: max|gpu - cpu| = {err:.3e} (scale {scale:.2})");
        assert!(
            err <= 1e-4 * scale,
            "{name}: max|Δ| {err:.3e} > 1e-4·{scale:.2}"
        );
        compared += 1;
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(compared > 0, "no outputs compared");
}

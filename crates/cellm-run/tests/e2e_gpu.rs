//! End to end through the CLI on the GPU backend: `cellm-run vlm --backend gpu
//! --temperature 0 --json` on the tiny look-alike must give the prompt ids,
//! the 24 greedy tokens and the text HF produced (models/e2e/tiny/<case>/), and
//! `cellm-run exec --backend gpu` on the micro decoder's step-0 inputs must
//! match `--backend cpu`.
//!
//! Like every GPU test this fails when no adapter is found, unless
//! CELLM_ALLOW_NO_GPU=1 (then it is skipped with a message). Run with
//! `NODEVICE_SELECT=1` to silence Mesa's device-select layer warning.

mod common;

use cellm_ir::{npy, Tensor};
use common::{cellm_run, fixture, run_checked, vlm_case};
use std::path::PathBuf;

#[test]
fn e2e_gpu_tiny_coffee_split0() {
    vlm_case("tiny", "coffee_split0", "gpu");
}

#[test]
fn e2e_gpu_tiny_coffee_coins_split0() {
    vlm_case("tiny", "coffee_coins_split0", "gpu");
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
        let mut cmd = cellm_run();
        cmd.arg("exec")
            .arg(&model)
            .arg("--inputs")
            .arg(&inputs)
            .arg("--outputs")
            .arg(&out_dir)
            .args(["--backend", backend]);
        run_checked(&format!("exec --backend {backend}"), &mut cmd)?;
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

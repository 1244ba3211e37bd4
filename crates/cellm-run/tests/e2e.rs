//! End to end through the CLI: `cellm-run vlm --temperature 0 --json` on the
//! micro and tiny look-alikes must give the prompt ids, the 24 greedy tokens and
//! the text that HF transformers' processor and `generate` produced
//! (models/e2e/<size>/<case>/, made by the fixtures' make_e2e.py).

mod common;

use common::{cellm_run, fixture, vlm_case};
use serde_json::Value;
use std::process::Command;

fn run_case(size: &str, case: &str) {
    vlm_case(size, case, "cpu");
}

#[test]
fn e2e_tiny_coffee_split0() {
    run_case("tiny", "coffee_split0");
}
#[test]
fn e2e_tiny_coffee_coins_split0() {
    run_case("tiny", "coffee_coins_split0");
}
#[test]
fn e2e_tiny_chelsea_split1() {
    run_case("tiny", "chelsea_split1");
}
#[test]
fn e2e_tiny_grace_hopper_split1() {
    run_case("tiny", "grace_hopper_split1");
}
#[test]
fn e2e_micro_coffee_split0() {
    run_case("micro", "coffee_split0");
}
#[test]
fn e2e_micro_chelsea_split1() {
    run_case("micro", "chelsea_split1");
}

/// The bundled default (no --model-dir) runs and says its weights are random.
#[test]
fn bundled_default_runs_and_warns() {
    let tmp = std::env::temp_dir().join(format!("cellm-e2e-cache-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_cellm-run"))
        .args(["vlm", "--backend", "cpu", "--max-new-tokens", "4", "--json"])
        .env("CELLM_CACHE_DIR", &tmp)
        .output()
        .expect("run cellm-run");
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("RANDOM"),
        "no random-weights notice"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: Value = serde_json::from_str(stdout.lines().last().expect("line")).expect("json");
    assert_eq!(got["generated_ids"].as_array().expect("ids").len(), 4);
}

/// Errors name the problem and exit non-zero.
#[test]
fn missing_model_files_are_listed() {
    let tmp = std::env::temp_dir().join(format!("cellm-e2e-empty-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).expect("tmp");
    let out = cellm_run()
        .args(["vlm", "--model-dir"])
        .arg(&tmp)
        .args(["--prompt", "hi"])
        .output()
        .expect("run");
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing")
            && err.contains("config.json")
            && err.contains("decoder_model_merged.onnx"),
        "{err}"
    );
}

fn sampled_ids(seed: &str) -> Vec<i64> {
    let out = cellm_run()
        .arg("vlm")
        .arg("--model-dir")
        .arg(fixture("micro"))
        .arg("--image")
        .arg(fixture("images/coins.png"))
        .args([
            "--no-split-image",
            "--prompt",
            "Describe it.",
            "--backend",
            "cpu",
            "--json",
        ])
        .args([
            "--temperature",
            "1.5",
            "--top-k",
            "50",
            "--top-p",
            "0.95",
            "--max-new-tokens",
            "12",
            "--seed",
            seed,
        ])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.lines().last().expect("line")).expect("json");
    v["generated_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|x| x.as_i64().expect("int"))
        .collect()
}

/// Sampling is reproducible per seed, and the seed matters.
#[test]
fn same_seed_same_sample() {
    let a = sampled_ids("7");
    assert_eq!(a, sampled_ids("7"));
    assert_ne!(
        a,
        sampled_ids("8"),
        "12 tokens at temperature 1.5 should differ between seeds"
    );
}

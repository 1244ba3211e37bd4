//! Helpers shared by the CLI tests: fixtures, running `cellm-run`, and the
//! end-to-end check against HF transformers' goldens (models/e2e/<size>/<case>/).

#![allow(dead_code)]

use cellm_ir::npy;
pub use cellm_testkit::fixture;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Plans compiled by the tests go to a temporary cache, not the user's.
pub fn test_cache() -> PathBuf {
    std::env::temp_dir().join("cellm-test-cache")
}

/// `cellm-run` with the test cache.
pub fn cellm_run() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cellm-run"));
    cmd.env("CELLM_CACHE_DIR", test_cache());
    cmd
}

pub fn ids(path: &Path) -> Vec<i64> {
    npy::read(path)
        .unwrap_or_else(|e| panic!("{e:#}"))
        .to_i64_vec()
        .expect("int ids")
}

/// Runs the command; `None` when a GPU run failed for lack of an adapter and
/// CELLM_ALLOW_NO_GPU=1 (skip); panics on any other failure.
pub fn run_checked(what: &str, cmd: &mut Command) -> Option<Output> {
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

/// `cellm-run vlm --backend <backend> --temperature 0 --json` on one e2e case:
/// prompt ids, the greedy tokens and the text must equal HF's.
pub fn vlm_case(size: &str, case: &str, backend: &str) {
    let dir = fixture(&format!("e2e/{size}/{case}"));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).expect("case.json"))
            .expect("json");
    let mut cmd = cellm_run();
    cmd.arg("vlm").arg("--model-dir").arg(fixture(size)).args([
        "--backend",
        backend,
        "--temperature",
        "0",
        "--json",
    ]);
    for img in meta["images"].as_array().expect("images") {
        // JPEG decoders differ by up to 4 levels (models/FIXTURES.md), which moves
        // near-tied greedy tokens; the lossless PNG of PIL's decode keeps the test
        // about our pipeline. Processor parity on the JPEG itself is tested in cellm-vlm.
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
    let what = format!("{size}/{case} on {backend}");
    let Some(out) = run_checked(&what, &mut cmd) else {
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
        "{what}: prompt ids differ from HF's processor"
    );
    let want_gen = ids(&dir.join("generated_ids.npy"));
    assert_eq!(
        as_ids(&got["generated_ids"]),
        want_gen,
        "{what}: greedy tokens differ from HF generate"
    );
    let want_text = std::fs::read_to_string(dir.join("text.txt")).expect("text.txt");
    assert_eq!(
        got["text"].as_str().expect("text"),
        want_text,
        "{what}: decoded text differs"
    );
    for key in ["load_s", "vision_s", "prefill_s", "decode_s_per_token"] {
        assert!(
            got["timings"][key].as_f64().is_some(),
            "{what}: timings.{key} missing"
        );
    }
    println!(
        "{what}: {} prompt tokens, {} tokens identical to HF; timings {}",
        want_prompt.len(),
        want_gen.len(),
        got["timings"]
    );
}

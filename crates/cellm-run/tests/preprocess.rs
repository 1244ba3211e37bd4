//! `cellm-run preprocess` against HF Idefics3Processor goldens
//! (models/processor/<case>/): ids, masks identical, pixel_values bit-identical
//! (sha256 of HF's own f32 tensor) on PNG inputs.

use cellm_ir::npy;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::process::Command;

fn fixture(rel: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let local = root.join("models").join(rel);
    if local.exists() {
        return local;
    }
    root.join("../shared/fixtures").join(rel)
}

fn case(name: &str) {
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("processor/manifest.json")).expect("manifest"),
    )
    .expect("json");
    let entry = manifest["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["case"] == name)
        .expect("case")
        .clone();
    let out = std::env::temp_dir().join(format!("cellm-pre-{name}-{}", std::process::id()));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cellm-run"));
    cmd.arg("preprocess")
        .arg("--model-dir")
        .arg(fixture("micro"))
        .arg("--out")
        .arg(&out);
    let messages = out.with_extension("json");
    std::fs::write(&messages, entry["messages"].to_string()).expect("messages");
    cmd.arg("--messages").arg(&messages);
    for img in entry["images"].as_array().expect("images") {
        cmd.arg("--image")
            .arg(fixture(&format!("images/{}", img.as_str().expect("name"))));
    }
    cmd.arg(if entry["do_image_splitting"].as_bool().expect("flag") {
        "--split-image"
    } else {
        "--no-split-image"
    });
    let res = cmd.output().expect("run");
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let dir = fixture(&format!("processor/{name}"));
    for f in [
        "input_ids.npy",
        "attention_mask.npy",
        "pixel_attention_mask.npy",
    ] {
        let got = npy::read(&out.join(f)).expect("ours");
        if !dir.join(f).exists() {
            // Large split cases store only the mask's shape (HF's mask is all ones).
            let shape: Vec<usize> = entry["pixel_attention_mask_shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .collect();
            assert_eq!(got.shape(), &shape[..], "{name}/{f} shape");
            assert!(
                got.to_i64_vec().expect("bools").iter().all(|&v| v == 1),
                "{name}/{f} not all true"
            );
            continue;
        }
        let want = npy::read(&dir.join(f)).expect("golden");
        assert_eq!(got.shape(), want.shape(), "{name}/{f} shape");
        assert_eq!(
            got.to_i64_vec().expect("ints"),
            want.to_i64_vec().expect("ints"),
            "{name}/{f}"
        );
    }
    let pv = npy::read(&out.join("pixel_values.npy")).expect("pixel_values");
    let sha = format!("{:x}", Sha256::digest(pv.bytes()));
    assert_eq!(
        sha,
        entry["pixel_values_f32_sha256"].as_str().expect("sha"),
        "{name}: pixel_values differ from HF's"
    );
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&messages);
}

#[test]
fn preprocess_coffee_unsplit_matches_hf() {
    case("coffee_split0");
}

#[test]
fn preprocess_chelsea_split_matches_hf() {
    case("chelsea_split1");
}

#[test]
fn preprocess_text_only_matches_hf() {
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("processor/manifest.json")).expect("manifest"),
    )
    .expect("json");
    let entry = manifest["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["case"] == "text_only_multiturn")
        .expect("case")
        .clone();
    let out = std::env::temp_dir().join(format!("cellm-pre-text-{}", std::process::id()));
    let messages = out.with_extension("json");
    std::fs::write(&messages, entry["messages"].to_string()).expect("messages");
    let res = Command::new(env!("CARGO_BIN_EXE_cellm-run"))
        .arg("preprocess")
        .arg("--model-dir")
        .arg(fixture("micro"))
        .arg("--out")
        .arg(&out)
        .arg("--messages")
        .arg(&messages)
        .output()
        .expect("run");
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let got = npy::read(&out.join("input_ids.npy"))
        .expect("ours")
        .to_i64_vec()
        .expect("ids");
    let want = npy::read(&fixture("processor/text_only_multiturn/input_ids.npy"))
        .expect("golden")
        .to_i64_vec()
        .expect("ids");
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&messages);
}

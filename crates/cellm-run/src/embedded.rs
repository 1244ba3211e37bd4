//! The bundled default model: the micro SmolVLM look-alike (random weights)
//! and a photo, compiled into the binary so `cellm-run vlm` works anywhere.

use anyhow::{Context, Result};
use std::path::PathBuf;

macro_rules! bundled {
    ($($rel:literal),* $(,)?) => {
        &[$(($rel, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/micro/", $rel)) as &[u8]),)*]
    };
}

const MODEL_FILES: &[(&str, &[u8])] = bundled!(
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.json",
    "preprocessor_config.json",
    "processor_config.json",
    "onnx/vision_encoder.onnx",
    "onnx/embed_tokens.onnx",
    "onnx/decoder_model_merged.onnx",
);

pub const PHOTO_NAME: &str = "chelsea.png";
const PHOTO: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/images/chelsea.png"
));

pub const NOTICE: &str = "note: no --model-dir given, so this runs cellm's bundled SmolVLM look-alike (the micro \
test model) on a bundled photo. Its weights are RANDOM: the text is meaningless and only shows the pipeline \
working. For real answers pass --model-dir with a SmolVLM folder, e.g. HuggingFaceTB/SmolVLM-256M-Instruct.";

fn fnv1a(data: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for d in data {
        for &b in d.iter() {
            h ^= b as u64;
            h = h.wrapping_mul(0x100000001b3);
        }
    }
    h
}

/// Unpacks the bundled model folder and photo into the cache (once; written
/// to a temporary folder and renamed, so a crash leaves no half folder).
/// Returns (model folder, photo path).
pub fn unpack() -> Result<(PathBuf, PathBuf)> {
    let parts: Vec<&[u8]> = MODEL_FILES.iter().map(|(_, b)| *b).chain([PHOTO]).collect();
    let key = format!("micro-{:016x}", fnv1a(&parts));
    let base = std::env::var_os("CELLM_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("cellm")))
        .unwrap_or_else(|| std::env::temp_dir().join("cellm"));
    let root = base.join("embedded").join(&key);
    if !root.join("complete").exists() {
        std::fs::create_dir_all(base.join("embedded"))
            .with_context(|| format!("cannot create {}", base.display()))?;
        let tmp = base
            .join("embedded")
            .join(format!(".{key}.tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        for (rel, bytes) in MODEL_FILES {
            let p = tmp.join("model").join(rel);
            std::fs::create_dir_all(p.parent().expect("has parent"))?;
            std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))?;
        }
        std::fs::write(tmp.join(PHOTO_NAME), PHOTO)?;
        std::fs::write(tmp.join("complete"), b"")?;
        if let Err(e) = std::fs::rename(&tmp, &root) {
            // Another process may have won the race; use its copy.
            let _ = std::fs::remove_dir_all(&tmp);
            if !root.join("complete").exists() {
                return Err(e).with_context(|| format!("cannot create {}", root.display()));
            }
        }
    }
    Ok((root.join("model"), root.join(PHOTO_NAME)))
}

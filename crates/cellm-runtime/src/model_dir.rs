//! A HuggingFace-style SmolVLM model folder with ONNX exports.

use anyhow::{bail, Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// ONNX variants shipped next to the fp32 files (the name is the file suffix).
pub const VARIANTS: &[&str] = &[
    "fp32",
    "fp16",
    "q4",
    "q4f16",
    "int8",
    "uint8",
    "bnb4",
    "quantized",
];

pub struct ModelDir {
    pub dir: PathBuf,
    pub variant: String,
    pub config: Value,
    pub generation_config: Option<Value>,
}

impl ModelDir {
    /// Opens `dir`, checking that every file the pipeline needs is there; the
    /// error lists what was expected.
    pub fn open(dir: &Path, variant: &str) -> Result<ModelDir> {
        if !VARIANTS.contains(&variant) {
            bail!(
                "--onnx-variant {variant}: expected one of {}",
                VARIANTS.join(", ")
            );
        }
        if !dir.is_dir() {
            bail!("model folder {} does not exist", dir.display());
        }
        let m = ModelDir {
            dir: dir.to_path_buf(),
            variant: variant.to_string(),
            config: Value::Null,
            generation_config: None,
        };
        let mut expected = vec![
            "config.json".to_string(),
            "tokenizer.json".to_string(),
            "preprocessor_config.json".to_string(),
        ];
        for g in ["vision_encoder", "embed_tokens", "decoder_model_merged"] {
            expected.push(m.onnx_rel(g));
        }
        let missing: Vec<&String> = expected.iter().filter(|f| !m.resolve(f).exists()).collect();
        if !missing.is_empty() {
            bail!(
                "model folder {} is incomplete: missing {}; a SmolVLM folder needs {}",
                dir.display(),
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                expected.join(", ")
            );
        }
        let config = read_json(&dir.join("config.json"))?;
        let gen_path = dir.join("generation_config.json");
        let generation_config = if gen_path.exists() {
            Some(read_json(&gen_path)?)
        } else {
            None
        };
        Ok(ModelDir {
            config,
            generation_config,
            ..m
        })
    }

    fn suffix(&self) -> String {
        if self.variant == "fp32" {
            String::new()
        } else {
            format!("_{}", self.variant)
        }
    }

    /// Relative path of graph `stem` for this variant. The q4/bnb4 recipes leave
    /// the embedding unquantized, so `embed_tokens_<v>.onnx` may be absent and
    /// the fp32 file stands in.
    pub fn onnx_rel(&self, stem: &str) -> String {
        let own = format!("onnx/{stem}{}.onnx", self.suffix());
        if stem == "embed_tokens"
            && !self.dir.join(&own).exists()
            && matches!(self.variant.as_str(), "q4" | "bnb4")
        {
            return format!("onnx/{stem}.onnx");
        }
        own
    }

    pub fn resolve(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    pub fn onnx_path(&self, stem: &str) -> PathBuf {
        self.resolve(&self.onnx_rel(stem))
    }

    pub fn image_token_id(&self) -> Result<u32> {
        self.config
            .get("image_token_id")
            .and_then(Value::as_u64)
            .map(|v| v as u32)
            .context("config.json has no image_token_id")
    }

    /// End-of-generation ids: generation_config's eos_token_id (number or list),
    /// else config.json's, plus `<end_of_utterance>` when the tokenizer has it.
    pub fn eos_ids(&self) -> Vec<u32> {
        let mut ids = vec![];
        let from = |v: &Value, ids: &mut Vec<u32>| match v.get("eos_token_id") {
            Some(Value::Number(n)) => ids.extend(n.as_u64().map(|x| x as u32)),
            Some(Value::Array(a)) => {
                ids.extend(a.iter().filter_map(Value::as_u64).map(|x| x as u32))
            }
            _ => {}
        };
        if let Some(g) = &self.generation_config {
            from(g, &mut ids);
        }
        if ids.is_empty() {
            from(&self.config, &mut ids);
        }
        ids
    }
}

pub fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

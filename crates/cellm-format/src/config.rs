//! The llama decoder's hyper-parameters, read from a `.cellm` header's
//! HF-style config. Wrappers (idefics3) route through `text_config`.

use anyhow::{bail, Context, Result};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
}

/// The part of `config` that describes the llama text decoder: `config` itself
/// for `model_type` llama, `config.text_config` for wrappers whose text model is llama.
pub fn text_config(config: &Value) -> Result<&Value> {
    let model_type = config.get("model_type").and_then(Value::as_str);
    if model_type == Some("llama") {
        return Ok(config);
    }
    if let Some(tc) = config.get("text_config") {
        let tt = tc.get("model_type").and_then(Value::as_str);
        // Idefics3 configs written by older transformers omit the text model_type.
        if tt == Some("llama") || (tt.is_none() && model_type == Some("idefics3")) {
            return Ok(tc);
        }
        bail!("text_config.model_type {tt:?} is not a llama decoder");
    }
    bail!("config model_type {model_type:?} is not llama and has no llama text_config")
}

impl LlamaConfig {
    pub fn from_config(config: &Value) -> Result<LlamaConfig> {
        let tc = text_config(config)?;
        let get = |k: &str| tc.get(k).and_then(Value::as_u64).map(|v| v as usize);
        let need = |k: &str| get(k).with_context(|| format!("config has no integer '{k}'"));
        let hidden = need("hidden_size")?;
        let heads = need("num_attention_heads")?;
        if heads == 0 || hidden % heads != 0 && get("head_dim").is_none() {
            bail!("hidden_size {hidden} is not a multiple of num_attention_heads {heads}");
        }
        let kv = get("num_key_value_heads").unwrap_or(heads);
        if kv == 0 || heads % kv != 0 {
            bail!("num_attention_heads {heads} is not a multiple of num_key_value_heads {kv}");
        }
        let tie = tc
            .get("tie_word_embeddings")
            .or_else(|| config.get("tie_word_embeddings"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        Ok(LlamaConfig {
            hidden_size: hidden,
            intermediate_size: need("intermediate_size")?,
            num_hidden_layers: need("num_hidden_layers")?,
            num_attention_heads: heads,
            num_key_value_heads: kv,
            head_dim: get("head_dim").unwrap_or(hidden / heads),
            vocab_size: need("vocab_size")?,
            // HF LlamaConfig defaults.
            rms_norm_eps: tc
                .get("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6) as f32,
            rope_theta: tc
                .get("rope_theta")
                .and_then(Value::as_f64)
                .unwrap_or(10000.0) as f32,
            max_position_embeddings: get("max_position_embeddings").unwrap_or(2048),
            tie_word_embeddings: tie,
        })
    }
}

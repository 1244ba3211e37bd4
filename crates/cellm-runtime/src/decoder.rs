//! A KV-cached decoder graph with the onnxruntime-genai builder's signature:
//! inputs_embeds, attention_mask, position_ids, past_key_values.{i}.key|value →
//! logits, present.{i}.key|value. Each step feeds present back as past.

use crate::backend::Executable;
use anyhow::{anyhow, bail, Context, Result};
use cellm_ir::{DType, Dim, Tensor};
use half::f16;
use std::collections::HashMap;

pub struct KvDecoder {
    exe: Executable,
    n_layers: usize,
    kv_heads: usize,
    head_dim: usize,
    kv_dtype: DType,
    embeds_dtype: DType,
    hidden: usize,
    past: Vec<Tensor>,
    past_len: usize,
}

impl KvDecoder {
    pub fn new(exe: Executable) -> Result<KvDecoder> {
        let g = exe.graph();
        let n_layers = (0..)
            .take_while(|l| g.find(&format!("past_key_values.{l}.key")).is_some())
            .count();
        if n_layers == 0 {
            bail!(
                "decoder graph '{}' has no past_key_values.0.key input",
                g.name
            );
        }
        let fact = |name: &str| {
            g.find(name)
                .and_then(|v| g.values[v].fact.clone())
                .ok_or_else(|| anyhow!("decoder graph has no declared input '{name}'"))
        };
        let kv = fact("past_key_values.0.key")?;
        let kv_shape = kv
            .shape
            .clone()
            .context("past_key_values.0.key has no shape")?;
        let known = |d: &Dim, what: &str| {
            d.known()
                .ok_or_else(|| anyhow!("{what} of past_key_values.0.key is not fixed"))
        };
        if kv_shape.len() != 4 {
            bail!("past_key_values.0.key must be [batch, kv_heads, past, head_dim]");
        }
        let kv_heads = known(&kv_shape[1], "kv_heads")?;
        let head_dim = known(&kv_shape[3], "head_dim")?;
        let emb = fact("inputs_embeds")?;
        let hidden = emb
            .shape
            .as_ref()
            .and_then(|s| s.last())
            .and_then(|d| d.known())
            .context("inputs_embeds hidden size is not fixed")?;
        let mut d = KvDecoder {
            exe,
            n_layers,
            kv_heads,
            head_dim,
            kv_dtype: kv.dtype,
            embeds_dtype: emb.dtype,
            hidden,
            past: vec![],
            past_len: 0,
        };
        d.reset();
        Ok(d)
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// Forgets the cache (a new conversation).
    pub fn reset(&mut self) {
        self.past = (0..2 * self.n_layers)
            .map(|_| Tensor::zeros(self.kv_dtype, vec![1, self.kv_heads, 0, self.head_dim]))
            .collect();
        self.past_len = 0;
    }

    pub fn past_len(&self) -> usize {
        self.past_len
    }

    /// Runs `embeds` ([n, hidden] f32, row-major) after the cached prefix and
    /// returns the logits of the last position.
    pub fn forward(&mut self, embeds: &[f32]) -> Result<Vec<f32>> {
        let n = embeds.len() / self.hidden;
        if n == 0 || n * self.hidden != embeds.len() {
            bail!(
                "decoder input must be a non-empty [n, {}] block",
                self.hidden
            );
        }
        let emb = match self.embeds_dtype {
            DType::F32 => Tensor::from_vec(vec![1, n, self.hidden], embeds.to_vec()),
            DType::F16 => Tensor::from_vec(
                vec![1, n, self.hidden],
                embeds.iter().map(|&v| f16::from_f32(v)).collect(),
            ),
            other => bail!("unsupported inputs_embeds dtype {other}"),
        };
        let total = self.past_len + n;
        let mut inputs = HashMap::new();
        inputs.insert("inputs_embeds".to_string(), emb);
        inputs.insert(
            "attention_mask".to_string(),
            Tensor::from_vec(vec![1, total], vec![1i64; total]),
        );
        // Position ids follow the mask (cumsum - 1); with no padding that is a plain range.
        let pos: Vec<i64> = (self.past_len as i64..total as i64).collect();
        inputs.insert(
            "position_ids".to_string(),
            Tensor::from_vec(vec![1, n], pos),
        );
        for l in 0..self.n_layers {
            inputs.insert(format!("past_key_values.{l}.key"), self.past[2 * l].clone());
            inputs.insert(
                format!("past_key_values.{l}.value"),
                self.past[2 * l + 1].clone(),
            );
        }
        let mut out = self.exe.run(&inputs)?;
        for l in 0..self.n_layers {
            for (j, kind) in ["key", "value"].iter().enumerate() {
                let name = format!("present.{l}.{kind}");
                self.past[2 * l + j] = out
                    .remove(&name)
                    .ok_or_else(|| anyhow!("decoder did not return {name}"))?;
            }
        }
        self.past_len = total;
        let logits = out
            .remove("logits")
            .context("decoder did not return logits")?;
        let vocab = *logits.shape().last().context("logits has rank 0")?;
        let all = logits.to_f32_vec()?;
        Ok(all[all.len() - vocab..].to_vec())
    }
}

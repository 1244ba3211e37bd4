//! A KV-cached decoder graph with the onnxruntime-genai builder's signature:
//! inputs_embeds, attention_mask, position_ids, past_key_values.{i}.key|value →
//! logits, present.{i}.key|value.
//!
//! Past inputs in the token-major cache layout [B, P, X] (what the `kv_cache`
//! pass makes, see [`Executable::decoder`]) live in preallocated caches owned
//! by the decoder, on the graph's backend: a step uploads only its embeddings,
//! mask and positions, and writes only its own K/V rows. Past inputs left in
//! the ONNX layout [B, H, P, D] are fed back from the present outputs.
//!
//! The attention mask of such a cached decoder is all ones (the decoder
//! never pads), so on the GPU it stays on the device too (see
//! [`resident_mask_input`]): a decode step uploads its embedding row and its
//! position id, a constant number of bytes whatever the context length.

use crate::backend::{EmbedRows, Executable, KvState};
use anyhow::{anyhow, bail, Context, Result};
use cellm_ir::{DType, Graph, Tensor, ValueId};
use half::f16;
use std::collections::HashMap;

/// Tokens the caches hold before they grow (by doubling, one copy).
pub const DEFAULT_MAX_SEQ: usize = 2048;

/// Longer host prefills run in chunks of this many rows (each after the
/// cached prefix, so the result is the same): a chunk's activations and
/// attention scores, not the whole prompt's, set the peak memory.
pub const PREFILL_CHUNK: usize = 256;

/// A past input the decoder feeds from the last step's present output.
struct FedPast {
    name: String,
    present: String,
    dtype: DType,
    /// [1, heads, 0, head_dim] when empty.
    empty_shape: Vec<usize>,
    value: Tensor,
}

pub struct KvDecoder {
    exe: Executable,
    embeds_dtype: DType,
    hidden: usize,
    fed: Vec<FedPast>,
    cache: Option<KvState>,
    past_len: usize,
    /// Keep the attention mask device-resident where the backend can.
    resident_mask: bool,
}

fn present_name(past: &str) -> String {
    past.replacen("past_key_values.", "present.", 1)
}

/// The `attention_mask` input the decoder runtime keeps device-resident:
/// an i64 [B, T] input of a decoder whose every past input is an in-place
/// cache ([B, P, X], after the `kv_cache` pass). None for other graphs (their
/// mask is uploaded each step).
pub fn resident_mask_input(g: &Graph) -> Option<ValueId> {
    let fact = |v: ValueId| g.values[v].fact.as_ref();
    let rank = |v: ValueId| fact(v).and_then(|f| f.shape.as_ref()).map(|s| s.len());
    let pasts: Vec<ValueId> = g
        .inputs
        .iter()
        .copied()
        .filter(|&v| g.value_name(v).starts_with("past_key_values."))
        .collect();
    if pasts.is_empty() || pasts.iter().any(|&v| rank(v) != Some(3)) {
        return None;
    }
    let m = g.find("attention_mask").filter(|v| g.inputs.contains(v))?;
    (fact(m).map(|f| f.dtype) == Some(DType::I64) && rank(m) == Some(2)).then_some(m)
}

impl KvDecoder {
    pub fn new(exe: Executable) -> Result<KvDecoder> {
        KvDecoder::with_max_seq(exe, DEFAULT_MAX_SEQ)
    }

    /// `max_seq`: cache capacity in tokens (grows beyond it when needed).
    pub fn with_max_seq(exe: Executable, max_seq: usize) -> Result<KvDecoder> {
        let g = exe.graph();
        let fact = |name: &str| {
            g.find(name)
                .filter(|v| g.inputs.contains(v))
                .and_then(|v| g.values[v].fact.clone())
                .ok_or_else(|| anyhow!("decoder graph has no declared input '{name}'"))
        };
        let mut fed = vec![];
        let mut cached = vec![];
        for l in 0.. {
            let key = format!("past_key_values.{l}.key");
            if g.find(&key).is_none() {
                break;
            }
            for kind in ["key", "value"] {
                let name = format!("past_key_values.{l}.{kind}");
                let f = fact(&name)?;
                let shape = f
                    .shape
                    .clone()
                    .with_context(|| format!("{name} has no shape"))?;
                match shape.len() {
                    3 => cached.push(name),
                    4 => {
                        let known = |i: usize, what: &str| {
                            shape[i]
                                .known()
                                .ok_or_else(|| anyhow!("{what} of {name} is not fixed"))
                        };
                        let empty_shape = vec![1, known(1, "kv_heads")?, 0, known(3, "head_dim")?];
                        fed.push(FedPast {
                            present: present_name(&name),
                            value: Tensor::zeros(f.dtype, empty_shape.clone()),
                            name,
                            dtype: f.dtype,
                            empty_shape,
                        });
                    }
                    _ => bail!("{name} must be [B, H, P, D] or a [B, P, X] cache"),
                }
            }
        }
        if fed.is_empty() && cached.is_empty() {
            bail!(
                "decoder graph '{}' has no past_key_values.0.key input",
                g.name
            );
        }
        let emb = fact("inputs_embeds")?;
        let hidden = emb
            .shape
            .as_ref()
            .and_then(|s| s.last())
            .and_then(|d| d.known())
            .context("inputs_embeds hidden size is not fixed")?;
        let cache = if cached.is_empty() {
            None
        } else {
            Some(exe.new_kv_cache(&cached, max_seq)?)
        };
        let resident_mask = fed.is_empty() && resident_mask_input(g).is_some();
        Ok(KvDecoder {
            exe,
            embeds_dtype: emb.dtype,
            hidden,
            fed,
            cache,
            past_len: 0,
            resident_mask,
        })
    }

    /// Off: upload the attention mask every step, as graphs without caches
    /// do (a reference for the resident path). Call before the first step.
    pub fn set_resident_mask(&mut self, on: bool) {
        self.resident_mask =
            on && self.fed.is_empty() && resident_mask_input(self.exe.graph()).is_some();
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden
    }

    /// True when the K/V live in in-place caches (no per-step concat copies).
    pub fn uses_kv_cache(&self) -> bool {
        self.cache.is_some() && self.fed.is_empty()
    }

    /// Bytes the in-place caches hold at their current capacity (None when
    /// past K/V are fed back as inputs instead).
    pub fn kv_cache_bytes(&self) -> Option<u64> {
        match &self.cache {
            Some(KvState::Cpu(c)) => Some(c.capacity_bytes() as u64),
            Some(KvState::Gpu(c)) => Some(c.capacity_bytes()),
            None => None,
        }
    }

    /// Forgets the cache (a new conversation).
    pub fn reset(&mut self) {
        for p in &mut self.fed {
            p.value = Tensor::zeros(p.dtype, p.empty_shape.clone());
        }
        if let Some(c) = &mut self.cache {
            c.reset();
        }
        self.past_len = 0;
    }

    pub fn past_len(&self) -> usize {
        self.past_len
    }

    /// Whether [`KvDecoder::forward_rows`] takes device rows of `dtype`
    /// (a GPU decoder with in-place caches whose embeddings are `dtype`).
    pub fn takes_device_rows(&self, dtype: DType) -> bool {
        matches!(self.cache, Some(KvState::Gpu(_))) && dtype == self.embeds_dtype
    }

    /// Counters of the last step on the GPU (None on the CPU).
    pub fn last_gpu_stats(&self) -> Option<cellm_gpu::RunStats> {
        self.exe.last_gpu_stats()
    }

    /// Runs `embeds` ([n, hidden] f32, row-major) after the cached prefix and
    /// returns the logits of the last position.
    pub fn forward(&mut self, embeds: &[f32]) -> Result<Vec<f32>> {
        self.forward_rows(EmbedRows::Host(embeds.to_vec()))
    }

    /// [`KvDecoder::forward`] for rows on the host or already on the GPU
    /// ([1, n, hidden] of the graph's embedding dtype, bound without an
    /// upload: a decode step then uploads only its position id).
    pub fn forward_rows(&mut self, rows: EmbedRows) -> Result<Vec<f32>> {
        if let EmbedRows::Host(embeds) = &rows {
            let chunk = PREFILL_CHUNK * self.hidden;
            if self.uses_kv_cache() && self.hidden > 0 && embeds.len() > chunk {
                let mut logits = Vec::new();
                for part in embeds.chunks(chunk) {
                    logits = self.forward_rows(EmbedRows::Host(part.to_vec()))?;
                }
                return Ok(logits);
            }
        }
        let mut inputs = HashMap::new();
        let n = match rows {
            EmbedRows::Host(embeds) => {
                let n = embeds.len() / self.hidden;
                if n == 0 || n * self.hidden != embeds.len() {
                    bail!(
                        "decoder input must be a non-empty [n, {}] block",
                        self.hidden
                    );
                }
                let emb = match self.embeds_dtype {
                    DType::F32 => Tensor::from_vec(vec![1, n, self.hidden], embeds),
                    DType::F16 => Tensor::from_vec(
                        vec![1, n, self.hidden],
                        embeds.iter().map(|&v| f16::from_f32(v)).collect(),
                    ),
                    other => bail!("unsupported inputs_embeds dtype {other}"),
                };
                inputs.insert("inputs_embeds".to_string(), emb);
                n
            }
            EmbedRows::Device(d) => {
                let n = match d.shape[..] {
                    [1, n, h] if h == self.hidden && n > 0 => n,
                    _ => bail!(
                        "device embeddings {:?} are not [1, n, {}]",
                        d.shape,
                        self.hidden
                    ),
                };
                if d.dtype != self.embeds_dtype {
                    bail!(
                        "device embeddings are {} but the decoder takes {}",
                        d.dtype,
                        self.embeds_dtype
                    );
                }
                let cache = self
                    .cache
                    .as_mut()
                    .context("device embeddings need a decoder with KV caches")?;
                self.exe.bind_device_input(cache, "inputs_embeds", d)?;
                n
            }
        };
        let total = self.past_len + n;
        let resident = match (&mut self.cache, self.resident_mask) {
            (Some(c), true) => self.exe.set_resident_ones(c, "attention_mask", total)?,
            _ => false,
        };
        if !resident {
            inputs.insert(
                "attention_mask".to_string(),
                Tensor::from_vec(vec![1, total], vec![1i64; total]),
            );
        }
        // Position ids follow the mask (cumsum - 1); with no padding that is a plain range.
        let pos: Vec<i64> = (self.past_len as i64..total as i64).collect();
        inputs.insert(
            "position_ids".to_string(),
            Tensor::from_vec(vec![1, n], pos),
        );
        for p in &self.fed {
            inputs.insert(p.name.clone(), p.value.clone());
        }
        let mut out = match &mut self.cache {
            Some(c) => self.exe.run_with_cache(&inputs, c)?,
            None => self.exe.run(&inputs)?,
        };
        for p in &mut self.fed {
            p.value = out
                .remove(&p.present)
                .ok_or_else(|| anyhow!("decoder did not return {}", p.present))?;
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

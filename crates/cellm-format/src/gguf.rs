//! GGUF (v2/v3) reader and its conversion to `.cellm` for the llama
//! architecture. Tensor dims in GGUF run innermost first; `.cellm` stores
//! them outermost first (HF order). llama.cpp's converter permutes the rows of
//! q/k projections so its rotary rotates adjacent pairs; we undo that, so
//! `.cellm` weights are HF's and the graph uses half-split rotary.

use crate::convert::{ConvertDType, Converted};
use crate::format::{GenerationDefaults, Header, PendingTensor};
use crate::quant::{self, WeightDType};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Str(String),
    Array(Vec<GgufValue>),
}

impl GgufValue {
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            GgufValue::UInt(v) => Some(*v),
            GgufValue::Int(v) if *v >= 0 => Some(*v as u64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            GgufValue::Float(v) => Some(*v),
            GgufValue::Int(v) => Some(*v as f64),
            GgufValue::UInt(v) => Some(*v as f64),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            GgufValue::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct GgufTensor {
    pub name: String,
    /// GGUF order: innermost dim first.
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub offset: u64,
}

impl GgufTensor {
    /// Row-major shape (outermost first).
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
}

/// The dtype of a GGML type code, for the types we convert.
pub fn ggml_dtype(code: u32) -> Result<WeightDType> {
    Ok(match code {
        0 => WeightDType::F32,
        1 => WeightDType::F16,
        2 => WeightDType::Q4_0,
        3 => WeightDType::Q4_1,
        8 => WeightDType::Q8_0,
        other => bail!("GGML type {other} is not supported (F32, F16, Q4_0, Q4_1, Q8_0 are)"),
    })
}

pub struct Gguf {
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    pub tensors: Vec<GgufTensor>,
    /// The whole file; tensor data starts at `data_start`.
    bytes: Bytes,
    data_start: usize,
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).context("length overflows")?;
        if end > self.b.len() {
            bail!(
                "truncated: needs {n} bytes at offset {} but the file has {}",
                self.at,
                self.b.len()
            );
        }
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }
    fn u64(&mut self) -> Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u64()? as usize;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| anyhow!("string at {} is not UTF-8", self.at))
    }
    fn value(&mut self, ty: u32, depth: usize) -> Result<GgufValue> {
        let s = |c: &mut Self, n| -> Result<[u8; 8]> {
            let mut a = [0u8; 8];
            a[..n].copy_from_slice(c.take(n)?);
            Ok(a)
        };
        Ok(match ty {
            0 => GgufValue::UInt(self.u8()? as u64),
            1 => GgufValue::Int(self.u8()? as i8 as i64),
            2 => GgufValue::UInt(u16::from_le_bytes([self.u8()?, self.u8()?]) as u64),
            3 => GgufValue::Int(i16::from_le_bytes([self.u8()?, self.u8()?]) as i64),
            4 => GgufValue::UInt(self.u32()? as u64),
            5 => GgufValue::Int(self.u32()? as i32 as i64),
            6 => GgufValue::Float(f32::from_le_bytes(self.u32()?.to_le_bytes()) as f64),
            7 => GgufValue::Bool(self.u8()? != 0),
            8 => GgufValue::Str(self.string()?),
            9 => {
                if depth > 4 {
                    bail!("arrays nested too deep");
                }
                let ety = self.u32()?;
                let n = self.u64()? as usize;
                if n > self.b.len() {
                    bail!("array of {n} items cannot fit the file");
                }
                let mut v = Vec::with_capacity(n);
                for _ in 0..n {
                    v.push(self.value(ety, depth + 1)?);
                }
                GgufValue::Array(v)
            }
            10 => GgufValue::UInt(self.u64()?),
            11 => GgufValue::Int(self.u64()? as i64),
            12 => GgufValue::Float(f64::from_le_bytes(s(self, 8)?)),
            other => bail!("unknown metadata value type {other}"),
        })
    }
}

impl Gguf {
    pub fn open(path: &Path) -> Result<Gguf> {
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        // SAFETY: read-only map; the file must not shrink while converting.
        let mmap = unsafe { memmap2::Mmap::map(&file) }
            .with_context(|| format!("cannot map {}", path.display()))?;
        Gguf::parse(Bytes::from_owner(mmap)).with_context(|| format!("GGUF {}", path.display()))
    }

    pub fn parse(bytes: Bytes) -> Result<Gguf> {
        let mut c = Cursor { b: &bytes, at: 0 };
        if c.take(4)? != b"GGUF" {
            bail!("not a GGUF file (bad magic)");
        }
        let version = c.u32()?;
        if !(2..=3).contains(&version) {
            bail!("GGUF version {version} is not supported (2 and 3 are)");
        }
        let n_tensors = c.u64()? as usize;
        let n_kv = c.u64()? as usize;
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string()?;
            let ty = c.u32()?;
            let v = c
                .value(ty, 0)
                .with_context(|| format!("metadata '{key}'"))?;
            metadata.insert(key, v);
        }
        let mut tensors = Vec::new();
        for _ in 0..n_tensors {
            let name = c.string()?;
            let nd = c.u32()? as usize;
            if nd > 8 {
                bail!("tensor '{name}' has {nd} dims");
            }
            let dims = (0..nd).map(|_| c.u64()).collect::<Result<Vec<_>>>()?;
            let ggml_type = c.u32()?;
            let offset = c.u64()?;
            tensors.push(GgufTensor {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        let align = metadata
            .get("general.alignment")
            .and_then(GgufValue::as_u64)
            .unwrap_or(32) as usize;
        if align == 0 {
            bail!("general.alignment is 0");
        }
        let data_start = c.at.next_multiple_of(align);
        let g = Gguf {
            version,
            metadata,
            tensors,
            bytes,
            data_start,
        };
        for t in &g.tensors {
            g.tensor_bytes(t)?;
        }
        Ok(g)
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    fn need_u64(&self, key: &str) -> Result<u64> {
        self.get(key)
            .and_then(GgufValue::as_u64)
            .with_context(|| format!("metadata '{key}' is missing or not an integer"))
    }

    /// The stored bytes of `t`.
    pub fn tensor_bytes(&self, t: &GgufTensor) -> Result<Bytes> {
        let dtype = ggml_dtype(t.ggml_type).with_context(|| format!("tensor '{}'", t.name))?;
        let size = dtype
            .nbytes(&t.shape())
            .with_context(|| format!("tensor '{}'", t.name))?;
        let start = self.data_start + t.offset as usize;
        if start + size > self.bytes.len() {
            bail!(
                "truncated: tensor '{}' needs bytes {start}..{} but the file has {}",
                t.name,
                start + size,
                self.bytes.len()
            );
        }
        Ok(self.bytes.slice(start..start + size))
    }

    /// A HF `tokenizer.json` equivalent to the GGUF's gpt2 BPE tokenizer, or
    /// None when the file has no tokenizer.
    pub fn tokenizer_json(&self) -> Result<Option<Value>> {
        let Some(model) = self.get("tokenizer.ggml.model").and_then(GgufValue::as_str) else {
            return Ok(None);
        };
        if model != "gpt2" {
            bail!("tokenizer.ggml.model '{model}' is not supported (gpt2 BPE is)");
        }
        let strings = |key: &str| -> Result<Vec<String>> {
            self.get(key)
                .and_then(GgufValue::as_array)
                .with_context(|| format!("metadata '{key}' is missing"))?
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .with_context(|| format!("'{key}' holds a non-string"))
                })
                .collect()
        };
        let tokens = strings("tokenizer.ggml.tokens")?;
        let merges = strings("tokenizer.ggml.merges")?;
        let types: Vec<i64> = match self.get("tokenizer.ggml.token_type") {
            Some(GgufValue::Array(a)) => a
                .iter()
                .map(|v| match v {
                    GgufValue::Int(i) => *i,
                    GgufValue::UInt(u) => *u as i64,
                    _ => 1,
                })
                .collect(),
            _ => vec![1; tokens.len()],
        };
        let pre = self
            .get("tokenizer.ggml.pre")
            .and_then(GgufValue::as_str)
            .unwrap_or("default");
        let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
        let pre_tokenizer = match pre {
            // llama.cpp's `smollm` pre-tokenizer: each digit alone, then GPT-2's byte-level split.
            "smollm" => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level]}),
            "default" | "gpt2" => byte_level,
            other => bail!("tokenizer.ggml.pre '{other}' is not supported (smollm, gpt2 are)"),
        };
        let mut vocab = serde_json::Map::new();
        let mut added = Vec::new();
        for (id, tok) in tokens.iter().enumerate() {
            vocab.insert(tok.clone(), json!(id));
            // 3 = control (special), 4 = user-defined: both are matched whole, before BPE.
            let ty = types.get(id).copied().unwrap_or(1);
            if ty == 3 || ty == 4 {
                added.push(json!({"id": id, "content": tok, "single_word": false,
                    "lstrip": false, "rstrip": false, "normalized": false, "special": ty == 3}));
            }
        }
        Ok(Some(json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": pre_tokenizer,
            "post_processor": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true},
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
                "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": merges}
        })))
    }

    /// HF-style llama config from `llama.*` metadata.
    pub fn llama_config(&self) -> Result<Value> {
        let arch = self
            .get("general.architecture")
            .and_then(GgufValue::as_str)
            .unwrap_or("?");
        if arch != "llama" {
            bail!("general.architecture '{arch}' is not supported (llama is)");
        }
        let heads = self.need_u64("llama.attention.head_count")?;
        let hidden = self.need_u64("llama.embedding_length")?;
        let vocab = match self.get("llama.vocab_size").and_then(GgufValue::as_u64) {
            Some(v) => v,
            None => self
                .get("tokenizer.ggml.tokens")
                .and_then(GgufValue::as_array)
                .map(|a| a.len() as u64)
                .context("neither llama.vocab_size nor tokenizer.ggml.tokens is given")?,
        };
        let f = |k: &str, d: f64| self.get(k).and_then(GgufValue::as_f64).unwrap_or(d);
        let head_dim = self
            .get("llama.attention.key_length")
            .and_then(GgufValue::as_u64)
            .unwrap_or(hidden / heads.max(1));
        if let Some(rot) = self
            .get("llama.rope.dimension_count")
            .and_then(GgufValue::as_u64)
        {
            if rot != head_dim {
                bail!("partial rotary (rope.dimension_count {rot} < head_dim {head_dim}) is not supported");
            }
        }
        Ok(json!({
            "model_type": "llama",
            "architectures": ["LlamaForCausalLM"],
            "hidden_size": hidden,
            "intermediate_size": self.need_u64("llama.feed_forward_length")?,
            "num_hidden_layers": self.need_u64("llama.block_count")?,
            "num_attention_heads": heads,
            "num_key_value_heads": self.get("llama.attention.head_count_kv").and_then(GgufValue::as_u64).unwrap_or(heads),
            "head_dim": head_dim,
            "vocab_size": vocab,
            "rms_norm_eps": f("llama.attention.layer_norm_rms_epsilon", 1e-5),
            "rope_theta": f("llama.rope.freq_base", 10000.0),
            "max_position_embeddings": self.get("llama.context_length").and_then(GgufValue::as_u64).unwrap_or(2048),
            "tie_word_embeddings": !self.tensors.iter().any(|t| t.name == "output.weight"),
        }))
    }
}

/// HF name of a GGUF llama tensor.
fn hf_name(gguf: &str) -> Result<String> {
    Ok(match gguf {
        "token_embd.weight" => "model.embed_tokens.weight".into(),
        "output_norm.weight" => "model.norm.weight".into(),
        "output.weight" => "lm_head.weight".into(),
        _ => {
            let rest = gguf
                .strip_prefix("blk.")
                .with_context(|| format!("unexpected GGUF tensor '{gguf}'"))?;
            let (layer, part) = rest
                .split_once('.')
                .with_context(|| format!("unexpected GGUF tensor '{gguf}'"))?;
            let hf = match part {
                "attn_norm.weight" => "input_layernorm.weight",
                "ffn_norm.weight" => "post_attention_layernorm.weight",
                "attn_q.weight" => "self_attn.q_proj.weight",
                "attn_k.weight" => "self_attn.k_proj.weight",
                "attn_v.weight" => "self_attn.v_proj.weight",
                "attn_output.weight" => "self_attn.o_proj.weight",
                "ffn_gate.weight" => "mlp.gate_proj.weight",
                "ffn_up.weight" => "mlp.up_proj.weight",
                "ffn_down.weight" => "mlp.down_proj.weight",
                _ => bail!("unexpected GGUF tensor '{gguf}'"),
            };
            format!("model.layers.{layer}.{hf}")
        }
    })
}

/// Row order that undoes llama.cpp's q/k permutation: HF row (h, j, i) of a
/// head with `head_dim` rows is GGUF row (h, i, j), j ∈ {0,1}, i < head_dim/2.
pub fn unpermute_rows(rows: usize, heads: usize) -> Result<Vec<usize>> {
    if heads == 0 || !rows.is_multiple_of(heads) || !(rows / heads).is_multiple_of(2) {
        bail!("{rows} rows cannot be split into {heads} heads of even size");
    }
    let hd = rows / heads;
    let half = hd / 2;
    let mut src = vec![0; rows];
    for h in 0..heads {
        for j in 0..2 {
            for i in 0..half {
                src[h * hd + j * half + i] = h * hd + i * 2 + j;
            }
        }
    }
    Ok(src)
}

/// `data` (rows of `row_bytes`) with row r taken from row `src[r]`.
pub fn gather_rows(data: &[u8], row_bytes: usize, src: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for &r in src {
        out.extend_from_slice(&data[r * row_bytes..(r + 1) * row_bytes]);
    }
    out
}

/// Plans the conversion of a GGUF llama model to `.cellm`.
pub fn convert(g: &Gguf, dtype: ConvertDType) -> Result<Converted> {
    let config = g.llama_config()?;
    let heads = config["num_attention_heads"].as_u64().unwrap_or(1) as usize;
    let kv_heads = config["num_key_value_heads"]
        .as_u64()
        .unwrap_or(heads as u64) as usize;
    let tokenizer = g.tokenizer_json()?;
    let id = |k: &str| g.get(k).and_then(GgufValue::as_u64).map(|v| v as u32);
    let mut eos = vec![];
    if let Some(e) = id("tokenizer.ggml.eos_token_id") {
        eos.push(e);
    }
    if let Some(e) = id("tokenizer.ggml.eot_token_id") {
        if !eos.contains(&e) {
            eos.push(e);
        }
    }
    let header = Header {
        architecture: "llama".into(),
        config,
        tokenizer,
        chat_template: g
            .get("tokenizer.chat_template")
            .and_then(GgufValue::as_str)
            .map(str::to_string),
        generation: GenerationDefaults {
            bos_token_id: id("tokenizer.ggml.bos_token_id"),
            eos_token_ids: eos,
            pad_token_id: id("tokenizer.ggml.padding_token_id"),
            add_bos_token: g
                .get("tokenizer.ggml.add_bos_token")
                .and_then(GgufValue::as_bool)
                .unwrap_or(false),
        },
        source: json!({"format": "gguf", "gguf_version": g.version,
            "name": g.get("general.name").and_then(GgufValue::as_str)}),
        tensors: vec![],
    };
    let mut tensors = Vec::new();
    for t in &g.tensors {
        let name = hf_name(&t.name)?;
        let src_dtype = ggml_dtype(t.ggml_type).with_context(|| format!("tensor '{}'", t.name))?;
        let shape = t.shape();
        let data = g.tensor_bytes(t)?;
        let perm_heads = if name.ends_with("q_proj.weight") {
            Some(heads)
        } else if name.ends_with("k_proj.weight") {
            Some(kv_heads)
        } else {
            None
        };
        let out_dtype = dtype.target(src_dtype, &shape);
        let shape2 = shape.clone();
        let label = t.name.clone();
        tensors.push(PendingTensor {
            name,
            dtype: out_dtype,
            shape,
            produce: Box::new(move || {
                let mut raw = data.to_vec();
                if let Some(h) = perm_heads {
                    let rows = shape2[0];
                    let row_bytes = src_dtype.nbytes(&shape2[1..])?;
                    raw = gather_rows(&raw, row_bytes, &unpermute_rows(rows, h)?);
                }
                if out_dtype == src_dtype {
                    return Ok(raw);
                }
                let numel: usize = shape2.iter().product();
                let vals = quant::dequantize(src_dtype, &raw, numel)
                    .with_context(|| format!("GGUF tensor '{label}'"))?;
                quant::quantize(out_dtype, &vals)
            }),
        });
    }
    Ok(Converted { header, tensors })
}

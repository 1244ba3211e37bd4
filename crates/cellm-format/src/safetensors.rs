//! HF safetensors + config.json → `.cellm` for llama and for idefics3's text
//! model (`model.text_model.*` becomes `model.*`; vision tensors are left out).

use crate::convert::{ConvertDType, Converted};
use crate::format::{GenerationDefaults, Header, PendingTensor};
use crate::quant::{self, WeightDType};
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use half::{bf16, f16};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub struct StTensor {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub data: Bytes,
}

/// Reads every tensor entry of one `.safetensors` file (data stays mapped).
pub fn read_safetensors(path: &Path) -> Result<Vec<StTensor>> {
    let inner = || -> Result<Vec<StTensor>> {
        let file = std::fs::File::open(path).context("cannot open")?;
        // SAFETY: read-only map; the file must not shrink while converting.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.context("cannot map")?;
        let all = Bytes::from_owner(mmap);
        if all.len() < 8 {
            bail!("truncated: no header length");
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(&all[..8]);
        let n = u64::from_le_bytes(n) as usize;
        if 8 + n > all.len() {
            bail!("truncated: header of {n} bytes does not fit");
        }
        let header: serde_json::Map<String, Value> =
            serde_json::from_slice(&all[8..8 + n]).context("corrupt JSON header")?;
        let base = 8 + n;
        let mut out = Vec::new();
        for (name, v) in header {
            if name == "__metadata__" {
                continue;
            }
            let dtype = v["dtype"].as_str().unwrap_or("?").to_string();
            let shape: Vec<usize> = v["shape"]
                .as_array()
                .with_context(|| format!("'{name}' has no shape"))?
                .iter()
                .map(|d| d.as_u64().map(|d| d as usize))
                .collect::<Option<_>>()
                .with_context(|| format!("'{name}' has a bad shape"))?;
            let off = v["data_offsets"]
                .as_array()
                .filter(|a| a.len() == 2)
                .and_then(|a| Some((a[0].as_u64()? as usize, a[1].as_u64()? as usize)))
                .with_context(|| format!("'{name}' has bad data_offsets"))?;
            if off.0 > off.1 || base + off.1 > all.len() {
                bail!("truncated: tensor '{name}' lies past the end of the file");
            }
            out.push(StTensor {
                name,
                dtype,
                shape,
                data: all.slice(base + off.0..base + off.1),
            });
        }
        Ok(out)
    };
    inner().with_context(|| format!("safetensors {}", path.display()))
}

fn to_f32(t: &StTensor) -> Result<Vec<f32>> {
    let want: usize = t.shape.iter().product();
    let v: Vec<f32> = match t.dtype.as_str() {
        "F32" => t
            .data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        "F16" => t
            .data
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        "BF16" => t
            .data
            .chunks_exact(2)
            .map(|b| bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => bail!("tensor '{}' has unsupported dtype {other}", t.name),
    };
    if v.len() != want {
        bail!(
            "tensor '{}' {:?} has {} values, expected {want}",
            t.name,
            t.shape,
            v.len()
        );
    }
    Ok(v)
}

/// `.cellm` name of a HF tensor, or None for tensors the decoder does not use.
fn text_name(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("model.text_model.") {
        return Some(format!("model.{rest}"));
    }
    if name.starts_with("model.vision_model.") || name.starts_with("model.connector.") {
        return None;
    }
    if name.starts_with("model.") || name == "lm_head.weight" {
        return Some(name.to_string());
    }
    None
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?,
    ))
}

/// The first of `name` in `dirs` that exists.
fn find(dirs: &[PathBuf], name: &str) -> Option<PathBuf> {
    dirs.iter().map(|d| d.join(name)).find(|p| p.exists())
}

fn ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_u64().map(|x| x as u32))
            .collect(),
        _ => vec![],
    }
}

pub fn convert(input: &Path, dtype: ConvertDType) -> Result<Converted> {
    let (dir, files) = if input.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(input)
            .with_context(|| format!("listing {}", input.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        files.sort();
        (input.to_path_buf(), files)
    } else {
        let dir = input
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        (dir, vec![input.to_path_buf()])
    };
    if files.is_empty() {
        bail!("no .safetensors files in {}", input.display());
    }
    // Tokenizer files often sit one folder up (e.g. model/pytorch/ + model/tokenizer.json).
    let mut dirs = vec![dir.clone()];
    if let Some(p) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        dirs.push(p.to_path_buf());
    }
    let config = read_json(&dir.join("config.json"))?
        .with_context(|| format!("no config.json beside {}", input.display()))?;
    let llama = crate::config::LlamaConfig::from_config(&config)?;
    let tokenizer = match find(&dirs, "tokenizer.json") {
        Some(p) => read_json(&p)?,
        None => None,
    };
    let tok_cfg = match find(&dirs, "tokenizer_config.json") {
        Some(p) => read_json(&p)?,
        None => None,
    };
    let mut chat_template = tok_cfg
        .as_ref()
        .and_then(|c| c.get("chat_template"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(p) = find(&dirs, "chat_template.json") {
        if let Some(t) = read_json(&p)?
            .as_ref()
            .and_then(|v| v.get("chat_template"))
            .and_then(Value::as_str)
        {
            chat_template = Some(t.to_string());
        }
    }
    let gen_cfg = match find(&dirs, "generation_config.json") {
        Some(p) => read_json(&p)?,
        None => None,
    };
    let pick = |k: &str| {
        gen_cfg
            .as_ref()
            .and_then(|g| g.get(k))
            .or_else(|| config.get(k))
            .or_else(|| config.get("text_config").and_then(|t| t.get(k)))
    };
    let generation = GenerationDefaults {
        bos_token_id: ids(pick("bos_token_id")).first().copied(),
        eos_token_ids: ids(pick("eos_token_id")),
        pad_token_id: ids(pick("pad_token_id")).first().copied(),
        add_bos_token: tok_cfg
            .as_ref()
            .and_then(|c| c.get("add_bos_token"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    let header = Header {
        architecture: "llama".into(),
        config: config.clone(),
        tokenizer,
        chat_template,
        generation,
        source: json!({"format": "safetensors", "path": input.display().to_string()}),
        tensors: vec![],
    };
    let mut tensors = Vec::new();
    for f in &files {
        for t in read_safetensors(f)? {
            let Some(name) = text_name(&t.name) else {
                continue;
            };
            if name == "lm_head.weight" && llama.tie_word_embeddings {
                continue; // tied: the embedding serves as the output projection.
            }
            let src = match t.dtype.as_str() {
                "F16" => WeightDType::F16,
                _ => WeightDType::F32,
            };
            let out = dtype.target(src, &t.shape);
            tensors.push(PendingTensor {
                name,
                dtype: out,
                shape: t.shape.clone(),
                produce: Box::new(move || quant::quantize(out, &to_f32(&t)?)),
            });
        }
    }
    Ok(Converted { header, tensors })
}

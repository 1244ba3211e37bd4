//! `cellm-run stats MODEL [--json]`: per graph, nodes and device kernels
//! before/after the optimisation passes, peak intermediate bytes for a prefill
//! of `--prefill` tokens (batch 1, one image), and KV bytes copied per decode
//! step (the past+new Concat copies). Figures this build cannot compute yet
//! (host↔device traffic, planned memory) are null.

use anyhow::{bail, Context, Result};
use cellm_ir::{Graph, Op};
use cellm_opt::stats::{kernel_sequence, peak_intermediate_bytes, value_bytes};
use clap::Args;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct StatsArgs {
    /// A model folder (its onnx/ graphs) or one .onnx file.
    pub model: PathBuf,
    /// ONNX variant suffix in a model folder (e.g. fp16 for *_fp16.onnx).
    #[arg(long)]
    pub onnx_variant: Option<String>,
    /// Prompt length used to size intermediates.
    #[arg(long, default_value_t = 128)]
    pub prefill: usize,
    /// Past length for the decode-step figures.
    #[arg(long, default_value_t = 128)]
    pub past: usize,
    /// End with one JSON line {"graphs": {...}}.
    #[arg(long)]
    pub json: bool,
}

/// (graph name, file) pairs for a folder or a single file.
fn graph_files(a: &StatsArgs) -> Result<Vec<(String, PathBuf)>> {
    if a.model.is_file() {
        let stem = a
            .model
            .file_stem()
            .and_then(|s| s.to_str())
            .context("model file name")?;
        let name = [
            "_fp16",
            "_int8",
            "_uint8",
            "_q4f16",
            "_q4",
            "_bnb4",
            "_quantized",
        ]
        .iter()
        .find_map(|v| stem.strip_suffix(v))
        .unwrap_or(stem);
        return Ok(vec![(name.to_string(), a.model.clone())]);
    }
    let dir = a.model.join("onnx");
    let suffix = a
        .onnx_variant
        .as_deref()
        .map(|v| format!("_{v}"))
        .unwrap_or_default();
    let mut out = vec![];
    for name in ["vision_encoder", "embed_tokens", "decoder_model_merged"] {
        let p = dir.join(format!("{name}{suffix}.onnx"));
        if p.exists() {
            out.push((name.to_string(), p));
        }
    }
    if out.is_empty() {
        bail!("no ONNX graphs found under {}", dir.display());
    }
    Ok(out)
}

/// Every symbolic input dim bound for a run: batch 1, one image, the given
/// sequence and past lengths; other names default to 1.
fn bindings(g: &Graph, seq: usize, past: usize) -> HashMap<String, usize> {
    let mut b = HashMap::new();
    for &v in &g.inputs {
        let Some(shape) = g.values[v].fact.as_ref().and_then(|f| f.shape.as_ref()) else {
            continue;
        };
        for d in shape {
            if let cellm_ir::Dim::Sym(s) = d {
                let n = match s.as_str() {
                    "sequence_length" => seq,
                    "past_sequence_length" => past,
                    "total_sequence_length" => past + seq,
                    _ => 1,
                };
                b.insert(s.clone(), n);
            }
        }
    }
    b
}

fn bind_input_facts(g: &mut Graph, b: &HashMap<String, usize>) {
    for &v in &g.inputs.clone() {
        if let Some(shape) = g.values[v].fact.as_mut().and_then(|f| f.shape.as_mut()) {
            for d in shape.iter_mut() {
                if let Some(n) = d.resolve(b) {
                    *d = cellm_ir::Dim::Known(n);
                }
            }
        }
    }
}

/// Bytes the past+new KV Concats copy in one decode step.
fn kv_copy_bytes(g: &Graph, b: &HashMap<String, usize>) -> Option<usize> {
    let mut total = 0;
    for ix in g.nodes.node_indices() {
        let n = &g.nodes[ix];
        let Op::Concat(_) = n.op else { continue };
        let reads_past = n
            .inputs
            .iter()
            .flatten()
            .any(|&v| g.inputs.contains(&v) && g.value_name(v).starts_with("past_key_values"));
        if reads_past {
            total += value_bytes(g, n.outputs.first().copied().flatten()?, b)?;
        }
    }
    Some(total)
}

fn graph_stats(path: &Path, a: &StatsArgs) -> Result<(Value, String)> {
    let mut g = cellm_onnx::load(path)?;
    let nodes_before = g.nodes.node_count();
    let kernels_before = kernel_sequence(&g)?.len();
    let prefill = bindings(&g, a.prefill, 0);
    // Bound input dims let inference size more intermediates than symbols do.
    let peak_before = {
        let mut bound = g.clone();
        bind_input_facts(&mut bound, &prefill);
        bound
            .infer_facts()
            .ok()
            .and_then(|_| peak_intermediate_bytes(&bound, &prefill).ok().flatten())
    };
    cellm_opt::optimize(&mut g).with_context(|| format!("optimising {}", path.display()))?;
    let kernels = kernel_sequence(&g)?.len();
    let peak_after = {
        let mut bound = g.clone();
        cellm_opt::specialize(&mut bound, &prefill)?;
        peak_intermediate_bytes(&bound, &prefill)?
    };
    let is_decoder = g
        .inputs
        .iter()
        .any(|&v| g.value_name(v).starts_with("past_key_values"));
    let kv = if is_decoder {
        kv_copy_bytes(&g, &bindings(&g, 1, a.past))
    } else {
        None
    };
    let text = format!(
        "nodes {nodes_before} -> {}, kernels {kernels_before} -> {kernels}, peak intermediate bytes (prefill {}) {} -> {}{}",
        g.nodes.node_count(),
        a.prefill,
        peak_before.map_or("?".into(), |b| b.to_string()),
        peak_after.map_or("?".into(), |b| b.to_string()),
        kv.map_or(String::new(), |k| format!(", KV bytes copied per decode step (past {}) {k}", a.past)),
    );
    let v = json!({
        "nodes_before": nodes_before,
        "nodes_after": g.nodes.node_count(),
        "dispatches_prefill": kernels,
        "dispatches_per_decode_step": if is_decoder { json!(kernels) } else { Value::Null },
        "kv_bytes_copied_per_decode_step": kv,
        "host_to_device_bytes_per_decode_step": Value::Null,
        "device_to_host_bytes_per_decode_step": Value::Null,
        "peak_intermediate_bytes_before": peak_before,
        "peak_intermediate_bytes_after": peak_after,
    });
    Ok((v, text))
}

pub fn run(a: StatsArgs) -> Result<()> {
    let mut graphs = serde_json::Map::new();
    for (name, path) in graph_files(&a)? {
        let (v, text) = graph_stats(&path, &a)?;
        println!("{name}: {text}");
        graphs.insert(name, v);
    }
    if a.json {
        println!("{}", json!({ "graphs": graphs }));
    }
    Ok(())
}

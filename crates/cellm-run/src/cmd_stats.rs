//! `cellm-run stats MODEL [--json]`: per graph, nodes and device kernels
//! before/after the optimisation passes (decoders in the form the decoder
//! runtime runs: in-place KV caches, last-position logits), intermediate bytes
//! for a prefill of `--prefill` tokens (batch 1, one image) without buffer
//! reuse and at the liveness peak the executors' reuse reaches, resident weight
//! bytes, and per decode step: KV bytes copied and host↔device bytes.

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
    /// Storage dtype as `compile --dtype` sets it: f16 stores MatMul weights
    /// and the decoder's KV caches as f16.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
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

/// Bytes of past K/V copied in one decode step: Concats that join a past
/// input to new rows copy the whole past (a KvCacheAppend on a cache-held past
/// writes only the new rows, so it copies none).
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

/// Inputs held by the decoder's KV caches ([B, P, X] past inputs after the
/// `kv_cache` pass): bound to device buffers, never uploaded.
fn cache_held(g: &Graph, v: cellm_ir::ValueId) -> bool {
    g.value_name(v).starts_with("past_key_values")
        && g.values[v]
            .fact
            .as_ref()
            .and_then(|f| f.shape.as_ref())
            .is_some_and(|s| s.len() == 3)
}

/// Outputs written in place into those caches (never read back).
fn cache_written(g: &Graph, v: cellm_ir::ValueId) -> bool {
    g.values[v]
        .producer
        .is_some_and(|p| matches!(g.nodes[p].op, Op::KvCacheAppend(_)))
}

/// Host→device and device→host bytes of one decode step: every graph input
/// but the cache-held ones goes up, every output but the cache-written ones
/// comes back (what `KvDecoder` on the GPU transfers). A cached decoder
/// (see `cellm_runtime::decoder::resident_mask_input`) keeps its attention
/// mask on the device and takes its embedding row from embed_tokens' device
/// output (the SmolVLM pipeline uploads only the token id, to embed_tokens).
fn step_transfer_bytes(g: &Graph, b: &HashMap<String, usize>) -> (Option<usize>, Option<usize>) {
    let mask = cellm_runtime::decoder::resident_mask_input(g);
    let device_fed = |v: cellm_ir::ValueId| {
        mask.is_some() && (Some(v) == mask || g.value_name(v) == "inputs_embeds")
    };
    let up: Option<usize> = g
        .inputs
        .iter()
        .filter(|&&v| !cache_held(g, v) && !device_fed(v))
        .map(|&v| value_bytes(g, v, b))
        .sum();
    let down: Option<usize> = g
        .outputs
        .iter()
        .filter(|&&v| !cache_written(g, v))
        .map(|&v| value_bytes(g, v, b))
        .sum();
    (up, down)
}

/// Sum of all intermediates' bytes: what a run allocates with no buffer
/// reuse (each value its own buffer).
fn total_intermediate_bytes(g: &Graph, b: &HashMap<String, usize>) -> Option<usize> {
    g.nodes
        .node_indices()
        .flat_map(|ix| {
            g.nodes[ix]
                .outputs
                .iter()
                .flatten()
                .copied()
                .collect::<Vec<_>>()
        })
        .map(|v| value_bytes(g, v, b))
        .sum()
}

/// Bytes of the weights a backend keeps resident: float and packed 4/8-bit
/// initializers, as stored (f16 stays f16, u8 one byte per element).
fn weight_bytes(g: &Graph) -> usize {
    g.initializers
        .values()
        .filter(|t| {
            matches!(
                t.dtype(),
                cellm_ir::DType::F32
                    | cellm_ir::DType::F16
                    | cellm_ir::DType::U8
                    | cellm_ir::DType::I8
            )
        })
        .map(|t| t.bytes().len())
        .sum()
}

fn graph_stats(path: &Path, a: &StatsArgs) -> Result<(Value, String)> {
    let mut g = cellm_onnx::load(path)?;
    let nodes_before = g.nodes.node_count();
    let kernels_before = kernel_sequence(&g)?.len();
    let is_decoder = g
        .inputs
        .iter()
        .any(|&v| g.value_name(v).starts_with("past_key_values"));
    let kv_before = if is_decoder {
        kv_copy_bytes(&g, &bindings(&g, 1, a.past))
    } else {
        None
    };
    cellm_opt::optimize(&mut g).with_context(|| format!("optimising {}", path.display()))?;
    cellm_runtime::backend::apply_dtype(&mut g, &a.dtype)?;
    if is_decoder {
        // The form the decoder runtime runs: in-place KV caches, last-position logits.
        cellm_runtime::backend::with_kv_cache(&mut g, &a.dtype)?;
    }
    // KvCacheAppend is a buffer copy of the new rows, not a kernel dispatch.
    let kernels: Vec<String> = kernel_sequence(&g)?
        .into_iter()
        .filter(|k| k != "KvCacheAppend")
        .collect();
    let prefill = bindings(&g, a.prefill, 0);
    let (peak_before, peak_after) = {
        let mut bound = g.clone();
        cellm_opt::specialize(&mut bound, &prefill)?;
        (
            total_intermediate_bytes(&bound, &prefill),
            peak_intermediate_bytes(&bound, &prefill)?,
        )
    };
    let step = bindings(&g, 1, a.past);
    let (kv, up, down) = if is_decoder {
        let (up, down) = step_transfer_bytes(&g, &step);
        (kv_copy_bytes(&g, &step), up, down)
    } else {
        (None, None, None)
    };
    let prefill_extra = extra_prefill_dispatches(&g, a.prefill);
    let weights = weight_bytes(&g);
    let kv_per_position = is_decoder.then(|| kv_cache_bytes_per_position(&g));
    let text = format!(
        "nodes {nodes_before} -> {}, kernels {kernels_before} -> {} (prefill {}), intermediate bytes (prefill {}) {} without reuse -> {} peak with reuse, weights {weights} bytes{}",
        g.nodes.node_count(),
        kernels.len(),
        kernels.len() + prefill_extra,
        a.prefill,
        peak_before.map_or("?".into(), |b| b.to_string()),
        peak_after.map_or("?".into(), |b| b.to_string()),
        match (kv, kv_before) {
            (Some(k), before) => format!(
                ", KV cache {} bytes per position, per decode step (past {}): KV bytes copied {k} (imported graph {}), host->device {} bytes, device->host {} bytes",
                kv_per_position.map_or("?".into(), |b| b.to_string()),
                a.past,
                before.map_or("?".into(), |b| b.to_string()),
                up.map_or("?".into(), |b| b.to_string()),
                down.map_or("?".into(), |b| b.to_string()),
            ),
            _ => String::new(),
        },
    );
    let v = json!({
        "nodes_before": nodes_before,
        "nodes_after": g.nodes.node_count(),
        "dispatches_prefill": kernels.len() + prefill_extra,
        "dispatches_per_decode_step": if is_decoder { json!(kernels.len()) } else { Value::Null },
        "kv_bytes_copied_per_decode_step": kv,
        "kv_bytes_copied_per_decode_step_imported": kv_before,
        "host_to_device_bytes_per_decode_step": up,
        "device_to_host_bytes_per_decode_step": down,
        "peak_intermediate_bytes_before": peak_before,
        "peak_intermediate_bytes_after": peak_after,
        "weight_bytes": weights,
        "kv_cache_bytes_per_position": kv_per_position,
        "kernels": cellm_opt::stats::histogram(&kernels),
    });
    Ok((v, text))
}

/// Launches a `rows`-row prefill takes beyond one per kernel (the GPU's
/// row-dependent forms).
fn extra_prefill_dispatches(g: &Graph, rows: usize) -> usize {
    g.nodes
        .node_weights()
        .map(|n| match &n.op {
            Op::MatMulMultiRotary(op) => {
                cellm_gpu::ops::mat_mul_multi_rotary::extra_launches(op, rows)
            }
            _ => 0,
        })
        .sum()
}

/// Bytes one position adds to the in-place caches: the row bytes of every
/// [B, P, X] past input a KvCacheAppend reads (the runtime's cache form).
fn kv_cache_bytes_per_position(g: &Graph) -> usize {
    g.nodes
        .node_weights()
        .filter(|n| matches!(n.op, Op::KvCacheAppend(_)))
        .filter_map(|n| n.inputs.first().copied().flatten())
        .filter_map(|past| {
            let f = g.values[past].fact.as_ref()?;
            let row = f.shape.as_deref()?.last()?.known()?;
            Some(row * f.dtype.size())
        })
        .sum()
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

//! Quantized `.cellm` weights kept quantized in the llama graph (issue 8):
//! (a) `quant::to_n_bits` re-lays q4_0/q4_1/q8_0 blocks as MatMulNBits
//!     operands whose value, (q - zp)·s evaluated here in f64, is the block's
//!     value by `quant::dequantize` (the format's decoder);
//! (b) a tiny random llama with every linear weight (and the tied or untied
//!     lm_head) in q4_0/q4_1/q8_0 gives, through MatMulNBits nodes on the CPU
//!     interpreter, the logits of the same file built with every weight
//!     dequantized to dense f32 MatMuls; prefill and cached decode steps.
//! Fresh random weights each run; the seed is printed.

use cellm_format::format::{write_cellm, CellmFile, Header, PendingTensor};
use cellm_format::llama_graph::build_llama_decoder_dequantized;
use cellm_format::quant::{dequantize, quantize, to_n_bits, WeightDType, QK};
use cellm_format::{build_llama_decoder, LlamaGraphOptions};
use cellm_ir::{Op, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::PathBuf;

fn rng() -> StdRng {
    let seed = std::env::var("CELLM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(3)
        });
    eprintln!("seed {seed}");
    StdRng::seed_from_u64(seed)
}

fn tmp_dir() -> PathBuf {
    std::env::temp_dir().join(format!("cellm-llama-quant-test-{}", std::process::id()))
}

fn tmp(name: &str) -> PathBuf {
    let d = tmp_dir();
    std::fs::create_dir_all(&d).expect("temp dir");
    d.join(name)
}

/// Random values in [-scale, scale) + offset, with some whole blocks
/// constant (q4_1 stores those with d = 0).
fn values(r: &mut StdRng, n: usize, scale: f32, offset: f32) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n)
        .map(|_| offset + r.random_range(-scale..scale))
        .collect();
    for block in v.chunks_mut(QK) {
        if r.random_bool(0.05) {
            let c = r.random_range(-scale..scale);
            block.fill(c);
        }
    }
    v
}

#[test]
fn to_n_bits_is_exact() {
    let mut r = rng();
    for dtype in [WeightDType::Q4_0, WeightDType::Q4_1, WeightDType::Q8_0] {
        let (n, k) = (r.random_range(1..9usize), QK * r.random_range(1..6usize));
        let offset = r.random_range(-1.0f32..1.0);
        let v = values(&mut r, n * k, 1.5, offset);
        let mut bytes = quantize(dtype, &v).expect("quantize");
        if dtype == WeightDType::Q4_1 {
            // A d = 0 block whose codes are not all equal (other quantizers
            // may write those): its value is m everywhere.
            bytes[0..2].copy_from_slice(&half::f16::from_f32(0.0).to_le_bytes());
            bytes[4] = 0x5a;
        }
        let want = dequantize(dtype, &bytes, n * k).expect("dequantize");
        let q = to_n_bits(dtype, &bytes, n, k).expect("to_n_bits");
        assert_eq!(q.block_size, QK);
        let blocks = k / QK;
        assert_eq!(q.codes.len(), n * blocks * QK * q.bits / 8);
        assert_eq!(q.scales.len(), n * blocks);
        let default_zp = f64::from(1u32 << (q.bits - 1));
        for row in 0..n {
            for kk in 0..k {
                let b = row * blocks + kk / QK;
                let j = kk % QK;
                let code = if q.bits == 8 {
                    q.codes[b * QK + j]
                } else {
                    let byte = q.codes[b * QK / 2 + j / 2];
                    if j.is_multiple_of(2) {
                        byte & 0x0f
                    } else {
                        byte >> 4
                    }
                };
                let zp = q
                    .zero_points
                    .as_ref()
                    .map_or(default_zp, |z| f64::from(z[b]));
                let got = (f64::from(code) - zp) * f64::from(q.scales[b]);
                let w = f64::from(want[row * k + kk]);
                // Exact up to the f32 rounding of -m/d (2^-24 relative of |m|)
                // and of the reference's own q·d + m.
                assert!(
                    (got - w).abs() <= 1e-6 * (1.0 + w.abs() + 16.0 * f64::from(q.scales[b]).abs()),
                    "{dtype} row {row} k {kk}: MatMulNBits value {got} vs block value {w}"
                );
            }
        }
    }
    // Float weights are not block-quantized; a ragged matrix is refused.
    assert!(to_n_bits(WeightDType::F32, &[0u8; 4 * 32], 1, 32).is_err());
    let q = quantize(WeightDType::Q4_0, &[0.5f32; 64]).expect("quantize");
    assert!(to_n_bits(WeightDType::Q4_0, &q, 3, 32).is_err());
}

/// A tiny llama (dims multiples of 32 for the blocks) in a `.cellm` file with
/// `dtypes[i]` for the linear weights (cycled) and `embed` for the embedding.
fn write_model(
    r: &mut StdRng,
    path: &std::path::Path,
    dtypes: &[WeightDType],
    embed: WeightDType,
    head: Option<WeightDType>,
) -> (usize, usize, usize, usize) {
    let (hidden, heads, kv, ffn, vocab, layers) = (64usize, 4usize, 2usize, 96usize, 72usize, 2);
    let hd = hidden / heads;
    let config = serde_json::json!({
        "model_type": "llama", "hidden_size": hidden, "intermediate_size": ffn,
        "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv, "vocab_size": vocab, "rms_norm_eps": 1e-5,
        "max_position_embeddings": 64, "tie_word_embeddings": head.is_none()
    });
    let header = Header {
        architecture: "llama".into(),
        config,
        ..Default::default()
    };
    let mut tensors: Vec<(String, WeightDType, Vec<usize>, Vec<f32>)> = vec![];
    tensors.push((
        "model.embed_tokens.weight".into(),
        embed,
        vec![vocab, hidden],
        values(r, vocab * hidden, 1.0, 0.0),
    ));
    tensors.push((
        "model.norm.weight".into(),
        WeightDType::F32,
        vec![hidden],
        values(r, hidden, 0.2, 1.0),
    ));
    if let Some(d) = head {
        tensors.push((
            "lm_head.weight".into(),
            d,
            vec![vocab, hidden],
            values(r, vocab * hidden, 0.5, 0.0),
        ));
    }
    let mut which = dtypes.iter().cycle();
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        for norm in ["input_layernorm", "post_attention_layernorm"] {
            tensors.push((
                format!("{p}.{norm}.weight"),
                WeightDType::F32,
                vec![hidden],
                values(r, hidden, 0.2, 1.0),
            ));
        }
        for (name, out, inn) in [
            ("self_attn.q_proj", heads * hd, hidden),
            ("self_attn.k_proj", kv * hd, hidden),
            ("self_attn.v_proj", kv * hd, hidden),
            ("self_attn.o_proj", hidden, heads * hd),
            ("mlp.gate_proj", ffn, hidden),
            ("mlp.up_proj", ffn, hidden),
            ("mlp.down_proj", hidden, ffn),
        ] {
            // Q4_1-style offsets (weights not centred on 0) exercise the zero points.
            let offset = r.random_range(-0.1f32..0.1);
            tensors.push((
                format!("{p}.{name}.weight"),
                *which.next().expect("cycle"),
                vec![out, inn],
                values(r, out * inn, 0.3, offset),
            ));
        }
    }
    let pending = tensors
        .into_iter()
        .map(|(name, dtype, shape, v)| PendingTensor {
            name,
            dtype,
            shape,
            produce: Box::new(move || quantize(dtype, &v)),
        })
        .collect();
    write_cellm(path, &header, pending, &mut |_, _| {}).expect("write");
    (hidden, kv, hd, layers)
}

/// Logits of a prefill of `ids[..prefill]` then one step per remaining id.
fn run_steps(
    g: &cellm_ir::Graph,
    embed: &cellm_format::Embedder,
    ids: &[u32],
    prefill: usize,
    (hidden, kv, hd, layers): (usize, usize, usize, usize),
) -> Vec<Vec<f32>> {
    let mut past: Vec<Tensor> = (0..2 * layers)
        .map(|_| Tensor::zeros(cellm_ir::DType::F32, vec![1, kv, 0, hd]))
        .collect();
    let mut done = 0;
    let mut all = vec![];
    let mut chunks = vec![&ids[..prefill]];
    chunks.extend(ids[prefill..].chunks(1));
    for chunk in chunks {
        let n = chunk.len();
        let t = done + n;
        let mut inputs = HashMap::new();
        inputs.insert(
            "inputs_embeds".to_string(),
            Tensor::from_vec(vec![1, n, hidden], embed.embed(chunk).expect("embed")),
        );
        inputs.insert(
            "attention_mask".to_string(),
            Tensor::from_vec(vec![1, t], vec![1i64; t]),
        );
        inputs.insert(
            "position_ids".to_string(),
            Tensor::from_vec(vec![1, n], (done as i64..t as i64).collect()),
        );
        for l in 0..layers {
            inputs.insert(format!("past_key_values.{l}.key"), past[2 * l].clone());
            inputs.insert(
                format!("past_key_values.{l}.value"),
                past[2 * l + 1].clone(),
            );
        }
        let mut out = cellm_cpu::run(g, &inputs).expect("run");
        for l in 0..layers {
            past[2 * l] = out.remove(&format!("present.{l}.key")).expect("key");
            past[2 * l + 1] = out.remove(&format!("present.{l}.value")).expect("value");
        }
        done = t;
        all.push(
            out.remove("logits")
                .expect("logits")
                .to_f32_vec()
                .expect("f32"),
        );
    }
    all
}

#[test]
fn kept_quantized_graph_matches_dequantized_graph() {
    use WeightDType::*;
    let mut r = rng();
    let cases: [(&[WeightDType], WeightDType, Option<WeightDType>); 3] = [
        // SmolLM2's Q4_1 GGUF: q4_1 layers, q8_0 tied embedding / lm_head.
        (&[Q4_1], Q8_0, None),
        (&[Q4_0, Q4_1, Q8_0], Q4_1, Some(Q4_0)),
        // f32 and f16 weights mixed in stay dense MatMuls.
        (&[Q8_0, F32, Q4_0, F16], F32, Some(Q8_0)),
    ];
    for (i, (dtypes, embed, head)) in cases.into_iter().enumerate() {
        let path = tmp(&format!("tiny{i}.cellm"));
        let dims = write_model(&mut r, &path, dtypes, embed, head);
        let file = CellmFile::open(&path).expect("open");
        let opts = LlamaGraphOptions::default();
        let kept = build_llama_decoder(&file, &opts).expect("build kept");
        let dense = build_llama_decoder_dequantized(&file, &opts).expect("build dense");
        let quantized_linears = |g: &cellm_ir::Graph| {
            g.nodes
                .node_weights()
                .filter(|n| matches!(n.op, Op::MatMulNBits(_)))
                .count()
        };
        let want_nbits = dims.3 * 7 * dtypes.iter().filter(|d| d.is_quantized()).count()
            / dtypes.len()
            + usize::from(head.unwrap_or(embed).is_quantized());
        assert_eq!(quantized_linears(&kept.graph), want_nbits, "case {i}");
        assert_eq!(quantized_linears(&dense.graph), 0, "case {i}");
        let vocab = kept.embedder.vocab();
        let ids: Vec<u32> = (0..8).map(|_| r.random_range(0..vocab as u32)).collect();
        let got = run_steps(&kept.graph, &kept.embedder, &ids, 5, dims);
        let want = run_steps(&dense.graph, &dense.embedder, &ids, 5, dims);
        let scale = want.iter().flatten().fold(1f32, |m, v| m.max(v.abs()));
        for (step, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.len(), w.len(), "case {i} step {step}");
            for (j, (a, b)) in g.iter().zip(w).enumerate() {
                // Same weights, f32 sums in another order (block sums, the
                // zero-point split) through 2 layers: 1e-4 of the largest logit.
                assert!(
                    (a - b).abs() <= 1e-4 * scale,
                    "case {i} step {step} logit {j}: kept {a} vs dequantized {b} (scale {scale})"
                );
            }
        }
    }
    // Only this test's own folder (tmp("").parent() would be the temp dir itself).
    let _ = std::fs::remove_dir_all(tmp_dir());
}

//! The `multi_head_attention_mat_mul` decoder-runtime pass on the micro
//! decoders: after the default pipeline, `kv_cache` and `causal_mask`, each
//! layer's attention and output projection become one node and the graph
//! computes exactly what it did (the CPU kernel runs the same two kernels);
//! an attention output with another reader is left alone.

use cellm_ir::{DType, Graph, Op, Tensor};
use cellm_opt::passes::{causal_mask, kv_cache, multi_head_attention_mat_mul};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

mod common;

fn decoder_form(rel: &str) -> Graph {
    let mut g = common::optimized_model(rel);
    assert!(kv_cache::apply(&mut g).unwrap() > 0, "{rel}: kv_cache");
    causal_mask::apply(&mut g, "attention_mask", Some("position_ids")).unwrap();
    g
}

fn count(g: &Graph, f: impl Fn(&Op) -> bool) -> usize {
    g.nodes.node_weights().filter(|n| f(&n.op)).count()
}

/// One prefill of `rows` random embeddings over empty caches: the logits.
fn logits(g: &Graph, rows: usize, seed: u64) -> Vec<f32> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    let mut inputs = HashMap::new();
    for &v in &g.inputs {
        let name = g.value_name(v).to_string();
        let f = g.values[v].fact.clone().unwrap();
        let dims: Vec<usize> = f
            .shape
            .unwrap()
            .iter()
            .enumerate()
            .map(|(i, d)| match (d.known(), i) {
                (Some(n), _) => n,
                (None, 0) => 1,
                (None, _) if name.starts_with("past") => 0,
                (None, _) if name == "attention_mask" => rows,
                (None, _) => rows,
            })
            .collect();
        let n: usize = dims.iter().product();
        let t = match (f.dtype, name.as_str()) {
            (DType::F32, _) => Tensor::from_vec(
                dims,
                (0..n)
                    .map(|_| r.random_range(-0.5f32..0.5))
                    .collect::<Vec<_>>(),
            ),
            (DType::I64, "position_ids") => {
                Tensor::from_vec(dims, (0..n as i64).collect::<Vec<_>>())
            }
            (DType::I64, _) => Tensor::from_vec(dims, vec![1i64; n]),
            (d, _) => panic!("input {name} of {d}"),
        };
        inputs.insert(name, t);
    }
    let mut out = cellm_cpu::run(g, &inputs).expect("run");
    out.remove("logits").unwrap().to_f32_vec().unwrap()
}

#[test]
fn both_micro_decoders_fuse_each_layer_and_compute_the_same() {
    let seed: u64 = rand::rng().random();
    println!("seed {seed}");
    for rel in [
        "micro/onnx/decoder_model_merged.onnx",
        "micro/onnx_torchscript/decoder_model_merged.onnx",
    ] {
        let before = decoder_form(rel);
        let mut g = before.clone();
        let mha = count(&g, |op| matches!(op, Op::MultiHeadAttention(_)));
        let n = multi_head_attention_mat_mul::apply(&mut g).unwrap();
        assert_eq!(n, mha, "{rel}: every attention fuses");
        assert_eq!(count(&g, |op| matches!(op, Op::MultiHeadAttention(_))), 0);
        assert_eq!(
            count(&g, |op| matches!(op, Op::MultiHeadAttentionMatMul(_))),
            mha
        );
        assert_eq!(g.nodes.node_count(), before.nodes.node_count() - mha);
        for rows in [1, 5] {
            let (want, got) = (logits(&before, rows, seed), logits(&g, rows, seed));
            assert_eq!(got, want, "{rel}: {rows} rows (seed {seed})");
        }
    }
}

#[test]
fn attention_read_twice_is_left_alone() {
    let mut g = decoder_form("micro/onnx/decoder_model_merged.onnx");
    let attn_out = g
        .nodes
        .node_weights()
        .find(|n| matches!(n.op, Op::MultiHeadAttention(_)))
        .and_then(|n| n.outputs[0])
        .unwrap();
    g.outputs.push(attn_out);
    let mha = count(&g, |op| matches!(op, Op::MultiHeadAttention(_)));
    let n = multi_head_attention_mat_mul::apply(&mut g).unwrap();
    assert_eq!(n, mha - 1);
    assert_eq!(count(&g, |op| matches!(op, Op::MultiHeadAttention(_))), 1);
}

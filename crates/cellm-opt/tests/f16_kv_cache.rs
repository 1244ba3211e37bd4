//! The `f16_kv_cache` decoder-runtime pass on the micro decoders: after the
//! default pipeline and `kv_cache`, every past input and present output turns
//! f16, the projection stores its key and value outputs as f16, queries and
//! logits stay f32; graphs outside its guard are left alone.

use cellm_ir::{DType, Graph, Op};
use cellm_opt::passes::{f16_kv_cache, kv_cache};

mod common;

fn load(rel: &str) -> Graph {
    common::optimized_model(rel)
}

/// dtypes of the graph inputs/outputs whose names start with `prefix`.
fn dtypes(g: &Graph, values: &[cellm_ir::ValueId], prefix: &str) -> Vec<DType> {
    values
        .iter()
        .filter(|&&v| g.value_name(v).starts_with(prefix))
        .map(|&v| g.values[v].fact.as_ref().expect("fact").dtype)
        .collect()
}

#[test]
fn both_micro_decoders_get_f16_caches() {
    for rel in [
        "micro/onnx/decoder_model_merged.onnx",
        "micro/onnx_torchscript/decoder_model_merged.onnx",
    ] {
        let mut g = load(rel);
        assert!(kv_cache::apply(&mut g).unwrap() > 0, "{rel}: kv_cache");
        let pasts = dtypes(&g, &g.inputs, "past_key_values");
        assert!(!pasts.is_empty() && pasts.iter().all(|&d| d == DType::F32));
        let n = f16_kv_cache::apply(&mut g).unwrap();
        assert_eq!(n, pasts.len(), "{rel}: every cache converts");
        assert!(dtypes(&g, &g.inputs, "past_key_values")
            .iter()
            .all(|&d| d == DType::F16));
        let presents = dtypes(&g, &g.outputs, "present");
        assert!(presents.iter().all(|&d| d == DType::F16), "{rel}");
        assert_eq!(dtypes(&g, &g.outputs, "logits"), [DType::F32]);
        for n in g.nodes.node_weights() {
            match &n.op {
                Op::MatMulMultiRotary(op) => assert_eq!(op.f16_outputs, [1, 2], "{rel}"),
                Op::MultiHeadAttention(_) => {
                    let q = n.inputs[0].unwrap();
                    let out = n.outputs[0].unwrap();
                    for v in [q, out] {
                        assert_eq!(g.values[v].fact.as_ref().unwrap().dtype, DType::F32);
                    }
                }
                _ => {}
            }
        }
        // Converted caches no longer match (their past is f16).
        assert_eq!(f16_kv_cache::apply(&mut g).unwrap(), 0, "{rel}: second run");
    }
}

#[test]
fn concat_form_and_shared_rows_are_left_alone() {
    let rel = "micro/onnx/decoder_model_merged.onnx";
    // Without the kv_cache pass there is no KvCacheAppend: the graph's
    // interface (past inputs, present outputs) must not change.
    let mut g = load(rel);
    assert_eq!(f16_kv_cache::apply(&mut g).unwrap(), 0);
    assert!(dtypes(&g, &g.inputs, "past_key_values")
        .iter()
        .all(|&d| d == DType::F32));

    // New key rows that something else reads too stay f32 there.
    let mut g = load(rel);
    kv_cache::apply(&mut g).unwrap();
    let appends: Vec<_> = g
        .nodes
        .node_indices()
        .filter(|&ix| matches!(g.nodes[ix].op, Op::KvCacheAppend(_)))
        .collect();
    let new = g.nodes[appends[0]].inputs[1].unwrap();
    g.outputs.push(new);
    let n = f16_kv_cache::apply(&mut g).unwrap();
    assert_eq!(n, appends.len() - 1);
    assert_eq!(g.values[new].fact.as_ref().unwrap().dtype, DType::F32);
}

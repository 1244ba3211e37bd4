//! The `causal_mask` decoder-runtime pass on the micro decoders: after the
//! default pipeline and `kv_cache`, the attention bias built from
//! attention_mask is replaced by causal attention and its preamble removed.

use cellm_ir::{Graph, Op};
use cellm_opt::passes::{causal_mask, kv_cache};
use std::path::PathBuf;

fn decoder_form(rel: &str) -> Graph {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(rel);
    let mut g = cellm_onnx::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
    cellm_opt::optimize(&mut g).unwrap_or_else(|e| panic!("{rel}: {e:#}"));
    assert!(
        kv_cache::apply(&mut g).unwrap() > 0,
        "{rel}: kv_cache did not match"
    );
    g
}

fn attentions(g: &Graph) -> Vec<(bool, bool)> {
    g.nodes
        .node_weights()
        .filter_map(|n| match &n.op {
            Op::MultiHeadAttention(op) => Some((
                op.unidirectional,
                n.inputs.get(5).copied().flatten().is_some(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn both_micro_decoders_get_causal_attention() {
    for rel in [
        "micro/onnx/decoder_model_merged.onnx",
        "micro/onnx_torchscript/decoder_model_merged.onnx",
    ] {
        let mut g = decoder_form(rel);
        let before = g.nodes.node_count();
        assert!(
            attentions(&g).iter().all(|&(_, bias)| bias),
            "{rel}: no bias to start with"
        );
        let n = causal_mask::apply(&mut g, "attention_mask", Some("position_ids")).unwrap();
        println!(
            "{rel}: {n} rewritten, nodes {before} -> {}",
            g.nodes.node_count()
        );
        assert_eq!(n, 2, "{rel}: both layers' attentions");
        assert!(attentions(&g).iter().all(|&(causal, bias)| causal && !bias));
        let mask = g.find("attention_mask").unwrap();
        assert!(g.consumers(mask).is_empty(), "{rel}: mask still read");
        let left: Vec<&str> = g
            .nodes
            .node_weights()
            .map(|n| n.name.as_str())
            .filter(|n| n.contains("attn_mask_reformat"))
            .collect();
        assert!(left.is_empty(), "{rel}: preamble left: {left:?}");
    }
}

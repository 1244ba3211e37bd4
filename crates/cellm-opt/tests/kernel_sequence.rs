//! The plain-ONNX (torchscript) decoder and the onnxruntime-genai builder
//! decoder are the same model; after the passes they must run the same
//! kernels. Compared: the device kernels on the data path of `inputs_embeds`
//! (see `cellm_opt::stats`), counted by op kind. Mask building is left out:
//! the two exports build the attention bias differently, once per run.

use cellm_ir::Graph;
use cellm_opt::stats::{data_path_kernels, histogram, kernel_sequence};
use std::path::PathBuf;

fn optimized(rel: &str) -> (Graph, usize) {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(rel);
    let mut g = cellm_onnx::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()));
    let before = g.nodes.node_count();
    cellm_opt::optimize(&mut g).unwrap_or_else(|e| panic!("{rel}: {e:#}"));
    (g, before)
}

#[test]
fn torchscript_and_builder_decoders_run_the_same_kernels() {
    let mut hists = vec![];
    for rel in [
        "micro/onnx/decoder_model_merged.onnx",
        "micro/onnx_torchscript/decoder_model_merged.onnx",
    ] {
        let (g, before) = optimized(rel);
        let src = g.find("inputs_embeds").expect("inputs_embeds");
        let seq = data_path_kernels(&g, &[src]).expect("sequence");
        let all = kernel_sequence(&g).expect("kernels");
        println!(
            "{rel}: {before} -> {} nodes, {} kernels ({} on the data path)\n  {}",
            g.nodes.node_count(),
            all.len(),
            seq.len(),
            seq.join(" ")
        );
        hists.push(histogram(&seq));
    }
    println!("builder:     {:?}\ntorchscript: {:?}", hists[0], hists[1]);
    assert_eq!(hists[0], hists[1], "kernel counts differ");
    // Guards against a vacuous pass: both really contain the fused kernels.
    for op in [
        "MultiHeadAttention",
        "SkipSimplifiedLayerNormalization",
        // q/k/v projections with the q/k rotaries (MatMulMulti and
        // RotaryEmbeddingPair folded into one).
        "MatMulMultiRotary",
        "MatMulSiluMul",
    ] {
        assert!(
            hists[1].get(op).copied().unwrap_or(0) >= 2,
            "torchscript lacks {op}"
        );
    }
}

//! Whole-graph goldens with the optimisation passes on: every fixture graph is
//! optimised by `cellm_opt::optimize`, then run by the CPU interpreter and
//! compared with the onnxruntime outputs. Harness and tolerances: `cellm_testkit`.

use cellm_ir::Graph;
use cellm_testkit::{decoder, embed, vision, Runner, F16_TOL, F32_TOL};

/// Optimises (the passes must never grow a graph), then runs on the CPU.
fn optimised_cpu(mut g: Graph) -> Option<Runner> {
    let before = g.nodes.node_count();
    let report = cellm_opt::optimize(&mut g).unwrap_or_else(|e| panic!("{}: {e:#}", g.name));
    let after = g.nodes.node_count();
    println!(
        "{before} nodes -> {after} after passes ({:?})",
        report.rewrites
    );
    assert!(
        after <= before,
        "passes grew the graph from {before} to {after} nodes"
    );
    Some(Box::new(move |inputs| cellm_cpu::run(&g, inputs)))
}

#[test]
fn micro_vision_fp32() {
    vision("micro", "", "golden", F32_TOL, &optimised_cpu);
}
#[test]
fn micro_embed_fp32() {
    embed("micro", "", "golden", F32_TOL, &optimised_cpu);
}
#[test]
fn micro_decoder_fp32() {
    decoder(
        "micro",
        "onnx/decoder_model_merged.onnx",
        "golden",
        F32_TOL,
        &optimised_cpu,
    );
}
#[test]
fn micro_torchscript_decoder_fp32() {
    decoder(
        "micro",
        "onnx_torchscript/decoder_model_merged.onnx",
        "golden",
        F32_TOL,
        &optimised_cpu,
    );
}
#[test]
fn micro_vision_fp16() {
    vision("micro", "_fp16", "golden_fp16", F16_TOL, &optimised_cpu);
}
#[test]
fn micro_embed_fp16() {
    embed("micro", "_fp16", "golden_fp16", F16_TOL, &optimised_cpu);
}
#[test]
fn micro_decoder_fp16() {
    decoder(
        "micro",
        "onnx/decoder_model_merged_fp16.onnx",
        "golden_fp16",
        F16_TOL,
        &optimised_cpu,
    );
}
#[test]
fn tiny_vision_fp32() {
    vision("tiny", "", "golden", F32_TOL, &optimised_cpu);
}
#[test]
fn tiny_embed_fp32() {
    embed("tiny", "", "golden", F32_TOL, &optimised_cpu);
}
#[test]
fn tiny_decoder_fp32() {
    decoder(
        "tiny",
        "onnx/decoder_model_merged.onnx",
        "golden",
        F32_TOL,
        &optimised_cpu,
    );
}

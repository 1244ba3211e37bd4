//! Whole-graph goldens on the GPU: `GpuSession` against onnxruntime on the
//! SmolVLM look-alike exports (models/micro, models/tiny). Each graph gets one
//! session (weights uploaded once) reused for every step. Fails without a GPU
//! adapter unless CELLM_ALLOW_NO_GPU=1. Prints the adapter and where ops ran.
//! Harness and tolerances: `cellm_testkit`.
//!
//! The fp16 graphs also run with SHADER_F16 ignored (halves packed in u32
//! words), and two graphs with every tensor above 1 MiB split over bindings.

mod common;

use cellm_ir::Graph;
use cellm_testkit::{decoder, embed, vision, Runner, F16_TOL, F32_TOL};
use common::{session, Mode};

fn gpu(g: Graph) -> Option<Runner> {
    session(g, Mode::Default)
}
fn gpu_packed_f16(g: Graph) -> Option<Runner> {
    session(g, Mode::NoShaderF16)
}
fn gpu_split(g: Graph) -> Option<Runner> {
    session(g, Mode::Split1MiB)
}

cellm_testkit::float_golden_tests!(gpu);

#[test]
fn micro_vision_fp16_packed() {
    vision("micro", "_fp16", "golden_fp16", F16_TOL, &gpu_packed_f16);
}
#[test]
fn micro_embed_fp16_packed() {
    embed("micro", "_fp16", "golden_fp16", F16_TOL, &gpu_packed_f16);
}
#[test]
fn micro_decoder_fp16_packed() {
    decoder(
        "micro",
        "onnx/decoder_model_merged_fp16.onnx",
        "golden_fp16",
        F16_TOL,
        &gpu_packed_f16,
    );
}
#[test]
fn micro_embed_fp16_split() {
    embed("micro", "_fp16", "golden_fp16", F16_TOL, &gpu_split);
}
#[test]
fn micro_decoder_fp32_split() {
    decoder(
        "micro",
        "onnx/decoder_model_merged.onnx",
        "golden",
        F32_TOL,
        &gpu_split,
    );
}

//! Whole-graph goldens: the CPU interpreter against onnxruntime on the SmolVLM
//! look-alike exports (models/micro, models/tiny; see models/FIXTURES.md).
//! Harness and tolerances: `cellm_testkit`.

use cellm_ir::Graph;
use cellm_testkit::{decoder, embed, fixture, vision, Runner, F16_TOL, F32_TOL};

fn cpu(g: Graph) -> Option<Runner> {
    Some(Box::new(move |inputs| cellm_cpu::run(&g, inputs)))
}

#[test]
fn micro_vision_fp32() {
    vision("micro", "", "golden", F32_TOL, &cpu);
}
#[test]
fn micro_embed_fp32() {
    embed("micro", "", "golden", F32_TOL, &cpu);
}
#[test]
fn micro_decoder_fp32() {
    decoder(
        "micro",
        "onnx/decoder_model_merged.onnx",
        "golden",
        F32_TOL,
        &cpu,
    );
}
#[test]
fn micro_torchscript_decoder_fp32() {
    decoder(
        "micro",
        "onnx_torchscript/decoder_model_merged.onnx",
        "golden",
        F32_TOL,
        &cpu,
    );
}
#[test]
fn micro_vision_fp16() {
    vision("micro", "_fp16", "golden_fp16", F16_TOL, &cpu);
}
#[test]
fn micro_embed_fp16() {
    embed("micro", "_fp16", "golden_fp16", F16_TOL, &cpu);
}
#[test]
fn micro_decoder_fp16() {
    decoder(
        "micro",
        "onnx/decoder_model_merged_fp16.onnx",
        "golden_fp16",
        F16_TOL,
        &cpu,
    );
}
#[test]
fn tiny_vision_fp32() {
    vision("tiny", "", "golden", F32_TOL, &cpu);
}
#[test]
fn tiny_embed_fp32() {
    embed("tiny", "", "golden", F32_TOL, &cpu);
}
#[test]
fn tiny_decoder_fp32() {
    decoder(
        "tiny",
        "onnx/decoder_model_merged.onnx",
        "golden",
        F32_TOL,
        &cpu,
    );
}

/// Guards the fixture lookup itself: without the files every test above would fail loudly,
/// but this names the cause.
#[test]
fn fixtures_are_present() {
    let p = fixture("micro/golden/manifest.json");
    assert!(p.exists(), "{} is missing", p.display());
}

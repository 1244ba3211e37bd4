//! Whole-graph goldens on the GPU with the optimisation passes on: every
//! fixture graph is optimised by `cellm_opt::optimize_with(OptOptions::gpu())`
//! (the pass set the runtime uses for GPU sessions), then run by
//! `cellm_gpu::GpuSession` and compared with the onnxruntime outputs. Fails
//! without a GPU adapter unless CELLM_ALLOW_NO_GPU=1; run with
//! `NODEVICE_SELECT=1` on Mesa. Harness and tolerances: `cellm_testkit`.

#[path = "../../cellm-gpu/tests/common/mod.rs"]
mod common;

use cellm_ir::Graph;
use cellm_testkit::{decoder, Runner, F16_TOL, F32_TOL};
use common::{session, Mode};

fn optimise(g: &mut Graph) {
    let before = g.nodes.node_count();
    cellm_opt::optimize_with(g, &cellm_opt::OptOptions::gpu())
        .unwrap_or_else(|e| panic!("{}: {e:#}", g.name));
    println!("{before} nodes -> {} after passes", g.nodes.node_count());
}

fn gpu(mut g: Graph) -> Option<Runner> {
    optimise(&mut g);
    session(g, Mode::Default)
}
fn gpu_packed_f16(mut g: Graph) -> Option<Runner> {
    optimise(&mut g);
    session(g, Mode::NoShaderF16)
}
fn gpu_split(mut g: Graph) -> Option<Runner> {
    optimise(&mut g);
    session(g, Mode::Split1MiB)
}

cellm_testkit::float_golden_tests!(gpu);

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
fn micro_decoder_fp32_split() {
    decoder(
        "micro",
        "onnx/decoder_model_merged.onnx",
        "golden",
        F32_TOL,
        &gpu_split,
    );
}

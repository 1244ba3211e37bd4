//! Whole-chain goldens for the quantized micro variants on the GPU: each
//! variant against onnxruntime's outputs for that same variant
//! (`golden_<variant>/`), vision, embed and decoder (greedy tokens must be
//! identical). The quantized ops run as device kernels (the test fails if any
//! of them falls back to the host), with packed weights kept packed. Cases
//! and tolerances (with their reasons): `cellm_testkit::quant_goldens`, shared
//! with the CPU's (crates/cellm-run/tests/goldens_quant.rs).

mod common;

use cellm_gpu::{GpuSession, SessionOptions};
use cellm_ir::Graph;
use cellm_testkit::quant_goldens::{Q4F16_TOL, QUANT_TOL};
use cellm_testkit::{decoder, load, Runner};
use std::cell::RefCell;
use std::sync::Arc;

/// Ops that must run on the device in these graphs.
const QUANT_OPS: [&str; 8] = [
    "MatMulNBits",
    "MatMulBnb4",
    "MatMulInteger",
    "ConvInteger",
    "DynamicQuantizeLinear",
    "DequantizeLinear",
    "QuantizeLinear",
    "GatherBlockQuantized",
];

fn session_of(g: Graph, opts: SessionOptions) -> Option<Arc<GpuSession>> {
    let ctx = common::gpu()?;
    let name = g.name.clone();
    Some(Arc::new(
        GpuSession::with_context(ctx, g, opts).unwrap_or_else(|e| panic!("{name}: {e:#}")),
    ))
}

/// A runner over `s` that fails when a quantized op ran on the host.
fn runner(s: Arc<GpuSession>) -> Runner {
    Box::new(move |inputs| {
        let out = s.run(inputs)?;
        let st = s.last_stats();
        println!(
            "  run: {} dispatches, {} submits; host ops {:?}",
            st.dispatches, st.submits, st.host_ops
        );
        if let Some(op) = QUANT_OPS.iter().find(|o| st.host_ops.contains_key(**o)) {
            anyhow::bail!("{op} ran on the host: {:?}", st.host_ops);
        }
        Ok(out)
    })
}

fn gpu(g: Graph) -> Option<Runner> {
    session_of(g, SessionOptions::default()).map(runner)
}

fn gpu_packed_f16(g: Graph) -> Option<Runner> {
    session_of(
        g,
        SessionOptions {
            disable_shader_f16: true,
            ..SessionOptions::default()
        },
    )
    .map(runner)
}

cellm_testkit::quant_golden_tests!(gpu);

/// q4f16 with SHADER_F16 ignored: f16 activations and scales as packed halves.
#[test]
fn micro_decoder_q4f16_packed_f16() {
    decoder(
        "micro",
        "onnx/decoder_model_merged_q4f16.onnx",
        "golden_q4f16",
        Q4F16_TOL,
        &gpu_packed_f16,
    );
}

/// Device weight memory of the q4 decoder, after a full golden run (integer
/// weights are uploaded on first use), is at most 0.3x the fp32 decoder's.
#[test]
fn micro_decoder_q4_weight_bytes() {
    let kept: RefCell<Option<Arc<GpuSession>>> = RefCell::new(None);
    let prepare = |g: Graph| {
        let s = session_of(g, SessionOptions::default())?;
        *kept.borrow_mut() = Some(s.clone());
        Some(runner(s))
    };
    decoder(
        "micro",
        "onnx/decoder_model_merged_q4.onnx",
        "golden_q4",
        QUANT_TOL,
        &prepare,
    );
    let Some(q4) = kept.borrow_mut().take() else {
        return;
    };
    let Some(fp32) = session_of(
        load("micro/onnx/decoder_model_merged.onnx"),
        SessionOptions::default(),
    ) else {
        return;
    };
    let (q, f) = (q4.weight_bytes(), fp32.weight_bytes());
    let ratio = q as f64 / f as f64;
    println!("device weight bytes: q4 {q}, fp32 {f}, ratio {ratio:.3}");
    assert!(
        ratio <= 0.3,
        "q4 decoder weights {q} B vs fp32 {f} B: ratio {ratio:.3} > 0.3"
    );
}

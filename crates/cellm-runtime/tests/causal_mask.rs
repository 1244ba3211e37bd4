//! The `causal_mask` pass in the decoder runtime's form (`Executable::decoder`):
//! a KV decode (prefill 5 rows, then single steps) gives the same logits as
//! the same cached decoder built without the pass (attention bias from the
//! mask preamble), on the CPU and on the GPU, for both micro exports.

use anyhow::Result;
use cellm_ir::{Graph, Op};
use cellm_runtime::backend::{compile_for, Backend, ExecOptions, Executable};
use cellm_runtime::decoder::KvDecoder;
use rand::{Rng, SeedableRng};

mod common;
use common::{fixture, gpu, max_rel};

/// (attentions, of which causal without a bias input), alone or fused with
/// their output projection.
fn causal_attentions(g: &Graph) -> (usize, usize) {
    let mut n = (0, 0);
    for node in g.nodes.node_weights() {
        let op = match &node.op {
            Op::MultiHeadAttention(op) => op,
            Op::MultiHeadAttentionMatMul(f) => &f.attention,
            _ => continue,
        };
        n.0 += 1;
        if op.unidirectional && node.inputs.get(5).copied().flatten().is_none() {
            n.1 += 1;
        }
    }
    n
}

/// What `Executable::decoder` does, less the causal_mask pass.
fn without_pass(file: &str, backend: &Backend) -> Result<KvDecoder> {
    let mut g = cellm_onnx::load(&fixture(file))?;
    // The plan's form (on the CPU, weights in panels), as `decoder` builds it.
    compile_for(&mut g, backend, "f32")?;
    assert!(cellm_opt::passes::kv_cache::apply(&mut g)? > 0);
    cellm_opt::passes::last_logits::apply(&mut g, "logits")?;
    assert_eq!(causal_attentions(&g).1, 0);
    KvDecoder::new(Executable::prepared(g, backend)?)
}

fn with_pass(file: &str, backend: &Backend) -> Result<KvDecoder> {
    let g = cellm_onnx::load(&fixture(file))?;
    let exe = Executable::decoder(g, backend, &ExecOptions::default())?;
    let (all, causal) = causal_attentions(exe.graph());
    assert!(
        all > 0 && causal == all,
        "{file}: {causal} of {all} attentions causal"
    );
    KvDecoder::new(exe)
}

/// Prefill 5 random rows, then 5 single steps. The two forms differ only in
/// how masked keys get weight 0 (bias -3.4e38 added vs f32::MIN added on the
/// CPU, skipped on the GPU), so the CPU agrees to rounding (1e-6 of the
/// largest logit); the GPU's skipped keys may change its summation order
/// (1e-5).
fn compare(file: &str, backend: &Backend, tol: f64) -> Result<()> {
    let seed: u64 = rand::rng().random();
    println!("{file} on {}: seed {seed}", backend.name());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut reference = without_pass(file, backend)?;
    let mut fast = with_pass(file, backend)?;
    let hidden = reference.hidden_size();
    let mut rows = |n: usize| -> Vec<f32> {
        (0..n * hidden)
            .map(|_| rng.random_range(-0.5..0.5))
            .collect()
    };
    let steps: Vec<Vec<f32>> = std::iter::once(rows(5))
        .chain((0..5).map(|_| rows(1)))
        .collect();
    for (i, x) in steps.iter().enumerate() {
        let want = reference.forward(x)?;
        let got = fast.forward(x)?;
        let err = max_rel(&got, &want);
        println!("  step {i}: max rel diff {err:.2e}");
        assert!(
            err <= tol,
            "{file} on {} step {i}: max rel diff {err:.2e} > {tol:.0e} (seed {seed})",
            backend.name()
        );
    }
    Ok(())
}

#[test]
fn cpu_causal_matches_mask_preamble() -> Result<()> {
    compare("micro/onnx/decoder_model_merged.onnx", &Backend::Cpu, 1e-6)?;
    compare(
        "micro/onnx_torchscript/decoder_model_merged.onnx",
        &Backend::Cpu,
        1e-6,
    )
}

#[test]
fn gpu_causal_matches_mask_preamble() -> Result<()> {
    let Some(gpu) = gpu() else { return Ok(()) };
    compare("micro/onnx/decoder_model_merged.onnx", &gpu, 1e-5)?;
    compare(
        "micro/onnx_torchscript/decoder_model_merged.onnx",
        &gpu,
        1e-5,
    )
}

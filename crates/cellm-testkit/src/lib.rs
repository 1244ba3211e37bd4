//! Test support: fixture lookup and the whole-graph golden harness that the CPU,
//! GPU and optimised-graph tests share. A backend plugs in as a `prepare`
//! function that turns a graph into a runner.
//!
//! Tolerances (from the issues, justified by the reference itself): fp32 graphs
//! max|Δ| ≤ 1e-4·max(1, max|ort|) — float summation order differs between
//! implementations, and torch vs onnxruntime already differ by 1.2e-4 on micro;
//! fp16 graphs ≤ 2e-2·max(1, max|ort|) — one f16 ulp at |x| ≈ 16 is 1.6e-2.
//! Greedy tokens must be identical.

pub mod quant_goldens;
pub mod random_programs;

use anyhow::Result;
use cellm_ir::{npy, DType, Graph, Tensor};
use half::f16;
use std::collections::HashMap;
use std::path::PathBuf;

pub const F32_TOL: f64 = 1e-4;
pub const F16_TOL: f64 = 2e-2;

/// A graph ready to run on some backend.
pub type Runner = Box<dyn Fn(&HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>>>;
/// Turns a loaded graph into a runner; `None` skips the test (e.g. no GPU
/// where that is allowed).
pub type Prepare<'a> = &'a dyn Fn(Graph) -> Option<Runner>;

/// A random generator from a fresh seed (printed), or from CELLM_TEST_SEED to
/// replay a failure.
pub fn seeded_rng() -> rand::rngs::StdRng {
    use rand::{Rng, SeedableRng};
    let seed = std::env::var("CELLM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("seed {seed} (CELLM_TEST_SEED to replay)");
    rand::rngs::StdRng::seed_from_u64(seed)
}

/// A tensor of uniform values in [lo, hi): f32, or rounded to f16.
pub fn random_tensor(
    r: &mut rand::rngs::StdRng,
    shape: &[usize],
    dtype: DType,
    lo: f32,
    hi: f32,
) -> Tensor {
    use rand::Rng;
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| r.random_range(lo..hi)).collect();
    match dtype {
        DType::F16 => Tensor::from_vec(
            shape.to_vec(),
            v.into_iter().map(f16::from_f32).collect::<Vec<_>>(),
        ),
        _ => Tensor::from_vec(shape.to_vec(), v),
    }
}

/// `models/<rel>` in the repository, else `../shared/fixtures/<rel>` beside it.
pub fn fixture(rel: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let local = root.join("models").join(rel);
    if local.exists() {
        return local;
    }
    root.join("../shared/fixtures").join(rel)
}

pub fn load(rel: &str) -> Graph {
    let p = fixture(rel);
    cellm_onnx::load(&p).unwrap_or_else(|e| panic!("{}: {e:#}", p.display()))
}

pub fn read(rel: &str) -> Tensor {
    npy::read(&fixture(rel)).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Reads `size/dir/name`, falling back to `size/golden/name` (variant folders
/// only store the files that differ).
pub fn read_golden(size: &str, dir: &str, name: &str) -> Tensor {
    let p = fixture(&format!("{size}/{dir}/{name}"));
    if p.exists() {
        return npy::read(&p).unwrap_or_else(|e| panic!("{e:#}"));
    }
    read(&format!("{size}/golden/{name}"))
}

pub fn to_f32(t: &Tensor) -> Vec<f32> {
    t.to_f32_vec().expect("float tensor")
}

/// Casts a float tensor to `dtype` (f32 or f16), for feeding fp16 graphs.
pub fn cast_to(t: &Tensor, dtype: DType) -> Tensor {
    match dtype {
        DType::F32 => Tensor::from_vec(t.shape().to_vec(), to_f32(t)),
        DType::F16 => Tensor::from_vec(
            t.shape().to_vec(),
            to_f32(t).into_iter().map(f16::from_f32).collect(),
        ),
        other => panic!("cannot cast to {other}"),
    }
}

/// Collects comparisons and fails once, listing every mismatch.
#[derive(Default)]
pub struct Check {
    pub worst: f64,
    pub failures: Vec<String>,
}

impl Check {
    /// Compares `got` with `want` (same shape) under `rel_tol`·max(1, max|want|).
    pub fn close(&mut self, what: &str, got: &Tensor, want: &Tensor, rel_tol: f64) {
        if got.shape() != want.shape() {
            self.failures.push(format!(
                "{what}: shape {:?}, expected {:?}",
                got.shape(),
                want.shape()
            ));
            return;
        }
        let g = got.to_f64_vec();
        let w = want.to_f64_vec();
        let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        let mut max_err = 0.0f64;
        for (a, b) in g.iter().zip(&w) {
            let e = (a - b).abs();
            if e.is_nan() {
                max_err = f64::INFINITY;
            } else if e > max_err {
                max_err = e;
            }
        }
        let rel = max_err / scale;
        self.worst = self.worst.max(rel);
        println!(
            "  {what}: max|Δ| = {max_err:.3e} (scale {scale:.2}, rel {rel:.3e}, tol {rel_tol:.0e})"
        );
        if rel > rel_tol {
            self.failures.push(format!(
                "{what}: max|Δ| {max_err:.3e} > {rel_tol:.0e}·{scale:.2}"
            ));
        }
    }

    pub fn equal_i64(&mut self, what: &str, got: &[i64], want: &[i64]) {
        println!("  {what}: {got:?} (expected {want:?})");
        if got != want {
            self.failures.push(format!("{what}: {got:?} != {want:?}"));
        }
    }

    pub fn finish(self, name: &str) {
        println!("{name}: worst relative error {:.3e}", self.worst);
        assert!(
            self.failures.is_empty(),
            "{name} failed:\n{}",
            self.failures.join("\n")
        );
    }
}

fn run(runner: &Runner, name: &str, inputs: Vec<(String, Tensor)>) -> HashMap<String, Tensor> {
    let map: HashMap<String, Tensor> = inputs.into_iter().collect();
    runner(&map).unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

fn input_fact(g: &Graph, name: &str) -> cellm_ir::Fact {
    let v = g.find(name).unwrap_or_else(|| panic!("no input {name}"));
    g.values[v].fact.clone().expect("declared input")
}

/// Vision encoder on one image, and on three slots whose middle one is an
/// all-zero padding image that the graph drops.
pub fn vision(size: &str, suffix: &str, dir: &str, tol: f64, prepare: Prepare) {
    let name = format!("{size} vision_encoder{suffix}");
    let Some(runner) = prepare(load(&format!("{size}/onnx/vision_encoder{suffix}.onnx"))) else {
        return;
    };
    let mut c = Check::default();
    let pv = read(&format!("{size}/golden/pixel_values.npy"));
    let mask = read(&format!("{size}/golden/pixel_attention_mask.npy"));
    let out = run(
        &runner,
        &name,
        vec![
            ("pixel_values".into(), pv.clone()),
            ("pixel_attention_mask".into(), mask),
        ],
    );
    c.close(
        "image_features",
        &out["image_features"],
        &read_golden(size, dir, "image_features.npy"),
        tol,
    );

    let one = to_f32(&pv);
    let mut three = one.clone();
    three.extend(std::iter::repeat_n(0.0, one.len()));
    three.extend(one.iter().map(|v| -v));
    let mut shape = pv.shape().to_vec();
    shape[1] = 3;
    let pv3 = Tensor::from_vec(shape.clone(), three);
    let mask3 = Tensor::from_bools(
        vec![1, 3, shape[3], shape[4]],
        vec![true; 3 * shape[3] * shape[4]],
    );
    let out = run(
        &runner,
        &name,
        vec![
            ("pixel_values".into(), pv3),
            ("pixel_attention_mask".into(), mask3),
        ],
    );
    c.close(
        "vision3_image_features",
        &out["image_features"],
        &read_golden(size, dir, "vision3_image_features.npy"),
        tol,
    );
    c.finish(&name);
}

/// embed_tokens on the golden prompt ids.
pub fn embed(size: &str, suffix: &str, dir: &str, tol: f64, prepare: Prepare) {
    let name = format!("{size} embed_tokens{suffix}");
    let Some(runner) = prepare(load(&format!("{size}/onnx/embed_tokens{suffix}.onnx"))) else {
        return;
    };
    let mut c = Check::default();
    let ids = read(&format!("{size}/golden/input_ids.npy"));
    let out = run(&runner, &name, vec![("input_ids".into(), ids)]);
    c.close(
        "embed_prefill_out",
        &out["inputs_embeds"],
        &read_golden(size, dir, "embed_prefill_out.npy"),
        tol,
    );
    c.finish(&name);
}

/// Decoder prefill plus three decode steps, each fed the previous step's
/// present.* as past; logits, presents and greedy tokens compared.
pub fn decoder(size: &str, file: &str, dir: &str, tol: f64, prepare: Prepare) {
    let name = format!("{size} {file}");
    let g = load(&format!("{size}/{file}"));
    let n_layers = g
        .inputs
        .iter()
        .filter(|&&v| g.value_name(v).ends_with(".key"))
        .count();
    let emb_dtype = input_fact(&g, "inputs_embeds").dtype;
    let kv_fact = input_fact(&g, "past_key_values.0.key");
    let kv_shape: Vec<usize> = kv_fact
        .shape
        .expect("shape")
        .iter()
        .map(|d| d.known().unwrap_or(0))
        .collect();
    let Some(runner) = prepare(g) else { return };
    let mut c = Check::default();
    let mut past: Vec<Tensor> = (0..2 * n_layers)
        .map(|_| Tensor::zeros(kv_fact.dtype, vec![1, kv_shape[1], 0, kv_shape[3]]))
        .collect();
    let want_tokens = read_golden(size, dir, "argmax_tokens.npy")
        .to_i64_vec()
        .expect("tokens");
    let mut tokens = vec![];
    for step in 0..4 {
        let emb = cast_to(
            &read_golden(size, dir, &format!("step{step}_inputs_embeds.npy")),
            emb_dtype,
        );
        let mut inputs = vec![
            ("inputs_embeds".to_string(), emb),
            (
                "attention_mask".to_string(),
                read_golden(size, dir, &format!("step{step}_attention_mask.npy")),
            ),
            (
                "position_ids".to_string(),
                read_golden(size, dir, &format!("step{step}_position_ids.npy")),
            ),
        ];
        for l in 0..n_layers {
            inputs.push((format!("past_key_values.{l}.key"), past[2 * l].clone()));
            inputs.push((
                format!("past_key_values.{l}.value"),
                past[2 * l + 1].clone(),
            ));
        }
        let out = run(&runner, &name, inputs);
        let logits = &out["logits"];
        let (s, vocab) = (logits.shape()[1], logits.shape()[2]);
        let all = to_f32(logits);
        let last: Vec<f32> = all[(s - 1) * vocab..].to_vec();
        let last_t = Tensor::from_vec(vec![1, 1, vocab], last.clone());
        c.close(
            &format!("step{step} logits_last"),
            &last_t,
            &read_golden(size, dir, &format!("step{step}_logits_last.npy")),
            tol,
        );
        if step == 0 {
            let first: Vec<f32> = (0..s)
                .flat_map(|i| all[i * vocab..i * vocab + 256].to_vec())
                .collect();
            let first_t = Tensor::from_vec(vec![1, s, 256], first);
            c.close(
                "step0 logits_first256",
                &first_t,
                &read_golden(size, dir, "step0_logits_first256.npy"),
                tol,
            );
        }
        let argmax = last
            .iter()
            .enumerate()
            .fold((0usize, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
                if v > bv {
                    (i, v)
                } else {
                    (bi, bv)
                }
            })
            .0;
        tokens.push(argmax as i64);
        for l in 0..n_layers {
            for (j, kind) in ["key", "value"].iter().enumerate() {
                let out_name = format!("present.{l}.{kind}");
                let got = &out[&out_name];
                c.close(
                    &format!("step{step} {out_name}"),
                    got,
                    &read_golden(size, dir, &format!("step{step}_{out_name}.npy")),
                    tol,
                );
                past[2 * l + j] = got.clone();
            }
        }
    }
    c.equal_i64("greedy tokens", &tokens, &want_tokens);
    c.finish(&name);
}

/// The float fixtures' whole-graph goldens as `#[test]`s run by `$runner` (a
/// [`Prepare`] function): micro vision, embed and decoder (builder and
/// torchscript exports) in fp32, the fp16 exports, and the tiny size, within
/// [`F32_TOL`] / [`F16_TOL`]. Each backend's suite adds its own cases.
#[macro_export]
macro_rules! float_golden_tests {
    ($runner:path) => {
        #[test]
        fn micro_vision_fp32() {
            $crate::vision("micro", "", "golden", $crate::F32_TOL, &$runner);
        }
        #[test]
        fn micro_embed_fp32() {
            $crate::embed("micro", "", "golden", $crate::F32_TOL, &$runner);
        }
        #[test]
        fn micro_decoder_fp32() {
            let file = "onnx/decoder_model_merged.onnx";
            $crate::decoder("micro", file, "golden", $crate::F32_TOL, &$runner);
        }
        #[test]
        fn micro_torchscript_decoder_fp32() {
            let file = "onnx_torchscript/decoder_model_merged.onnx";
            $crate::decoder("micro", file, "golden", $crate::F32_TOL, &$runner);
        }
        #[test]
        fn micro_vision_fp16() {
            $crate::vision("micro", "_fp16", "golden_fp16", $crate::F16_TOL, &$runner);
        }
        #[test]
        fn micro_embed_fp16() {
            $crate::embed("micro", "_fp16", "golden_fp16", $crate::F16_TOL, &$runner);
        }
        #[test]
        fn micro_decoder_fp16() {
            let file = "onnx/decoder_model_merged_fp16.onnx";
            $crate::decoder("micro", file, "golden_fp16", $crate::F16_TOL, &$runner);
        }
        #[test]
        fn tiny_vision_fp32() {
            $crate::vision("tiny", "", "golden", $crate::F32_TOL, &$runner);
        }
        #[test]
        fn tiny_embed_fp32() {
            $crate::embed("tiny", "", "golden", $crate::F32_TOL, &$runner);
        }
        #[test]
        fn tiny_decoder_fp32() {
            let file = "onnx/decoder_model_merged.onnx";
            $crate::decoder("tiny", file, "golden", $crate::F32_TOL, &$runner);
        }
    };
}

/// Causal grouped-query attention: `heads` query heads over `kv_heads`
/// key/value heads, the default scale (the decoders' attention).
pub fn causal_gqa(heads: usize, kv_heads: usize) -> cellm_ir::Op {
    cellm_ir::Op::MultiHeadAttention(cellm_ir::ops::MultiHeadAttention {
        num_heads: heads,
        scale: None,
        mask_filter_value: -10000.0,
        unidirectional: true,
        kv_num_heads: Some(kv_heads),
    })
}

//! The per-op harness of the GPU op tests: one op in a one-node graph, run on
//! the CPU reference (`cellm_cpu::ops::eval`) and on the device (every buffer
//! poisoned, integer ops forced onto the device, no host fallback allowed),
//! also with tensors split over small bindings and, with f16 data, without
//! SHADER_F16. Outputs must agree within |gpu - cpu| <= tol * max(1, |cpu|)
//! (floats; NaN on both sides counts as equal) or exactly (integers).

use cellm_gpu::{GpuContext, GpuSession, SessionOptions};
use cellm_ir::{DType, Dim, Fact, Graph, Node, Op, Tensor};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::HashMap;
use std::sync::Arc;

/// A fresh seed from the clock, printed; CELLM_TEST_SEED replays one.
pub fn rng() -> StdRng {
    let seed = std::env::var("CELLM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("seed {seed} (CELLM_TEST_SEED to replay)");
    StdRng::seed_from_u64(seed)
}

/// One input of the op under test.
#[derive(Clone)]
pub enum In {
    /// A graph input (uploaded each run).
    Run(Tensor),
    /// An initializer (a weight, uploaded once).
    Const(Tensor),
    /// An omitted optional input.
    None,
}

/// How each test file splits tensors and which configurations it runs.
#[derive(Clone, Copy)]
pub struct Setup {
    /// The largest tensor is split over about this many bindings.
    pub split_parts: u64,
    /// Size tensors by their device bytes (u8/i8 one, f16 two) rather than
    /// four bytes per element.
    pub device_bytes: bool,
    /// f16 data anywhere (not only in the outputs) adds the no-SHADER_F16 runs.
    pub f16_from_inputs: bool,
    /// Also run without SHADER_F16 and split.
    pub f16_split: bool,
}

/// Runs `op` on the CPU and the GPU in every configuration of `setup` and
/// compares all outputs; returns the largest relative float error.
pub fn check_with(setup: Setup, what: &str, op: Op, inputs: Vec<In>, tol: f64) -> f64 {
    let Some(ctx) = super::gpu() else { return 0.0 };
    let mut g = Graph::new(what);
    let mut ids = Vec::new();
    let mut cpu_in: Vec<Option<Tensor>> = Vec::new();
    let mut feeds = HashMap::new();
    for (i, inp) in inputs.into_iter().enumerate() {
        let name = format!("in{i}");
        match inp {
            In::Run(t) => {
                let fact = Fact::new(
                    t.dtype(),
                    Some(t.shape().iter().map(|&d| Dim::Known(d)).collect()),
                );
                ids.push(Some(g.add_input(&name, fact)));
                cpu_in.push(Some(t.clone()));
                feeds.insert(name, t);
            }
            In::Const(t) => {
                ids.push(Some(g.add_initializer(&name, t.clone())));
                cpu_in.push(Some(t));
            }
            In::None => {
                ids.push(None);
                cpu_in.push(None);
            }
        }
    }
    let refs: Vec<Option<&Tensor>> = cpu_in.iter().map(|t| t.as_ref()).collect();
    let want = cellm_cpu::ops::eval(&op, &refs).unwrap_or_else(|e| panic!("{what}: CPU: {e:#}"));
    let outs: Vec<Option<usize>> = (0..want.len())
        .map(|j| Some(g.value(&format!("out{j}"))))
        .collect();
    g.outputs = outs.iter().flatten().copied().collect();
    g.add_node(Node {
        name: what.to_string(),
        op,
        inputs: ids,
        outputs: outs,
    })
    .expect("node");
    g.infer_facts()
        .unwrap_or_else(|e| panic!("{what}: infer: {e:#}"));
    let mut has_f16 = want.iter().any(|t| t.dtype() == DType::F16);
    if setup.f16_from_inputs {
        has_f16 |= feeds.values().any(|t| t.dtype() == DType::F16)
            || g.initializers.values().any(|t| t.dtype() == DType::F16);
    }
    // Split chunks of at least 4 KiB, so a kernel with many bindings stays
    // within lavapipe's 32 storage buffers per stage.
    let bytes = |t: &Tensor| {
        t.len() as u64
            * match (setup.device_bytes, t.dtype()) {
                (true, DType::U8 | DType::I8) => 1,
                (true, DType::F16) => 2,
                _ => 4,
            }
    };
    let largest = want
        .iter()
        .chain(feeds.values())
        .chain(g.initializers.values())
        .map(bytes)
        .max()
        .unwrap_or(0);
    let split = (largest / setup.split_parts).div_ceil(256).max(16) * 256;
    let mut configs = vec![("default", None, false), ("split", Some(split), false)];
    if has_f16 {
        configs.push(("no SHADER_F16", None, true));
        if setup.f16_split {
            configs.push(("no SHADER_F16, split", Some(split), true));
        }
    }
    let mut worst = 0.0f64;
    for (label, limit, no_f16) in configs {
        let t0 = std::time::Instant::now();
        let opts = SessionOptions {
            poison_buffers: true,
            host_shape_math: false,
            max_binding_bytes_override: limit,
            disable_shader_f16: no_f16,
        };
        let what = format!("{what} [{label}]");
        worst = worst.max(compare(
            &what,
            ctx.clone(),
            g.clone(),
            opts,
            &feeds,
            &want,
            tol,
        ));
        if t0.elapsed().as_secs_f64() > 1.0 {
            println!("{what}: {:.1} s", t0.elapsed().as_secs_f64());
        }
    }
    worst
}

/// One configuration: runs the graph on the device and compares every output.
fn compare(
    what: &str,
    ctx: Arc<GpuContext>,
    g: Graph,
    opts: SessionOptions,
    feeds: &HashMap<String, Tensor>,
    want: &[Tensor],
    tol: f64,
) -> f64 {
    let s = GpuSession::with_context(ctx, g, opts).unwrap_or_else(|e| panic!("{what}: {e:#}"));
    let got = s
        .run(feeds)
        .unwrap_or_else(|e| panic!("{what}: GPU: {e:#}"));
    let stats = s.last_stats();
    assert!(
        stats.host_ops.is_empty(),
        "{what}: ran on the host: {:?}",
        stats.host_ops
    );
    let mut worst = 0.0f64;
    for (j, w) in want.iter().enumerate() {
        let gt = &got[&format!("out{j}")];
        assert_eq!(gt.dtype(), w.dtype(), "{what} output {j} dtype");
        assert_eq!(gt.shape(), w.shape(), "{what} output {j} shape");
        if w.dtype().is_float() {
            let (a, b) = (gt.to_f64_vec(), w.to_f64_vec());
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                let err = (x - y).abs() / y.abs().max(1.0);
                let ok = err <= tol || (x.is_nan() && y.is_nan()) || (x == y);
                assert!(
                    ok,
                    "{what} output {j}[{i}]: gpu {x} vs cpu {y} (rel err {err:e} > {tol:e})"
                );
                if x != y {
                    worst = worst.max(err);
                }
            }
        } else {
            let (a, b) = (
                gt.to_i64_vec().expect("ints"),
                w.to_i64_vec().expect("ints"),
            );
            let bad: Vec<(usize, i64, i64)> = a
                .iter()
                .zip(&b)
                .enumerate()
                .filter(|(_, (x, y))| x != y)
                .map(|(i, (x, y))| (i, *x, *y))
                .take(8)
                .collect();
            assert!(
                bad.is_empty(),
                "{what} output {j}: (index, gpu, cpu) {bad:?}"
            );
        }
    }
    worst
}

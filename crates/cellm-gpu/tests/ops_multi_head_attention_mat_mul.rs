//! MultiHeadAttentionMatMul (attention + output projection) on the GPU
//! against the CPU kernel (MultiHeadAttention's, then MatMul's) on fresh
//! random inputs (seed printed; CELLM_TEST_SEED replays one), device buffers
//! poisoned, tensors also split over small bindings: one query row with the
//! keys split (forced: the merge-and-project GEMV) and unsplit, a causal
//! 3-row step, grouped heads in both cache layouts, f32 and f16 weights, f16
//! caches under f32 queries. A second test checks the launch count: two,
//! split or not.
//!
//! Tolerance |gpu - cpu| <= 1e-4 * max(1, |cpu|): f32 sums in another order
//! (softmax over ≤ 2100 keys, then K ≤ 576 products of O(1) values with
//! weights in ±0.1); f16 weights and caches are the same halves on both
//! sides, widened exactly.

mod common;

use cellm_gpu::ops::multi_head_attention::force_key_splits;
use cellm_gpu::{GpuSession, SessionOptions};
use cellm_ir::ops::{MultiHeadAttention, MultiHeadAttentionMatMul};
use cellm_ir::{DType, Dim, Fact, Graph, Node, Op, Tensor};
use cellm_testkit::random_tensor;
use common::op_check::{check_with, rng, In, Setup};
use rand::rngs::StdRng;
use std::collections::HashMap;

fn op(heads: usize, kv_heads: usize) -> MultiHeadAttentionMatMul {
    MultiHeadAttentionMatMul {
        attention: MultiHeadAttention {
            num_heads: heads,
            scale: None,
            mask_filter_value: -10000.0,
            unidirectional: true,
            kv_num_heads: Some(kv_heads),
        },
    }
}

/// (query rows, keys, head dim, heads, kv heads, 4-D cache, N of the projection)
type Case = (usize, usize, usize, usize, usize, bool, usize);

/// The fused op's nine inputs: query, key, value, six omitted slots but the
/// key padding mask when `masked`, then the weight.
/// `dt`: the query's dtype (f16 for the fp16 exports, whose caches and
/// weights are f16 too); `kv`, `wt`: the caches' and the weight's.
fn inputs(r: &mut StdRng, c: Case, (dt, kv, wt): (DType, DType, DType), masked: bool) -> Vec<In> {
    let (s, t, d, h, g, bnsh, n) = c;
    let kv_shape = if bnsh {
        vec![1, g, t, d]
    } else {
        vec![1, t, g * d]
    };
    let mask = masked.then(|| {
        let m: Vec<i64> = (0..t).map(|i| i64::from(i % 7 != 3)).collect();
        In::Run(Tensor::from_vec(vec![1, t], m))
    });
    vec![
        In::Run(random_tensor(r, &[1, s, h * d], dt, -2.0, 2.0)),
        In::Run(random_tensor(r, &kv_shape, kv, -1.0, 1.0)),
        // Values centred on 1: outputs O(1), so the bound is relative.
        In::Run(random_tensor(r, &kv_shape, kv, 0.0, 2.0)),
        In::None,
        mask.unwrap_or(In::None),
        In::None,
        In::None,
        In::None,
        In::Const(random_tensor(r, &[h * d, n], wt, -0.1, 0.1)),
    ]
}

const CASES: [Case; 4] = [
    // The SmolVLM decode step: 9 heads over 3 of 64, 576 -> 576.
    (1, 700, 64, 9, 3, false, 576),
    (1, 2100, 64, 9, 3, true, 100),
    // Odd sizes: heads of 20, K = 80 under the 256-value staging, odd N.
    (1, 333, 20, 4, 2, false, 37),
    // A causal 3-row step (the split's partials are merged by their own launch).
    (3, 300, 16, 6, 2, true, 50),
];

#[test]
fn fused_matches_the_cpu_split_or_not() {
    let mut r = rng();
    let setup = Setup {
        split_parts: 6,
        device_bytes: false,
        f16_from_inputs: true,
        f16_split: true,
    };
    for case in CASES {
        for (dt, kv, wt, tol) in [
            (DType::F32, DType::F32, DType::F32, 1e-4),
            (DType::F32, DType::F32, DType::F16, 1e-4),
            (DType::F32, DType::F16, DType::F16, 1e-4),
            // All f16 (an fp16 export): the sides round the f16 output from
            // f32 sums ~1e-6 apart, one f16 step (< 1e-3 of max(1, |v|)).
            (DType::F16, DType::F16, DType::F16, 1e-3),
        ] {
            for splits in [None, Some(5), Some(16)] {
                let masked = splits == Some(5);
                let ins = inputs(&mut r, case, (dt, kv, wt), masked);
                let what = format!(
                    "MultiHeadAttentionMatMul {case:?} query {dt} cache {kv} weight {wt} splits {splits:?} mask {masked}"
                );
                force_key_splits(splits);
                check_with(
                    setup,
                    &what,
                    Op::MultiHeadAttentionMatMul(op(case.3, case.4)),
                    ins,
                    tol,
                );
                force_key_splits(None);
            }
        }
    }
}

/// Attention and projection take two launches, whether the keys split (the
/// merge then runs inside the projection) or not.
#[test]
fn two_launches_split_or_not() {
    let Some(ctx) = common::gpu() else { return };
    let mut r = rng();
    let case = CASES[0];
    let mut g = Graph::new("t");
    let mut ids = vec![];
    let mut feeds = HashMap::new();
    for (i, inp) in inputs(&mut r, case, (DType::F32, DType::F32, DType::F16), false)
        .into_iter()
        .enumerate()
    {
        let name = format!("in{i}");
        ids.push(match inp {
            In::Run(t) => {
                let fact = Fact::new(
                    t.dtype(),
                    Some(t.shape().iter().map(|&d| Dim::Known(d)).collect()),
                );
                feeds.insert(name.clone(), t);
                Some(g.add_input(&name, fact))
            }
            In::Const(t) => Some(g.add_initializer(&name, t)),
            In::None => None,
        });
    }
    let out = g.value("out");
    g.outputs = vec![out];
    g.add_node(Node {
        name: "attn_proj".into(),
        op: Op::MultiHeadAttentionMatMul(op(case.3, case.4)),
        inputs: ids,
        outputs: vec![Some(out)],
    })
    .unwrap();
    g.infer_facts().unwrap();
    for forced in [None, Some(16)] {
        force_key_splits(forced);
        let s =
            GpuSession::with_context(ctx.clone(), g.clone(), SessionOptions::default()).unwrap();
        s.run(&feeds).unwrap();
        force_key_splits(None);
        let st = s.last_stats();
        assert!(st.host_ops.is_empty(), "{:?}", st.host_ops);
        assert_eq!(
            st.dispatches, 2,
            "forced splits {forced:?} on {}",
            ctx.adapter
        );
    }
}

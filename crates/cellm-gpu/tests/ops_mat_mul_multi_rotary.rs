//! MatMulMultiRotary's GPU kernels against the CPU kernel
//! (`cellm_cpu::ops::eval`) on fresh random inputs (seed printed; set
//! CELLM_TEST_SEED to replay), every device buffer poisoned, tensors also
//! split over small bindings, no host fallback: the fused launch (M ≤ 16
//! rows) and the two-launch form (37 rows), f32 and f16 weights, odd K and
//! N, both rotary layouts, a partial rotary, arbitrary positions. A second
//! test checks that one row really takes one dispatch.
//!
//! Tolerances, |gpu - cpu| <= tol * max(1, |cpu|): 1e-4 for f32 activations
//! (f32 accumulation in another order, K ≤ 301 with inputs in ±1; f16
//! weights are the same halves on both sides, widened exactly); 1e-2 for f16
//! activations (the GPU rotates the f32 sums, the CPU the f16-rounded
//! products: one f16 ulp apart).

mod common;

use cellm_gpu::{GpuSession, SessionOptions};
use cellm_ir::ops::mat_mul_multi_rotary::FIRST_WEIGHT;
use cellm_ir::ops::MatMulMultiRotary;
use cellm_ir::{DType, Dim, Fact, Graph, Node, Op, Tensor};
use common::op_check::{check_with, rng, In, Setup};
use half::f16;
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::HashMap;

fn randt(r: &mut StdRng, shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| r.random_range(-1.0..1.0)).collect();
    match dtype {
        DType::F16 => Tensor::from_vec(
            shape.to_vec(),
            v.into_iter().map(f16::from_f32).collect::<Vec<_>>(),
        ),
        _ => Tensor::from_vec(shape.to_vec(), v),
    }
}

const MAX_POS: usize = 64;

/// (q heads, k heads, head size, rotary dim attr, N of v or none, K).
type Case = ([usize; 2], usize, usize, Option<usize>, usize);

/// The op and its inputs: A, position_ids, the merged cache, the weights.
fn inputs(
    r: &mut StdRng,
    lead: &[usize],
    case: Case,
    interleaved: bool,
    (dt, wt): (DType, DType),
) -> (MatMulMultiRotary, Vec<In>) {
    let (heads, hs, rd, nv, k) = case;
    let c = if rd > 0 { rd / 2 + 2 } else { hs / 2 };
    let op = MatMulMultiRotary {
        interleaved,
        num_heads: heads,
        rotary_embedding_dim: rd,
        scale: 1.0,
        f16_outputs: vec![],
    };
    let mut a_shape = lead.to_vec();
    a_shape.push(k);
    let (b, s) = (lead[0], lead[1]);
    let pos = Tensor::from_vec(
        vec![b, s],
        (0..b * s)
            .map(|_| r.random_range(0..MAX_POS as i64))
            .collect::<Vec<_>>(),
    );
    let mut ins = vec![
        In::Run(randt(r, &a_shape, dt)),
        In::Run(pos),
        In::Const(randt(r, &[MAX_POS, 2 * c], dt)),
    ];
    for n in [heads[0].max(1) * hs, heads[1].max(1) * hs] {
        ins.push(In::Const(randt(r, &[k, n], wt)));
    }
    if let Some(nv) = nv {
        ins.push(In::Const(randt(r, &[k, nv], wt)));
    }
    (op, ins)
}

const CASES: [Case; 4] = [
    // 9 query heads, 3 key heads of 64 (the SmolVLM layout), odd K.
    ([9, 3], 64, 0, Some(192), 301),
    // A small odd case: heads of 10 (half 5), odd N of v.
    ([3, 1], 10, 0, Some(7), 37),
    // Partial rotary (6 of 10 channels), no v.
    ([3, 1], 10, 6, None, 45),
    // num_heads 0: head size from the cache width.
    ([0, 0], 16, 0, Some(33), 19),
];

#[test]
fn fused_and_two_launch_forms_match_the_cpu() {
    let mut r = rng();
    let setup = Setup {
        split_parts: 6,
        device_bytes: false,
        f16_from_inputs: false,
        f16_split: true,
    };
    for lead in [vec![1, 1], vec![1, 3], vec![3, 1], vec![1, 37]] {
        for case in CASES {
            for interleaved in [false, true] {
                for (dt, wt, tol) in [
                    (DType::F32, DType::F32, 1e-4),
                    (DType::F32, DType::F16, 1e-4),
                    (DType::F16, DType::F16, 1e-2),
                ] {
                    let (mut op, ins) = inputs(&mut r, &lead, case, interleaved, (dt, wt));
                    let what =
                        format!("MatMulMultiRotary {dt} x {wt} lead {lead:?} {case:?} {op:?}");
                    check_with(
                        setup,
                        &what,
                        Op::MatMulMultiRotary(op.clone()),
                        ins.clone(),
                        tol,
                    );
                    if dt == DType::F32 {
                        // Keys and values stored as f16 (an f16 KV cache). GPU
                        // and CPU round f32 values that differ by ~1e-6, which
                        // may land one f16 step (< 1e-3 of max(1, |v|)) apart.
                        op.f16_outputs = (1..ins.len() - FIRST_WEIGHT).collect();
                        let what = format!("{what} f16 outputs {:?}", op.f16_outputs);
                        check_with(setup, &what, Op::MatMulMultiRotary(op), ins, 1e-3);
                    }
                }
            }
        }
    }
}

/// One row (a decode step) is one dispatch; 37 rows take two.
#[test]
fn one_row_is_one_dispatch() {
    let Some(ctx) = common::gpu() else { return };
    let mut r = rng();
    for (lead, want) in [(vec![1, 1], 1), (vec![1, 16], 1), (vec![1, 37], 2)] {
        let (op, ins) = inputs(&mut r, &lead, CASES[0], false, (DType::F32, DType::F16));
        let mut g = Graph::new("t");
        let mut ids = vec![];
        let mut feeds = HashMap::new();
        for (i, inp) in ins.into_iter().enumerate() {
            let name = format!("in{i}");
            ids.push(Some(match inp {
                In::Run(t) => {
                    let fact = Fact::new(
                        t.dtype(),
                        Some(t.shape().iter().map(|&d| Dim::Known(d)).collect()),
                    );
                    feeds.insert(name.clone(), t);
                    g.add_input(&name, fact)
                }
                In::Const(t) => g.add_initializer(&name, t),
                In::None => unreachable!(),
            }));
        }
        let outs: Vec<Option<usize>> = (0..3).map(|j| Some(g.value(&format!("out{j}")))).collect();
        g.outputs = outs.iter().flatten().copied().collect();
        g.add_node(Node {
            name: "mmr".into(),
            op: Op::MatMulMultiRotary(op),
            inputs: ids,
            outputs: outs,
        })
        .unwrap();
        g.infer_facts().unwrap();
        let s = GpuSession::with_context(ctx.clone(), g, SessionOptions::default()).unwrap();
        s.run(&feeds).unwrap();
        let st = s.last_stats();
        println!("lead {lead:?}: {} dispatches", st.dispatches);
        assert!(st.host_ops.is_empty(), "{:?}", st.host_ops);
        assert_eq!(st.readbacks, 0, "position_ids must not be read back");
        assert_eq!(st.dispatches, want, "lead {lead:?}");
    }
}

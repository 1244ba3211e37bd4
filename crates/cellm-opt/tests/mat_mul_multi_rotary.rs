//! The mat_mul_multi_rotary pass on hand-built attention heads (q/k/v
//! projections of one activation, q and k rotated with shared position_ids
//! and caches): the default pipeline ends with one MatMulMultiRotary node
//! whose outputs match the unfused graph on the CPU, f16_weights converts its
//! weights, and the guard leaves near misses alone.
//!
//! Tolerance |fused − unfused| ≤ 1e-5·(1 + |unfused|): both sides run the
//! same f32 GEMM and rotary code; only the grouping of the products differs.

mod common;

use cellm_ir::ops::*;
use cellm_ir::{DType, Dim, Fact, Graph, Op, Tensor};
use cellm_opt::pass::RulePass;
use cellm_opt::{passes, Pass};
use common::{node, seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

fn count(g: &Graph, name: &str) -> usize {
    g.nodes
        .node_indices()
        .filter(|&i| g.nodes[i].op.name() == name)
        .count()
}

fn rand_t(rng: &mut StdRng, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(shape.to_vec(), v)
}

const MAX_POS: usize = 32;

/// x [b, 5, h]; q = x·Wq (2 heads of h/2), k = x·Wk (1 head), v = x·Wv, q
/// and k rotated. `extra`: pq is also a graph output (a near miss).
fn attn_graph(seed: u64, h: usize, interleaved: bool, extra: bool) -> Graph {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x3a3);
    let mut g = Graph::new("t");
    g.add_input(
        "x",
        Fact::new(
            DType::F32,
            Some(vec![Dim::Sym("b".into()), 5.into(), h.into()]),
        ),
    );
    g.add_input(
        "pos",
        Fact::new(DType::I64, Some(vec![Dim::Sym("b".into()), 5.into()])),
    );
    let d = h / 2;
    g.add_initializer("wq", rand_t(&mut rng, &[h, h]));
    g.add_initializer("wk", rand_t(&mut rng, &[h, d]));
    g.add_initializer("wv", rand_t(&mut rng, &[h, d]));
    g.add_initializer("cos", rand_t(&mut rng, &[MAX_POS, d / 2]));
    g.add_initializer("sin", rand_t(&mut rng, &[MAX_POS, d / 2]));
    // k first in node order: the fused node still puts q's weight first.
    node(&mut g, "k", Op::MatMul(MatMul), &["x", "wk"], &["pk"]);
    node(&mut g, "q", Op::MatMul(MatMul), &["x", "wq"], &["pq"]);
    node(&mut g, "v", Op::MatMul(MatMul), &["x", "wv"], &["pv"]);
    for (name, x, y, heads) in [("rq", "pq", "yq", 2), ("rk", "pk", "yk", 1)] {
        let op = RotaryEmbedding {
            interleaved,
            num_heads: heads,
            rotary_embedding_dim: 0,
            scale: 1.0,
        };
        node(
            &mut g,
            name,
            Op::RotaryEmbedding(op),
            &[x, "pos", "cos", "sin"],
            &[y],
        );
    }
    let mut outs = vec!["yq", "yk", "pv"];
    if extra {
        outs.push("pq");
    }
    for o in outs {
        let y = g.value(o);
        g.outputs.push(y);
    }
    g.infer_facts().expect("infer");
    g
}

fn run(g: &Graph, seed: u64, h: usize) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let x: Vec<f32> = (0..10 * h).map(|_| rng.random_range(-2.0..2.0)).collect();
    let pos: Vec<i64> = (0..10)
        .map(|_| rng.random_range(0..MAX_POS as i64))
        .collect();
    let inputs = HashMap::from([
        ("x".to_string(), Tensor::from_vec(vec![2, 5, h], x)),
        ("pos".to_string(), Tensor::from_vec(vec![2, 5], pos)),
    ]);
    let out = cellm_cpu::run(g, &inputs).expect("run");
    g.outputs
        .iter()
        .map(|&v| out[g.value_name(v)].to_f32_vec().expect("f32"))
        .collect()
}

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>]) {
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }
}

#[test]
fn projections_and_rotaries_become_one_node() {
    let s = seed();
    for interleaved in [false, true] {
        let g0 = attn_graph(s, 16, interleaved, false);
        let before = g0.nodes.node_count();
        let mut g = g0.clone();
        let report = cellm_opt::optimize(&mut g).expect("optimize");
        println!(
            "interleaved {interleaved}: {before} -> {} nodes, {:?}",
            g.nodes.node_count(),
            report.rewrites
        );
        assert_eq!(before, 5);
        assert_eq!(g.nodes.node_count(), 1);
        assert_eq!(count(&g, "MatMulMultiRotary"), 1);
        assert_close(&run(&g, s, 16), &run(&g0, s, 16));
        let ix = g.nodes.node_indices().next().unwrap();
        let n = &g.nodes[ix];
        let Op::MatMulMultiRotary(op) = &n.op else {
            panic!("{:?}", n.op)
        };
        assert_eq!(op.num_heads, [2, 1]);
        assert_eq!(op.interleaved, interleaved);
        // Inputs: A, position_ids, the merged cache, then q's, k's, v's weight.
        let names: Vec<&str> = n.inputs.iter().map(|v| g.value_name(v.unwrap())).collect();
        assert_eq!(names[..2], ["x", "pos"]);
        assert_eq!(names[3..], ["wq", "wk", "wv"]);
        let cs = &g.initializers[&n.inputs[2].unwrap()];
        assert_eq!(cs.shape(), [MAX_POS, 8]);
        // The separate caches are gone (pruned).
        assert!(g
            .find("cos")
            .is_none_or(|v| !g.initializers.contains_key(&v)));
    }
}

#[test]
fn f16_weights_convert_the_fused_weights() {
    let s = seed();
    let h = 64; // 64·32 = 2048 values: above f16_weights' minimum.
    let mut g = attn_graph(s, h, false, false);
    cellm_opt::optimize(&mut g).expect("optimize");
    assert_eq!(count(&g, "MatMulMultiRotary"), 1);
    let n = passes::f16_weights::apply(&mut g).expect("f16");
    assert_eq!(n, 3);
    let ix = g.nodes.node_indices().next().unwrap();
    let node = &g.nodes[ix];
    for (i, v) in node.inputs.iter().enumerate() {
        let v = v.unwrap();
        let want = if i >= 3 { DType::F16 } else { DType::F32 };
        let got = g.values[v].fact.as_ref().unwrap().dtype;
        // position_ids stays i64.
        if i != 1 {
            assert_eq!(got, want, "input {i}");
        }
    }
}

#[test]
fn guard_rejects_near_misses() {
    let pass = || RulePass(passes::mat_mul_multi_rotary::MatMulMultiRotaryFusion);
    let upto_pair = |g: &mut Graph| {
        cellm_opt::optimize_with(
            g,
            &cellm_opt::OptOptions {
                skip: vec!["mat_mul_multi_rotary"],
            },
        )
        .expect("optimize");
        assert_eq!(count(g, "RotaryEmbeddingPair"), 1);
        assert_eq!(count(g, "MatMulMulti"), 1);
    };
    // The unrotated q is also read elsewhere (a graph output).
    let mut g = attn_graph(1, 16, false, true);
    upto_pair(&mut g);
    assert_eq!(pass().run(&mut g).unwrap(), 0);
    // The same graph without that reader fuses (the guard is not vacuous).
    let mut g = attn_graph(1, 16, false, false);
    upto_pair(&mut g);
    assert_eq!(pass().run(&mut g).unwrap(), 1);
    // Caches that are not initializers (runtime inputs).
    let mut g = attn_graph(1, 16, false, false);
    upto_pair(&mut g);
    let ix = g
        .nodes
        .node_indices()
        .find(|&i| matches!(g.nodes[i].op, Op::RotaryEmbeddingPair(_)))
        .unwrap();
    let c = g.add_input(
        "cos_rt",
        Fact::new(DType::F32, Some(vec![MAX_POS.into(), 4.into()])),
    );
    g.set_input(ix, 3, Some(c));
    assert_eq!(pass().run(&mut g).unwrap(), 0);
}

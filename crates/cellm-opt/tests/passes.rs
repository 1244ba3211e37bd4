//! Before/after tests of single passes on hand-built graphs: the guard fires
//! on the pattern and not on a near miss, and the rewritten graph computes
//! the same outputs as the original (CPU interpreter, random inputs).
//! Rotary and attention fusions are exercised on the exported decoders in
//! goldens_opt.rs and kernel_sequence.rs (their patterns span ~20 nodes).

use cellm_ir::ops::*;
use cellm_ir::{DType, Dim, Fact, Graph, Node, Op, Tensor};
use cellm_opt::pass::RulePass;
use cellm_opt::{passes, Pass};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

fn node(g: &mut Graph, name: &str, op: Op, ins: &[&str], outs: &[&str]) {
    let inputs = ins.iter().map(|n| Some(g.value(n))).collect();
    let outputs = outs.iter().map(|n| Some(g.value(n))).collect();
    g.add_node(Node {
        name: name.into(),
        op,
        inputs,
        outputs,
    })
    .expect("add node");
}
fn bin(op: BinaryOp) -> Op {
    Op::Binary(Binary { op })
}
fn un(op: UnaryOp) -> Op {
    Op::Unary(Unary { op })
}
fn scalar(g: &mut Graph, name: &str, v: f32) {
    g.add_initializer(name, Tensor::scalar(v));
}
fn count(g: &Graph, name: &str) -> usize {
    g.nodes
        .node_indices()
        .filter(|&i| g.nodes[i].op.name() == name)
        .count()
}

/// Runs `g` on a random [2, 3, 8] input "x" (seed printed), output "y".
fn run(g: &Graph, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let x: Vec<f32> = (0..48).map(|_| rng.random_range(-2.0..2.0)).collect();
    let inputs = HashMap::from([("x".to_string(), Tensor::from_vec(vec![2, 3, 8], x))]);
    let out = cellm_cpu::run(g, &inputs).expect("run");
    out["y"].to_f32_vec().expect("f32")
}

fn seed() -> u64 {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    println!("seed {s}");
    s
}

/// Same values up to 1e-5 relative: the fused kernels accumulate in f32 in
/// another order than the decomposed graph.
fn assert_close(a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
    }
}

fn input_graph() -> Graph {
    let mut g = Graph::new("t");
    g.add_input(
        "x",
        Fact::new(
            DType::F32,
            Some(vec![Dim::Sym("b".into()), 3.into(), 8.into()]),
        ),
    );
    g
}

fn finish(mut g: Graph, out: &str) -> Graph {
    let y = g.value(out);
    g.outputs.push(y);
    g.infer_facts().expect("infer");
    g
}

/// RMSNorm decomposed as torch exports it; `exponent` 2 is the real pattern.
fn rms_graph(exponent: f32, residual: bool) -> Graph {
    let mut g = input_graph();
    scalar(&mut g, "two", exponent);
    scalar(&mut g, "eps", 1e-5);
    scalar(&mut g, "one", 1.0);
    g.add_initializer(
        "w",
        Tensor::from_vec(vec![8], (0..8).map(|i| 0.5 + i as f32 / 8.0).collect()),
    );
    let x = if residual {
        node(&mut g, "res", bin(BinaryOp::Add), &["x", "x"], &["s"]);
        "s"
    } else {
        "x"
    };
    node(&mut g, "pow", bin(BinaryOp::Pow), &[x, "two"], &["p"]);
    let mean = Reduce {
        kind: ReduceKind::Mean,
        axes: Some(vec![-1]),
        keepdims: true,
        noop_with_empty_axes: false,
    };
    node(&mut g, "mean", Op::Reduce(mean), &["p"], &["m"]);
    node(&mut g, "add", bin(BinaryOp::Add), &["m", "eps"], &["a"]);
    node(&mut g, "sqrt", un(UnaryOp::Sqrt), &["a"], &["r"]);
    node(&mut g, "div", bin(BinaryOp::Div), &["one", "r"], &["inv"]);
    node(&mut g, "mul", bin(BinaryOp::Mul), &[x, "inv"], &["n"]);
    node(&mut g, "scale", bin(BinaryOp::Mul), &["n", "w"], &["y0"]);
    if residual {
        // The sum is read again, as by the next residual add.
        node(&mut g, "next", bin(BinaryOp::Add), &["y0", "s"], &["y"]);
    } else {
        node(&mut g, "id", un(UnaryOp::Identity), &["y0"], &["y"]);
    }
    finish(g, "y")
}

#[test]
fn rms_norm_fuses_and_matches() {
    let s = seed();
    let g0 = rms_graph(2.0, false);
    let mut g = g0.clone();
    let n = RulePass(passes::rms_norm::RmsNormFusion)
        .run(&mut g)
        .unwrap();
    assert_eq!(n, 1);
    RulePass(passes::dce::Dce).run(&mut g).unwrap();
    g.infer_facts().unwrap();
    assert_eq!(count(&g, "SimplifiedLayerNormalization"), 1);
    assert_eq!(
        g.nodes.node_count(),
        2,
        "only the norm and the identity remain"
    );
    assert_close(&run(&g, s), &run(&g0, s));
}

#[test]
fn rms_norm_guard_rejects_other_exponent() {
    let mut g = rms_graph(3.0, false);
    assert_eq!(
        RulePass(passes::rms_norm::RmsNormFusion)
            .run(&mut g)
            .unwrap(),
        0
    );
}

#[test]
fn skip_rms_norm_fuses_residual_add() {
    let s = seed();
    let g0 = rms_graph(2.0, true);
    let mut g = g0.clone();
    cellm_opt::optimize(&mut g).unwrap();
    assert_eq!(count(&g, "SkipSimplifiedLayerNormalization"), 1);
    assert_eq!(count(&g, "SimplifiedLayerNormalization"), 0);
    assert_close(&run(&g, s), &run(&g0, s));
}

#[test]
fn layer_norm_fuses_and_matches() {
    let s = seed();
    let mut g = input_graph();
    scalar(&mut g, "two", 2.0);
    scalar(&mut g, "eps", 1e-5);
    let mean = Reduce {
        kind: ReduceKind::Mean,
        axes: Some(vec![-1]),
        keepdims: true,
        noop_with_empty_axes: false,
    };
    node(&mut g, "m0", Op::Reduce(mean.clone()), &["x"], &["mu"]);
    node(&mut g, "sub", bin(BinaryOp::Sub), &["x", "mu"], &["d"]);
    node(&mut g, "pow", bin(BinaryOp::Pow), &["d", "two"], &["p"]);
    node(&mut g, "m1", Op::Reduce(mean), &["p"], &["v"]);
    node(&mut g, "add", bin(BinaryOp::Add), &["v", "eps"], &["a"]);
    node(&mut g, "sqrt", un(UnaryOp::Sqrt), &["a"], &["r"]);
    node(&mut g, "div", bin(BinaryOp::Div), &["d", "r"], &["y"]);
    let g0 = finish(g, "y");
    let mut g = g0.clone();
    cellm_opt::optimize(&mut g).unwrap();
    assert_eq!(g.nodes.node_count(), 1);
    assert_eq!(count(&g, "LayerNormalization"), 1);
    assert_close(&run(&g, s), &run(&g0, s));
}

#[test]
fn dce_cse_and_constant_folding() {
    let s = seed();
    let mut g = input_graph();
    scalar(&mut g, "c1", 1.5);
    scalar(&mut g, "c2", 2.0);
    // c1 * c2 folds; the two identical Muls merge; "dead" is never read.
    node(&mut g, "k", bin(BinaryOp::Mul), &["c1", "c2"], &["k3"]);
    node(&mut g, "m1", bin(BinaryOp::Mul), &["x", "k3"], &["a"]);
    node(&mut g, "m2", bin(BinaryOp::Mul), &["x", "k3"], &["b"]);
    node(&mut g, "dead", un(UnaryOp::Neg), &["x"], &["unused"]);
    node(&mut g, "sum", bin(BinaryOp::Add), &["a", "b"], &["y"]);
    let g0 = finish(g, "y");
    let mut g = g0.clone();
    let report = cellm_opt::optimize(&mut g).unwrap();
    println!("{report:?}");
    assert_eq!(g.nodes.node_count(), 2, "one Mul and the Add remain");
    let k = g.find("k3").unwrap();
    assert_eq!(g.initializers[&k].f32s().unwrap(), &[3.0]);
    assert_close(&run(&g, s), &run(&g0, s));
}

#[test]
fn constant_folding_respects_the_size_cap() {
    let mut g = input_graph();
    g.add_initializer("big", Tensor::from_vec(vec![1024], vec![1.0f32; 1024]));
    node(&mut g, "neg", un(UnaryOp::Neg), &["big"], &["nb"]);
    node(&mut g, "add", bin(BinaryOp::Add), &["x", "nb"], &["y"]);
    let mut g = g;
    g.inputs.clear();
    g.add_input("x", Fact::new(DType::F32, Some(vec![1024.into()])));
    let mut g = finish(g, "y");
    let small = passes::constant_fold::ConstantFold { max_bytes: 1024 };
    assert_eq!(
        RulePass(small).run(&mut g).unwrap(),
        0,
        "4 KiB result is over the cap"
    );
    let large = passes::constant_fold::ConstantFold { max_bytes: 1 << 20 };
    assert_eq!(RulePass(large).run(&mut g).unwrap(), 1);
}

#[test]
fn shape_fold_only_folds_known_dims() {
    let mut g = input_graph();
    node(
        &mut g,
        "shape",
        Op::Shape(Shape {
            start: 0,
            end: None,
        }),
        &["x"],
        &["s"],
    );
    g.add_initializer("i1", Tensor::scalar(1i64));
    g.add_initializer("i0", Tensor::scalar(0i64));
    node(
        &mut g,
        "g1",
        Op::Gather(Gather { axis: 0 }),
        &["s", "i1"],
        &["d1"],
    );
    node(
        &mut g,
        "g0",
        Op::Gather(Gather { axis: 0 }),
        &["s", "i0"],
        &["d0"],
    );
    let mut g = g;
    for o in ["d0", "d1", "s"] {
        let v = g.value(o);
        g.outputs.push(v);
    }
    // Outputs stay node-made, so read them through Identity nodes instead.
    g.outputs.clear();
    node(&mut g, "o0", un(UnaryOp::Identity), &["d0"], &["y0"]);
    node(&mut g, "o1", un(UnaryOp::Identity), &["d1"], &["y1"]);
    for o in ["y0", "y1"] {
        let v = g.value(o);
        g.outputs.push(v);
    }
    g.infer_facts().unwrap();
    let n = RulePass(passes::shape_fold::ShapeFold).run(&mut g).unwrap();
    assert_eq!(n, 1, "dim 1 (3) folds, dim 0 (symbolic b) does not");
    let d1 = g.find("d1").unwrap();
    assert_eq!(g.initializers[&d1].to_i64_vec().unwrap(), vec![3]);
    // Binding b = 2 folds the rest.
    cellm_opt::specialize(&mut g, &HashMap::from([("b".to_string(), 2)])).unwrap();
    assert_eq!(count(&g, "Shape") + count(&g, "Gather"), 0);
}

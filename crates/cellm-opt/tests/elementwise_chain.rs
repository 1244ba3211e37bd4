//! Before/after tests of the `elementwise_chain` fusion on hand-built graphs:
//! which nodes it merges (single-reader interiors only, never graph outputs,
//! never a lone node, never a chain a pattern fusion owns), and that the
//! fused graph computes exactly what the unfused one does on the CPU (fresh
//! random inputs; seed printed, CELLM_TEST_SEED replays). f32 results must
//! be bit-equal: the interpreter runs the primitive kernels' f32 functions
//! in the same order.

mod common;

use cellm_ir::ops::*;
use cellm_ir::{DType, Dim, Fact, Graph, Op, Tensor};
use common::{node, seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

fn bin(op: BinaryOp) -> Op {
    Op::Binary(Binary { op })
}
fn un(op: UnaryOp) -> Op {
    Op::Unary(Unary { op })
}
fn count(g: &Graph, name: &str) -> usize {
    g.nodes
        .node_indices()
        .filter(|&i| g.nodes[i].op.name() == name)
        .count()
}

/// Inputs `names` of `dtype`: x, y of [b, 5, 16] (b symbolic), bias [16].
fn graph(dtype: DType, names: &[&str]) -> Graph {
    let mut g = Graph::new("t");
    for &name in names {
        let shape = if name == "bias" {
            vec![16.into()]
        } else {
            vec![Dim::Sym("b".into()), 5.into(), 16.into()]
        };
        g.add_input(name, Fact::new(dtype, Some(shape)));
    }
    g
}

fn finish(mut g: Graph, outs: &[&str]) -> Graph {
    for o in outs {
        let y = g.value(o);
        g.outputs.push(y);
    }
    g.infer_facts().expect("infer");
    g
}

fn run(g: &Graph, seed: u64) -> Vec<Tensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut inputs = HashMap::new();
    for &v in &g.inputs {
        let f = g.values[v].fact.clone().unwrap();
        let shape: Vec<usize> = f
            .shape
            .unwrap()
            .iter()
            .map(|d| d.known().unwrap_or(2))
            .collect();
        let n: usize = shape.iter().product();
        let x: Vec<f32> = (0..n).map(|_| rng.random_range(-3.0..3.0)).collect();
        let t = match f.dtype {
            DType::F16 => Tensor::from_vec(shape, x.into_iter().map(half::f16::from_f32).collect()),
            _ => Tensor::from_vec(shape, x),
        };
        inputs.insert(g.value_name(v).to_string(), t);
    }
    let out = cellm_cpu::run(g, &inputs).expect("run");
    g.outputs
        .iter()
        .map(|&v| out[g.value_name(v)].clone())
        .collect()
}

/// Optimizes a copy with the default pipeline; f32 outputs of chain-only
/// graphs must be bit-equal (NaN-free inputs), f16 within 1e-2·(1 + |want|)
/// (rounded once instead of after every op).
fn optimize_and_compare(g0: &Graph) -> Graph {
    let s = seed();
    let mut g = g0.clone();
    cellm_opt::optimize(&mut g).expect("optimize");
    // Only Unary/Binary/FusedElementwise left: bit-equal. Pattern fusions
    // (SiluMul's polynomial exp) allow 1e-5, as in fusion_passes.rs.
    let exact = g.nodes.node_indices().all(|ix| {
        matches!(
            g.nodes[ix].op,
            Op::Unary(_) | Op::Binary(_) | Op::FusedElementwise(_)
        )
    });
    for (a, b) in run(&g, s).iter().zip(&run(g0, s)) {
        assert_eq!(a.shape(), b.shape());
        assert_eq!(a.dtype(), b.dtype());
        let (x, y) = (a.to_f32_vec().unwrap(), b.to_f32_vec().unwrap());
        for (p, q) in x.iter().zip(&y) {
            if a.dtype() == DType::F32 && exact {
                assert_eq!(p.to_bits(), q.to_bits(), "{p} vs {q}");
            } else {
                let tol = if a.dtype() == DType::F16 { 1e-2 } else { 1e-5 };
                assert!((p - q).abs() <= tol * (1.0 + q.abs()), "{p} vs {q}");
            }
        }
    }
    g
}

/// y = exp(tanh((x·y + bias) · 0.5)) / (|x| + 1) - sqrt(|y|): 11 nodes, three
/// tensor inputs (bias broadcast), two immediates.
fn chain(g: &mut Graph) {
    node(g, "m", bin(BinaryOp::Mul), &["x", "y"], &["xy"]);
    node(g, "a", bin(BinaryOp::Add), &["xy", "bias"], &["s"]);
    node(g, "h", bin(BinaryOp::Mul), &["s", "half"], &["sh"]);
    node(g, "t", un(UnaryOp::Tanh), &["sh"], &["th"]);
    node(g, "e", un(UnaryOp::Exp), &["th"], &["ex"]);
    node(g, "ab", un(UnaryOp::Abs), &["x"], &["ax"]);
    node(g, "a1", bin(BinaryOp::Add), &["ax", "one"], &["ax1"]);
    node(g, "d", bin(BinaryOp::Div), &["ex", "ax1"], &["q"]);
    node(g, "ay", un(UnaryOp::Abs), &["y"], &["ay"]);
    node(g, "sq", un(UnaryOp::Sqrt), &["ay"], &["ry"]);
    node(g, "out", bin(BinaryOp::Sub), &["q", "ry"], &["out"]);
}

#[test]
fn chain_fuses_into_one_node_and_matches() {
    for dtype in [DType::F32, DType::F16] {
        let mut g = graph(dtype, &["x", "y", "bias"]);
        if dtype == DType::F16 {
            g.add_initializer("half", Tensor::scalar(half::f16::from_f32(0.5)));
            g.add_initializer("one", Tensor::scalar(half::f16::ONE));
        } else {
            g.add_initializer("half", Tensor::scalar(0.5f32));
            g.add_initializer("one", Tensor::scalar(1.0f32));
        }
        chain(&mut g);
        let g0 = finish(g, &["out"]);
        assert_eq!(g0.nodes.node_count(), 11);
        let g = optimize_and_compare(&g0);
        assert_eq!(g.nodes.node_count(), 1, "{dtype}: one node left");
        assert_eq!(count(&g, "FusedElementwise"), 1);
        let ix = g.nodes.node_indices().next().unwrap();
        let Op::FusedElementwise(f) = &g.nodes[ix].op else {
            panic!("not fused")
        };
        assert_eq!(g.nodes[ix].inputs.len(), 3, "x, y, bias");
        let consts = f
            .program
            .iter()
            .filter(|i| matches!(i, Instr::Const(_)))
            .count();
        assert_eq!(consts, 2, "0.5 and 1 as immediates");
        assert_eq!(f.program.len(), 11 + 2, "one per node, two immediates");
    }
}

/// An interior value with two readers, or one that is a graph output, ends
/// a chain; lone nodes, integer chains and chains a pattern fusion owns are
/// left alone.
#[test]
fn chain_stops_at_shared_values_and_outputs() {
    // xy feeds two chains: each side fuses separately, xy stays a Mul.
    let mut g = graph(DType::F32, &["x", "y"]);
    node(&mut g, "m", bin(BinaryOp::Mul), &["x", "y"], &["xy"]);
    node(&mut g, "e", un(UnaryOp::Exp), &["xy"], &["e"]);
    node(&mut g, "n", un(UnaryOp::Neg), &["e"], &["o1"]);
    node(&mut g, "s", un(UnaryOp::Sin), &["xy"], &["s"]);
    node(&mut g, "c", un(UnaryOp::Cos), &["s"], &["o2"]);
    let g = optimize_and_compare(&finish(g, &["o1", "o2"]));
    assert_eq!(count(&g, "Mul"), 1);
    assert_eq!(count(&g, "FusedElementwise"), 2);
    assert_eq!(g.nodes.node_count(), 3);

    // e is a graph output: exp stays, only neg·relu fuse.
    let mut g = graph(DType::F32, &["x"]);
    node(&mut g, "e", un(UnaryOp::Exp), &["x"], &["e"]);
    node(&mut g, "n", un(UnaryOp::Neg), &["e"], &["n"]);
    node(&mut g, "r", un(UnaryOp::Relu), &["n"], &["o"]);
    let g = optimize_and_compare(&finish(g, &["e", "o"]));
    assert_eq!(count(&g, "Exp"), 1);
    assert_eq!(count(&g, "FusedElementwise"), 1);

    // A lone op gains nothing.
    let mut g = graph(DType::F32, &["x"]);
    node(&mut g, "e", un(UnaryOp::Exp), &["x"], &["o"]);
    let g = optimize_and_compare(&finish(g, &["o"]));
    assert_eq!(count(&g, "Exp"), 1);
    assert_eq!(count(&g, "FusedElementwise"), 0);

    // Integer chains are host shape math, not fused.
    let mut g = Graph::new("t");
    g.add_input("i", Fact::new(DType::I64, Some(vec![4.into()])));
    node(&mut g, "a", bin(BinaryOp::Add), &["i", "i"], &["a"]);
    node(&mut g, "n", un(UnaryOp::Neg), &["a"], &["o"]);
    let mut g = finish(g, &["o"]);
    cellm_opt::optimize(&mut g).expect("optimize");
    assert_eq!(count(&g, "FusedElementwise"), 0);

    // SiLU·gate stays a SiluMul (its pass runs first and owns the pattern),
    // and an op after it is no chain of its own.
    let mut g = graph(DType::F32, &["x", "y"]);
    node(&mut g, "s", un(UnaryOp::Sigmoid), &["x"], &["s"]);
    node(&mut g, "m", bin(BinaryOp::Mul), &["x", "s"], &["xs"]);
    node(&mut g, "u", bin(BinaryOp::Mul), &["xs", "y"], &["u"]);
    node(&mut g, "n", un(UnaryOp::Neg), &["u"], &["o"]);
    let g = optimize_and_compare(&finish(g, &["o"]));
    assert_eq!(count(&g, "SiluMul"), 1);
    assert_eq!(count(&g, "FusedElementwise"), 0);
}

/// A one-element constant of higher rank than the chain's inputs would widen
/// the output if made an immediate: the chain is then left alone.
#[test]
fn chain_keeps_rank_widening_constants() {
    let mut g = Graph::new("t");
    g.add_input("x", Fact::new(DType::F32, Some(vec![16.into()])));
    g.add_initializer("c", Tensor::from_vec(vec![1, 1], vec![2.0f32]));
    node(&mut g, "m", bin(BinaryOp::Mul), &["x", "c"], &["m"]);
    node(&mut g, "e", un(UnaryOp::Exp), &["m"], &["o"]);
    let g = optimize_and_compare(&finish(g, &["o"]));
    assert_eq!(count(&g, "FusedElementwise"), 0);
    let out = g.outputs[0];
    assert_eq!(
        g.values[out].fact.as_ref().unwrap().shape,
        Some(vec![1.into(), 16.into()])
    );
}

/// A chain longer than one program's limit becomes several fused nodes.
#[test]
fn long_chain_splits_at_the_program_limit() {
    let mut g = graph(DType::F32, &["x"]);
    let mut prev = "x".to_string();
    for i in 0..70 {
        let op = [UnaryOp::Sin, UnaryOp::Neg, UnaryOp::Abs][i % 3];
        let next = format!("v{i}");
        node(&mut g, &format!("n{i}"), un(op), &[&prev], &[&next]);
        prev = next;
    }
    let g = optimize_and_compare(&finish(g, &[&prev]));
    let n = count(&g, "FusedElementwise");
    assert_eq!(g.nodes.node_count(), n);
    assert_eq!(n, 70usize.div_ceil(fused_elementwise::MAX_INSTRS));
}

//! Before/after tests of the activation and epilogue fusions (gelu, silu_mul,
//! mat_mul_epilogue) and the launch-count fusions (mat_mul_silu_mul,
//! mat_mul_multi, rotary_pair) on hand-built graphs in the forms exporters write: the
//! guard fires on the pattern (any association of the products) and not on
//! near misses, and the fused graph computes what the unfused graph computes
//! (CPU interpreter, fresh random inputs; seed printed, CELLM_TEST_SEED replays).

mod common;

use cellm_ir::ops::*;
use cellm_ir::{DType, Dim, Fact, Graph, Node, Op, Tensor};
use cellm_opt::pass::RulePass;
use cellm_opt::{passes, Pass};
use common::{node, seed};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

fn bin(op: BinaryOp) -> Op {
    Op::Binary(Binary { op })
}
fn mul() -> Op {
    bin(BinaryOp::Mul)
}
fn add() -> Op {
    bin(BinaryOp::Add)
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

/// A graph with f32 inputs named `inputs` of shape [b, 5, 16] (b symbolic).
fn graph(inputs: &[&str]) -> Graph {
    let mut g = Graph::new("t");
    for name in inputs {
        g.add_input(
            name,
            Fact::new(
                DType::F32,
                Some(vec![Dim::Sym("b".into()), 5.into(), 16.into()]),
            ),
        );
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

/// Runs `g` on random inputs ([2, 5, 16], values in ±4 so GELU's tails and
/// the sigmoid's saturation are covered) made from `seed`; all outputs.
fn run(g: &Graph, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut inputs = HashMap::new();
    for &v in &g.inputs {
        let x: Vec<f32> = (0..160).map(|_| rng.random_range(-4.0..4.0)).collect();
        inputs.insert(
            g.value_name(v).to_string(),
            Tensor::from_vec(vec![2, 5, 16], x),
        );
    }
    let out = cellm_cpu::run(g, &inputs).expect("run");
    g.outputs
        .iter()
        .map(|&v| out[g.value_name(v)].to_f32_vec().expect("f32"))
        .collect()
}

/// |fused − unfused| ≤ 1e-5·(1 + |unfused|): the fused kernels use their own
/// polynomial exp/erf/tanh (≤ 3 ulp) and summation order, and the decomposed
/// GELU loses a few ulp in 1 + tanh.
fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>]) {
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(b) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }
}

/// Runs the full default pipeline and checks outputs against the unfused graph.
fn optimize_and_compare(g0: &Graph) -> Graph {
    let s = seed();
    let mut g = g0.clone();
    cellm_opt::optimize(&mut g).expect("optimize");
    assert_close(&run(&g, s), &run(g0, s));
    g
}

// ---- GELU ----

/// tanh GELU as the SigLIP/Idefics3 export writes it:
/// 0.5 · (x · (1 + tanh(√(2/π) · (x + 0.044715 · x·x·x)))).
fn gelu_tanh_graph(k: f32, cube_by_pow: bool) -> Graph {
    let mut g = graph(&["x"]);
    scalar(&mut g, "k", k);
    scalar(&mut g, "s", (2.0f32 / std::f32::consts::PI).sqrt());
    scalar(&mut g, "one", 1.0);
    scalar(&mut g, "half", 0.5);
    if cube_by_pow {
        scalar(&mut g, "three", 3.0);
        node(&mut g, "pow", bin(BinaryOp::Pow), &["x", "three"], &["x3"]);
    } else {
        node(&mut g, "m0", mul(), &["x", "x"], &["x2"]);
        node(&mut g, "m1", mul(), &["x", "x2"], &["x3"]);
    }
    node(&mut g, "m2", mul(), &["k", "x3"], &["kx3"]);
    node(&mut g, "a0", add(), &["x", "kx3"], &["p"]);
    node(&mut g, "m3", mul(), &["s", "p"], &["u"]);
    node(&mut g, "tanh", un(UnaryOp::Tanh), &["u"], &["t"]);
    node(&mut g, "a1", add(), &["one", "t"], &["onep"]);
    node(&mut g, "m4", mul(), &["x", "onep"], &["xo"]);
    node(&mut g, "m5", mul(), &["half", "xo"], &["y"]);
    finish(g, &["y"])
}

#[test]
fn gelu_tanh_fuses_and_matches() {
    for by_pow in [false, true] {
        let g = optimize_and_compare(&gelu_tanh_graph(0.044715, by_pow));
        assert_eq!(count(&g, "Gelu"), 1, "cube by Pow: {by_pow}");
        assert_eq!(g.nodes.node_count(), 1, "only the Gelu remains");
        let ix = g.nodes.node_indices().next().unwrap();
        assert_eq!(
            g.nodes[ix].op,
            Op::Gelu(Gelu {
                approximate: GeluApproximation::Tanh
            })
        );
    }
}

/// √(2/π) · x · (1 + 0.044715 · x²) inside the tanh, and (x · 0.5) · (1 + t) outside.
#[test]
fn gelu_tanh_factored_form_fuses() {
    let mut g = graph(&["x"]);
    scalar(&mut g, "k", 0.044715);
    scalar(&mut g, "s", 0.797_884_6);
    scalar(&mut g, "one", 1.0);
    scalar(&mut g, "half", 0.5);
    node(&mut g, "sq", mul(), &["x", "x"], &["x2"]);
    node(&mut g, "kx2", mul(), &["x2", "k"], &["q"]);
    node(&mut g, "a0", add(), &["q", "one"], &["p"]);
    node(&mut g, "sx", mul(), &["x", "s"], &["xs"]);
    node(&mut g, "u", mul(), &["xs", "p"], &["u"]);
    node(&mut g, "tanh", un(UnaryOp::Tanh), &["u"], &["t"]);
    node(&mut g, "a1", add(), &["t", "one"], &["onep"]);
    node(&mut g, "hx", mul(), &["x", "half"], &["hx"]);
    node(&mut g, "y", mul(), &["hx", "onep"], &["y"]);
    let g = optimize_and_compare(&finish(g, &["y"]));
    assert_eq!(count(&g, "Gelu"), 1);
    assert_eq!(g.nodes.node_count(), 1);
}

/// Exact GELU as torch exports it: (x · 0.5) · (1 + erf(x / √2)), and with
/// x · (1/√2) and 0.5 · (x · (1 + erf)).
#[test]
fn gelu_erf_fuses_and_matches() {
    for variant in 0..2 {
        let mut g = graph(&["x"]);
        scalar(&mut g, "one", 1.0);
        scalar(&mut g, "half", 0.5);
        if variant == 0 {
            scalar(&mut g, "sqrt2", std::f32::consts::SQRT_2);
            node(&mut g, "div", bin(BinaryOp::Div), &["x", "sqrt2"], &["z"]);
        } else {
            scalar(&mut g, "inv", std::f32::consts::FRAC_1_SQRT_2);
            node(&mut g, "div", mul(), &["inv", "x"], &["z"]);
        }
        node(&mut g, "erf", un(UnaryOp::Erf), &["z"], &["e"]);
        node(&mut g, "a", add(), &["e", "one"], &["onep"]);
        if variant == 0 {
            node(&mut g, "hx", mul(), &["x", "half"], &["hx"]);
            node(&mut g, "y", mul(), &["hx", "onep"], &["y"]);
        } else {
            node(&mut g, "xo", mul(), &["x", "onep"], &["xo"]);
            node(&mut g, "y", mul(), &["half", "xo"], &["y"]);
        }
        let g = optimize_and_compare(&finish(g, &["y"]));
        assert_eq!(count(&g, "Gelu"), 1, "variant {variant}");
        assert_eq!(g.nodes.node_count(), 1);
        let ix = g.nodes.node_indices().next().unwrap();
        assert_eq!(
            g.nodes[ix].op,
            Op::Gelu(Gelu {
                approximate: GeluApproximation::None
            })
        );
    }
}

#[test]
fn gelu_guard_rejects_near_misses() {
    // Wrong cubic coefficient: not a GELU.
    let mut g = gelu_tanh_graph(0.05, false);
    assert_eq!(RulePass(passes::gelu::GeluFusion).run(&mut g).unwrap(), 0);
    // An intermediate (the tanh) is also a graph output: it must stay.
    let mut g = gelu_tanh_graph(0.044715, false);
    let t = g.find("t").unwrap();
    g.outputs.push(t);
    assert_eq!(RulePass(passes::gelu::GeluFusion).run(&mut g).unwrap(), 0);
    // erf of another value than the one multiplied.
    let mut g = graph(&["x", "w"]);
    scalar(&mut g, "one", 1.0);
    scalar(&mut g, "half", 0.5);
    scalar(&mut g, "sqrt2", std::f32::consts::SQRT_2);
    node(&mut g, "div", bin(BinaryOp::Div), &["w", "sqrt2"], &["z"]);
    node(&mut g, "erf", un(UnaryOp::Erf), &["z"], &["e"]);
    node(&mut g, "a", add(), &["e", "one"], &["onep"]);
    node(&mut g, "hx", mul(), &["x", "half"], &["hx"]);
    node(&mut g, "y", mul(), &["hx", "onep"], &["y"]);
    let mut g = finish(g, &["y"]);
    assert_eq!(RulePass(passes::gelu::GeluFusion).run(&mut g).unwrap(), 0);
}

// ---- SiLU·gate ----

#[test]
fn silu_mul_fuses_and_matches() {
    // (g · σ(g)) · up as Llama exports it, and g · (σ(g) · up).
    for variant in 0..2 {
        let mut g = graph(&["gate", "up"]);
        node(&mut g, "sig", un(UnaryOp::Sigmoid), &["gate"], &["s"]);
        if variant == 0 {
            node(&mut g, "act", mul(), &["gate", "s"], &["a"]);
            node(&mut g, "y", mul(), &["a", "up"], &["y"]);
        } else {
            node(&mut g, "su", mul(), &["s", "up"], &["a"]);
            node(&mut g, "y", mul(), &["gate", "a"], &["y"]);
        }
        let g = optimize_and_compare(&finish(g, &["y"]));
        assert_eq!(count(&g, "SiluMul"), 1, "variant {variant}");
        assert_eq!(g.nodes.node_count(), 1);
        let ix = g.nodes.node_indices().next().unwrap();
        let names: Vec<_> = g.nodes[ix]
            .inputs
            .iter()
            .map(|v| g.value_name(v.unwrap()).to_string())
            .collect();
        assert_eq!(names, ["gate", "up"]);
    }
}

/// σ(up) · gate · up is silu(up) · gate: the sigmoid's input is the gate.
#[test]
fn silu_mul_finds_the_gate_by_its_sigmoid() {
    let mut g = graph(&["gate", "up"]);
    node(&mut g, "sig", un(UnaryOp::Sigmoid), &["up"], &["s"]);
    node(&mut g, "act", mul(), &["gate", "s"], &["a"]);
    node(&mut g, "y", mul(), &["a", "up"], &["y"]);
    let g = optimize_and_compare(&finish(g, &["y"]));
    assert_eq!(count(&g, "SiluMul"), 1);
    let ix = g.nodes.node_indices().next().unwrap();
    let first = g.nodes[ix].inputs[0].unwrap();
    assert_eq!(g.value_name(first), "up");
}

#[test]
fn silu_mul_guard_rejects_near_misses() {
    // σ of a third value w: no factor is its own sigmoid's input.
    let mut g = graph(&["gate", "up", "w"]);
    node(&mut g, "sig", un(UnaryOp::Sigmoid), &["w"], &["s"]);
    node(&mut g, "act", mul(), &["gate", "s"], &["a"]);
    node(&mut g, "y", mul(), &["a", "up"], &["y"]);
    let mut g = finish(g, &["y"]);
    assert_eq!(
        RulePass(passes::silu_mul::SiluMulFusion)
            .run(&mut g)
            .unwrap(),
        0
    );
    // The SiLU output is read twice: fusing would compute it twice.
    let mut g = graph(&["gate", "up"]);
    node(&mut g, "sig", un(UnaryOp::Sigmoid), &["gate"], &["s"]);
    node(&mut g, "act", mul(), &["gate", "s"], &["a"]);
    node(&mut g, "y", mul(), &["a", "up"], &["y"]);
    node(&mut g, "z", add(), &["a", "up"], &["z"]);
    let mut g = finish(g, &["y", "z"]);
    assert_eq!(
        RulePass(passes::silu_mul::SiluMulFusion)
            .run(&mut g)
            .unwrap(),
        0
    );
}

// ---- MatMul epilogues ----

/// x [b, 5, 16] · W [16, 12] (+ bias [12]) (+ residual r [b, 5, 12] from another MatMul).
fn mat_mul_graph(bias: bool, residual: bool, residual_first: bool, seed: u64) -> Graph {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    let mut g = graph(&["x"]);
    let mut randt = |shape: Vec<usize>| {
        let n = shape.iter().product();
        Tensor::from_vec(
            shape,
            (0..n)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect::<Vec<_>>(),
        )
    };
    g.add_initializer("w", randt(vec![16, 12]));
    g.add_initializer("bias", randt(vec![12]));
    g.add_initializer("w2", randt(vec![16, 12]));
    node(&mut g, "mm", Op::MatMul(MatMul), &["x", "w"], &["p"]);
    // The residual stream: another product, read twice (by the Add and as output).
    node(&mut g, "mm2", Op::MatMul(MatMul), &["x", "w2"], &["r"]);
    let mut cur = "p".to_string();
    let mut terms: Vec<&str> = Vec::new();
    if bias {
        terms.push("bias");
    }
    if residual {
        if residual_first {
            terms.insert(0, "r");
        } else {
            terms.push("r");
        }
    }
    for (i, t) in terms.iter().enumerate() {
        let o = format!("s{i}");
        node(&mut g, &format!("add{i}"), add(), &[&cur, t], &[&o]);
        cur = o;
    }
    node(&mut g, "id", un(UnaryOp::Identity), &[&cur], &["y"]);
    finish(g, &["y", "r"])
}

#[test]
fn mat_mul_epilogue_fuses_bias_and_residual() {
    for (bias, residual, residual_first) in [
        (true, false, false),
        (false, true, false),
        (true, true, false),
        (true, true, true),
    ] {
        let s = seed();
        let g0 = mat_mul_graph(bias, residual, residual_first, s);
        let mut g = g0.clone();
        cellm_opt::optimize(&mut g).expect("optimize");
        assert_close(&run(&g, s), &run(&g0, s));
        let case = format!("bias {bias} residual {residual} first {residual_first}");
        assert_eq!(count(&g, "MatMulEpilogue"), 1, "{case}");
        assert_eq!(count(&g, "Add"), 0, "{case}");
        let ix = g
            .nodes
            .node_indices()
            .find(|&i| matches!(g.nodes[i].op, Op::MatMulEpilogue(_)))
            .unwrap();
        let ins = &g.nodes[ix].inputs;
        assert_eq!(ins[2].is_some(), bias, "{case}");
        assert_eq!(ins.get(3).copied().flatten().is_some(), residual, "{case}");
    }
}

/// A residual that broadcasts ([5, 12] against [b, 5, 12]) fuses too: the op
/// keeps the Add's numpy semantics.
#[test]
fn mat_mul_epilogue_fuses_broadcast_residual() {
    let s = seed();
    let mut rng = StdRng::seed_from_u64(s ^ 0xb1a5);
    let mut g = graph(&["x"]);
    let w: Vec<f32> = (0..16 * 12).map(|_| rng.random_range(-1.0..1.0)).collect();
    let r: Vec<f32> = (0..5 * 12).map(|_| rng.random_range(-1.0..1.0)).collect();
    g.add_initializer("w", Tensor::from_vec(vec![16, 12], w));
    g.add_initializer("r", Tensor::from_vec(vec![5, 12], r));
    node(&mut g, "mm", Op::MatMul(MatMul), &["x", "w"], &["p"]);
    node(&mut g, "add", add(), &["r", "p"], &["y"]);
    let g0 = finish(g, &["y"]);
    let mut g = g0.clone();
    cellm_opt::optimize(&mut g).expect("optimize");
    assert_eq!(count(&g, "MatMulEpilogue"), 1);
    assert_eq!(g.nodes.node_count(), 1);
    assert_close(&run(&g, s), &run(&g0, s));
}

#[test]
fn mat_mul_epilogue_guard_rejects_near_misses() {
    let pass = || RulePass(passes::mat_mul_epilogue::MatMulEpilogueFusion);
    // A batched B ([1, 16, 12]) is not one shared weight.
    let mut g = graph(&["x"]);
    g.add_initializer("w", Tensor::zeros(DType::F32, vec![1, 16, 12]));
    g.add_initializer("bias", Tensor::zeros(DType::F32, vec![12]));
    node(&mut g, "mm", Op::MatMul(MatMul), &["x", "w"], &["p"]);
    node(&mut g, "add", add(), &["p", "bias"], &["y"]);
    let mut g = finish(g, &["y"]);
    assert_eq!(pass().run(&mut g).unwrap(), 0);
    // An addend of higher rank than the product widens the result: not an epilogue.
    let mut g = graph(&["x"]);
    g.add_initializer("w", Tensor::zeros(DType::F32, vec![16, 12]));
    g.add_initializer("bias", Tensor::zeros(DType::F32, vec![3, 1, 1, 12]));
    node(&mut g, "mm", Op::MatMul(MatMul), &["x", "w"], &["p"]);
    node(&mut g, "add", add(), &["p", "bias"], &["y"]);
    let mut g = finish(g, &["y"]);
    assert_eq!(pass().run(&mut g).unwrap(), 0);
    // The product is also read elsewhere.
    let mut g = graph(&["x"]);
    g.add_initializer("w", Tensor::zeros(DType::F32, vec![16, 12]));
    g.add_initializer("bias", Tensor::zeros(DType::F32, vec![12]));
    node(&mut g, "mm", Op::MatMul(MatMul), &["x", "w"], &["p"]);
    node(&mut g, "add", add(), &["p", "bias"], &["y"]);
    let mut g = finish(g, &["y", "p"]);
    assert_eq!(pass().run(&mut g).unwrap(), 0);
    // A residual sum that feeds an RMSNorm is left to SkipSimplifiedLayerNormalization.
    let mut g = graph(&["x", "r"]);
    g.add_initializer("w", Tensor::zeros(DType::F32, vec![16, 16]));
    g.add_initializer("nw", Tensor::zeros(DType::F32, vec![16]));
    node(&mut g, "mm", Op::MatMul(MatMul), &["x", "w"], &["p"]);
    node(&mut g, "add", add(), &["p", "r"], &["s"]);
    let norm = SimplifiedLayerNormalization {
        axis: -1,
        epsilon: 1e-5,
    };
    node(
        &mut g,
        "norm",
        Op::SimplifiedLayerNormalization(norm),
        &["s", "nw"],
        &["y"],
    );
    let mut g = finish(g, &["y"]);
    assert_eq!(pass().run(&mut g).unwrap(), 0);
}

// ---- Launch-count fusions: MatMulSiluMul, MatMulMulti, RotaryEmbeddingPair ----

/// A random [rows, cols] f32 weight.
fn weight(rng: &mut StdRng, rows: usize, cols: usize) -> Tensor {
    let v: Vec<f32> = (0..rows * cols)
        .map(|_| rng.random_range(-0.5..0.5))
        .collect();
    Tensor::from_vec(vec![rows, cols], v)
}

/// SwiGLU as Llama exports it: (g · σ(g)) · u with g = x·Wg, u = x·Wu.
fn swiglu_graph(seed: u64) -> Graph {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5161);
    let mut g = graph(&["x"]);
    // 1024 values each: the smallest weights f16_weights converts.
    g.add_initializer("wg", weight(&mut rng, 16, 64));
    g.add_initializer("wu", weight(&mut rng, 16, 64));
    node(&mut g, "gate", Op::MatMul(MatMul), &["x", "wg"], &["gp"]);
    node(&mut g, "up", Op::MatMul(MatMul), &["x", "wu"], &["up"]);
    node(&mut g, "sig", un(UnaryOp::Sigmoid), &["gp"], &["s"]);
    node(&mut g, "act", mul(), &["gp", "s"], &["a"]);
    node(&mut g, "y", mul(), &["a", "up"], &["y"]);
    g
}

#[test]
fn mat_mul_silu_mul_fuses_and_matches() {
    let s = seed();
    let g0 = finish(swiglu_graph(s), &["y"]);
    let mut g = g0.clone();
    cellm_opt::optimize(&mut g).expect("optimize");
    assert_close(&run(&g, s), &run(&g0, s));
    assert_eq!(count(&g, "MatMulSiluMul"), 1);
    assert_eq!(g.nodes.node_count(), 1, "one node: no MatMul is left");
}

/// f16_weights (run after the pipeline) converts every weight of the fused
/// products; results stay within f16 weight rounding (2^-11 relative per
/// weight over K = 16 terms: 1e-2 is ample) of the f32 graph.
#[test]
fn f16_weights_convert_fused_products() {
    let s = seed();
    let mut rng = StdRng::seed_from_u64(s ^ 0xf16);
    let mut g = swiglu_graph(s);
    g.add_initializer("w1", weight(&mut rng, 16, 64));
    g.add_initializer("w2", weight(&mut rng, 16, 64));
    node(&mut g, "p1", Op::MatMul(MatMul), &["x", "w1"], &["y1"]);
    node(&mut g, "p2", Op::MatMul(MatMul), &["x", "w2"], &["y2"]);
    let mut g = finish(g, &["y", "y1", "y2"]);
    cellm_opt::optimize(&mut g).expect("optimize");
    assert_eq!(count(&g, "MatMulSiluMul"), 1);
    assert_eq!(count(&g, "MatMulMulti"), 1);
    let f32_out = run(&g, s);
    assert_eq!(passes::f16_weights::apply(&mut g).unwrap(), 4);
    for ix in g.nodes.node_indices() {
        for w in &g.nodes[ix].inputs[1..] {
            assert_eq!(
                g.values[w.unwrap()].fact.as_ref().unwrap().dtype,
                DType::F16
            );
        }
    }
    for (a, b) in run(&g, s).iter().zip(&f32_out) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-2 * (1.0 + y.abs()), "{x} vs {y}");
        }
    }
}

#[test]
fn mat_mul_silu_mul_guard_rejects_near_misses() {
    let pass = || RulePass(passes::mat_mul_silu_mul::MatMulSiluMulFusion);
    // silu_mul leaves the Sigmoid and inner Mul for DCE to remove.
    let fused = |mut g: Graph| {
        RulePass(passes::silu_mul::SiluMulFusion)
            .run(&mut g)
            .unwrap();
        RulePass(passes::dce::Dce).run(&mut g).unwrap();
        g.infer_facts().unwrap();
        pass().run(&mut g).unwrap()
    };
    assert_eq!(fused(finish(swiglu_graph(1), &["y"])), 1);
    // The gate product is also a graph output: it must still be written.
    assert_eq!(fused(finish(swiglu_graph(1), &["y", "gp"])), 0);
    // The products read different activations.
    let mut g = swiglu_graph(1);
    let x2 = g.add_input(
        "x2",
        Fact::new(
            DType::F32,
            Some(vec![Dim::Sym("b".into()), 5.into(), 16.into()]),
        ),
    );
    let up = g
        .nodes
        .node_indices()
        .find(|&i| g.nodes[i].name == "up")
        .unwrap();
    g.set_input(up, 0, Some(x2));
    assert_eq!(fused(finish(g, &["y"])), 0);
}

/// q/k/v-style projections of one activation: [16, 12], [16, 4], [16, 4]
/// (and a fourth [16, 8] when `four`), each read by an Identity.
fn projections_graph(seed: u64, four: bool) -> (Graph, Vec<&'static str>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x9c7);
    let mut g = graph(&["x"]);
    let mut outs = vec![];
    let mut ws = vec![("q", 12), ("k", 4), ("v", 4)];
    if four {
        ws.push(("o", 8));
    }
    for (name, n) in ws {
        let (w, p, y): (&str, &str, &'static str) = match name {
            "q" => ("wq", "pq", "yq"),
            "k" => ("wk", "pk", "yk"),
            "v" => ("wv", "pv", "yv"),
            _ => ("wo", "po", "yo"),
        };
        g.add_initializer(w, weight(&mut rng, 16, n));
        node(&mut g, name, Op::MatMul(MatMul), &["x", w], &[p]);
        node(
            &mut g,
            &format!("{name}_id"),
            un(UnaryOp::Identity),
            &[p],
            &[y],
        );
        outs.push(y);
    }
    (g, outs)
}

#[test]
fn mat_mul_multi_fuses_and_matches() {
    for four in [false, true] {
        let s = seed();
        let (g, outs) = projections_graph(s, four);
        let g0 = finish(g, &outs);
        let mut g = g0.clone();
        cellm_opt::optimize(&mut g).expect("optimize");
        assert_close(&run(&g, s), &run(&g0, s));
        assert_eq!(count(&g, "MatMulMulti"), 1, "four: {four}");
        // At most three weights per node: a fourth product stays a MatMul.
        assert_eq!(count(&g, "MatMul"), usize::from(four), "four: {four}");
        let ix = g
            .nodes
            .node_indices()
            .find(|&i| matches!(g.nodes[i].op, Op::MatMulMulti(_)))
            .unwrap();
        assert_eq!(g.nodes[ix].inputs.len(), 4);
        assert_eq!(g.nodes[ix].outputs.len(), 3);
    }
}

#[test]
fn mat_mul_multi_guard_rejects_near_misses() {
    let pass = || RulePass(passes::mat_mul_multi::MatMulMultiFusion);
    // Weights that are runtime inputs, not constants.
    let mut g = graph(&["x"]);
    for w in ["w1", "w2"] {
        g.add_input(w, Fact::new(DType::F32, Some(vec![16.into(), 12.into()])));
    }
    node(&mut g, "a", Op::MatMul(MatMul), &["x", "w1"], &["p1"]);
    node(&mut g, "b", Op::MatMul(MatMul), &["x", "w2"], &["p2"]);
    let mut g = finish(g, &["p1", "p2"]);
    assert_eq!(pass().run(&mut g).unwrap(), 0);
    // One product feeds an Add (an epilogue or residual): only the other two fuse.
    let s = seed();
    let (mut g, outs) = projections_graph(s, true);
    let po = g.find("po").unwrap();
    let yo = g.find("yo").unwrap();
    let o_id = g
        .nodes
        .node_indices()
        .find(|&i| g.nodes[i].name == "o_id")
        .unwrap();
    g.remove_node(o_id);
    g.add_initializer("bias", Tensor::zeros(DType::F32, vec![8]));
    let bias = g.find("bias").unwrap();
    g.add_node(Node {
        name: "o_add".into(),
        op: add(),
        inputs: vec![Some(po), Some(bias)],
        outputs: vec![Some(yo)],
    })
    .unwrap();
    let g0 = finish(g, &outs);
    let mut g = g0.clone();
    cellm_opt::optimize(&mut g).expect("optimize");
    assert_close(&run(&g, s), &run(&g0, s));
    assert_eq!(count(&g, "MatMulEpilogue"), 1);
    assert_eq!(count(&g, "MatMulMulti"), 1);
    // A lone product has no sibling.
    let mut g = graph(&["x"]);
    g.add_initializer("w", Tensor::zeros(DType::F32, vec![16, 12]));
    node(&mut g, "mm", Op::MatMul(MatMul), &["x", "w"], &["p"]);
    let mut g = finish(g, &["p"]);
    assert_eq!(pass().run(&mut g).unwrap(), 0);
}

/// q = x·Wq [b, 5, 16] (2 heads of 8) and k = x·Wk [b, 5, 8] (1 head), each
/// rotated with the same position_ids and caches.
fn rotary_pair_graph(seed: u64, same_source: bool) -> Graph {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x707);
    let mut g = graph(&["x", "x2"]);
    g.add_input(
        "pos",
        Fact::new(DType::I64, Some(vec![Dim::Sym("b".into()), 5.into()])),
    );
    g.add_initializer("wq", weight(&mut rng, 16, 16));
    g.add_initializer("wk", weight(&mut rng, 16, 8));
    g.add_initializer("cos", weight(&mut rng, 32, 4));
    g.add_initializer("sin", weight(&mut rng, 32, 4));
    let k_src = if same_source { "x" } else { "x2" };
    node(&mut g, "q", Op::MatMul(MatMul), &["x", "wq"], &["pq"]);
    node(&mut g, "k", Op::MatMul(MatMul), &[k_src, "wk"], &["pk"]);
    for (name, x, y, heads) in [("rq", "pq", "yq", 2), ("rk", "pk", "yk", 1)] {
        let op = RotaryEmbedding {
            interleaved: false,
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
    finish(g, &["yq", "yk"])
}

/// Runs the rotary graph on random x, x2 and positions in the caches.
fn run_rotary(g: &Graph, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut inputs = HashMap::new();
    for name in ["x", "x2"] {
        let x: Vec<f32> = (0..160).map(|_| rng.random_range(-4.0..4.0)).collect();
        inputs.insert(name.to_string(), Tensor::from_vec(vec![2, 5, 16], x));
    }
    let pos: Vec<i64> = (0..10).map(|_| rng.random_range(0..32)).collect();
    inputs.insert("pos".to_string(), Tensor::from_vec(vec![2, 5], pos));
    let out = cellm_cpu::run(g, &inputs).expect("run");
    g.outputs
        .iter()
        .map(|&v| out[g.value_name(v)].to_f32_vec().expect("f32"))
        .collect()
}

#[test]
fn rotary_pair_fuses_and_matches() {
    let s = seed();
    let g0 = rotary_pair_graph(s, true);
    let mut g = g0.clone();
    // Without the later fusion of the pair into its projections
    // (tests/mat_mul_multi_rotary.rs covers that one).
    cellm_opt::optimize_with(
        &mut g,
        &cellm_opt::OptOptions {
            skip: vec!["mat_mul_multi_rotary"],
        },
    )
    .expect("optimize");
    assert_close(&run_rotary(&g, s), &run_rotary(&g0, s));
    assert_eq!(count(&g, "RotaryEmbeddingPair"), 1);
    assert_eq!(count(&g, "RotaryEmbedding"), 0);
    // q and k projections became one MatMulMulti feeding the pair.
    assert_eq!(count(&g, "MatMulMulti"), 1);
    assert_eq!(g.nodes.node_count(), 2);
    let ix = g
        .nodes
        .node_indices()
        .find(|&i| matches!(g.nodes[i].op, Op::RotaryEmbeddingPair(_)))
        .unwrap();
    let Op::RotaryEmbeddingPair(op) = &g.nodes[ix].op else {
        unreachable!()
    };
    assert_eq!(op.num_heads, [2, 1]);
}

#[test]
fn rotary_pair_guard_rejects_near_misses() {
    let pass = || RulePass(passes::rotary_pair::RotaryPairFusion);
    // Rotaries of projections of different activations (other layers).
    let mut g = rotary_pair_graph(1, false);
    assert_eq!(pass().run(&mut g).unwrap(), 0);
    // Different caches.
    let mut g = rotary_pair_graph(1, true);
    g.add_initializer("cos2", Tensor::zeros(DType::F32, vec![32, 4]));
    let cos2 = g.find("cos2").unwrap();
    let rk = g
        .nodes
        .node_indices()
        .find(|&i| g.nodes[i].name == "rk")
        .unwrap();
    g.set_input(rk, 2, Some(cos2));
    assert_eq!(pass().run(&mut g).unwrap(), 0);
    // The same graph as built pairs (the guard is not vacuous).
    let mut g = rotary_pair_graph(1, true);
    assert_eq!(pass().run(&mut g).unwrap(), 1);
}

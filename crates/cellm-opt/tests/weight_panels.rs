//! The `weight_panels` pass (CPU plans): f16 weights read only as the B of
//! MatMul-family ops under f32 activations are re-stored in column panels,
//! with the graph's facts and results unchanged; weights with another reader,
//! under f16 activations, or in f32 stay row-major.

use cellm_ir::{DType, Dim, Fact, Graph, Layout, Op, Tensor};
use cellm_opt::passes::{f16_weights, weight_panels};
use cellm_testkit::{random_tensor, seeded_rng};
use std::collections::HashMap;

mod common;
use common::node;

const PANELS: Layout = Layout::Panels {
    width: weight_panels::PANEL_WIDTH,
};

fn layout(g: &Graph, name: &str) -> Layout {
    g.initializers[&g.find(name).expect(name)].layout()
}

/// x [r, 64] f32 and h [r, 64] f16 through: MatMul by `w` (f16, weight
/// only), MatMul by `shared` (f16, also added to an output), MatMul of h by
/// `wh` (f16 under f16 A), MatMul by `w32` (f32).
fn graph(r: &mut rand::rngs::StdRng) -> Graph {
    let mut g = Graph::new("panels");
    let rows = || Some(vec![Dim::Sym("r".into()), 64.into()]);
    g.add_input("x", Fact::new(DType::F32, rows()));
    g.add_input("h", Fact::new(DType::F16, rows()));
    for (name, n, dtype) in [
        ("w", 70, DType::F16),
        ("shared", 64, DType::F16),
        ("wh", 40, DType::F16),
        ("w32", 48, DType::F32),
    ] {
        g.add_initializer(name, random_tensor(r, &[64, n], dtype, -1.0, 1.0));
    }
    let mm = || Op::MatMul(cellm_ir::ops::MatMul);
    node(&mut g, "a", mm(), &["x", "w"], &["ya"]);
    node(&mut g, "b", mm(), &["x", "shared"], &["yb"]);
    let add = Op::Binary(cellm_ir::ops::Binary {
        op: cellm_ir::ops::BinaryOp::Add,
    });
    node(&mut g, "c", add, &["shared", "shared"], &["yc"]);
    node(&mut g, "d", mm(), &["h", "wh"], &["yd"]);
    node(&mut g, "e", mm(), &["x", "w32"], &["ye"]);
    for o in ["ya", "yb", "yc", "yd", "ye"] {
        let v = g.value(o);
        g.outputs.push(v);
    }
    g.infer_facts().expect("infer");
    g
}

#[test]
fn only_weight_only_f16_weights_under_f32_move_to_panels() {
    let mut r = seeded_rng();
    let g0 = graph(&mut r);
    let mut g = g0.clone();
    assert_eq!(weight_panels::apply(&mut g).unwrap(), 1);
    assert_eq!(layout(&g, "w"), PANELS);
    for name in ["shared", "wh", "w32"] {
        assert_eq!(layout(&g, name), Layout::RowMajor, "{name}");
    }
    assert_eq!(weight_panels::apply(&mut g).unwrap(), 0, "idempotent");
    let facts =
        |g: &Graph| -> Vec<Option<Fact>> { g.values.iter().map(|v| v.fact.clone()).collect() };
    assert_eq!(facts(&g), facts(&g0), "facts unchanged");
    // Same results on fresh inputs, one row (the GEMV) and nine (the GEMM).
    for rows in [1, 9] {
        let mut inputs = HashMap::new();
        inputs.insert(
            "x".to_string(),
            random_tensor(&mut r, &[rows, 64], DType::F32, -1.0, 1.0),
        );
        inputs.insert(
            "h".to_string(),
            random_tensor(&mut r, &[rows, 64], DType::F16, -1.0, 1.0),
        );
        let want = cellm_cpu::run(&g0, &inputs).unwrap();
        let got = cellm_cpu::run(&g, &inputs).unwrap();
        for (name, w) in &want {
            let (a, b) = (got[name].to_f64_vec(), w.to_f64_vec());
            // K = 64 products of |a|,|b| ≤ 1 summed in another order in f32.
            let err = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f64::max);
            assert!(err <= 1e-5, "{name} ({rows} rows): {err:.1e}");
        }
    }
}

/// On the micro decoders after `--dtype f16`, every weight of a
/// MatMul-family op moves to panels.
#[test]
fn micro_decoders_f16_weights_all_move_to_panels() {
    for rel in [
        "micro/onnx/decoder_model_merged.onnx",
        "micro/onnx_torchscript/decoder_model_merged.onnx",
    ] {
        let mut g = common::optimized_model(rel);
        let halves = f16_weights::apply(&mut g).unwrap();
        assert!(halves > 0, "{rel}");
        let n = weight_panels::apply(&mut g).unwrap();
        let f16_matrices: Vec<&Tensor> = g
            .initializers
            .values()
            .filter(|t| t.dtype() == DType::F16 && t.rank() == 2 && t.len() >= 1024)
            .collect();
        assert_eq!(n, f16_matrices.len(), "{rel}");
        assert!(f16_matrices.iter().all(|t| t.layout() == PANELS), "{rel}");
        assert!(n >= halves, "{rel}: {n} packed of {halves} converted");
    }
}

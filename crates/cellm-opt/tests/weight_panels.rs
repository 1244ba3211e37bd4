//! The `weight_panels` pass (CPU plans): f16 and f32 weights read only as
//! the B of MatMul-family ops under f32 activations that may have few rows
//! are re-stored in column panels, with the graph's facts and results
//! unchanged; weights with another reader, under f16 activations, or under
//! activations known to have many rows stay row-major.

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

/// x [r, 64] f32, h [r, 64] f16 and p [16, 64] f32 through: MatMul by `w`
/// (f16, weight only), MatMul by `shared` (f16, also added to an output),
/// MatMul of h by `wh` (f16 under f16 A), MatMul by `w32` (f32), MatMul of p
/// by `wmany` (16 rows: never a GEMV).
fn graph(r: &mut rand::rngs::StdRng) -> Graph {
    let mut g = Graph::new("panels");
    let rows = || Some(vec![Dim::Sym("r".into()), 64.into()]);
    g.add_input("x", Fact::new(DType::F32, rows()));
    g.add_input("h", Fact::new(DType::F16, rows()));
    g.add_input("p", Fact::new(DType::F32, Some(vec![16.into(), 64.into()])));
    for (name, n, dtype) in [
        ("w", 70, DType::F16),
        ("shared", 64, DType::F16),
        ("wh", 40, DType::F16),
        ("w32", 48, DType::F32),
        ("wmany", 40, DType::F16),
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
    node(&mut g, "f", mm(), &["p", "wmany"], &["yf"]);
    for o in ["ya", "yb", "yc", "yd", "ye", "yf"] {
        let v = g.value(o);
        g.outputs.push(v);
    }
    g.infer_facts().expect("infer");
    g
}

#[test]
fn only_weights_of_few_row_f32_products_move_to_panels() {
    let mut r = seeded_rng();
    let g0 = graph(&mut r);
    let mut g = g0.clone();
    assert_eq!(weight_panels::apply(&mut g).unwrap(), 2);
    assert_eq!(layout(&g, "w"), PANELS);
    assert_eq!(layout(&g, "w32"), PANELS);
    for name in ["shared", "wh", "wmany"] {
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
        inputs.insert(
            "p".to_string(),
            random_tensor(&mut r, &[16, 64], DType::F32, -1.0, 1.0),
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
/// MatMul-family op moves to panels; in f32 too. The vision encoder's
/// products have 1024 rows: its weights stay row-major.
#[test]
fn micro_decoder_weights_move_to_panels_vision_weights_stay() {
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
        let mut g32 = common::optimized_model(rel);
        assert_eq!(weight_panels::apply(&mut g32).unwrap(), n, "{rel} in f32");
    }
    let mut vision = common::optimized_model("micro/onnx/vision_encoder.onnx");
    assert_eq!(weight_panels::apply(&mut vision).unwrap(), 0);
}

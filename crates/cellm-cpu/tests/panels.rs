//! f16 and f32 weights in column panels (`Layout::Panels`, the CPU plans'
//! decoder weights): the panel GEMV and the many-row products (6 × 16 tiles
//! and every smaller tail) against an f64 reference on the same values, the
//! many-row path against row-major weights, and every MatMul-family
//! op with a panel-stored weight against the same op with the row-major one. Fresh
//! random inputs (seed printed; CELLM_TEST_SEED replays), outputs poisoned.

use cellm_cpu::ops::eval;
use cellm_cpu::panels::sgemm_panels;
use cellm_ir::ops::{MatMul, MatMulEpilogue, MatMulMulti, MatMulSiluMul};
use cellm_ir::{DType, Op, Tensor};
use cellm_testkit::{random_tensor, seeded_rng};
use half::f16;

/// (K, N): odd K, N not a multiple of 32, one panel, and sizes on both sides
/// of the kernel's threading threshold (2^16 weights).
const SHAPES: [(usize, usize); 6] = [
    (7, 5),
    (33, 32),
    (64, 70),
    (301, 333),
    (576, 192),
    (1536, 97),
];

/// C = A·B in f64 from the f16 values, and per output the bound of f32
/// accumulation of K products (K·2^-24·Σ|a·b|, the rigorous first-order
/// bound): any misplaced or missing term exceeds it by orders of magnitude.
fn reference(m: usize, k: usize, n: usize, a: &[f32], b: &Tensor) -> (Vec<f64>, Vec<f64>) {
    let bv = b.to_f64_vec();
    let (mut c, mut bound) = (vec![0f64; m * n], vec![0f64; m * n]);
    for i in 0..m {
        for j in 0..n {
            for kk in 0..k {
                let p = a[i * k + kk] as f64 * bv[kk * n + j];
                c[i * n + j] += p;
                bound[i * n + j] += p.abs();
            }
            bound[i * n + j] *= (k as f64 + 2.0) * f64::powi(2.0, -24);
        }
    }
    (c, bound)
}

#[test]
fn panel_products_match_f64_reference() {
    let mut r = seeded_rng();
    for (dtype, (k, n)) in [DType::F16, DType::F32]
        .into_iter()
        .flat_map(|d| SHAPES.map(|s| (d, s)))
    {
        let b = random_tensor(&mut r, &[k, n], dtype, -1.0, 1.0);
        let packed = b.to_panels(32).unwrap();
        // 1-4: GEMV; 5-13: tiles of 6 rows with tails of 0 to 5 rows.
        for m in 1..=13 {
            let a = random_tensor(&mut r, &[m, k], DType::F32, -1.0, 1.0);
            let a = a.view::<f32>().unwrap();
            let mut c = vec![f32::NAN; m * n];
            if dtype == DType::F16 {
                let (panels, width) = packed.panels::<f16>().unwrap();
                sgemm_panels(m, k, n, a, panels, width, &mut c);
            } else {
                let (panels, width) = packed.panels::<f32>().unwrap();
                sgemm_panels(m, k, n, a, panels, width, &mut c);
            }
            let (want, bound) = reference(m, k, n, a, &b);
            for (idx, (&got, (&w, &tol))) in c.iter().zip(want.iter().zip(&bound)).enumerate() {
                assert!(
                    (got as f64 - w).abs() <= tol,
                    "{dtype} {m}x{k}x{n} [{}, {}]: {got} vs {w} (bound {tol:.1e})",
                    idx / n,
                    idx % n
                );
            }
        }
    }
}

/// Many rows (the tiled kernel, one FMA chain per output) against
/// row-major weights through the f32 GEMM, f16 and f32 weights. Within 1e-5
/// of the largest output: the same products summed in another order (the
/// GEMM blocks K); a misplaced column is off by O(1).
#[test]
fn panel_gemm_rows_match_row_major() {
    let mut r = seeded_rng();
    for (dtype, (k, n)) in [DType::F16, DType::F32]
        .into_iter()
        .flat_map(|d| SHAPES.map(|s| (d, s)))
    {
        let b = random_tensor(&mut r, &[k, n], dtype, -1.0, 1.0);
        let packed = b.to_panels(32).unwrap();
        for m in [5, 17] {
            let a = random_tensor(&mut r, &[m, k], DType::F32, -1.0, 1.0);
            let want = eval(&Op::MatMul(MatMul), &[Some(&a), Some(&b)]).unwrap();
            let got = eval(&Op::MatMul(MatMul), &[Some(&a), Some(&packed)]).unwrap();
            let err = max_rel(&got[0], &want[0]);
            assert!(err <= 1e-5, "{dtype} {m}x{k}x{n}: {err:.2e}");
        }
    }
}

/// An op's inputs.
type Args<'a> = Vec<Option<&'a Tensor>>;

fn max_rel(got: &Tensor, want: &Tensor) -> f64 {
    let (g, w) = (got.to_f64_vec(), want.to_f64_vec());
    assert_eq!(got.shape(), want.shape());
    let scale = w.iter().fold(1e-6f64, |s, v| s.max(v.abs()));
    g.iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
        / scale
}

/// The fused products read panel-stored weights as MatMul does. Within
/// 1e-5 of the largest output: the panel and row-major GEMVs sum K products
/// in different orders (f32, K ≤ 1536, |a|,|b| ≤ 1), far below that; a
/// wrong layout reads unrelated weights and is off by O(1).
#[test]
fn fused_products_take_panel_weights() {
    let mut r = seeded_rng();
    for (dtype, k, n) in [
        (DType::F16, 96, 70),
        (DType::F16, 576, 192),
        (DType::F32, 96, 70),
        (DType::F32, 576, 192),
    ] {
        for m in [1, 3, 6] {
            let a = random_tensor(&mut r, &[1, m, k], DType::F32, -1.0, 1.0);
            let w1 = random_tensor(&mut r, &[k, n], dtype, -1.0, 1.0);
            let w2 = random_tensor(&mut r, &[k, n], dtype, -1.0, 1.0);
            let bias = random_tensor(&mut r, &[n], DType::F32, -1.0, 1.0);
            let (p1, p2) = (w1.to_panels(32).unwrap(), w2.to_panels(32).unwrap());
            let cases: [(Op, Args, Args); 4] = [
                (
                    Op::MatMul(MatMul),
                    vec![Some(&a), Some(&w1)],
                    vec![Some(&a), Some(&p1)],
                ),
                (
                    Op::MatMulEpilogue(MatMulEpilogue),
                    vec![Some(&a), Some(&w1), Some(&bias)],
                    vec![Some(&a), Some(&p1), Some(&bias)],
                ),
                (
                    Op::MatMulSiluMul(MatMulSiluMul),
                    vec![Some(&a), Some(&w1), Some(&w2)],
                    vec![Some(&a), Some(&p1), Some(&p2)],
                ),
                (
                    Op::MatMulMulti(MatMulMulti),
                    vec![Some(&a), Some(&w1), Some(&w2)],
                    vec![Some(&a), Some(&p1), Some(&p2)],
                ),
            ];
            for (op, rows, panels) in cases {
                let want = eval(&op, &rows).unwrap();
                let got = eval(&op, &panels).unwrap();
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    let err = max_rel(g, w);
                    assert!(err <= 1e-5, "{} {dtype} {m}x{k}x{n}: {err:.2e}", op.name());
                }
            }
        }
    }
}

/// Under f16 A (the all-f16 exports) a panel weight is read row-major: the
/// generic path, same values as the row-major weight.
#[test]
fn f16_activations_read_panel_weights_row_major() {
    let mut r = seeded_rng();
    let a = random_tensor(&mut r, &[3, 40], DType::F16, -1.0, 1.0);
    let b = random_tensor(&mut r, &[40, 50], DType::F16, -1.0, 1.0);
    let want = eval(&Op::MatMul(MatMul), &[Some(&a), Some(&b)]).unwrap();
    let got = eval(
        &Op::MatMul(MatMul),
        &[Some(&a), Some(&b.to_panels(32).unwrap())],
    )
    .unwrap();
    assert_eq!(got[0], want[0]);
}

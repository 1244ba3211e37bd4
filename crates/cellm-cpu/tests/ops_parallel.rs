//! The threaded / vectorised paths of the CPU kernels (sizes above the
//! threading threshold, odd row counts so tasks split unevenly) against
//! naive f64 references: Softmax, LayerNormalization, SimplifiedLayer-
//! Normalization, SkipSimplifiedLayerNormalization, f32 binary ops with
//! same-shape / scalar / row-repeated operands on either side, and the
//! small-M MatMul (B's rows split over the cores, partials summed). Fresh
//! random inputs (seed printed; CELLM_TEST_SEED replays).

use cellm_cpu::ops::eval;
use cellm_ir::ops::*;
use cellm_ir::{Op, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn rng() -> StdRng {
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

fn randv(r: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| r.random_range(-scale..scale)).collect()
}

/// |got − want| ≤ tol·(1 + |want|), want in f64.
fn assert_close(got: &[f32], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
        // Equal infinities (a quotient that overflows) and NaNs match too.
        let ok = (a as f64 - b).abs() <= tol * (1.0 + b.abs())
            || a as f64 == b
            || (a.is_nan() && b.is_nan());
        assert!(ok, "{what}: element {i}: {a} vs {b}");
    }
}

fn run(op: Op, inputs: &[&Tensor]) -> Vec<Tensor> {
    let ins: Vec<Option<&Tensor>> = inputs.iter().map(|t| Some(*t)).collect();
    eval(&op, &ins).expect("eval")
}

#[test]
fn softmax_rows_match_f64() {
    let mut r = rng();
    let (rows, len) = (67, 1031);
    let mut v = randv(&mut r, rows * len, 30.0);
    // Masked entries, and one fully masked row (NaN, like numpy).
    for i in (0..v.len()).step_by(7) {
        v[i] = f32::NEG_INFINITY;
    }
    v[5 * len..6 * len].fill(f32::NEG_INFINITY);
    let x = Tensor::from_vec(vec![rows, len], v.clone());
    let y = run(Op::Softmax(Softmax { axis: -1 }), &[&x]).remove(0);
    let mut want = vec![0f64; v.len()];
    for (row, w) in v.chunks(len).zip(want.chunks_mut(len)) {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
        let s: f64 = row.iter().map(|&b| (b as f64 - m).exp()).sum();
        for (o, &b) in w.iter_mut().zip(row) {
            *o = (b as f64 - m).exp() / s;
        }
    }
    // 1e-6: a few ulp of the polynomial exp and the f32 sum of ~1000 terms.
    assert_close(y.f32s().unwrap(), &want, 1e-6, "Softmax");
}

#[test]
fn norms_match_f64() {
    let mut r = rng();
    let (rows, h) = (301, 768);
    let x = randv(&mut r, rows * h, 3.0);
    let skip = randv(&mut r, rows * h, 3.0);
    let w = randv(&mut r, h, 2.0);
    let b = randv(&mut r, h, 1.0);
    let xt = Tensor::from_vec(vec![1, rows, h], x.clone());
    let st = Tensor::from_vec(vec![1, rows, h], skip.clone());
    let wt = Tensor::from_vec(vec![h], w.clone());
    let bt = Tensor::from_vec(vec![h], b.clone());
    let eps = 1e-5f64;
    // 1e-5: f32 outputs of f64 statistics; only the final products round.
    let tol = 1e-5;

    let out = run(
        Op::LayerNormalization(LayerNormalization {
            axis: -1,
            epsilon: eps as f32,
        }),
        &[&xt, &wt, &bt],
    );
    let mut want = vec![0f64; x.len()];
    let mut want_mean = vec![0f64; rows];
    let mut want_inv = vec![0f64; rows];
    for (i, row) in x.chunks(h).enumerate() {
        let m = row.iter().map(|&v| v as f64).sum::<f64>() / h as f64;
        let var = row.iter().map(|&v| (v as f64 - m).powi(2)).sum::<f64>() / h as f64;
        let inv = 1.0 / (var + eps).sqrt();
        for j in 0..h {
            want[i * h + j] = (row[j] as f64 - m) * inv * w[j] as f64 + b[j] as f64;
        }
        want_mean[i] = m;
        want_inv[i] = inv;
    }
    assert_close(out[0].f32s().unwrap(), &want, tol, "LayerNormalization Y");
    assert_close(
        out[1].f32s().unwrap(),
        &want_mean,
        tol,
        "LayerNormalization Mean",
    );
    assert_close(
        out[2].f32s().unwrap(),
        &want_inv,
        tol,
        "LayerNormalization InvStdDev",
    );

    let rms = |xs: &[f32]| -> (Vec<f64>, Vec<f64>) {
        let mut y = vec![0f64; xs.len()];
        let mut inv = vec![0f64; rows];
        for (i, row) in xs.chunks(h).enumerate() {
            let ms = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / h as f64;
            inv[i] = 1.0 / (ms + eps).sqrt();
            for j in 0..h {
                y[i * h + j] = row[j] as f64 * inv[i] * w[j] as f64;
            }
        }
        (y, inv)
    };
    let out = run(
        Op::SimplifiedLayerNormalization(SimplifiedLayerNormalization {
            axis: -1,
            epsilon: eps as f32,
        }),
        &[&xt, &wt],
    );
    let (want, want_inv) = rms(&x);
    assert_close(
        out[0].f32s().unwrap(),
        &want,
        tol,
        "SimplifiedLayerNormalization Y",
    );
    assert_close(
        out[1].f32s().unwrap(),
        &want_inv,
        tol,
        "SimplifiedLayerNormalization inv",
    );

    let out = run(
        Op::SkipSimplifiedLayerNormalization(SkipSimplifiedLayerNormalization {
            epsilon: eps as f32,
        }),
        &[&xt, &st, &wt],
    );
    let sum: Vec<f32> = x.iter().zip(&skip).map(|(a, b)| a + b).collect();
    let (want, want_inv) = rms(&sum);
    assert_close(
        out[0].f32s().unwrap(),
        &want,
        tol,
        "SkipSimplifiedLayerNormalization Y",
    );
    assert_close(
        out[2].f32s().unwrap(),
        &want_inv,
        tol,
        "SkipSimplifiedLayerNormalization inv",
    );
    let sum64: Vec<f64> = sum.iter().map(|&v| v as f64).collect();
    assert_close(
        out[3].f32s().unwrap(),
        &sum64,
        0.0,
        "SkipSimplifiedLayerNormalization sum",
    );
}

#[test]
fn binary_fast_paths_match_f64() {
    let mut r = rng();
    let big_shape = vec![3, 129, 257];
    let n: usize = big_shape.iter().product();
    let big = Tensor::from_vec(big_shape.clone(), randv(&mut r, n, 4.0));
    let same = Tensor::from_vec(big_shape.clone(), randv(&mut r, n, 4.0));
    let scalar = Tensor::from_vec(vec![1, 1], randv(&mut r, 1, 4.0));
    let row = Tensor::from_vec(vec![257], randv(&mut r, 257, 4.0));
    let rows2 = Tensor::from_vec(vec![1, 129, 257], randv(&mut r, 129 * 257, 4.0));
    // The general broadcast (not a fast path) for contrast: [3, 1, 257].
    let mid = Tensor::from_vec(vec![3, 1, 257], randv(&mut r, 3 * 257, 4.0));
    type Reference = fn(f64, f64) -> f64;
    let ops: [(BinaryOp, Reference); 4] = [
        (BinaryOp::Add, |a, b| a + b),
        (BinaryOp::Sub, |a, b| a - b),
        (BinaryOp::Mul, |a, b| a * b),
        (BinaryOp::Div, |a, b| a / b),
    ];
    for (op, f) in ops {
        for other in [&same, &scalar, &row, &rows2, &mid] {
            for big_first in [true, false] {
                let (a, b) = if big_first {
                    (&big, other)
                } else {
                    (other, &big)
                };
                let y = run(Op::Binary(Binary { op }), &[a, b]).remove(0);
                assert_eq!(y.shape(), big_shape.as_slice());
                let (av, bv) = (a.f32s().unwrap(), b.f32s().unwrap());
                let idx = |t: &Tensor, i: usize| -> usize {
                    // numpy broadcasting of t against big_shape.
                    let s = t.shape();
                    let mut off = 0;
                    let mut stride = 1;
                    let mut rem = i;
                    let mut dims: Vec<(usize, usize)> = Vec::new();
                    for (k, &d) in big_shape.iter().enumerate().rev() {
                        let coord = rem % d;
                        rem /= d;
                        let tk = k as isize - (big_shape.len() - s.len()) as isize;
                        if tk >= 0 {
                            dims.push((coord, s[tk as usize]));
                        }
                    }
                    for (coord, d) in dims {
                        if d != 1 {
                            off += coord * stride;
                        }
                        stride *= d;
                    }
                    off
                };
                let want: Vec<f64> = (0..n)
                    .map(|i| f(av[idx(a, i)] as f64, bv[idx(b, i)] as f64))
                    .collect();
                // Exact f32 arithmetic, compared at f32 rounding (Div may be
                // huge near 0 divisors: relative).
                let what = format!("{op:?} {:?} x {:?}", a.shape(), b.shape());
                assert_close(y.f32s().unwrap(), &want, 1e-6, &what);
            }
        }
    }
}

#[test]
fn small_m_mat_mul_matches_f64() {
    let mut r = rng();
    for (m, k, n) in [
        (1, 576, 1536),
        (1, 1536, 577),
        (2, 301, 3001),
        (4, 64, 9000),
        (3, 7, 5),
    ] {
        let a = randv(&mut r, m * k, 1.0);
        let b = randv(&mut r, k * n, 1.0);
        let at = Tensor::from_vec(vec![m, k], a.clone());
        let bt = Tensor::from_vec(vec![k, n], b.clone());
        let y = run(Op::MatMul(MatMul), &[&at, &bt]).remove(0);
        let mut want = vec![0f64; m * n];
        for i in 0..m {
            for p in 0..k {
                let s = a[i * k + p] as f64;
                for j in 0..n {
                    want[i * n + j] += s * b[p * n + j] as f64;
                }
            }
        }
        // f32 sums of k products in ±1: error grows like √k ulp.
        let tol = 1e-6 * (k as f64).sqrt();
        assert_close(
            y.f32s().unwrap(),
            &want,
            tol,
            &format!("MatMul {m}x{k}x{n}"),
        );
    }
}

//! Tests of the CPU kernels MatMul, Conv, Softmax, LayerNormalization,
//! (Skip)SimplifiedLayerNormalization, RotaryEmbedding and MultiHeadAttention.
//!
//! Two kinds of reference: naive f64 implementations written here (random shapes,
//! fresh random inputs; the seed is printed so a failure can be replayed with
//! CELLM_TEST_SEED), and onnxruntime outputs saved by `tests/data/make_ops_b.py`.
//!
//! Tolerances are relative to max(1, max|reference|):
//! - f32 kernels vs f64 naive: 1e-5, or 2e-6 * K for K-term dot products (f32
//!   rounding grows about linearly with the number of accumulated terms);
//! - f16 outputs: 2e-3 (f16's half-ulp is 4.9e-4 relative; one rounding of the
//!   output plus f32 internals, with inputs rounded identically on both sides);
//! - f64 kernels: 1e-12; integer kernels: exact;
//! - onnxruntime data (f32 both sides, different summation orders): 1e-5.

use cellm_cpu::ops::eval;
use cellm_ir::ops::*;
use cellm_ir::{Op, Tensor};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::Path;

fn rng_for(test: &str) -> StdRng {
    let seed = std::env::var("CELLM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("{test}: seed {seed} (set CELLM_TEST_SEED to replay)");
    StdRng::seed_from_u64(seed)
}

fn uniform(rng: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn numel(s: &[usize]) -> usize {
    s.iter().product()
}

/// Fails when any |got - want| exceeds tol * max(1, max|want|).
fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g - w).abs() <= tol * scale || (g.is_nan() && w.is_nan());
        assert!(
            ok,
            "{what}: element {i}: got {g}, want {w} (tol {tol} x {scale})"
        );
    }
}

fn run1(op: Op, inputs: &[Option<&Tensor>]) -> Vec<Tensor> {
    eval(&op, inputs).unwrap_or_else(|e| panic!("{op:?} failed: {e:#}"))
}

/// Rounds through f16 (so references see exactly the kernel's f16 inputs).
fn f16_round(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| f16::from_f32(x).to_f32()).collect()
}

fn f16_tensor(shape: Vec<usize>, v: &[f32]) -> Tensor {
    Tensor::from_vec(
        shape,
        v.iter().map(|&x| f16::from_f32(x)).collect::<Vec<_>>(),
    )
}

fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

// ---------------------------------------------------------------- MatMul

/// numpy matmul by definition: promote 1-D, broadcast batch dims, triple loop.
fn naive_matmul(a: &[f64], ash: &[usize], b: &[f64], bsh: &[usize]) -> (Vec<f64>, Vec<usize>) {
    let a2 = if ash.len() == 1 {
        vec![1, ash[0]]
    } else {
        ash.to_vec()
    };
    let b2 = if bsh.len() == 1 {
        vec![bsh[0], 1]
    } else {
        bsh.to_vec()
    };
    let (m, k, n) = (a2[a2.len() - 2], a2[a2.len() - 1], b2[b2.len() - 1]);
    let (ab, bb) = (&a2[..a2.len() - 2], &b2[..b2.len() - 2]);
    let rank = ab.len().max(bb.len());
    let pad = |s: &[usize]| -> Vec<usize> {
        std::iter::repeat_n(1, rank - s.len())
            .chain(s.iter().copied())
            .collect()
    };
    let (ap, bp) = (pad(ab), pad(bb));
    let batch: Vec<usize> = ap.iter().zip(&bp).map(|(&x, &y)| x.max(y)).collect();
    let mut out = Vec::new();
    for bi in 0..numel(&batch) {
        let idx = unravel(bi, &batch);
        let ai: Vec<usize> = idx
            .iter()
            .zip(&ap)
            .map(|(&i, &d)| if d == 1 { 0 } else { i })
            .collect();
        let bj: Vec<usize> = idx
            .iter()
            .zip(&bp)
            .map(|(&i, &d)| if d == 1 { 0 } else { i })
            .collect();
        let (ao, bo) = (ravel(&ai, &ap) * m * k, ravel(&bj, &bp) * k * n);
        for i in 0..m {
            for j in 0..n {
                let mut s = 0.0;
                for p in 0..k {
                    s += a[ao + i * k + p] * b[bo + p * n + j];
                }
                out.push(s);
            }
        }
    }
    let mut shape = batch;
    if ash.len() > 1 {
        shape.push(m);
    }
    if bsh.len() > 1 {
        shape.push(n);
    }
    (out, shape)
}

/// Random MatMul operand shapes: 1-D to 4-D, odd sizes, batch dims that broadcast.
fn matmul_shapes(rng: &mut StdRng) -> (Vec<usize>, Vec<usize>) {
    let (m, k, n) = (
        rng.random_range(1..=13),
        rng.random_range(1..=19),
        rng.random_range(1..=11),
    );
    let batch: Vec<usize> = (0..rng.random_range(0..=2))
        .map(|_| rng.random_range(1..=4))
        .collect();
    let side = |rng: &mut StdRng| -> Vec<usize> {
        let keep = rng.random_range(0..=batch.len());
        batch[batch.len() - keep..]
            .iter()
            .map(|&d| if rng.random_bool(0.3) { 1 } else { d })
            .collect()
    };
    let mut a = side(rng);
    let mut b = side(rng);
    a.extend([m, k]);
    b.extend([k, n]);
    if rng.random_bool(0.15) {
        a = vec![k];
    }
    if rng.random_bool(0.15) {
        b = vec![k];
    }
    (a, b)
}

#[test]
fn matmul_f32_random_shapes_match_naive() {
    let mut rng = rng_for("matmul_f32");
    let mut cases: Vec<(Vec<usize>, Vec<usize>)> =
        (0..200).map(|_| matmul_shapes(&mut rng)).collect();
    // Fixed corner cases: 1-D x 1-D, 1-D x batched, batched x 1-D, broadcast B, broadcast A.
    cases.extend([
        (vec![7], vec![7]),
        (vec![5], vec![3, 5, 4]),
        (vec![2, 3, 6], vec![6]),
        (vec![4, 3, 5, 6], vec![6, 2]),
        (vec![5, 6], vec![4, 1, 6, 3]),
        (vec![3, 1, 2, 5], vec![4, 5, 7]),
    ]);
    for (ash, bsh) in cases {
        let (a, b) = (
            uniform(&mut rng, numel(&ash)),
            uniform(&mut rng, numel(&bsh)),
        );
        let (at, bt) = (
            Tensor::from_vec(ash.clone(), a.clone()),
            Tensor::from_vec(bsh.clone(), b.clone()),
        );
        let out = run1(Op::MatMul(MatMul), &[Some(&at), Some(&bt)]);
        let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let (want, shape) = naive_matmul(&to64(&a), &ash, &to64(&b), &bsh);
        assert_eq!(
            out[0].shape(),
            shape.as_slice(),
            "shape of {ash:?} x {bsh:?}"
        );
        let k = *ash.last().unwrap_or(&1) as f64;
        assert_close(
            &out[0].to_f64_vec(),
            &want,
            2e-6 * k.max(4.0),
            &format!("{ash:?} x {bsh:?}"),
        );
    }
}

#[test]
fn matmul_f16_f64_i64_i32_match_naive() {
    let mut rng = rng_for("matmul_other_dtypes");
    for _ in 0..40 {
        let (ash, bsh) = matmul_shapes(&mut rng);
        let (a, b) = (
            uniform(&mut rng, numel(&ash)),
            uniform(&mut rng, numel(&bsh)),
        );
        let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();

        let (a16, b16) = (f16_round(&a), f16_round(&b));
        let (want, shape) = naive_matmul(&to64(&a16), &ash, &to64(&b16), &bsh);
        let (at, bt) = (f16_tensor(ash.clone(), &a), f16_tensor(bsh.clone(), &b));
        let out = run1(Op::MatMul(MatMul), &[Some(&at), Some(&bt)]);
        assert_eq!(out[0].dtype(), cellm_ir::DType::F16);
        assert_eq!(out[0].shape(), shape.as_slice());
        assert_close(
            &out[0].to_f64_vec(),
            &want,
            2e-3,
            &format!("f16 {ash:?} x {bsh:?}"),
        );

        let (a64, b64) = (to64(&a), to64(&b));
        let (want, _) = naive_matmul(&a64, &ash, &b64, &bsh);
        let (at, bt) = (
            Tensor::from_vec(ash.clone(), a64.clone()),
            Tensor::from_vec(bsh.clone(), b64.clone()),
        );
        let out = run1(Op::MatMul(MatMul), &[Some(&at), Some(&bt)]);
        assert_close(
            &out[0].to_f64_vec(),
            &want,
            1e-12,
            &format!("f64 {ash:?} x {bsh:?}"),
        );

        // Integers: small values so the f64 reference is exact.
        let ai: Vec<i64> = (0..numel(&ash))
            .map(|_| rng.random_range(-50..50))
            .collect();
        let bi: Vec<i64> = (0..numel(&bsh))
            .map(|_| rng.random_range(-50..50))
            .collect();
        let (want, _) = naive_matmul(
            &ai.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            &ash,
            &bi.iter().map(|&v| v as f64).collect::<Vec<_>>(),
            &bsh,
        );
        let (at, bt) = (
            Tensor::from_vec(ash.clone(), ai.clone()),
            Tensor::from_vec(bsh.clone(), bi.clone()),
        );
        let out = run1(Op::MatMul(MatMul), &[Some(&at), Some(&bt)]);
        assert_eq!(out[0].to_f64_vec(), want, "i64 {ash:?} x {bsh:?}");
        let ai32: Vec<i32> = ai.iter().map(|&v| v as i32).collect();
        let bi32: Vec<i32> = bi.iter().map(|&v| v as i32).collect();
        let (at, bt) = (
            Tensor::from_vec(ash.clone(), ai32),
            Tensor::from_vec(bsh.clone(), bi32),
        );
        let out = run1(Op::MatMul(MatMul), &[Some(&at), Some(&bt)]);
        assert_eq!(out[0].to_f64_vec(), want, "i32 {ash:?} x {bsh:?}");
    }
}

#[test]
fn matmul_rejects_mismatched_inner_dims() {
    let a = Tensor::from_vec(vec![2, 3], vec![0f32; 6]);
    let b = Tensor::from_vec(vec![4, 2], vec![0f32; 8]);
    assert!(eval(&Op::MatMul(MatMul), &[Some(&a), Some(&b)]).is_err());
}

// ---------------------------------------------------------------- Conv

/// Direct convolution by definition, in f64.
#[allow(clippy::too_many_arguments)]
fn naive_conv(
    x: &[f64],
    xs: &[usize],
    w: &[f64],
    ws: &[usize],
    bias: Option<&[f64]>,
    group: usize,
    strides: &[usize],
    dil: &[usize],
    pad_begin: &[usize],
    out_sp: &[usize],
) -> Vec<f64> {
    let (n, c, m) = (xs[0], xs[1], ws[0]);
    let (cg, mg) = (c / group, m / group);
    let (in_sp, k_sp) = (&xs[2..], &ws[2..]);
    let mut out = Vec::new();
    for img in 0..n {
        for oc in 0..m {
            let g = oc / mg;
            for oi in 0..numel(out_sp) {
                let o = unravel(oi, out_sp);
                let mut s = bias.map_or(0.0, |b| b[oc]);
                for ic in 0..cg {
                    for ki in 0..numel(k_sp) {
                        let kk = unravel(ki, k_sp);
                        let pos: Vec<i64> = (0..o.len())
                            .map(|d| {
                                (o[d] * strides[d] + kk[d] * dil[d]) as i64 - pad_begin[d] as i64
                            })
                            .collect();
                        if pos
                            .iter()
                            .zip(in_sp)
                            .any(|(&p, &dim)| p < 0 || p >= dim as i64)
                        {
                            continue;
                        }
                        let pu: Vec<usize> = pos.iter().map(|&p| p as usize).collect();
                        let xv = x[((img * c + g * cg + ic) * numel(in_sp)) + ravel(&pu, in_sp)];
                        let wv = w[(oc * cg + ic) * numel(k_sp) + ki];
                        s += xv * wv;
                    }
                }
                out.push(s);
            }
        }
    }
    out
}

#[test]
fn conv_random_matches_direct_convolution() {
    let mut rng = rng_for("conv");
    for trial in 0..120 {
        let nd = [1, 2, 2, 3][trial % 4];
        let group = [1, 1, 2, 3][rng.random_range(0..4)];
        let cg = rng.random_range(1..=3);
        let mg = rng.random_range(1..=3);
        let n = rng.random_range(1..=2);
        let kernel: Vec<usize> = (0..nd).map(|_| rng.random_range(1..=3)).collect();
        let strides: Vec<usize> = (0..nd).map(|_| rng.random_range(1..=3)).collect();
        let dil: Vec<usize> = (0..nd).map(|_| rng.random_range(1..=2)).collect();
        let in_sp: Vec<usize> = (0..nd)
            .map(|d| rng.random_range((kernel[d] - 1) * dil[d] + 1..=9))
            .collect();
        let auto_pad = [
            AutoPad::NotSet,
            AutoPad::Valid,
            AutoPad::SameUpper,
            AutoPad::SameLower,
        ][rng.random_range(0..4)];
        // Padding per the ONNX spec.
        let (pb, pe): (Vec<usize>, Vec<usize>) = match auto_pad {
            AutoPad::NotSet => (
                (0..nd).map(|_| rng.random_range(0..=2)).collect(),
                (0..nd).map(|_| rng.random_range(0..=2)).collect(),
            ),
            AutoPad::Valid => (vec![0; nd], vec![0; nd]),
            _ => (0..nd)
                .map(|d| {
                    let out = in_sp[d].div_ceil(strides[d]);
                    let total = ((out - 1) * strides[d] + (kernel[d] - 1) * dil[d] + 1)
                        .saturating_sub(in_sp[d]);
                    if auto_pad == AutoPad::SameUpper {
                        (total / 2, total - total / 2)
                    } else {
                        (total - total / 2, total / 2)
                    }
                })
                .unzip(),
        };
        let out_sp: Vec<usize> = (0..nd)
            .map(|d| (in_sp[d] + pb[d] + pe[d] - (kernel[d] - 1) * dil[d] - 1) / strides[d] + 1)
            .collect();
        let xs: Vec<usize> = [n, cg * group]
            .into_iter()
            .chain(in_sp.iter().copied())
            .collect();
        let ws: Vec<usize> = [mg * group, cg]
            .into_iter()
            .chain(kernel.iter().copied())
            .collect();
        let (x, w) = (uniform(&mut rng, numel(&xs)), uniform(&mut rng, numel(&ws)));
        let bias = rng.random_bool(0.5).then(|| uniform(&mut rng, mg * group));
        let op = Op::Conv(Conv {
            kernel_shape: rng.random_bool(0.5).then(|| kernel.clone()),
            strides: strides.clone(),
            pads: if auto_pad == AutoPad::NotSet {
                pb.iter().chain(&pe).copied().collect()
            } else {
                vec![]
            },
            dilations: dil.clone(),
            group,
            auto_pad,
        });
        let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
        let what = format!("conv x {xs:?} w {ws:?} group {group} strides {strides:?} dil {dil:?} pads {pb:?}/{pe:?} {auto_pad:?}");
        let want = naive_conv(
            &to64(&x),
            &xs,
            &to64(&w),
            &ws,
            bias.as_deref().map(to64).as_deref(),
            group,
            &strides,
            &dil,
            &pb,
            &out_sp,
        );
        let want_shape: Vec<usize> = [n, mg * group]
            .into_iter()
            .chain(out_sp.iter().copied())
            .collect();
        let (xt, wt) = (
            Tensor::from_vec(xs.clone(), x.clone()),
            Tensor::from_vec(ws.clone(), w.clone()),
        );
        let bt = bias
            .as_ref()
            .map(|b| Tensor::from_vec(vec![b.len()], b.clone()));
        let out = run1(op.clone(), &[Some(&xt), Some(&wt), bt.as_ref()]);
        assert_eq!(out[0].shape(), want_shape.as_slice(), "{what}");
        let k = (cg * numel(&kernel)) as f64;
        assert_close(&out[0].to_f64_vec(), &want, 2e-6 * k.max(4.0), &what);

        // f16: the same through f16-rounded inputs.
        if trial % 5 == 0 {
            let (x16, w16) = (f16_round(&x), f16_round(&w));
            let b16 = bias.as_ref().map(|b| f16_round(b));
            let want = naive_conv(
                &to64(&x16),
                &xs,
                &to64(&w16),
                &ws,
                b16.as_deref().map(to64).as_deref(),
                group,
                &strides,
                &dil,
                &pb,
                &out_sp,
            );
            let (xt, wt) = (f16_tensor(xs.clone(), &x), f16_tensor(ws.clone(), &w));
            let bt = bias.as_ref().map(|b| f16_tensor(vec![b.len()], b));
            let out = run1(op, &[Some(&xt), Some(&wt), bt.as_ref()]);
            assert_close(&out[0].to_f64_vec(), &want, 2e-3, &format!("f16 {what}"));
        }
    }
}

// ---------------------------------------------------------------- Softmax

fn naive_softmax(x: &[f64], shape: &[usize], axis: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for i in 0..x.len() {
        let idx = unravel(i, shape);
        let lane: Vec<f64> = (0..shape[axis])
            .map(|j| {
                let mut k = idx.clone();
                k[axis] = j;
                x[ravel(&k, shape)]
            })
            .collect();
        let max = lane.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = lane.iter().map(|v| (v - max).exp()).sum();
        out[i] = (x[i] - max).exp() / sum;
    }
    out
}

#[test]
fn softmax_random_axes_match_naive() {
    let mut rng = rng_for("softmax");
    for _ in 0..60 {
        let rank = rng.random_range(1..=4);
        let shape: Vec<usize> = (0..rank).map(|_| rng.random_range(1..=7)).collect();
        let axis = rng.random_range(0..rank);
        let signed_axis = if rng.random_bool(0.5) {
            axis as i64 - rank as i64
        } else {
            axis as i64
        };
        // Large logits check stability (exp would overflow without the max shift).
        let spread = if rng.random_bool(0.3) { 300.0 } else { 4.0 };
        let x: Vec<f32> = uniform(&mut rng, numel(&shape))
            .iter()
            .map(|v| v * spread)
            .collect();
        let op = Op::Softmax(Softmax { axis: signed_axis });
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let want = naive_softmax(&x64, &shape, axis);
        let out = run1(
            op.clone(),
            &[Some(&Tensor::from_vec(shape.clone(), x.clone()))],
        );
        assert_close(
            &out[0].to_f64_vec(),
            &want,
            1e-5,
            &format!("f32 softmax {shape:?} axis {signed_axis}"),
        );
        let out = run1(
            op.clone(),
            &[Some(&Tensor::from_vec(shape.clone(), x64.clone()))],
        );
        assert_close(
            &out[0].to_f64_vec(),
            &want,
            1e-12,
            &format!("f64 softmax {shape:?} axis {signed_axis}"),
        );
        let x16: Vec<f64> = f16_round(&x).iter().map(|&v| v as f64).collect();
        let want = naive_softmax(&x16, &shape, axis);
        let out = run1(op, &[Some(&f16_tensor(shape.clone(), &x))]);
        assert_close(
            &out[0].to_f64_vec(),
            &want,
            2e-3,
            &format!("f16 softmax {shape:?} axis {signed_axis}"),
        );
    }
}

// ---------------------------------------------------------------- norms

#[test]
fn layer_norm_random_matches_naive() {
    let mut rng = rng_for("layer_norm");
    for _ in 0..40 {
        let rank = rng.random_range(1..=4);
        let shape: Vec<usize> = (0..rank).map(|_| rng.random_range(1..=9)).collect();
        let axis = rng.random_range(0..rank);
        let norm_shape = shape[axis..].to_vec();
        // Scale sometimes broadcasts over the leading normalised dims.
        let scale_shape: Vec<usize> = if rng.random_bool(0.3) {
            vec![*norm_shape.last().unwrap_or(&1)]
        } else {
            norm_shape.clone()
        };
        let x: Vec<f32> = uniform(&mut rng, numel(&shape))
            .iter()
            .map(|v| v * 3.0 + 1.0)
            .collect();
        let scale = uniform(&mut rng, numel(&scale_shape));
        let bias = rng
            .random_bool(0.5)
            .then(|| uniform(&mut rng, numel(&norm_shape)));
        let eps = 1e-5f32;
        let inner = numel(&norm_shape);
        let mut want = Vec::new();
        // Per element, what f32 arithmetic may lose: x - mean is rounded at
        // the row's magnitude (a few ulps of 2^-24·max|x|), then amplified by
        // 1/σ, up to 316 for a near-constant row (var ≪ eps).
        let mut conditioning = Vec::new();
        let (mut means, mut invs) = (Vec::new(), Vec::new());
        for row in x.chunks(inner) {
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / inner as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / inner as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            let row_max = row.iter().fold(0f64, |m, &v| m.max((v as f64).abs()));
            for (i, &v) in row.iter().enumerate() {
                let s = scale[i % scale.len()] as f64;
                want.push((v as f64 - mean) * inv * s + bias.as_ref().map_or(0.0, |b| b[i] as f64));
                conditioning.push(8.0 * f64::powi(2.0, -24) * row_max * inv * s.abs());
            }
            means.push(mean);
            invs.push(inv);
        }
        let xt = Tensor::from_vec(shape.clone(), x);
        let st = Tensor::from_vec(scale_shape.clone(), scale);
        let bt = bias.map(|b| Tensor::from_vec(norm_shape.clone(), b));
        let signed_axis = if rng.random_bool(0.5) {
            axis as i64 - rank as i64
        } else {
            axis as i64
        };
        let out = run1(
            Op::LayerNormalization(LayerNormalization {
                axis: signed_axis,
                epsilon: eps,
            }),
            &[Some(&xt), Some(&st), bt.as_ref()],
        );
        let what = format!("layer norm {shape:?} axis {axis} scale {scale_shape:?}");
        let got = out[0].to_f64_vec();
        let scale_all = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (i, ((g, w), c)) in got.iter().zip(&want).zip(&conditioning).enumerate() {
            let tol = 1e-5 * scale_all + c;
            assert!(
                (g - w).abs() <= tol,
                "{what}: element {i}: got {g}, want {w} (tol {tol:.1e})"
            );
        }
        assert_close(&out[1].to_f64_vec(), &means, 1e-5, &what);
        assert_close(&out[2].to_f64_vec(), &invs, 1e-5, &what);
        let stat_shape: Vec<usize> = shape[..axis]
            .iter()
            .copied()
            .chain(std::iter::repeat_n(1, rank - axis))
            .collect();
        assert_eq!(out[1].shape(), stat_shape.as_slice());
    }
}

/// x / sqrt(mean(x^2) + eps) * scale per row of `inner`; also the 1/rms per row.
fn naive_rms(x: &[f64], scale: &[f64], inner: usize, eps: f64) -> (Vec<f64>, Vec<f64>) {
    let mut y = Vec::new();
    let mut inv = Vec::new();
    for row in x.chunks(inner) {
        let r = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / inner as f64 + eps).sqrt();
        y.extend(row.iter().zip(scale).map(|(v, s)| v * r * s));
        inv.push(r);
    }
    (y, inv)
}

#[test]
fn simplified_layer_norms_random_match_naive() {
    let mut rng = rng_for("simplified_layer_norm");
    let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    for _ in 0..30 {
        let (b, s, h) = (
            rng.random_range(1..=3),
            rng.random_range(1..=5),
            rng.random_range(1..=33),
        );
        let shape = vec![b, s, h];
        let x = uniform(&mut rng, b * s * h);
        let skip = uniform(&mut rng, b * s * h);
        let gamma = uniform(&mut rng, h);
        let bias = rng.random_bool(0.5).then(|| uniform(&mut rng, h));
        let eps = 1e-6f32;

        // SimplifiedLayerNormalization over the last axis.
        let (want, want_inv) = naive_rms(&to64(&x), &to64(&gamma), h, eps as f64);
        let xt = Tensor::from_vec(shape.clone(), x.clone());
        let gt = Tensor::from_vec(vec![h], gamma.clone());
        let op = Op::SimplifiedLayerNormalization(SimplifiedLayerNormalization {
            axis: -1,
            epsilon: eps,
        });
        let out = run1(op.clone(), &[Some(&xt), Some(&gt)]);
        assert_close(&out[0].to_f64_vec(), &want, 1e-5, "rms y");
        assert_close(&out[1].to_f64_vec(), &want_inv, 1e-5, "rms inv_std_var");
        assert_eq!(out[1].shape(), [b, s, 1]);

        // f16 input: the same through rounded inputs, output rounded once.
        let (x16, g16) = (f16_round(&x), f16_round(&gamma));
        let (want16, _) = naive_rms(&to64(&x16), &to64(&g16), h, eps as f64);
        let out = run1(
            op,
            &[
                Some(&f16_tensor(shape.clone(), &x)),
                Some(&f16_tensor(vec![h], &gamma)),
            ],
        );
        assert_close(&out[0].to_f64_vec(), &want16, 2e-3, "rms f16 y");

        // SkipSimplifiedLayerNormalization: s = x + skip (+ bias).
        let sum: Vec<f64> = (0..x.len())
            .map(|i| {
                x[i] as f64 + skip[i] as f64 + bias.as_ref().map_or(0.0, |bv| bv[i % h] as f64)
            })
            .collect();
        let (want, want_inv) = naive_rms(&sum, &to64(&gamma), h, eps as f64);
        let kt = Tensor::from_vec(shape.clone(), skip.clone());
        let bt = bias
            .as_ref()
            .map(|bv| Tensor::from_vec(vec![h], bv.clone()));
        let out = run1(
            Op::SkipSimplifiedLayerNormalization(SkipSimplifiedLayerNormalization { epsilon: eps }),
            &[Some(&xt), Some(&kt), Some(&gt), bt.as_ref()],
        );
        assert_eq!(out.len(), 4);
        assert_close(&out[0].to_f64_vec(), &want, 1e-5, "skip rms y");
        assert_close(
            &out[2].to_f64_vec(),
            &want_inv,
            1e-5,
            "skip rms inv_std_var",
        );
        assert_close(&out[3].to_f64_vec(), &sum, 1e-6, "skip rms sum");
        assert_eq!(out[3].shape(), shape.as_slice());
    }
}

// ---------------------------------------------------------------- RotaryEmbedding

#[test]
fn rotary_embedding_random_matches_naive() {
    let mut rng = rng_for("rotary");
    for _ in 0..60 {
        let (b, s, heads) = (
            rng.random_range(1..=3),
            rng.random_range(1..=6),
            rng.random_range(1..=4),
        );
        let head = 2 * rng.random_range(1..=6);
        let four_d = rng.random_bool(0.5);
        let interleaved = rng.random_bool(0.5);
        // Partial rotation needs num_heads (as in onnxruntime).
        let partial = rng.random_bool(0.4) && head > 2;
        let rot = if partial {
            2 * rng.random_range(1..head / 2)
        } else {
            head
        };
        let give_heads = partial || rng.random_bool(0.5);
        let max_pos = 20;
        let half = rot / 2;
        let cos: Vec<f32> = uniform(&mut rng, max_pos * half);
        let sin: Vec<f32> = uniform(&mut rng, max_pos * half);
        let offset_form = rng.random_bool(0.3);
        let pos: Vec<i64> = if offset_form {
            vec![rng.random_range(0..(max_pos - s) as i64)]
        } else {
            (0..b * s)
                .map(|_| rng.random_range(0..max_pos as i64))
                .collect()
        };
        let shape = if four_d {
            vec![b, heads, s, head]
        } else {
            vec![b, s, heads * head]
        };
        let x = uniform(&mut rng, numel(&shape));
        // Naive: rotate each (even, odd) or (i, i + half) pair as a complex number.
        let mut want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        for bi in 0..b {
            for si in 0..s {
                let p = if offset_form {
                    pos[0] as usize + si
                } else {
                    pos[bi * s + si] as usize
                };
                for h in 0..heads {
                    let base = if four_d {
                        ((bi * heads + h) * s + si) * head
                    } else {
                        (bi * s + si) * heads * head + h * head
                    };
                    for i in 0..half {
                        let (i0, i1) = if interleaved {
                            (2 * i, 2 * i + 1)
                        } else {
                            (i, i + half)
                        };
                        let (c, sn) = (cos[p * half + i] as f64, sin[p * half + i] as f64);
                        let (re, im) = (x[base + i0] as f64, x[base + i1] as f64);
                        want[base + i0] = re * c - im * sn;
                        want[base + i1] = re * sn + im * c;
                    }
                }
            }
        }
        let op = Op::RotaryEmbedding(RotaryEmbedding {
            interleaved,
            num_heads: if give_heads { heads } else { 0 },
            rotary_embedding_dim: if partial { rot } else { 0 },
            scale: 1.0,
        });
        let pos_shape = if offset_form { vec![1] } else { vec![b, s] };
        let xt = Tensor::from_vec(shape.clone(), x.clone());
        let pt = Tensor::from_vec(pos_shape, pos);
        let (ct, st) = (
            Tensor::from_vec(vec![max_pos, half], cos),
            Tensor::from_vec(vec![max_pos, half], sin),
        );
        let out = run1(op, &[Some(&xt), Some(&pt), Some(&ct), Some(&st)]);
        let what =
            format!("rotary {shape:?} rot {rot} interleaved {interleaved} offset {offset_form}");
        assert_close(&out[0].to_f64_vec(), &want, 1e-6, &what);
    }
}

#[test]
fn rotary_embedding_rejects_positions_outside_cache() {
    let x = Tensor::from_vec(vec![1, 1, 4], vec![0f32; 4]);
    let pos = Tensor::from_vec(vec![1, 1], vec![5i64]);
    let cache = Tensor::from_vec(vec![3, 2], vec![0f32; 6]);
    let op = Op::RotaryEmbedding(RotaryEmbedding {
        interleaved: false,
        num_heads: 0,
        rotary_embedding_dim: 0,
        scale: 1.0,
    });
    assert!(eval(&op, &[Some(&x), Some(&pos), Some(&cache), Some(&cache)]).is_err());
}

// ---------------------------------------------------------------- MultiHeadAttention

struct MhaCase {
    b: usize,
    s: usize,
    l: usize,
    p: usize,
    h: usize,
    d: usize,
    dv: usize,
    bnsh: bool,
    unidirectional: bool,
    scale: Option<f32>,
    mask_filter: f32,
}

/// Naive attention in f64 by definition. Returns (output, present_k, present_v).
#[allow(clippy::too_many_arguments)]
fn naive_mha(
    c: &MhaCase,
    q: &[f64],
    k: &[f64],
    v: &[f64],
    bias: Option<&[f64]>,
    kpm: Option<(&[i32], &[usize])>,
    ab: Option<(&[f64], &[usize])>,
    past: Option<(&[f64], &[f64])>,
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (b, s, l, p, h, d, dv) = (c.b, c.s, c.l, c.p, c.h, c.d, c.dv);
    let t = p + l;
    let qb = |i: usize| bias.map_or(0.0, |bb| bb[i]);
    let kb = |i: usize| bias.map_or(0.0, |bb| bb[h * d + i]);
    let vb = |i: usize| bias.map_or(0.0, |bb| bb[2 * h * d + i]);
    // Key/value row of (batch, head, time), past first.
    let key = |bi: usize, hi: usize, ti: usize, j: usize| -> f64 {
        if ti < p {
            past.map_or(0.0, |pk| pk.0[((bi * h + hi) * p + ti) * d + j])
        } else if c.bnsh {
            k[((bi * h + hi) * l + ti - p) * d + j]
        } else {
            k[(bi * l + ti - p) * h * d + hi * d + j] + kb(hi * d + j)
        }
    };
    let val = |bi: usize, hi: usize, ti: usize, j: usize| -> f64 {
        if ti < p {
            past.map_or(0.0, |pv| pv.1[((bi * h + hi) * p + ti) * dv + j])
        } else if c.bnsh {
            v[((bi * h + hi) * l + ti - p) * dv + j]
        } else {
            v[(bi * l + ti - p) * h * dv + hi * dv + j] + vb(hi * dv + j)
        }
    };
    let scale = c.scale.map_or(1.0 / (d as f64).sqrt(), |x| x as f64);
    let mut out = vec![0.0; b * s * h * dv];
    for bi in 0..b {
        for hi in 0..h {
            for si in 0..s {
                let mut scores = vec![0.0; t];
                let mut allowed = vec![true; t];
                for (ti, sc) in scores.iter_mut().enumerate() {
                    let mut dot = 0.0;
                    for j in 0..d {
                        dot += (q[(bi * s + si) * h * d + hi * d + j] + qb(hi * d + j))
                            * key(bi, hi, ti, j);
                    }
                    *sc = dot * scale;
                    if let Some((abv, abs)) = ab {
                        let (b0, h0) = (
                            if abs[0] == 1 { 0 } else { bi },
                            if abs[1] == 1 { 0 } else { hi },
                        );
                        *sc += abv[((b0 * abs[1] + h0) * s + si) * t + ti];
                    }
                    if let Some((m, ms)) = kpm {
                        let keep = match ms.len() {
                            1 => (ti as i32) < m[bi],
                            2 => m[bi * t + ti] != 0,
                            _ => m[(bi * s + si) * t + ti] != 0,
                        };
                        if !keep {
                            *sc += c.mask_filter as f64;
                        }
                    }
                    if c.unidirectional && s > 1 && ti > p + si {
                        allowed[ti] = false;
                    }
                }
                let max = scores
                    .iter()
                    .zip(&allowed)
                    .filter(|x| *x.1)
                    .map(|x| *x.0)
                    .fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores
                    .iter()
                    .zip(&allowed)
                    .map(|(&x, &a)| if a { (x - max).exp() } else { 0.0 })
                    .collect();
                let sum: f64 = w.iter().sum();
                for j in 0..dv {
                    out[(bi * s + si) * h * dv + hi * dv + j] =
                        (0..t).map(|ti| w[ti] / sum * val(bi, hi, ti, j)).sum();
                }
            }
        }
    }
    let mut pk = Vec::new();
    let mut pv = Vec::new();
    for bi in 0..b {
        for hi in 0..h {
            for ti in 0..t {
                pk.extend((0..d).map(|j| key(bi, hi, ti, j)));
                pv.extend((0..dv).map(|j| val(bi, hi, ti, j)));
            }
        }
    }
    (out, pk, pv)
}

#[test]
fn multi_head_attention_random_matches_naive() {
    let mut rng = rng_for("mha");
    let to64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    for trial in 0..80 {
        let bnsh = rng.random_bool(0.25);
        let c = MhaCase {
            b: rng.random_range(1..=2),
            s: rng.random_range(1..=6),
            l: rng.random_range(1..=6),
            p: if bnsh || rng.random_bool(0.3) {
                0
            } else {
                rng.random_range(0..=4)
            },
            h: rng.random_range(1..=4),
            d: rng.random_range(1..=9),
            dv: 0,
            bnsh,
            unidirectional: rng.random_bool(0.4),
            scale: rng.random_bool(0.5).then(|| rng.random_range(0.1f32..1.0)),
            mask_filter: -10000.0,
        };
        let dv = if bnsh || rng.random_bool(0.7) {
            c.d
        } else {
            rng.random_range(1..=9)
        };
        let c = MhaCase { dv, ..c };
        let (b, s, l, p, h, d) = (c.b, c.s, c.l, c.p, c.h, c.d);
        let t = p + l;
        let q = uniform(&mut rng, b * s * h * d);
        // GQA-style: sometimes every pair of heads shares its key/value (repeated like the decoder does).
        let gqa = !bnsh && h % 2 == 0 && rng.random_bool(0.3);
        let repeat_heads = |rng: &mut StdRng, width: usize| -> Vec<f32> {
            if gqa {
                let kv = uniform(rng, b * l * (h / 2) * width);
                (0..b * l * h * width)
                    .map(|i| {
                        let (row, col) = (i / (h * width), i % (h * width));
                        let (head, j) = (col / width, col % width);
                        kv[row * (h / 2) * width + (head / 2) * width + j]
                    })
                    .collect()
            } else {
                uniform(rng, b * l * h * width)
            }
        };
        let k = repeat_heads(&mut rng, d);
        let v = repeat_heads(&mut rng, dv);
        let bias = (!bnsh && rng.random_bool(0.3)).then(|| uniform(&mut rng, 2 * h * d + h * dv));
        let kpm_shape = match rng.random_range(0..4) {
            0 => Some(vec![b]),
            1 => Some(vec![b, t]),
            2 => Some(vec![b, s, t]),
            _ => None,
        };
        let kpm: Option<Vec<i32>> = kpm_shape.as_ref().map(|ms| {
            if ms.len() == 1 {
                (0..b).map(|_| rng.random_range(1..=t as i32)).collect()
            } else {
                // Keep key 0 so no row is fully masked.
                (0..numel(ms))
                    .map(|i| i32::from(i % t == 0 || rng.random_bool(0.7)))
                    .collect()
            }
        });
        let ab_shape = rng.random_bool(0.5).then(|| {
            vec![
                if rng.random_bool(0.5) { 1 } else { b },
                if rng.random_bool(0.5) { 1 } else { h },
                s,
                t,
            ]
        });
        let ab = ab_shape.as_ref().map(|sh| uniform(&mut rng, numel(sh)));
        let past = (p > 0 || (!bnsh && rng.random_bool(0.3))).then(|| {
            (
                uniform(&mut rng, b * h * p * d),
                uniform(&mut rng, b * h * p * dv),
            )
        });

        let (want_out, want_k, want_v) = naive_mha(
            &c,
            &to64(&q),
            &to64(&k),
            &to64(&v),
            bias.as_deref().map(to64).as_deref(),
            kpm.as_deref().zip(kpm_shape.as_deref()),
            ab.as_deref().map(to64).as_deref().zip(ab_shape.as_deref()),
            past.as_ref()
                .map(|(a, bb)| (to64(a), to64(bb)))
                .as_ref()
                .map(|(a, bb)| (a.as_slice(), bb.as_slice())),
        );
        let qt = Tensor::from_vec(vec![b, s, h * d], q.clone());
        let (kt, vt) = if bnsh {
            (
                Tensor::from_vec(vec![b, h, l, d], k.clone()),
                Tensor::from_vec(vec![b, h, l, dv], v.clone()),
            )
        } else {
            (
                Tensor::from_vec(vec![b, l, h * d], k.clone()),
                Tensor::from_vec(vec![b, l, h * dv], v.clone()),
            )
        };
        let bt = bias
            .as_ref()
            .map(|x| Tensor::from_vec(vec![x.len()], x.clone()));
        let mt = kpm
            .as_ref()
            .zip(kpm_shape.as_ref())
            .map(|(m, ms)| Tensor::from_vec(ms.clone(), m.clone()));
        let abt = ab
            .as_ref()
            .zip(ab_shape.as_ref())
            .map(|(x, sh)| Tensor::from_vec(sh.clone(), x.clone()));
        let pkt = past
            .as_ref()
            .map(|(x, _)| Tensor::from_vec(vec![b, h, p, d], x.clone()));
        let pvt = past
            .as_ref()
            .map(|(_, x)| Tensor::from_vec(vec![b, h, p, dv], x.clone()));
        let op = Op::MultiHeadAttention(MultiHeadAttention {
            num_heads: h,
            scale: c.scale,
            mask_filter_value: c.mask_filter,
            unidirectional: c.unidirectional,
            kv_num_heads: None,
        });
        let inputs = [
            Some(&qt),
            Some(&kt),
            Some(&vt),
            bt.as_ref(),
            mt.as_ref(),
            abt.as_ref(),
            pkt.as_ref(),
            pvt.as_ref(),
        ];
        let out = run1(op.clone(), &inputs);
        let what = format!(
            "mha trial {trial}: b {b} s {s} l {l} p {p} h {h} d {d} dv {dv} bnsh {bnsh} causal {} bias {} kpm {kpm_shape:?} ab {ab_shape:?} gqa {gqa}",
            c.unidirectional,
            bias.is_some()
        );
        assert_eq!(out[0].shape(), [b, s, h * dv], "{what}");
        assert_eq!(out[1].shape(), [b, h, t, d], "{what}");
        assert_eq!(out[2].shape(), [b, h, t, dv], "{what}");
        // Scores are D-term dot products; the weighted sum has T terms of weights <= 1.
        assert_close(
            &out[0].to_f64_vec(),
            &want_out,
            2e-6 * (d.max(t) as f64).max(4.0),
            &what,
        );
        assert_close(&out[1].to_f64_vec(), &want_k, 1e-6, &what);
        assert_close(&out[2].to_f64_vec(), &want_v, 1e-6, &what);

        // f16: inputs rounded identically on both sides; internals in f32.
        if trial % 4 == 0 {
            let r = |x: &Option<Vec<f32>>| x.as_deref().map(f16_round);
            let (q16, k16, v16) = (f16_round(&q), f16_round(&k), f16_round(&v));
            let (b16, ab16) = (r(&bias), r(&ab));
            let past16 = past
                .as_ref()
                .map(|(a, bb)| (to64(&f16_round(a)), to64(&f16_round(bb))));
            let (want_out, _, _) = naive_mha(
                &c,
                &to64(&q16),
                &to64(&k16),
                &to64(&v16),
                b16.as_deref().map(to64).as_deref(),
                kpm.as_deref().zip(kpm_shape.as_deref()),
                ab16.as_deref()
                    .map(to64)
                    .as_deref()
                    .zip(ab_shape.as_deref()),
                past16.as_ref().map(|(a, bb)| (a.as_slice(), bb.as_slice())),
            );
            let h16 =
                |x: &Tensor| f16_tensor(x.shape().to_vec(), &x.to_f32_vec().unwrap_or_default());
            let conv: Vec<Option<Tensor>> = inputs
                .iter()
                .enumerate()
                .map(|(i, x)| x.map(|x| if i == 4 { x.clone() } else { h16(x) }))
                .collect();
            let refs: Vec<Option<&Tensor>> = conv.iter().map(|x| x.as_ref()).collect();
            let out = run1(op, &refs);
            assert_eq!(out[0].dtype(), cellm_ir::DType::F16);
            assert_close(
                &out[0].to_f64_vec(),
                &want_out,
                2e-3,
                &format!("f16 {what}"),
            );
        }
    }
}

#[test]
fn multi_head_attention_s80_four_heads_is_fast() {
    let mut rng = rng_for("mha_speed");
    let (b, s, h, d) = (1, 80, 4, 64);
    let q = Tensor::from_vec(vec![b, s, h * d], uniform(&mut rng, b * s * h * d));
    let k = Tensor::from_vec(vec![b, s, h * d], uniform(&mut rng, b * s * h * d));
    let v = Tensor::from_vec(vec![b, s, h * d], uniform(&mut rng, b * s * h * d));
    let op = Op::MultiHeadAttention(MultiHeadAttention {
        num_heads: h,
        scale: None,
        mask_filter_value: -10000.0,
        unidirectional: true,
        kv_num_heads: None,
    });
    let start = std::time::Instant::now();
    let reps = 10;
    for _ in 0..reps {
        run1(op.clone(), &[Some(&q), Some(&k), Some(&v)]);
    }
    let per_call = start.elapsed() / reps;
    println!("MHA S=80 H=4 D=64: {per_call:?} per call");
    // Generous bound (debug-ish test profile, shared CI machine); expected ~1 ms.
    assert!(per_call.as_millis() < 100, "MHA took {per_call:?}");
}

// ---------------------------------------------------------------- onnxruntime cross-check

/// The op of each case in tests/data/ops_b (attributes as in make_ops_b.py).
fn ort_case_op(name: &str) -> Op {
    let mha = |num_heads, scale, mask_filter_value, unidirectional| {
        Op::MultiHeadAttention(MultiHeadAttention {
            num_heads,
            scale,
            mask_filter_value,
            unidirectional,
            kv_num_heads: None,
        })
    };
    let rope = |interleaved, num_heads, rotary_embedding_dim| {
        Op::RotaryEmbedding(RotaryEmbedding {
            interleaved,
            num_heads,
            rotary_embedding_dim,
            scale: 1.0,
        })
    };
    match name {
        "mha_past_bias" => mha(2, None, -10000.0, false),
        "mha_causal_mask" => mha(3, Some(0.3), -5000.0, true),
        "mha_decoder_like" => mha(4, Some((1.0 / 8f64.sqrt()) as f32), -10000.0, false),
        "mha_bnsh_kv" => mha(2, None, -10000.0, false),
        "rope_3d_halves" | "rope_4d_halves" | "rope_offset_pos" => rope(false, 0, 0),
        "rope_3d_interleaved" => rope(true, 0, 0),
        "rope_4d_interleaved" => rope(true, 2, 0),
        "rope_partial_halves" => rope(false, 2, 4),
        "rope_partial_interleaved" => rope(true, 2, 4),
        "sln_last_axis" => Op::SimplifiedLayerNormalization(SimplifiedLayerNormalization {
            axis: -1,
            epsilon: 1e-5,
        }),
        "sln_axis1" => Op::SimplifiedLayerNormalization(SimplifiedLayerNormalization {
            axis: 1,
            epsilon: 1e-3,
        }),
        "skip_sln_bias" => {
            Op::SkipSimplifiedLayerNormalization(SkipSimplifiedLayerNormalization { epsilon: 1e-5 })
        }
        "skip_sln_nobias" => {
            Op::SkipSimplifiedLayerNormalization(SkipSimplifiedLayerNormalization { epsilon: 1e-6 })
        }
        other => panic!("unknown onnxruntime case {other}: add its attributes here"),
    }
}

#[test]
fn matches_onnxruntime_reference_data() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ops_b");
    let mut names: Vec<String> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", root.display()))
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    names.sort();
    assert!(
        names.len() >= 15,
        "expected the generated cases in {}",
        root.display()
    );
    for name in names {
        let dir = root.join(&name);
        let load = |f: String| -> Option<Tensor> {
            let p = dir.join(f);
            p.exists()
                .then(|| cellm_ir::npy::read(&p).unwrap_or_else(|e| panic!("{e:#}")))
        };
        let inputs: Vec<Option<Tensor>> = (0..8).map(|i| load(format!("in{i}.npy"))).collect();
        let last = inputs.iter().rposition(|x| x.is_some()).unwrap_or(0);
        let refs: Vec<Option<&Tensor>> = inputs[..=last].iter().map(|x| x.as_ref()).collect();
        let out = run1(ort_case_op(&name), &refs);
        let mut compared = 0;
        for (j, got) in out.iter().enumerate() {
            let Some(want) = load(format!("out{j}.npy")) else {
                continue;
            };
            assert_eq!(got.shape(), want.shape(), "{name} output {j} shape");
            assert_close(
                &got.to_f64_vec(),
                &want.to_f64_vec(),
                1e-5,
                &format!("{name} output {j}"),
            );
            compared += 1;
        }
        assert!(compared > 0, "{name}: no outputs compared");
    }
}

/// Grouped-query attention (`kv_num_heads`) against its slow form: the same
/// MultiHeadAttention on key/value with every kv head repeated for its query
/// heads (what repeat_kv's Expand builds), for 3-D and 4-D key/value.
#[test]
fn grouped_attention_matches_repeated_heads() {
    let mut r = rng_for("grouped_attention_matches_repeated_heads");
    for trial in 0..12 {
        let (b, s, t) = (
            r.random_range(1..3),
            r.random_range(1..6),
            r.random_range(1..12),
        );
        let (g, rep, d) = (r.random_range(1..4), r.random_range(1..4), 4);
        let h = g * rep;
        let t = t.max(s);
        let bnsh = trial % 2 == 1;
        let rand = |r: &mut StdRng, n: usize| -> Vec<f32> {
            (0..n).map(|_| r.random_range(-1.0..1.0)).collect()
        };
        let q = Tensor::from_vec(vec![b, s, h * d], rand(&mut r, b * s * h * d));
        let kv: Vec<Vec<f32>> = (0..2).map(|_| rand(&mut r, b * t * g * d)).collect();
        // (b, kv head, t, d) → value in the chosen layout.
        let at = |x: &[f32], bi: usize, gi: usize, ti: usize, di: usize| {
            if bnsh {
                x[((bi * g + gi) * t + ti) * d + di]
            } else {
                x[((bi * t + ti) * g + gi) * d + di]
            }
        };
        let shape = if bnsh {
            vec![b, g, t, d]
        } else {
            vec![b, t, g * d]
        };
        let grouped: Vec<Tensor> = kv
            .iter()
            .map(|x| Tensor::from_vec(shape.clone(), x.clone()))
            .collect();
        // Repeated: [B, H, T, D] with head j = kv head j / rep.
        let repeated: Vec<Tensor> = kv
            .iter()
            .map(|x| {
                let mut v = Vec::with_capacity(b * h * t * d);
                for bi in 0..b {
                    for hi in 0..h {
                        for ti in 0..t {
                            for di in 0..d {
                                v.push(at(x, bi, hi / rep, ti, di));
                            }
                        }
                    }
                }
                Tensor::from_vec(vec![b, h, t, d], v)
            })
            .collect();
        let causal = trial % 3 == 0;
        let op = |kvh| {
            Op::MultiHeadAttention(MultiHeadAttention {
                num_heads: h,
                scale: None,
                mask_filter_value: -10000.0,
                unidirectional: causal,
                kv_num_heads: kvh,
            })
        };
        let fast = run1(
            op(Some(g)),
            &[Some(&q), Some(&grouped[0]), Some(&grouped[1])],
        );
        // The slow form is causal over T keys only when T == S (no past); the
        // grouped form treats the first T - S keys as past.
        if causal && t != s {
            continue;
        }
        let slow = run1(
            op(None),
            &[Some(&q), Some(&repeated[0]), Some(&repeated[1])],
        );
        assert_eq!(fast.len(), 1, "grouped attention returns only its output");
        // Same arithmetic in the same order: only GEMM blocking may differ.
        assert_close(
            &fast[0].to_f64_vec(),
            &slow[0].to_f64_vec(),
            1e-6,
            &format!(
                "trial {trial}: b {b} s {s} t {t} g {g} rep {rep} bnsh {bnsh} causal {causal}"
            ),
        );
    }
}

/// f32 A × f16 B (f16-stored weights), few rows (decode) and many (prefill),
/// against the f32 MatMul of the widened weights.
#[test]
fn mat_mul_f32_by_f16_weights() {
    let mut r = rng_for("mat_mul_f32_by_f16_weights");
    for rows in [1usize, 3, 8, 9, 40] {
        let (k, n) = (r.random_range(1..300), r.random_range(1..700));
        let av: Vec<f32> = (0..rows * k).map(|_| r.random_range(-1.0..1.0)).collect();
        let bh: Vec<f16> = (0..k * n)
            .map(|_| f16::from_f32(r.random_range(-1.0..1.0)))
            .collect();
        let a = Tensor::from_vec(vec![1, rows, k], av);
        let b = Tensor::from_vec(vec![k, n], bh.clone());
        let wide = Tensor::from_vec(
            vec![k, n],
            bh.iter().map(|v| v.to_f32()).collect::<Vec<_>>(),
        );
        let got = run1(Op::MatMul(MatMul), &[Some(&a), Some(&b)]);
        let want = run1(Op::MatMul(MatMul), &[Some(&a), Some(&wide)]);
        assert_eq!(got[0].dtype(), cellm_ir::DType::F32);
        assert_eq!(got[0].shape(), [1, rows, n]);
        // Same f32 products, summed in another order: K-term sums of |x| <= 1.
        assert_close(
            &got[0].to_f64_vec(),
            &want[0].to_f64_vec(),
            1e-6 * k as f64,
            &format!("rows {rows} k {k} n {n}"),
        );
    }
}

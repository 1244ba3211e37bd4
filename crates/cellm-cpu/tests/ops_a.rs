//! CPU kernels (elementwise, casts, shape and data-movement ops) against
//! small, independent per-element implementations on fresh random inputs.
//! Each test prints its seed; set CELLM_TEST_SEED to replay one.

use cellm_cpu::ops::eval;
use cellm_ir::ops::*;
use cellm_ir::{DType, Op, Tensor};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type FloatFn1 = fn(f64) -> f64;
type FloatFn2 = fn(f64, f64) -> f64;
type IntFn2 = fn(i64, i64) -> i64;
type IntCmp = fn(i64, i64) -> bool;

fn rng() -> StdRng {
    let seed = std::env::var("CELLM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        });
    eprintln!("seed {seed}");
    StdRng::seed_from_u64(seed)
}

fn run(op: Op, inputs: &[&Tensor]) -> Vec<Tensor> {
    let args: Vec<Option<&Tensor>> = inputs.iter().map(|&t| Some(t)).collect();
    eval(&op, &args).unwrap_or_else(|e| panic!("{op:?} on {inputs:?}: {e:#}"))
}

fn run1(op: Op, inputs: &[&Tensor]) -> Tensor {
    run(op, inputs).remove(0)
}

fn ints(v: &[i64]) -> Tensor {
    Tensor::from_vec(vec![v.len()], v.to_vec())
}

fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Multi-index of row-major position `flat`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = flat % shape[d];
        flat /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// Random shape of `rank` dims in 1..=max, with an occasional zero dim.
fn shape(rng: &mut StdRng, rank: usize, max: usize, zeros: bool) -> Vec<usize> {
    (0..rank)
        .map(|_| {
            if zeros && rng.random_bool(0.05) {
                0
            } else {
                rng.random_range(1..=max)
            }
        })
        .collect()
}

fn rand_f32(rng: &mut StdRng, shape: &[usize]) -> Tensor {
    Tensor::from_vec(
        shape.to_vec(),
        (0..numel(shape))
            .map(|_| rng.random_range(-4.0f32..4.0))
            .collect(),
    )
}

fn rand_i64(rng: &mut StdRng, shape: &[usize], lo: i64, hi: i64) -> Tensor {
    Tensor::from_vec(
        shape.to_vec(),
        (0..numel(shape))
            .map(|_| rng.random_range(lo..=hi))
            .collect(),
    )
}

/// Two shapes that broadcast: a random output shape, each operand dropping
/// some leading dims and setting some dims to 1.
fn broadcast_pair(rng: &mut StdRng) -> (Vec<usize>, Vec<usize>) {
    let rank = rng.random_range(0..=4);
    let out = shape(rng, rank, 5, true);
    let pick = |rng: &mut StdRng| {
        let skip = rng.random_range(0..=rank);
        out[skip..]
            .iter()
            .map(|&d| if rng.random_bool(0.3) { 1 } else { d })
            .collect::<Vec<_>>()
    };
    (pick(rng), pick(rng))
}

fn broadcast_shape(a: &[usize], b: &[usize]) -> Vec<usize> {
    let r = a.len().max(b.len());
    (0..r)
        .map(|i| {
            let da = if i + a.len() >= r {
                a[i + a.len() - r]
            } else {
                1
            };
            let db = if i + b.len() >= r {
                b[i + b.len() - r]
            } else {
                1
            };
            if da == 1 {
                db
            } else {
                da
            }
        })
        .collect()
}

/// Position in an operand of shape `s` read at output index `idx` (broadcast).
fn bcast_pos(idx: &[usize], s: &[usize]) -> usize {
    let lead = idx.len() - s.len();
    let own: Vec<usize> = s
        .iter()
        .enumerate()
        .map(|(i, &d)| if d == 1 { 0 } else { idx[lead + i] })
        .collect();
    ravel(&own, s)
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * (1.0 + w.abs());
        assert!(ok, "{what}: element {i}: got {g}, want {w}");
    }
}

#[test]
fn binary_float_ops_broadcast() {
    let mut rng = rng();
    let ops: [(BinaryOp, FloatFn2); 6] = [
        (BinaryOp::Add, |a, b| a + b),
        (BinaryOp::Sub, |a, b| a - b),
        (BinaryOp::Mul, |a, b| a * b),
        (BinaryOp::Div, |a, b| a / b),
        (BinaryOp::Pow, |a, b| a.abs().powf(b)),
        (BinaryOp::Mod { fmod: true }, |a, b| a % b),
    ];
    for _ in 0..40 {
        let (sa, sb) = broadcast_pair(&mut rng);
        let a = rand_f32(&mut rng, &sa);
        // Positive bases keep Pow real.
        let a = if rng.random_bool(0.5) {
            run1(Op::Unary(Unary { op: UnaryOp::Abs }), &[&a])
        } else {
            a
        };
        let b = rand_f32(&mut rng, &sb);
        let out_shape = broadcast_shape(&sa, &sb);
        let (av, bv) = (a.to_f64_vec(), b.to_f64_vec());
        for (op, f) in ops {
            if op == BinaryOp::Pow && av.iter().any(|&x| x < 0.0) {
                continue;
            }
            let got = run1(Op::Binary(Binary { op }), &[&a, &b]);
            assert_eq!(got.shape(), out_shape.as_slice(), "{op:?} {sa:?} {sb:?}");
            assert_eq!(got.dtype(), DType::F32);
            let want: Vec<f64> = (0..numel(&out_shape))
                .map(|p| {
                    let idx = unravel(p, &out_shape);
                    f(av[bcast_pos(&idx, &sa)], bv[bcast_pos(&idx, &sb)])
                })
                .collect();
            // f32 arithmetic against f64: a few ulps of f32.
            assert_close(
                &got.to_f64_vec(),
                &want,
                1e-5,
                &format!("{op:?} {sa:?} {sb:?}"),
            );
            // The same in f16 (computed in f32, rounded once): f16 ulp ~ 1e-3 relative.
            if op != BinaryOp::Pow && op != (BinaryOp::Mod { fmod: true }) {
                let h = |t: &Tensor| {
                    Tensor::from_vec(
                        t.shape().to_vec(),
                        t.f32s()
                            .unwrap()
                            .iter()
                            .map(|&v| f16::from_f32(v))
                            .collect(),
                    )
                };
                let (ah, bh) = (h(&a), h(&b));
                let (ahv, bhv) = (ah.to_f64_vec(), bh.to_f64_vec());
                let got = run1(Op::Binary(Binary { op }), &[&ah, &bh]);
                assert_eq!(got.dtype(), DType::F16);
                let want: Vec<f64> = (0..numel(&out_shape))
                    .map(|p| {
                        let idx = unravel(p, &out_shape);
                        f16::from_f64(f(ahv[bcast_pos(&idx, &sa)], bhv[bcast_pos(&idx, &sb)]))
                            .to_f64()
                    })
                    .collect();
                assert_close(&got.to_f64_vec(), &want, 1e-3, &format!("f16 {op:?}"));
            }
        }
    }
}

#[test]
fn binary_int_ops_and_comparisons() {
    let mut rng = rng();
    for _ in 0..40 {
        let (sa, sb) = broadcast_pair(&mut rng);
        let a = rand_i64(&mut rng, &sa, -50, 50);
        // Nonzero divisors.
        let bv: Vec<i64> = (0..numel(&sb))
            .map(|_| rng.random_range(1..=9) * if rng.random_bool(0.5) { -1 } else { 1 })
            .collect();
        let b = Tensor::from_vec(sb.clone(), bv);
        let out_shape = broadcast_shape(&sa, &sb);
        let (av, bv) = (a.to_i64_vec().unwrap(), b.to_i64_vec().unwrap());
        let arith: [(BinaryOp, IntFn2); 6] = [
            (BinaryOp::Add, |a, b| a + b),
            (BinaryOp::Sub, |a, b| a - b),
            (BinaryOp::Mul, |a, b| a * b),
            (BinaryOp::Div, |a, b| (a as f64 / b as f64).trunc() as i64),
            (BinaryOp::Mod { fmod: true }, |a, b| {
                a - b * (a as f64 / b as f64).trunc() as i64
            }),
            (BinaryOp::Mod { fmod: false }, |a, b| {
                a - b * (a as f64 / b as f64).floor() as i64
            }),
        ];
        let cmp: [(BinaryOp, IntCmp); 5] = [
            (BinaryOp::Equal, |a, b| a == b),
            (BinaryOp::Less, |a, b| a < b),
            (BinaryOp::LessOrEqual, |a, b| a <= b),
            (BinaryOp::Greater, |a, b| a > b),
            (BinaryOp::GreaterOrEqual, |a, b| a >= b),
        ];
        let pairs = |f: &dyn Fn(i64, i64) -> f64| -> Vec<f64> {
            (0..numel(&out_shape))
                .map(|p| {
                    let idx = unravel(p, &out_shape);
                    f(av[bcast_pos(&idx, &sa)], bv[bcast_pos(&idx, &sb)])
                })
                .collect()
        };
        for dt in [DType::I64, DType::I32, DType::I8] {
            let cast = |t: &Tensor| run1(Op::Cast(Cast { to: dt }), &[t]);
            let (ac, bc) = (cast(&a), cast(&b));
            for (op, f) in arith {
                // Products of i8 values can overflow; the kernel wraps, the reference does too.
                let want = pairs(&|x, y| {
                    let v = f(x, y);
                    if dt == DType::I8 {
                        v as i8 as f64
                    } else {
                        v as f64
                    }
                });
                let got = run1(Op::Binary(Binary { op }), &[&ac, &bc]);
                assert_eq!(got.dtype(), dt);
                assert_eq!(got.to_f64_vec(), want, "{dt} {op:?} {sa:?} {sb:?}");
            }
            for (op, f) in cmp {
                let got = run1(Op::Binary(Binary { op }), &[&ac, &bc]);
                assert_eq!(got.dtype(), DType::Bool);
                assert_eq!(
                    got.to_f64_vec(),
                    pairs(&|x, y| f(x, y) as u8 as f64),
                    "{dt} {op:?}"
                );
            }
        }
        // Logical ops on bools made from the ints.
        let pa = run1(
            Op::Binary(Binary {
                op: BinaryOp::Greater,
            }),
            &[&a, &Tensor::scalar(0i64)],
        );
        let pb = run1(
            Op::Binary(Binary {
                op: BinaryOp::Greater,
            }),
            &[&b, &Tensor::scalar(0i64)],
        );
        let and = run1(Op::Binary(Binary { op: BinaryOp::And }), &[&pa, &pb]);
        let or = run1(Op::Binary(Binary { op: BinaryOp::Or }), &[&pa, &pb]);
        assert_eq!(
            and.to_f64_vec(),
            pairs(&|x, y| (x > 0 && y > 0) as u8 as f64)
        );
        assert_eq!(
            or.to_f64_vec(),
            pairs(&|x, y| (x > 0 || y > 0) as u8 as f64)
        );
        let not = run1(Op::Unary(Unary { op: UnaryOp::Not }), &[&pa]);
        assert_eq!(
            not.to_f64_vec(),
            av.iter()
                .map(|&x| (x <= 0) as u8 as f64)
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn binary_errors_and_mixed_pow() {
    let z = Tensor::from_vec(vec![2], vec![1i32, 0]);
    let op = || Op::Binary(Binary { op: BinaryOp::Div });
    assert!(
        eval(&op(), &[Some(&z), Some(&z)]).is_err(),
        "integer division by zero must fail"
    );
    let f = Tensor::from_vec(vec![3], vec![1.0f32, 2.0, 3.0]);
    assert!(eval(
        &op(),
        &[
            Some(&f),
            Some(&Tensor::from_vec(vec![2], vec![1.0f32, 2.0]))
        ]
    )
    .is_err());
    assert!(
        eval(&op(), &[Some(&f), Some(&z)]).is_err(),
        "dtype mismatch must fail"
    );
    let p = run1(
        Op::Binary(Binary { op: BinaryOp::Pow }),
        &[&f, &Tensor::scalar(2i64)],
    );
    assert_eq!(p.f32s().unwrap(), &[1.0, 4.0, 9.0]);
    let h = Tensor::from_vec(
        vec![3],
        vec![f16::from_f32(2.25), f16::from_f32(4.0), f16::from_f32(9.0)],
    );
    let p = run1(
        Op::Binary(Binary { op: BinaryOp::Pow }),
        &[&h, &Tensor::scalar(0.5f32)],
    );
    assert_eq!(
        (p.dtype(), p.to_f64_vec()),
        (DType::F16, vec![1.5, 2.0, 3.0])
    );
    let i = Tensor::from_vec(vec![2], vec![2i64, -3]);
    let p = run1(
        Op::Binary(Binary { op: BinaryOp::Pow }),
        &[&i, &Tensor::from_vec(vec![2], vec![3i64, 2])],
    );
    assert_eq!(p.i64s().unwrap(), &[8, 9]);
}

/// erf by its Maclaurin series, converging fast for |x| <= 3 in f64.
fn erf_series(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

#[test]
fn unary_float_ops() {
    let mut rng = rng();
    let ops: [(UnaryOp, FloatFn1); 13] = [
        (UnaryOp::Neg, |x| -x),
        (UnaryOp::Sqrt, |x| x.abs().sqrt()),
        (UnaryOp::Reciprocal, |x| 1.0 / x),
        (UnaryOp::Sigmoid, |x| 1.0 / (1.0 + (-x).exp())),
        (UnaryOp::Tanh, f64::tanh),
        (UnaryOp::Cos, f64::cos),
        (UnaryOp::Sin, f64::sin),
        (UnaryOp::Exp, f64::exp),
        (UnaryOp::Log, |x| x.abs().ln()),
        (UnaryOp::Abs, f64::abs),
        (UnaryOp::Relu, |x| x.max(0.0)),
        (UnaryOp::Erf, erf_series),
        (UnaryOp::Identity, |x| x),
    ];
    for _ in 0..10 {
        let rank = rng.random_range(0..=3);
        let s = shape(&mut rng, rank, 6, true);
        let x = rand_f32(&mut rng, &s);
        let xa = run1(Op::Unary(Unary { op: UnaryOp::Abs }), &[&x]);
        let x_erf = run1(
            Op::Binary(Binary { op: BinaryOp::Mul }),
            &[&x, &Tensor::scalar(0.6f32)],
        );
        for (op, f) in ops {
            // Sqrt and Log get |x| so the reference stays real; Erf gets |x| <= 2.4,
            // where the series reference keeps ~13 digits.
            let input = match op {
                UnaryOp::Sqrt | UnaryOp::Log => &xa,
                UnaryOp::Erf => &x_erf,
                _ => &x,
            };
            let xv = input.to_f64_vec();
            let want: Vec<f64> = xv.iter().map(|&v| f(v)).collect();
            let got = run1(Op::Unary(Unary { op }), &[input]);
            assert_eq!(got.shape(), s.as_slice());
            // f32 libm functions are within a couple of ulps.
            assert_close(&got.to_f64_vec(), &want, 2e-6, &format!("{op:?}"));
            let x64 = run1(Op::Cast(Cast { to: DType::F64 }), &[input]);
            let got = run1(Op::Unary(Unary { op }), &[&x64]);
            assert_eq!(got.dtype(), DType::F64);
            // f64 kernels against the f64 reference: only erf's series sums differ.
            assert_close(&got.to_f64_vec(), &want, 1e-13, &format!("f64 {op:?}"));
            let x16 = run1(Op::Cast(Cast { to: DType::F16 }), &[input]);
            let x16v = x16.to_f64_vec();
            let got = run1(Op::Unary(Unary { op }), &[&x16]);
            assert_eq!(got.dtype(), DType::F16);
            let want16: Vec<f64> = x16v.iter().map(|&v| f16::from_f64(f(v)).to_f64()).collect();
            // One f16 rounding of an f32 result: at most one f16 ulp (~1e-3 relative).
            assert_close(&got.to_f64_vec(), &want16, 1e-3, &format!("f16 {op:?}"));
        }
    }
    // Sigmoid stays finite and exact at the extremes.
    let x = Tensor::from_vec(vec![4], vec![-1000.0f32, -100.0, 100.0, 1000.0]);
    let s = run1(
        Op::Unary(Unary {
            op: UnaryOp::Sigmoid,
        }),
        &[&x],
    );
    let v = s.f32s().unwrap();
    assert_eq!(v[0], 0.0);
    assert!(v[1] > 0.0 && v[1] < 1e-40, "sigmoid(-100) = {}", v[1]);
    assert_eq!(&v[2..], &[1.0, 1.0]);
    // Known erf values (Abramowitz & Stegun tables).
    let x = Tensor::from_vec(vec![4], vec![0.5f64, 1.0, -2.0, 3.5]);
    let e = run1(Op::Unary(Unary { op: UnaryOp::Erf }), &[&x]);
    assert_close(
        &e.to_f64_vec(),
        &[
            0.5204998778130465,
            0.8427007929497149,
            -0.9953222650189527,
            0.9999992569016276,
        ],
        1e-15,
        "erf table",
    );
    // Int Neg/Abs/Relu.
    let i = Tensor::from_vec(vec![3], vec![-3i32, 0, 5]);
    assert_eq!(
        run1(Op::Unary(Unary { op: UnaryOp::Neg }), &[&i])
            .to_i64_vec()
            .unwrap(),
        vec![3, 0, -5]
    );
    assert_eq!(
        run1(Op::Unary(Unary { op: UnaryOp::Abs }), &[&i])
            .to_i64_vec()
            .unwrap(),
        vec![3, 0, 5]
    );
    assert_eq!(
        run1(Op::Unary(Unary { op: UnaryOp::Relu }), &[&i])
            .to_i64_vec()
            .unwrap(),
        vec![0, 0, 5]
    );
}

#[test]
fn cast_conversions() {
    let f = Tensor::from_vec(vec![6], vec![-2.7f32, -0.5, 0.0, 0.4, 3.9, 1e3]);
    let to = |t: &Tensor, dt| run1(Op::Cast(Cast { to: dt }), &[t]);
    assert_eq!(
        to(&f, DType::I64).to_i64_vec().unwrap(),
        vec![-2, 0, 0, 0, 3, 1000]
    );
    assert_eq!(
        to(&f, DType::I32).to_i64_vec().unwrap(),
        vec![-2, 0, 0, 0, 3, 1000]
    );
    assert_eq!(to(&f, DType::Bool).bools().unwrap(), &[1, 1, 0, 1, 1, 1]);
    // Narrow ints wrap after truncation, like onnxruntime.
    let w = Tensor::from_vec(vec![3], vec![-2.7f32, 300.0, 255.9]);
    assert_eq!(to(&w, DType::U8).to_i64_vec().unwrap(), vec![254, 44, 255]);
    assert_eq!(to(&w, DType::I8).to_i64_vec().unwrap(), vec![-2, 44, -1]);
    let b = Tensor::from_bools(vec![3], vec![true, false, true]);
    assert_eq!(to(&b, DType::F32).f32s().unwrap(), &[1.0, 0.0, 1.0]);
    assert_eq!(to(&b, DType::I64).i64s().unwrap(), &[1, 0, 1]);
    // i64 -> i32 wraps like a C cast.
    let big = Tensor::from_vec(vec![2], vec![(1i64 << 32) + 5, -1]);
    assert_eq!(to(&big, DType::I32).to_i64_vec().unwrap(), vec![5, -1]);
    // f32 -> f16 rounds to nearest, ties to even: 1 + 2^-11 is halfway
    // between 1 and 1 + 2^-10 (goes to 1); 1 + 3*2^-11 goes up to 1 + 2^-9.
    let h = Tensor::from_vec(
        vec![3],
        vec![1.0f32 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11), 70000.0],
    );
    let hv = to(&h, DType::F16).to_f64_vec();
    assert_eq!(hv[0], 1.0);
    assert_eq!(hv[1], 1.0 + 2f64.powi(-9));
    assert!(hv[2].is_infinite());
    // Round trips through wider types are exact.
    let mut rng = rng();
    let x = rand_f32(&mut rng, &[17]);
    assert_eq!(to(&to(&x, DType::F64), DType::F32), x);
    let i = rand_i64(&mut rng, &[9], -100, 100);
    assert_eq!(to(&to(&to(&i, DType::I8), DType::F16), DType::I64), i);
}

#[test]
fn where_broadcast() {
    let mut rng = rng();
    for _ in 0..30 {
        let (sc, sx) = broadcast_pair(&mut rng);
        let sy: Vec<usize> = sx
            .iter()
            .map(|&d| if rng.random_bool(0.3) { 1 } else { d })
            .collect();
        let c = Tensor::from_bools(
            sc.clone(),
            (0..numel(&sc)).map(|_| rng.random_bool(0.5)).collect(),
        );
        let x = rand_i64(&mut rng, &sx, -9, 9);
        let y = rand_i64(&mut rng, &sy, -9, 9);
        let out_shape = broadcast_shape(&broadcast_shape(&sc, &sx), &sy);
        let got = run1(Op::Where(Where), &[&c, &x, &y]);
        assert_eq!(got.shape(), out_shape.as_slice());
        let (cv, xv, yv) = (c.bools().unwrap(), x.i64s().unwrap(), y.i64s().unwrap());
        let want: Vec<i64> = (0..numel(&out_shape))
            .map(|p| {
                let idx = unravel(p, &out_shape);
                if cv[bcast_pos(&idx, &sc)] != 0 {
                    xv[bcast_pos(&idx, &sx)]
                } else {
                    yv[bcast_pos(&idx, &sy)]
                }
            })
            .collect();
        assert_eq!(got.i64s().unwrap(), want.as_slice(), "{sc:?} {sx:?} {sy:?}");
    }
}

#[test]
fn concat_split_with_empty_parts() {
    let mut rng = rng();
    // The KV-cache case: an empty past joined with new keys.
    let past = Tensor::zeros(DType::F32, vec![1, 2, 0, 8]);
    let new = rand_f32(&mut rng, &[1, 2, 5, 8]);
    let got = run1(Op::Concat(Concat { axis: -2 }), &[&past, &new]);
    assert_eq!(got, new);
    for _ in 0..30 {
        let rank = rng.random_range(1..=4);
        let base = shape(&mut rng, rank, 4, true);
        let axis = rng.random_range(0..rank);
        let parts: Vec<Tensor> = (0..rng.random_range(1..=3))
            .map(|_| {
                let mut s = base.clone();
                s[axis] = rng.random_range(0..=3);
                rand_f32(&mut rng, &s)
            })
            .collect();
        let refs: Vec<&Tensor> = parts.iter().collect();
        let neg_axis = axis as i64 - if rng.random_bool(0.5) { rank as i64 } else { 0 };
        let got = run1(Op::Concat(Concat { axis: neg_axis }), &refs);
        let mut out_shape = base.clone();
        out_shape[axis] = parts.iter().map(|p| p.shape()[axis]).sum();
        assert_eq!(got.shape(), out_shape.as_slice());
        let gv = got.f32s().unwrap();
        for (p, &g) in gv.iter().enumerate() {
            let mut idx = unravel(p, &out_shape);
            let mut part = 0;
            while idx[axis] >= parts[part].shape()[axis] {
                idx[axis] -= parts[part].shape()[axis];
                part += 1;
            }
            assert_eq!(
                g,
                parts[part].f32s().unwrap()[ravel(&idx, parts[part].shape())]
            );
        }
        // Split undoes the concat, sizes from input 1 or from the attribute.
        let sizes: Vec<i64> = parts.iter().map(|p| p.shape()[axis] as i64).collect();
        let from_input = eval(
            &Op::Split(Split {
                axis: neg_axis,
                split: None,
                num_outputs: 0,
            }),
            &[Some(&got), Some(&ints(&sizes))],
        )
        .unwrap();
        let from_attr = run(
            Op::Split(Split {
                axis: neg_axis,
                split: Some(sizes.clone()),
                num_outputs: 0,
            }),
            &[&got],
        );
        assert_eq!(from_input, parts);
        assert_eq!(from_attr, parts);
    }
    // num_outputs: ceil-sized parts, the last one smaller.
    let x = Tensor::from_vec(vec![7], (0..7i64).collect());
    let parts = run(
        Op::Split(Split {
            axis: 0,
            split: None,
            num_outputs: 3,
        }),
        &[&x],
    );
    let got: Vec<Vec<i64>> = parts.iter().map(|t| t.to_i64_vec().unwrap()).collect();
    assert_eq!(got, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
}

#[test]
fn gather_and_gather_nd() {
    let mut rng = rng();
    for _ in 0..30 {
        let rank = rng.random_range(1..=3);
        let ds = shape(&mut rng, rank, 4, false);
        let data = rand_f32(&mut rng, &ds);
        let axis = rng.random_range(0..rank);
        let irank = rng.random_range(0..=2);
        let is = shape(&mut rng, irank, 3, true);
        let d = ds[axis] as i64;
        let idx = rand_i64(&mut rng, &is, -d, d - 1);
        let got = run1(
            Op::Gather(Gather {
                axis: axis as i64 - rank as i64,
            }),
            &[&data, &idx],
        );
        let mut out_shape = ds[..axis].to_vec();
        out_shape.extend_from_slice(&is);
        out_shape.extend_from_slice(&ds[axis + 1..]);
        assert_eq!(got.shape(), out_shape.as_slice());
        let (dv, iv, gv) = (
            data.f32s().unwrap(),
            idx.i64s().unwrap(),
            got.f32s().unwrap(),
        );
        for (p, &g) in gv.iter().enumerate() {
            let o = unravel(p, &out_shape);
            let ii = ravel(&o[axis..axis + irank], &is);
            let mut src = o[..axis].to_vec();
            src.push(iv[ii].rem_euclid(d) as usize);
            src.extend_from_slice(&o[axis + irank..]);
            assert_eq!(g, dv[ravel(&src, &ds)]);
        }
    }
    assert!(eval(
        &Op::Gather(Gather { axis: 0 }),
        &[Some(&ints(&[1, 2])), Some(&ints(&[2]))]
    )
    .is_err());
    // GatherND with batch dims: data [B, a, b, c], indices [B, m, k].
    for _ in 0..30 {
        let b = rng.random_range(0..=1);
        let ds = shape(&mut rng, b + 3, 4, false);
        let k = rng.random_range(1..=3);
        let mut is = ds[..b].to_vec();
        let extra = rng.random_range(0..=2);
        is.extend(shape(&mut rng, extra, 3, true));
        is.push(k);
        let data = rand_f32(&mut rng, &ds);
        let q = is.len();
        let idx = Tensor::from_vec(
            is.clone(),
            (0..numel(&is))
                .map(|p| {
                    let j = p % k;
                    let d = ds[b + j] as i64;
                    rng.random_range(-d..d)
                })
                .collect::<Vec<i64>>(),
        );
        let got = run1(Op::GatherND(GatherND { batch_dims: b }), &[&data, &idx]);
        let mut out_shape = is[..q - 1].to_vec();
        out_shape.extend_from_slice(&ds[b + k..]);
        assert_eq!(got.shape(), out_shape.as_slice());
        let (dv, iv, gv) = (
            data.f32s().unwrap(),
            idx.i64s().unwrap(),
            got.f32s().unwrap(),
        );
        for (p, &g) in gv.iter().enumerate() {
            let o = unravel(p, &out_shape);
            let row = ravel(&o[..q - 1], &is[..q - 1]);
            let mut src = o[..b].to_vec();
            for j in 0..k {
                src.push(iv[row * k + j].rem_euclid(ds[b + j] as i64) as usize);
            }
            src.extend_from_slice(&o[q - 1..]);
            assert_eq!(g, dv[ravel(&src, &ds)], "GatherND {ds:?} {is:?} b={b}");
        }
    }
}

/// The indices a Slice picks along one dim, per the ONNX spec's clamping
/// (unlike Python, a negative step clamps start to [0, d-1], not [-1, d-1]),
/// written as a loop.
fn slice_indices(d: usize, start: i64, end: i64, step: i64) -> Vec<usize> {
    if d == 0 {
        return vec![];
    }
    let d = d as i64;
    let fix =
        |v: i64, lo: i64, hi: i64| (if v < 0 { v.saturating_add(d) } else { v }).clamp(lo, hi);
    let (mut i, end) = if step > 0 {
        (fix(start, 0, d), fix(end, 0, d))
    } else {
        (fix(start, 0, d - 1), fix(end, -1, d - 1))
    };
    let mut out = vec![];
    while (step > 0 && i < end) || (step < 0 && i > end) {
        out.push(i as usize);
        i += step;
    }
    out
}

#[test]
fn slice_random() {
    let mut rng = rng();
    let pick = |rng: &mut StdRng, d: i64| match rng.random_range(0..6) {
        0 => i64::MAX,
        1 => i64::MIN,
        _ => rng.random_range(-d - 2..=d + 2),
    };
    for _ in 0..60 {
        let rank = rng.random_range(1..=4);
        let ds = shape(&mut rng, rank, 6, true);
        let x = rand_f32(&mut rng, &ds);
        let mut axes: Vec<usize> = (0..rank).filter(|_| rng.random_bool(0.6)).collect();
        if axes.is_empty() {
            axes.push(0);
        }
        let (mut starts, mut ends, mut steps) = (vec![], vec![], vec![]);
        let mut picks: Vec<Vec<usize>> = ds.iter().map(|&d| (0..d).collect()).collect();
        for &a in &axes {
            let d = ds[a] as i64;
            let (s, e) = (pick(&mut rng, d), pick(&mut rng, d));
            let st = [1, 1, 2, 3, -1, -2][rng.random_range(0..6)];
            picks[a] = slice_indices(ds[a], s, e, st);
            starts.push(s);
            ends.push(e);
            steps.push(st);
        }
        let neg_axes: Vec<i64> = axes
            .iter()
            .map(|&a| a as i64 - if rng.random_bool(0.5) { rank as i64 } else { 0 })
            .collect();
        let all_default =
            steps.iter().all(|&s| s == 1) && axes == (0..axes.len()).collect::<Vec<_>>();
        let got = if all_default && rng.random_bool(0.5) {
            run1(Op::Slice(Slice), &[&x, &ints(&starts), &ints(&ends)])
        } else {
            run1(
                Op::Slice(Slice),
                &[
                    &x,
                    &ints(&starts),
                    &ints(&ends),
                    &ints(&neg_axes),
                    &ints(&steps),
                ],
            )
        };
        let out_shape: Vec<usize> = picks.iter().map(|p| p.len()).collect();
        assert_eq!(
            got.shape(),
            out_shape.as_slice(),
            "{ds:?} {axes:?} {starts:?} {ends:?} {steps:?}"
        );
        let (xv, gv) = (x.f32s().unwrap(), got.f32s().unwrap());
        for (p, &g) in gv.iter().enumerate() {
            let o = unravel(p, &out_shape);
            let src: Vec<usize> = o.iter().enumerate().map(|(a, &i)| picks[a][i]).collect();
            assert_eq!(g, xv[ravel(&src, &ds)]);
        }
    }
}

#[test]
fn reduce_random() {
    let mut rng = rng();
    let kinds = [
        ReduceKind::Sum,
        ReduceKind::Mean,
        ReduceKind::Max,
        ReduceKind::Min,
        ReduceKind::Prod,
    ];
    for _ in 0..40 {
        let rank = rng.random_range(0..=4);
        let ds = shape(&mut rng, rank, 4, true);
        let x = rand_f32(&mut rng, &ds);
        let mut axes: Vec<i64> = vec![];
        for a in 0..rank as i64 {
            if rng.random_bool(0.5) {
                axes.push(if rng.random_bool(0.5) {
                    a - rank as i64
                } else {
                    a
                });
            }
        }
        if rng.random_bool(0.2) {
            axes.clear();
        }
        let reduced: Vec<bool> = (0..rank)
            .map(|a| {
                axes.is_empty()
                    || axes
                        .iter()
                        .any(|&b| b.rem_euclid(rank as i64) as usize == a)
            })
            .collect();
        let keepdims = rng.random_bool(0.5);
        let kept: Vec<usize> = ds
            .iter()
            .zip(&reduced)
            .map(|(&d, &r)| if r { 1 } else { d })
            .collect();
        let xv = x.to_f64_vec();
        for kind in kinds {
            let op = Reduce {
                kind,
                axes: None,
                keepdims,
                noop_with_empty_axes: false,
            };
            let got = if rng.random_bool(0.5) && !axes.is_empty() {
                run1(
                    Op::Reduce(Reduce {
                        axes: Some(axes.clone()),
                        ..op
                    }),
                    &[&x],
                )
            } else if axes.is_empty() {
                run1(Op::Reduce(op), &[&x])
            } else {
                run1(Op::Reduce(op), &[&x, &ints(&axes)])
            };
            let out_shape: Vec<usize> = if keepdims {
                kept.clone()
            } else {
                ds.iter()
                    .zip(&reduced)
                    .filter(|(_, &r)| !r)
                    .map(|(&d, _)| d)
                    .collect()
            };
            assert_eq!(
                got.shape(),
                out_shape.as_slice(),
                "{kind:?} {ds:?} {axes:?}"
            );
            let mut groups: Vec<Vec<f64>> = vec![vec![]; numel(&kept)];
            for (p, &v) in xv.iter().enumerate() {
                let mut idx = unravel(p, &ds);
                for (i, &r) in idx.iter_mut().zip(&reduced) {
                    if r {
                        *i = 0;
                    }
                }
                groups[ravel(&idx, &kept)].push(v);
            }
            let want: Vec<f64> = groups
                .iter()
                .map(|g| match kind {
                    ReduceKind::Sum => g.iter().sum(),
                    ReduceKind::Mean => g.iter().sum::<f64>() / g.len() as f64,
                    ReduceKind::Max => g.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
                    ReduceKind::Min => g.iter().cloned().fold(f64::INFINITY, f64::min),
                    ReduceKind::Prod => g.iter().product(),
                })
                // Big products overflow f32 to inf, like the kernel's output.
                .map(|v: f64| v as f32 as f64)
                .collect();
            // f64 accumulation rounded once to f32.
            assert_close(
                &got.to_f64_vec(),
                &want,
                1e-6,
                &format!("{kind:?} {ds:?} {axes:?}"),
            );
        }
    }
    // Integer sums and noop_with_empty_axes.
    let i = Tensor::from_vec(vec![2, 3], vec![1i32, 2, 3, 4, 5, 6]);
    let op = |axes, noop| {
        Op::Reduce(Reduce {
            kind: ReduceKind::Sum,
            axes,
            keepdims: false,
            noop_with_empty_axes: noop,
        })
    };
    assert_eq!(
        run1(op(Some(vec![-1]), false), &[&i]).to_i64_vec().unwrap(),
        vec![6, 15]
    );
    assert_eq!(run1(op(None, true), &[&i]), i);
    assert_eq!(run1(op(None, false), &[&i]).to_i64_vec().unwrap(), vec![21]);
}

#[test]
fn transpose_tile_expand_trilu() {
    let mut rng = rng();
    for _ in 0..30 {
        let rank = rng.random_range(0..=4);
        let ds = shape(&mut rng, rank, 4, true);
        let x = rand_i64(&mut rng, &ds, -99, 99);
        let xv = x.i64s().unwrap();
        // Transpose by a random permutation.
        let mut perm: Vec<usize> = (0..rank).collect();
        for i in (1..rank).rev() {
            perm.swap(i, rng.random_range(0..=i));
        }
        let got = run1(
            Op::Transpose(Transpose {
                perm: Some(perm.clone()),
            }),
            &[&x],
        );
        let out_shape: Vec<usize> = perm.iter().map(|&p| ds[p]).collect();
        assert_eq!(got.shape(), out_shape.as_slice());
        for (p, &g) in got.i64s().unwrap().iter().enumerate() {
            let o = unravel(p, &out_shape);
            let mut src = vec![0; rank];
            for (i, &pi) in perm.iter().enumerate() {
                src[pi] = o[i];
            }
            assert_eq!(g, xv[ravel(&src, &ds)]);
        }
        let rev = run1(Op::Transpose(Transpose { perm: None }), &[&x]);
        let rev_shape: Vec<usize> = ds.iter().rev().cloned().collect();
        assert_eq!(rev.shape(), rev_shape.as_slice());
        // Tile.
        let reps: Vec<i64> = (0..rank).map(|_| rng.random_range(0..=3)).collect();
        let got = run1(Op::Tile(Tile), &[&x, &ints(&reps)]);
        let out_shape: Vec<usize> = ds
            .iter()
            .zip(&reps)
            .map(|(&d, &r)| d * r as usize)
            .collect();
        assert_eq!(got.shape(), out_shape.as_slice());
        for (p, &g) in got.i64s().unwrap().iter().enumerate() {
            let src: Vec<usize> = unravel(p, &out_shape)
                .iter()
                .zip(&ds)
                .map(|(&i, &d)| i % d)
                .collect();
            assert_eq!(g, xv[ravel(&src, &ds)]);
        }
        // Expand is bidirectional: the target may have 1s where the input does not.
        let lead = rng.random_range(0..=2);
        let mut target: Vec<i64> = (0..lead).map(|_| rng.random_range(1..=3)).collect();
        target.extend(ds.iter().map(|&d| {
            if d == 1 {
                rng.random_range(1..=3)
            } else if rng.random_bool(0.3) {
                1
            } else {
                d as i64
            }
        }));
        let got = run1(Op::Expand(Expand), &[&x, &ints(&target)]);
        let ts: Vec<usize> = target.iter().map(|&t| t as usize).collect();
        let out_shape = broadcast_shape(&ts, &ds);
        assert_eq!(got.shape(), out_shape.as_slice());
        for (p, &g) in got.i64s().unwrap().iter().enumerate() {
            assert_eq!(g, xv[bcast_pos(&unravel(p, &out_shape), &ds)]);
        }
        // Trilu on the last two dims.
        if rank >= 2 {
            let k = rng.random_range(-3..=3i64);
            let upper = rng.random_bool(0.5);
            let got = if k == 0 && rng.random_bool(0.5) {
                run1(Op::Trilu(Trilu { upper }), &[&x])
            } else {
                run1(Op::Trilu(Trilu { upper }), &[&x, &Tensor::scalar(k)])
            };
            assert_eq!(got.shape(), ds.as_slice());
            for (p, &g) in got.i64s().unwrap().iter().enumerate() {
                let o = unravel(p, &ds);
                let diff = o[rank - 1] as i64 - o[rank - 2] as i64;
                let keep = if upper { diff >= k } else { diff <= k };
                assert_eq!(g, if keep { xv[p] } else { 0 });
            }
        }
    }
}

#[test]
fn reshape_family() {
    let x = Tensor::from_vec(vec![2, 3, 4], (0..24i64).collect());
    let reshape =
        |spec: &[i64], allowzero| run1(Op::Reshape(Reshape { allowzero }), &[&x, &ints(spec)]);
    assert_eq!(reshape(&[0, -1], false).shape(), &[2, 12]);
    assert_eq!(reshape(&[-1, 0, 2], false).shape(), &[4, 3, 2]);
    assert_eq!(reshape(&[4, 6], false).i64s().unwrap(), x.i64s().unwrap());
    let e = Tensor::zeros(DType::F32, vec![2, 0]);
    let r = run1(
        Op::Reshape(Reshape { allowzero: true }),
        &[&e, &ints(&[0, 5])],
    );
    assert_eq!(r.shape(), &[0, 5]);
    assert!(eval(
        &Op::Reshape(Reshape { allowzero: false }),
        &[Some(&x), Some(&ints(&[5, -1]))]
    )
    .is_err());
    assert!(eval(
        &Op::Reshape(Reshape { allowzero: false }),
        &[Some(&x), Some(&ints(&[-1, -1]))]
    )
    .is_err());

    let flat = |axis| run1(Op::Flatten(Flatten { axis }), &[&x]).shape().to_vec();
    assert_eq!(flat(0), vec![1, 24]);
    assert_eq!(flat(-1), vec![6, 4]);
    assert_eq!(flat(3), vec![24, 1]);

    let y = Tensor::zeros(DType::F16, vec![1, 3, 1, 0]);
    let sq = |axes: Option<Vec<i64>>, input: Option<&[i64]>| {
        let t = input.map(ints);
        let mut args = vec![Some(&y)];
        if let Some(t) = &t {
            args.push(Some(t));
        }
        eval(&Op::Squeeze(Squeeze { axes }), &args).map(|o| o[0].shape().to_vec())
    };
    assert_eq!(sq(None, None).unwrap(), vec![3, 0]);
    assert_eq!(sq(Some(vec![-2]), None).unwrap(), vec![1, 3, 0]);
    assert_eq!(sq(None, Some(&[0, 2])).unwrap(), vec![3, 0]);
    assert!(sq(Some(vec![1]), None).is_err());

    let un = |axes: &[i64]| {
        run1(Op::Unsqueeze(Unsqueeze { axes: None }), &[&x, &ints(axes)])
            .shape()
            .to_vec()
    };
    assert_eq!(un(&[0, -1]), vec![1, 2, 3, 4, 1]);
    assert_eq!(un(&[1, 3]), vec![2, 1, 3, 1, 4]);
    let s = run1(
        Op::Unsqueeze(Unsqueeze {
            axes: Some(vec![0]),
        }),
        &[&Tensor::scalar(3.0f32)],
    );
    assert_eq!(s.shape(), &[1]);

    let shape_of = |start, end| {
        run1(Op::Shape(Shape { start, end }), &[&x])
            .to_i64_vec()
            .unwrap()
    };
    assert_eq!(shape_of(0, None), vec![2, 3, 4]);
    assert_eq!(shape_of(-2, None), vec![3, 4]);
    assert_eq!(shape_of(1, Some(-1)), vec![3]);
    assert_eq!(shape_of(-10, Some(10)), vec![2, 3, 4]);
    assert_eq!(shape_of(2, Some(1)), Vec::<i64>::new());

    let c = run1(
        Op::ConstantOfShape(ConstantOfShape {
            value: Tensor::from_vec(vec![1], vec![7i64]),
        }),
        &[&ints(&[2, 0, 3])],
    );
    assert_eq!((c.shape(), c.dtype()), (&[2usize, 0, 3][..], DType::I64));
    let c = run1(
        Op::ConstantOfShape(ConstantOfShape {
            value: Tensor::from_vec(vec![1], vec![f16::from_f32(1.5)]),
        }),
        &[&ints(&[2, 2])],
    );
    assert_eq!(c.to_f64_vec(), vec![1.5; 4]);
}

#[test]
fn range_and_nonzero() {
    let r = |s: Tensor, l: Tensor, d: Tensor| run1(Op::Range(Range), &[&s, &l, &d]);
    assert_eq!(
        r(
            Tensor::scalar(2i64),
            Tensor::scalar(11i64),
            Tensor::scalar(3i64)
        )
        .to_i64_vec()
        .unwrap(),
        vec![2, 5, 8]
    );
    assert_eq!(
        r(
            Tensor::scalar(10i32),
            Tensor::scalar(4i32),
            Tensor::scalar(-3i32)
        )
        .to_i64_vec()
        .unwrap(),
        vec![10, 7]
    );
    assert_eq!(
        r(
            Tensor::scalar(5i64),
            Tensor::scalar(5i64),
            Tensor::scalar(1i64)
        )
        .len(),
        0
    );
    assert_eq!(
        r(
            Tensor::scalar(5i64),
            Tensor::scalar(0i64),
            Tensor::scalar(1i64)
        )
        .len(),
        0
    );
    assert_eq!(
        r(
            Tensor::scalar(120i8),
            Tensor::scalar(127i8),
            Tensor::scalar(5i8)
        )
        .to_i64_vec()
        .unwrap(),
        vec![120, 125]
    );
    let f = r(
        Tensor::scalar(0.5f32),
        Tensor::scalar(2.0f32),
        Tensor::scalar(0.4f32),
    );
    assert_close(&f.to_f64_vec(), &[0.5, 0.9, 1.3, 1.7], 1e-6, "f32 range");
    assert!(eval(
        &Op::Range(Range),
        &[
            Some(&Tensor::scalar(0i64)),
            Some(&Tensor::scalar(3i64)),
            Some(&Tensor::scalar(0i64))
        ]
    )
    .is_err());

    let mut rng = rng();
    for _ in 0..20 {
        let rank = rng.random_range(1..=3);
        let ds = shape(&mut rng, rank, 5, true);
        let x = rand_i64(&mut rng, &ds, -1, 1);
        let x = if rng.random_bool(0.5) {
            run1(Op::Cast(Cast { to: DType::F32 }), &[&x])
        } else {
            x
        };
        let got = run1(Op::NonZero(NonZero), &[&x]);
        let hits: Vec<usize> = x
            .to_f64_vec()
            .iter()
            .enumerate()
            .filter(|(_, &v)| v != 0.0)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(got.shape(), &[rank, hits.len()]);
        let gv = got.i64s().unwrap();
        for (col, &flat) in hits.iter().enumerate() {
            let idx = unravel(flat, &ds);
            for d in 0..rank {
                assert_eq!(gv[d * hits.len() + col], idx[d] as i64);
            }
        }
    }
}

#[test]
fn scatter_nd_reductions() {
    let mut rng = rng();
    let reds = [
        ScatterReduction::None,
        ScatterReduction::Add,
        ScatterReduction::Mul,
        ScatterReduction::Max,
        ScatterReduction::Min,
    ];
    for _ in 0..30 {
        let rank = rng.random_range(1..=3);
        let ds = shape(&mut rng, rank, 4, false);
        let k = rng.random_range(1..=rank);
        let extra = rng.random_range(0..=2);
        let mut is = shape(&mut rng, extra, 3, true);
        is.push(k);
        let q = is.len();
        let idx = Tensor::from_vec(
            is.clone(),
            (0..numel(&is))
                .map(|p| rng.random_range(0..ds[p % k] as i64))
                .collect::<Vec<i64>>(),
        );
        let mut us = is[..q - 1].to_vec();
        us.extend_from_slice(&ds[k..]);
        let data = rand_f32(&mut rng, &ds);
        let upd = rand_f32(&mut rng, &us);
        let (iv, uv) = (idx.i64s().unwrap(), upd.f32s().unwrap());
        let chunk = numel(&ds[k..]);
        for red in reds {
            // With no reduction, duplicate indices make the result order dependent; keep them unique.
            if red == ScatterReduction::None {
                let rows: Vec<&[i64]> = iv.chunks(k).collect();
                let unique = rows.iter().enumerate().all(|(i, r)| !rows[..i].contains(r));
                if !unique {
                    continue;
                }
            }
            let got = run1(
                Op::ScatterND(ScatterND { reduction: red }),
                &[&data, &idx, &upd],
            );
            let mut want = data.to_f64_vec();
            for row in 0..numel(&is[..q - 1]) {
                let mut start = vec![0; rank];
                for j in 0..k {
                    start[j] = iv[row * k + j] as usize;
                }
                let base = ravel(&start, &ds);
                for c in 0..chunk {
                    let (w, u) = (&mut want[base + c], uv[row * chunk + c] as f64);
                    *w = match red {
                        ScatterReduction::None => u,
                        ScatterReduction::Add => *w + u,
                        ScatterReduction::Mul => *w * u,
                        ScatterReduction::Max => w.max(u),
                        ScatterReduction::Min => w.min(u),
                    };
                    // The kernel rounds to f32 after every update.
                    *w = *w as f32 as f64;
                }
            }
            assert_eq!(got.to_f64_vec(), want, "{red:?} {ds:?} {is:?}");
        }
    }
}

//! Quantized-op CPU kernels (issue 7) against naive references on fresh random
//! inputs: the references work from the unpacked codes the test generates
//! (then packs), so the kernels' unpacking is checked too. Odd K and N, K not
//! a multiple of the block, with and without zero points, f16 scales.
//! Each test prints its seed; set CELLM_TEST_SEED to replay one.

use cellm_cpu::ops::eval;
use cellm_ir::ops::*;
use cellm_ir::{DType, Op, Tensor};
use half::f16;
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
                .unwrap_or(7)
        });
    eprintln!("seed {seed}");
    StdRng::seed_from_u64(seed)
}

fn run(op: Op, inputs: &[Option<&Tensor>]) -> Vec<Tensor> {
    eval(&op, inputs).unwrap_or_else(|e| panic!("{op:?}: {e:#}"))
}

fn randn(r: &mut StdRng, n: usize) -> Vec<f32> {
    (0..n).map(|_| r.random_range(-2.0f32..2.0)).collect()
}

/// max |got - want| <= tol * max(1, max |want|).
fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1f64, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).abs())
        .fold(0f64, f64::max);
    assert!(
        worst <= tol * scale,
        "{what}: max|Δ| {worst:e} > {tol:e}·{scale}"
    );
}

/// Dense f64 A [m, k] x W (w(k, n) given by `w`) reference.
fn ref_matmul(
    a: &[f32],
    m: usize,
    k: usize,
    n: usize,
    w: impl Fn(usize, usize) -> f64,
) -> Vec<f64> {
    let mut out = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|kk| a[i * k + kk] as f64 * w(kk, j)).sum();
        }
    }
    out
}

#[test]
fn mat_mul_n_bits_matches_naive() {
    let mut r = rng();
    for case in 0..12 {
        let bs = [16usize, 32, 64, 128][case % 4];
        let with_zp = case % 2 == 0;
        let f16_scales = case % 3 == 0;
        let m = 2 * r.random_range(0..3usize) + 1;
        let n = 2 * r.random_range(1..6usize) + 1;
        // Odd K, not a multiple of the block (the last block is padded).
        let k = bs * r.random_range(0..3usize) + 2 * r.random_range(0..bs / 2) + 1;
        let blocks = k.div_ceil(bs);
        // Codes for every slot, padding included (it must be ignored).
        let codes: Vec<u8> = (0..n * blocks * bs)
            .map(|_| r.random_range(0..16u8))
            .collect();
        let zps: Vec<u8> = (0..n * blocks).map(|_| r.random_range(0..16u8)).collect();
        let scales: Vec<f32> = (0..n * blocks)
            .map(|_| {
                let s = r.random_range(0.01f32..0.3);
                // f16 scales: the reference must use the rounded value too.
                if f16_scales {
                    f16::from_f32(s).to_f32()
                } else {
                    s
                }
            })
            .collect();
        let packed: Vec<u8> = codes.chunks(2).map(|p| p[0] | (p[1] << 4)).collect();
        let per_row = blocks.div_ceil(2);
        let mut zp_packed = vec![0u8; n * per_row];
        for row in 0..n {
            for b in 0..blocks {
                zp_packed[row * per_row + b / 2] |= zps[row * blocks + b] << (4 * (b % 2));
            }
        }
        let a = randn(&mut r, m * k);
        let want = ref_matmul(&a, m, k, n, |kk, j| {
            let (b, off) = (kk / bs, kk % bs);
            let q = codes[(j * blocks + b) * bs + off] as f64;
            let zp = if with_zp {
                zps[j * blocks + b] as f64
            } else {
                8.0
            };
            (q - zp) * scales[j * blocks + b] as f64
        });
        let at = Tensor::from_vec(vec![m, k], a.clone());
        let bt = Tensor::from_vec(vec![n, blocks, bs / 2], packed);
        let st = if f16_scales {
            Tensor::from_vec(
                vec![n * blocks],
                scales.iter().map(|&s| f16::from_f32(s)).collect::<Vec<_>>(),
            )
        } else {
            Tensor::from_vec(vec![n * blocks], scales.clone())
        };
        let zt = Tensor::from_vec(vec![n * per_row], zp_packed);
        let op = Op::MatMulNBits(MatMulNBits {
            k,
            n,
            bits: 4,
            block_size: bs,
        });
        let zin = if with_zp { Some(&zt) } else { None };
        let y = run(op.clone(), &[Some(&at), Some(&bt), Some(&st), zin]).remove(0);
        assert_eq!(y.shape(), &[m, n]);
        // f32 sums over K <= 400 terms of |x| < 4: 1e-5 of the scale is ample.
        let what = format!("MatMulNBits m{m} k{k} n{n} bs{bs} zp{with_zp} f16s{f16_scales}");
        assert_close(&what, y.f32s().unwrap(), &want, 1e-5);
        // f16 A: the same product rounded to f16 (one f16 ulp is 2^-11 relative).
        let ah = Tensor::from_vec(
            vec![m, k],
            a.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>(),
        );
        let want_h = ref_matmul(
            &a.iter()
                .map(|&v| f16::from_f32(v).to_f32())
                .collect::<Vec<_>>(),
            m,
            k,
            n,
            |kk, j| {
                let (b, off) = (kk / bs, kk % bs);
                let q = codes[(j * blocks + b) * bs + off] as f64;
                let zp = if with_zp {
                    zps[j * blocks + b] as f64
                } else {
                    8.0
                };
                (q - zp) * scales[j * blocks + b] as f64
            },
        );
        let yh = run(op, &[Some(&ah), Some(&bt), Some(&st), zin]).remove(0);
        assert_eq!(yh.dtype(), DType::F16);
        assert_close(
            &format!("{what} f16 A"),
            &yh.to_f32_vec().unwrap(),
            &want_h,
            1e-3,
        );
    }
}

#[test]
fn mat_mul_n_bits_rejects_bad_layout() {
    let a = Tensor::from_vec(vec![1, 20], vec![0f32; 20]);
    let b = Tensor::from_vec(vec![3, 1, 8], vec![0u8; 24]); // K = 20 needs 2 blocks of 16
    let s = Tensor::from_vec(vec![3], vec![1f32; 3]);
    let op = Op::MatMulNBits(MatMulNBits {
        k: 20,
        n: 3,
        bits: 4,
        block_size: 16,
    });
    assert!(eval(&op, &[Some(&a), Some(&b), Some(&s)]).is_err());
}

const NF4: [f64; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];
const FP4: [f64; 16] = [
    0.0,
    0.005208333333,
    0.66666667,
    1.0,
    0.33333333,
    0.5,
    0.16666667,
    0.25,
    -0.0,
    -0.005208333333,
    -0.66666667,
    -1.0,
    -0.33333333,
    -0.5,
    -0.16666667,
    -0.25,
];

#[test]
fn mat_mul_bnb4_matches_naive() {
    let mut r = rng();
    for case in 0..6 {
        let nf4 = case % 2 == 0;
        let bs = 64;
        let m = 2 * r.random_range(0..3usize) + 1;
        let n = 2 * r.random_range(1..5usize) + 1;
        let k = 2 * r.random_range(8..70usize) + 1;
        let total = n * k;
        let codes: Vec<u8> = (0..total.div_ceil(2) * 2)
            .map(|_| r.random_range(0..16u8))
            .collect();
        let absmax: Vec<f32> = (0..total.div_ceil(bs))
            .map(|_| r.random_range(0.1f32..2.0))
            .collect();
        // bitsandbytes order: the first element in the high nibble.
        let packed: Vec<u8> = codes.chunks(2).map(|p| (p[0] << 4) | p[1]).collect();
        let table = if nf4 { &NF4 } else { &FP4 };
        let a = randn(&mut r, m * k);
        let want = ref_matmul(&a, m, k, n, |kk, j| {
            let i = j * k + kk;
            table[codes[i] as usize] * absmax[i / bs] as f64
        });
        let op = Op::MatMulBnb4(MatMulBnb4 {
            k,
            n,
            block_size: bs,
            quant_type: if nf4 { Bnb4Type::Nf4 } else { Bnb4Type::Fp4 },
        });
        let y = run(
            op,
            &[
                Some(&Tensor::from_vec(vec![m, k], a)),
                Some(&Tensor::from_vec(vec![packed.len()], packed)),
                Some(&Tensor::from_vec(vec![absmax.len()], absmax)),
            ],
        )
        .remove(0);
        // Code books are stored as f32 (1e-7 relative): 1e-5 of the scale.
        assert_close(
            &format!("MatMulBnb4 nf4={nf4} m{m} k{k} n{n}"),
            y.f32s().unwrap(),
            &want,
            1e-5,
        );
    }
}

#[test]
fn dynamic_quantize_linear_rounds_half_even_and_saturates() {
    let op = Op::DynamicQuantizeLinear(DynamicQuantizeLinear);
    // Range [0, 255] gives scale 1, zero point 0: x/scale ties round to even.
    let x = Tensor::from_vec(vec![6], vec![0f32, 2.5, 3.5, 254.5, 255.0, 0.5]);
    let out = run(op.clone(), &[Some(&x)]);
    assert_eq!(out[0].view::<u8>().unwrap(), &[0, 2, 4, 254, 255, 0]);
    assert_eq!(out[1].f32s().unwrap(), &[1.0]);
    assert_eq!(out[2].view::<u8>().unwrap(), &[0]);
    // All negative: max is clamped up to 0, so the zero point is 255.
    let x = Tensor::from_vec(vec![2], vec![-255f32, -1.5]);
    let out = run(op.clone(), &[Some(&x)]);
    assert_eq!(out[0].view::<u8>().unwrap(), &[0, 253]);
    assert_eq!(out[2].view::<u8>().unwrap(), &[255]);
    // All zero: scale 1 (onnxruntime), zero point 0.
    let x = Tensor::from_vec(vec![3], vec![0f32; 3]);
    let out = run(op.clone(), &[Some(&x)]);
    assert_eq!(out[1].f32s().unwrap(), &[1.0]);

    // Random: dequantized values are within half a step of x.
    let mut r = rng();
    let n = r.random_range(5..200);
    let xv: Vec<f32> = (0..n).map(|_| r.random_range(-3.0f32..5.0)).collect();
    let out = run(op, &[Some(&Tensor::from_vec(vec![n], xv.clone()))]);
    let (min, max) = xv
        .iter()
        .fold((0f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
    let scale = out[1].f32s().unwrap()[0];
    assert!((scale - (max - min) / 255.0).abs() <= 1e-7);
    let zp = out[2].view::<u8>().unwrap()[0] as f32;
    for (q, &x) in out[0].view::<u8>().unwrap().iter().zip(&xv) {
        let back = (*q as f32 - zp) * scale;
        // Half a step, plus the zero point's own rounding of up to half a step.
        assert!(
            (back - x).abs() <= scale * 1.0 + 1e-5,
            "x {x} -> q {q} -> {back}"
        );
    }
}

#[test]
fn mat_mul_integer_matches_naive() {
    let mut r = rng();
    for case in 0..8 {
        let (m, k, n) = (
            2 * r.random_range(0..4usize) + 1,
            2 * r.random_range(0..20usize) + 1,
            2 * r.random_range(0..6usize) + 1,
        );
        let b_signed = case % 2 == 1;
        let zp_mode = case / 2; // 0 none, 1 scalar, 2 per row / column, 3 scalar A only
        let a: Vec<u8> = (0..m * k).map(|_| r.random()).collect();
        let b: Vec<i32> = (0..k * n)
            .map(|_| {
                if b_signed {
                    r.random_range(-128..128)
                } else {
                    r.random_range(0..256)
                }
            })
            .collect();
        let a_zp: Vec<i32> = match zp_mode {
            0 => vec![0],
            2 => (0..m).map(|_| r.random_range(0..256)).collect(),
            _ => vec![r.random_range(0..256)],
        };
        let b_zp: Vec<i32> = match zp_mode {
            0 | 3 => vec![0],
            2 => (0..n)
                .map(|_| {
                    if b_signed {
                        r.random_range(-128..128)
                    } else {
                        r.random_range(0..256)
                    }
                })
                .collect(),
            _ => vec![if b_signed {
                r.random_range(-128..128)
            } else {
                r.random_range(0..256)
            }],
        };
        let mut want = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = (0..k)
                    .map(|kk| {
                        let av = a[i * k + kk] as i64 - a_zp[i % a_zp.len()] as i64;
                        let bv = b[kk * n + j] as i64 - b_zp[j % b_zp.len()] as i64;
                        av * bv
                    })
                    .sum::<i64>() as f64;
            }
        }
        let to_b = |v: &[i32], shape: Vec<usize>| {
            if b_signed {
                Tensor::from_vec(shape, v.iter().map(|&x| x as i8).collect::<Vec<_>>())
            } else {
                Tensor::from_vec(shape, v.iter().map(|&x| x as u8).collect::<Vec<_>>())
            }
        };
        let at = Tensor::from_vec(vec![m, k], a);
        let bt = to_b(&b, vec![k, n]);
        let azt = Tensor::from_vec(
            vec![a_zp.len()],
            a_zp.iter().map(|&x| x as u8).collect::<Vec<_>>(),
        );
        let bzt = to_b(&b_zp, vec![b_zp.len()]);
        let zin = zp_mode != 0;
        let y = run(
            Op::MatMulInteger(MatMulInteger),
            &[
                Some(&at),
                Some(&bt),
                zin.then_some(&azt),
                (zin && zp_mode != 3).then_some(&bzt),
            ],
        )
        .remove(0);
        assert_eq!(y.dtype(), DType::I32);
        let got: Vec<f32> = y.view::<i32>().unwrap().iter().map(|&v| v as f32).collect();
        // Exact integers (all below 2^24, so exact in f32 too).
        assert_close(&format!("MatMulInteger case {case}"), &got, &want, 0.0);
    }
}

#[test]
fn conv_integer_matches_naive() {
    let mut r = rng();
    let (c, mo, h, w, kh) = (2usize, 3usize, 7usize, 5usize, 3usize);
    let x: Vec<u8> = (0..c * h * w).map(|_| r.random()).collect();
    let wt: Vec<u8> = (0..mo * c * kh * kh).map(|_| r.random()).collect();
    let xz: u8 = r.random();
    let wz: Vec<u8> = (0..mo).map(|_| r.random()).collect();
    // stride 2, pad 1: padding contributes x == x_zero_point, i.e. 0 after centring.
    let (oh, ow) = ((h + 2 - kh) / 2 + 1, (w + 2 - kh) / 2 + 1);
    let mut want = vec![0f64; mo * oh * ow];
    for o in 0..mo {
        for y in 0..oh {
            for xx in 0..ow {
                let mut s = 0i64;
                for ci in 0..c {
                    for dy in 0..kh {
                        for dx in 0..kh {
                            let (iy, ix) = ((y * 2 + dy) as i64 - 1, (xx * 2 + dx) as i64 - 1);
                            if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                                continue;
                            }
                            let xv = x[(ci * h + iy as usize) * w + ix as usize] as i64 - xz as i64;
                            let wv = wt[((o * c + ci) * kh + dy) * kh + dx] as i64 - wz[o] as i64;
                            s += xv * wv;
                        }
                    }
                }
                want[(o * oh + y) * ow + xx] = s as f64;
            }
        }
    }
    let op = Op::ConvInteger(ConvInteger {
        conv: Conv {
            kernel_shape: Some(vec![kh, kh]),
            strides: vec![2, 2],
            pads: vec![1, 1, 1, 1],
            dilations: vec![1, 1],
            group: 1,
            auto_pad: AutoPad::NotSet,
        },
    });
    let y = run(
        op,
        &[
            Some(&Tensor::from_vec(vec![1, c, h, w], x)),
            Some(&Tensor::from_vec(vec![mo, c, kh, kh], wt)),
            Some(&Tensor::from_vec(vec![], vec![xz])),
            Some(&Tensor::from_vec(vec![mo], wz)),
        ],
    )
    .remove(0);
    assert_eq!(y.shape(), &[1, mo, oh, ow]);
    let got: Vec<f32> = y.view::<i32>().unwrap().iter().map(|&v| v as f32).collect();
    assert_close("ConvInteger", &got, &want, 0.0);
}

#[test]
fn dequantize_and_quantize_linear_per_tensor_and_per_axis() {
    let mut r = rng();
    let (d0, d1, d2) = (3usize, 5usize, 4usize);
    let n = d0 * d1 * d2;
    let q: Vec<i8> = (0..n).map(|_| r.random()).collect();
    // Per tensor, with a zero point.
    let s = r.random_range(0.01f32..0.5);
    let z: i8 = r.random_range(-10..10);
    let y = run(
        Op::DequantizeLinear(DequantizeLinear {
            axis: 1,
            block_size: 0,
        }),
        &[
            Some(&Tensor::from_vec(vec![d0, d1, d2], q.clone())),
            Some(&Tensor::from_vec(vec![], vec![s])),
            Some(&Tensor::from_vec(vec![], vec![z])),
        ],
    )
    .remove(0);
    let want: Vec<f64> = q
        .iter()
        .map(|&v| (v as f64 - z as f64) * s as f64)
        .collect();
    assert_close(
        "DequantizeLinear per tensor",
        y.f32s().unwrap(),
        &want,
        1e-6,
    );
    // Per axis 1, f16 scales, no zero point.
    let sv: Vec<f16> = (0..d1)
        .map(|_| f16::from_f32(r.random_range(0.01f32..0.5)))
        .collect();
    let y = run(
        Op::DequantizeLinear(DequantizeLinear {
            axis: 1,
            block_size: 0,
        }),
        &[
            Some(&Tensor::from_vec(vec![d0, d1, d2], q.clone())),
            Some(&Tensor::from_vec(vec![d1], sv.clone())),
            None,
        ],
    )
    .remove(0);
    assert_eq!(y.dtype(), DType::F16);
    let want: Vec<f64> = (0..n)
        .map(|i| q[i] as f64 * sv[(i / d2) % d1].to_f64())
        .collect();
    // f16 output: half an ulp, 2^-11 relative.
    assert_close(
        "DequantizeLinear per axis",
        &y.to_f32_vec().unwrap(),
        &want,
        1e-3,
    );

    // QuantizeLinear per axis 2 to i8: round half to even, saturate.
    let x: Vec<f32> = randn(&mut r, n).iter().map(|v| v * 40.0).collect();
    let sc: Vec<f32> = (0..d2).map(|_| r.random_range(0.05f32..0.5)).collect();
    let zp: Vec<i8> = (0..d2).map(|_| r.random_range(-20..20)).collect();
    let y = run(
        Op::QuantizeLinear(QuantizeLinear {
            axis: -1,
            block_size: 0,
            output_dtype: DType::U8,
        }),
        &[
            Some(&Tensor::from_vec(vec![d0, d1, d2], x.clone())),
            Some(&Tensor::from_vec(vec![d2], sc.clone())),
            Some(&Tensor::from_vec(vec![d2], zp.clone())),
        ],
    )
    .remove(0);
    assert_eq!(y.dtype(), DType::I8);
    for (i, &got) in y.view::<i8>().unwrap().iter().enumerate() {
        let j = i % d2;
        let v = (x[i] / sc[j]) as f64;
        let rounded = if (v - v.floor() - 0.5).abs() < 1e-12 {
            // tie: to even
            if v.floor() as i64 % 2 == 0 {
                v.floor()
            } else {
                v.ceil()
            }
        } else {
            v.round()
        };
        let want = (rounded + zp[j] as f64).clamp(-128.0, 127.0) as i8;
        assert_eq!(
            got, want,
            "QuantizeLinear x {} scale {} zp {}",
            x[i], sc[j], zp[j]
        );
    }
}

#[test]
fn gather_block_quantized_matches_naive() {
    let mut r = rng();
    for with_zp in [false, true] {
        let bs = 16;
        let v = 2 * r.random_range(1..5usize) + 1;
        // Even (two codes per byte) but not a multiple of the block.
        let k = bs * r.random_range(1..4usize) + 2 * r.random_range(1..bs / 2);
        let blocks = k.div_ceil(bs);
        let codes: Vec<u8> = (0..v * k).map(|_| r.random_range(0..16u8)).collect();
        let zc: Vec<u8> = (0..v * blocks).map(|_| r.random_range(0..16u8)).collect();
        let scales: Vec<f32> = (0..v * blocks)
            .map(|_| r.random_range(0.01f32..1.0))
            .collect();
        let packed: Vec<u8> = codes.chunks(2).map(|p| p[0] | (p[1] << 4)).collect();
        let per_row = blocks.div_ceil(2);
        let mut zp = vec![0u8; v * per_row];
        for row in 0..v {
            for b in 0..blocks {
                zp[row * per_row + b / 2] |= zc[row * blocks + b] << (4 * (b % 2));
            }
        }
        let idx: Vec<i64> = (0..4).map(|_| r.random_range(0..v as i64)).collect();
        let mut want = vec![];
        for &i in &idx {
            let row = i as usize;
            for kk in 0..k {
                let b = kk / bs;
                let z = if with_zp {
                    zc[row * blocks + b] as f64
                } else {
                    8.0
                };
                want.push((codes[row * k + kk] as f64 - z) * scales[row * blocks + b] as f64);
            }
        }
        let zt = Tensor::from_vec(vec![v, per_row], zp);
        let y = run(
            Op::GatherBlockQuantized(GatherBlockQuantized {
                gather_axis: 0,
                quantize_axis: 1,
                block_size: bs,
                bits: 4,
            }),
            &[
                Some(&Tensor::from_vec(vec![v, k / 2], packed)),
                Some(&Tensor::from_vec(vec![2, 2], idx)),
                Some(&Tensor::from_vec(vec![v, blocks], scales)),
                with_zp.then_some(&zt),
            ],
        )
        .remove(0);
        assert_eq!(y.shape(), &[2, 2, k]);
        // One f32 product per value: 1e-6 of the scale.
        assert_close(
            &format!("GatherBlockQuantized v{v} k{k} zp{with_zp}"),
            y.f32s().unwrap(),
            &want,
            1e-6,
        );
    }
}

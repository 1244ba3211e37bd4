//! MatMulMultiRotary's kernel against its primitive form
//! (`mat_mul_multi_rotary_slow`: MatMul per weight, Slice for the caches,
//! RotaryEmbedding per rotated output) on fresh random inputs (seed printed;
//! CELLM_TEST_SEED replays one), f32 and f16 weights, odd K and N, one and
//! several rows, both rotary layouts, partial rotary and num_heads 0.
//!
//! Tolerance |fast − slow| ≤ 1e-5·max(1, |slow|): the same f32 rotary code on
//! both sides; the products differ only in GEMM blocking (K ≤ 301, inputs in
//! ±1: a few f32 ulp of the sum).

use cellm_cpu::ops::eval;
use cellm_cpu::ops::mat_mul_multi_rotary::mat_mul_multi_rotary_slow;
use cellm_ir::ops::MatMulMultiRotary;
use cellm_ir::{DType, Op, Tensor};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn rng() -> StdRng {
    let s = std::env::var("CELLM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    println!("seed {s} (CELLM_TEST_SEED to replay)");
    StdRng::seed_from_u64(s)
}

fn randt(r: &mut StdRng, shape: &[usize], dtype: DType) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| r.random_range(-1.0..1.0)).collect();
    match dtype {
        DType::F16 => Tensor::from_vec(
            shape.to_vec(),
            v.into_iter().map(f16::from_f32).collect::<Vec<_>>(),
        ),
        _ => Tensor::from_vec(shape.to_vec(), v),
    }
}

/// (lead dims, K, [q heads, k heads], head size, rotary dim attr, N of v).
type Case = (Vec<usize>, usize, [usize; 2], usize, usize, Option<usize>);

#[test]
fn fused_kernel_matches_primitives() {
    let mut r = rng();
    let max_pos = 50;
    let cases: [Case; 5] = [
        (vec![1, 1], 301, [9, 3], 64, 0, Some(192)),
        (vec![1, 3], 37, [3, 1], 10, 0, Some(7)),
        (vec![3, 1], 45, [3, 1], 10, 6, Some(13)),
        (vec![2, 5], 33, [0, 0], 10, 0, None),
        (vec![1, 4], 17, [2, 2], 8, 4, Some(9)),
    ];
    for (lead, k, heads, hs, rd, nv) in cases {
        for wt in [DType::F32, DType::F16] {
            for interleaved in [false, true] {
                // Cache width C: the rotary's half when rd is set, else hs/2.
                let c = if rd > 0 { rd / 2 + 1 } else { hs / 2 };
                let op = MatMulMultiRotary {
                    interleaved,
                    num_heads: heads,
                    rotary_embedding_dim: rd,
                    scale: 1.0,
                    f16_outputs: vec![],
                };
                let mut a_shape = lead.clone();
                a_shape.push(k);
                let a = randt(&mut r, &a_shape, DType::F32);
                let (b, s) = (lead[0], lead[1]);
                let pos = Tensor::from_vec(
                    vec![b, s],
                    (0..b * s)
                        .map(|_| r.random_range(0..max_pos as i64))
                        .collect::<Vec<_>>(),
                );
                let cs = randt(&mut r, &[max_pos, 2 * c], DType::F32);
                let nq = heads[0].max(1) * hs;
                let nk = heads[1].max(1) * hs;
                let mut ws = vec![randt(&mut r, &[k, nq], wt), randt(&mut r, &[k, nk], wt)];
                if let Some(nv) = nv {
                    ws.push(randt(&mut r, &[k, nv], wt));
                }
                let mut ins = vec![Some(&a), Some(&pos), Some(&cs)];
                ins.extend(ws.iter().map(Some));
                let what = format!("{op:?} A {a_shape:?} weights {wt}");
                let fast = eval(&Op::MatMulMultiRotary(op.clone()), &ins)
                    .unwrap_or_else(|e| panic!("{what}: {e:#}"));
                let slow = mat_mul_multi_rotary_slow(&op, &ins)
                    .unwrap_or_else(|e| panic!("{what}: slow: {e:#}"));
                assert_eq!(fast.len(), ws.len(), "{what}");
                assert_eq!(fast.len(), slow.len(), "{what}");
                for (j, (f, s)) in fast.iter().zip(&slow).enumerate() {
                    assert_eq!(f.shape(), s.shape(), "{what} output {j}");
                    let (f, s) = (f.to_f32_vec().unwrap(), s.to_f32_vec().unwrap());
                    for (i, (x, y)) in f.iter().zip(&s).enumerate() {
                        let err = (x - y).abs() / y.abs().max(1.0);
                        assert!(err <= 1e-5, "{what} output {j}[{i}]: {x} vs {y}");
                    }
                }
            }
        }
    }
}

#[test]
fn positions_outside_the_cache_are_an_error() {
    let mut r = rng();
    let op = MatMulMultiRotary {
        interleaved: false,
        num_heads: [1, 1],
        rotary_embedding_dim: 0,
        scale: 1.0,
        f16_outputs: vec![],
    };
    let a = randt(&mut r, &[1, 1, 8], DType::F32);
    let cs = randt(&mut r, &[4, 4], DType::F32);
    let w = randt(&mut r, &[8, 4], DType::F32);
    let pos = Tensor::from_vec(vec![1, 1], vec![4i64]);
    let ins = [Some(&a), Some(&pos), Some(&cs), Some(&w), Some(&w)];
    let e = eval(&Op::MatMulMultiRotary(op), &ins).unwrap_err();
    assert!(format!("{e:#}").contains("outside the cache"), "{e:#}");
}

/// `f16_outputs` (the keys and values of an f16 KV cache): those outputs are
/// the f32 outputs rounded to f16 once, bit for bit; the others are unchanged.
/// The same holds for the primitive form.
#[test]
fn f16_outputs_are_the_f32_outputs_rounded() {
    let mut r = rng();
    for (rows, nv) in [(1usize, Some(24usize)), (5, Some(24)), (3, None)] {
        let mut op = MatMulMultiRotary {
            interleaved: false,
            num_heads: [3, 1],
            rotary_embedding_dim: 0,
            scale: 1.0,
            f16_outputs: vec![],
        };
        let k = 37;
        let a = randt(&mut r, &[1, rows, k], DType::F32);
        let pos = Tensor::from_vec(
            vec![1, rows],
            (0..rows as i64).map(|p| p + 3).collect::<Vec<_>>(),
        );
        let cs = randt(&mut r, &[16, 8], DType::F32);
        let mut ws = vec![
            randt(&mut r, &[k, 24], DType::F16),
            randt(&mut r, &[k, 8], DType::F16),
        ];
        if let Some(nv) = nv {
            ws.push(randt(&mut r, &[k, nv], DType::F16));
        }
        let mut ins = vec![Some(&a), Some(&pos), Some(&cs)];
        ins.extend(ws.iter().map(Some));
        let want = eval(&Op::MatMulMultiRotary(op.clone()), &ins).unwrap();
        op.f16_outputs = (1..ws.len()).collect();
        let fast = eval(&Op::MatMulMultiRotary(op.clone()), &ins).unwrap();
        let slow = mat_mul_multi_rotary_slow(&op, &ins).unwrap();
        for got in [&fast, &slow] {
            assert_eq!(got.len(), want.len());
            assert_eq!(got[0].dtype(), DType::F32);
            for (j, t) in got.iter().enumerate().skip(1) {
                assert_eq!(t.dtype(), DType::F16, "rows {rows} output {j}");
            }
        }
        assert_eq!(fast[0].f32s().unwrap(), want[0].f32s().unwrap());
        for j in 1..want.len() {
            let rounded: Vec<u16> = want[j]
                .f32s()
                .unwrap()
                .iter()
                .map(|&v| f16::from_f32(v).to_bits())
                .collect();
            let got: Vec<u16> = fast[j]
                .to_f32_vec()
                .unwrap()
                .iter()
                .map(|&v| f16::from_f32(v).to_bits())
                .collect();
            assert_eq!(got, rounded, "rows {rows} output {j}");
        }
    }
}

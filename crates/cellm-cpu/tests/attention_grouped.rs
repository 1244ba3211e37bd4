//! Grouped-query MultiHeadAttention (the decoder runtime's form) on the CPU,
//! fresh random inputs (seed printed, CELLM_TEST_SEED replays one):
//! - one query row (a decode step: `attention_rows` splits the keys into one
//!   range per core, AVX2 kernels where the head size is a multiple of 8,
//!   portable loops otherwise) against a naive reference written out here,
//!   with a per-head attention bias, a key padding mask, both cache layouts,
//!   1 to 4 query heads per key/value head, batch 2. Tolerance
//!   1e-5·max(1, |ref|): the same f32 math summed in another order (≤ 300
//!   keys, head dim ≤ 64, outputs O(1));
//! - f16 keys/values under an f32 query (an f16 KV cache, `--dtype f16`): the
//!   kernel widens a few keys at a time, so its output must equal, bit for
//!   bit, the output for the same keys/values widened up front. Decode and
//!   causal prefill rows, with and without a key padding mask, one key range
//!   and several.

use cellm_cpu::ops::eval;
use cellm_ir::Tensor;
use cellm_testkit::causal_gqa as gqa;
use half::f16;
use rand::rngs::StdRng;
use rand::Rng;

fn rng() -> StdRng {
    cellm_testkit::seeded_rng()
}

fn rand_vec(r: &mut StdRng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

#[test]
fn decode_step_matches_naive_attention() {
    let mut r = rng();
    let b = 2;
    for (t, d, g, rep, bnsh) in [
        (300usize, 32usize, 3usize, 3usize, false),
        // The decoder's head size, split over the cores.
        (260, 64, 3, 3, false),
        // A head size the AVX2 kernels do not take.
        (150, 12, 2, 3, true),
        (17, 8, 2, 4, true),
        (64, 16, 1, 1, false),
        (5, 8, 4, 2, true),
    ] {
        let h = g * rep;
        let q = rand_vec(&mut r, b * h * d, -1.0, 1.0);
        let k = rand_vec(&mut r, b * t * g * d, -1.0, 1.0);
        let v = rand_vec(&mut r, b * t * g * d, 0.0, 2.0);
        let bias = rand_vec(&mut r, b * h * t, -2.0, 0.0);
        // Key t of batch bi is padded when (t + bi) % 5 == 2 (never all keys).
        let mask: Vec<i64> = (0..b * t)
            .map(|i| i64::from((i % t + i / t) % 5 != 2))
            .collect();
        // Element (bi, kv head, key, dim) in the chosen layout.
        let at = |bi: usize, gi: usize, ti: usize, di: usize| {
            if bnsh {
                ((bi * g + gi) * t + ti) * d + di
            } else {
                ((bi * t + ti) * g + gi) * d + di
            }
        };
        let scale = 1.0 / (d as f32).sqrt();
        let mut want = vec![0f32; b * h * d];
        for bi in 0..b {
            for hi in 0..h {
                let gi = hi / rep;
                let mut s: Vec<f32> = (0..t)
                    .map(|ti| {
                        let dot: f32 = (0..d)
                            .map(|di| q[(bi * h + hi) * d + di] * k[at(bi, gi, ti, di)])
                            .sum();
                        let pad = if mask[bi * t + ti] == 0 {
                            -10000.0
                        } else {
                            0.0
                        };
                        scale * dot + bias[(bi * h + hi) * t + ti] + pad
                    })
                    .collect();
                let mx = s.iter().cloned().fold(f32::MIN, f32::max);
                s.iter_mut().for_each(|x| *x = (*x - mx).exp());
                let sum: f32 = s.iter().sum();
                for di in 0..d {
                    want[(bi * h + hi) * d + di] =
                        (0..t).map(|ti| s[ti] / sum * v[at(bi, gi, ti, di)]).sum();
                }
            }
        }
        let kv_shape = if bnsh {
            vec![b, g, t, d]
        } else {
            vec![b, t, g * d]
        };
        let op = gqa(h, g);
        let ins = [
            Tensor::from_vec(vec![b, 1, h * d], q),
            Tensor::from_vec(kv_shape.clone(), k),
            Tensor::from_vec(kv_shape, v),
            Tensor::from_vec(vec![b, t], mask),
            Tensor::from_vec(vec![b, h, 1, t], bias),
        ];
        let got = eval(
            &op,
            &[
                Some(&ins[0]),
                Some(&ins[1]),
                Some(&ins[2]),
                None,
                Some(&ins[3]),
                Some(&ins[4]),
            ],
        )
        .unwrap_or_else(|e| panic!("{e:#}"))
        .remove(0);
        assert_eq!(got.shape(), [b, 1, h * d]);
        for (i, (x, y)) in got.f32s().unwrap().iter().zip(&want).enumerate() {
            let err = (x - y).abs() / y.abs().max(1.0);
            assert!(
                err <= 1e-5,
                "t={t} d={d} g={g} rep={rep} bnsh={bnsh} [{i}]: {x} vs {y}"
            );
        }
    }
}

fn halves(r: &mut StdRng, shape: &[usize]) -> (Tensor, Tensor) {
    let n: usize = shape.iter().product();
    let h: Vec<f16> = (0..n)
        .map(|_| f16::from_f32(r.random_range(-2.0..2.0)))
        .collect();
    let wide: Vec<f32> = h.iter().map(|v| v.to_f32()).collect();
    (
        Tensor::from_vec(shape.to_vec(), h),
        Tensor::from_vec(shape.to_vec(), wide),
    )
}

/// (batch, query rows, keys, head dim, heads, kv heads, 4-D layout, mask)
type Case = (usize, usize, usize, usize, usize, usize, bool, bool);

#[test]
fn f16_keys_values_equal_widened_f32() {
    let mut r = rng();
    let cases: [Case; 5] = [
        (1, 1, 70, 16, 6, 2, false, false),
        // Several key ranges, each widened in several pieces.
        (1, 1, 200, 64, 9, 3, false, true),
        (2, 1, 33, 8, 4, 4, true, true),
        (2, 5, 12, 8, 9, 3, false, true),
        (1, 4, 4, 32, 2, 1, true, false),
    ];
    for (b, s, t, d, h, g, bnsh, masked) in cases {
        let kv_shape = if bnsh {
            vec![b, g, t, d]
        } else {
            vec![b, t, g * d]
        };
        let q: Vec<f32> = (0..b * s * h * d)
            .map(|_| r.random_range(-1.0..1.0))
            .collect();
        let q = Tensor::from_vec(vec![b, s, h * d], q);
        let (k16, k32) = halves(&mut r, &kv_shape);
        let (v16, v32) = halves(&mut r, &kv_shape);
        let mask = masked.then(|| {
            let m: Vec<i64> = (0..b * t).map(|_| i64::from(r.random_bool(0.8))).collect();
            Tensor::from_vec(vec![b, t], m)
        });
        let op = gqa(h, g);
        let run = |k: &Tensor, v: &Tensor| {
            eval(&op, &[Some(&q), Some(k), Some(v), None, mask.as_ref()])
                .unwrap_or_else(|e| panic!("{e:#}"))
                .remove(0)
        };
        let (mixed, wide) = (run(&k16, &v16), run(&k32, &v32));
        let what = format!("b={b} s={s} t={t} d={d} h={h} g={g} bnsh={bnsh} mask={masked}");
        assert_eq!(mixed.dtype(), cellm_ir::DType::F32, "{what}");
        assert_eq!(mixed.shape(), wide.shape(), "{what}");
        let (x, y) = (mixed.f32s().unwrap(), wide.f32s().unwrap());
        let diff = x
            .iter()
            .zip(y)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(diff, 0, "{what}: {diff} of {} outputs differ", y.len());
    }
}

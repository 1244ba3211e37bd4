//! Grouped-query MultiHeadAttention over f16 keys/values under an f32 query
//! (an f16 KV cache, `--dtype f16`): the kernel widens one key/value head at
//! a time, so its output must equal, bit for bit, the output for the same
//! keys/values widened to f32 up front (same f32 values, same sums). Both
//! cache layouts, several heads per group, decode and causal prefill rows,
//! with and without a key padding mask; fresh random inputs (seed printed,
//! CELLM_TEST_SEED replays one).

use cellm_cpu::ops::eval;
use cellm_ir::ops::MultiHeadAttention;
use cellm_ir::{Op, Tensor};
use half::f16;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn rng() -> StdRng {
    let s = std::env::var("CELLM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("seed {s} (CELLM_TEST_SEED to replay)");
    StdRng::seed_from_u64(s)
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
    let cases: [Case; 4] = [
        (1, 1, 70, 16, 6, 2, false, false),
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
        let op = Op::MultiHeadAttention(MultiHeadAttention {
            num_heads: h,
            scale: None,
            mask_filter_value: -10000.0,
            unidirectional: true,
            kv_num_heads: Some(g),
        });
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

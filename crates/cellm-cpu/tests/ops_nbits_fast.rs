//! MatMulNBits' streaming kernel (`run_fast`, decode) and panel kernel
//! (`run_panels`, prefill) against the dequantize-then-GEMM path
//! (`run_slow`) and a naive f64 product computed here from the codes the test
//! generates before packing them. Fresh random inputs each run: 4 and 8 bits,
//! odd K and N, K not a multiple of the block, zero points absent / packed /
//! float, f32 and f16 scales, f32 and f16 A, with and without bias, 1..20
//! rows, the SIMD and portable kernels, and thread pools of 1 and 3 threads
//! (uneven column splits). Prints its seed; CELLM_TEST_SEED replays one.

use cellm_cpu::ops::mat_mul_n_bits::{
    run, run_fast, run_fast_portable, run_panels, run_panels_portable, run_slow,
};
use cellm_ir::ops::MatMulNBits;
use cellm_ir::{DType, Tensor};
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
                .unwrap_or(11)
        });
    eprintln!("seed {seed}");
    StdRng::seed_from_u64(seed)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Zp {
    Absent,
    Packed,
    Float,
}

struct Case {
    bits: usize,
    bs: usize,
    k: usize,
    n: usize,
    m: usize,
    zp: Zp,
    f16_scales: bool,
    f16_a: bool,
    bias: bool,
}

/// max |got - want| <= tol * max(1, max |want|).
fn assert_close(what: &str, got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1f64, |m, v| m.max(v.abs()));
    let worst = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| {
            if g.is_finite() {
                (g as f64 - w).abs()
            } else {
                f64::INFINITY
            }
        })
        .fold(0f64, f64::max);
    assert!(
        worst <= tol * scale,
        "{what}: max|Δ| {worst:e} > {tol:e}·{scale}"
    );
}

fn check(r: &mut StdRng, c: &Case) {
    let Case {
        bits, bs, k, n, m, ..
    } = *c;
    let blocks = k.div_ceil(bs);
    let levels = 1u16 << bits;
    // Codes for every slot, the padding of the last block included (it must be ignored).
    let codes: Vec<u8> = (0..n * blocks * bs)
        .map(|_| r.random_range(0..levels) as u8)
        .collect();
    let packed: Vec<u8> = if bits == 4 {
        codes.chunks(2).map(|p| p[0] | (p[1] << 4)).collect()
    } else {
        codes.clone()
    };
    let round = |v: f32, f16s: bool| {
        if f16s {
            f16::from_f32(v).to_f32()
        } else {
            v
        }
    };
    let scales: Vec<f32> = (0..n * blocks)
        .map(|_| round(r.random_range(-0.3f32..0.3), c.f16_scales))
        .collect();
    // Integer zero points (packed), or fractional ones (float, like Q4_1's -m/d).
    let zp_int: Vec<u8> = (0..n * blocks)
        .map(|_| r.random_range(0..levels) as u8)
        .collect();
    let zp_float: Vec<f32> = (0..n * blocks)
        .map(|_| round(r.random_range(-2.0f32..(levels as f32 + 2.0)), c.f16_scales))
        .collect();
    let zp_of = |i: usize| -> f64 {
        match c.zp {
            Zp::Absent => f64::from(levels / 2),
            Zp::Packed => f64::from(zp_int[i]),
            Zp::Float => f64::from(zp_float[i]),
        }
    };
    let a: Vec<f32> = (0..m * k)
        .map(|_| round(r.random_range(-2.0f32..2.0), c.f16_a))
        .collect();
    let bias: Vec<f32> = (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect();
    let mut want = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = if c.bias { f64::from(bias[j]) } else { 0.0 };
            for kk in 0..k {
                let (b, off) = (kk / bs, kk % bs);
                let q = f64::from(codes[(j * blocks + b) * bs + off]);
                let w = (q - zp_of(j * blocks + b)) * f64::from(scales[j * blocks + b]);
                s += f64::from(a[i * k + kk]) * w;
            }
            want[i * n + j] = s;
        }
    }

    let a_t = if c.f16_a {
        Tensor::from_vec(
            vec![m, k],
            a.iter().map(|&v| f16::from_f32(v)).collect::<Vec<_>>(),
        )
    } else {
        Tensor::from_vec(vec![m, k], a.clone())
    };
    let b_t = Tensor::from_vec(vec![n, blocks, bs * bits / 8], packed);
    let floats = |v: &[f32]| {
        if c.f16_scales {
            Tensor::from_vec(
                vec![n * blocks],
                v.iter().map(|&s| f16::from_f32(s)).collect::<Vec<_>>(),
            )
        } else {
            Tensor::from_vec(vec![n * blocks], v.to_vec())
        }
    };
    let s_t = floats(&scales);
    let z_t = match c.zp {
        Zp::Absent => None,
        Zp::Float => Some(floats(&zp_float)),
        Zp::Packed => {
            let per_row = (blocks * bits).div_ceil(8);
            let mut z = vec![0u8; n * per_row];
            for row in 0..n {
                for b in 0..blocks {
                    let v = zp_int[row * blocks + b];
                    if bits == 8 {
                        z[row * per_row + b] = v;
                    } else {
                        z[row * per_row + b / 2] |= v << (4 * (b % 2));
                    }
                }
            }
            Some(Tensor::from_vec(vec![n, per_row], z))
        }
    };
    let bias_t = Tensor::from_vec(vec![n], bias);
    let op = MatMulNBits {
        k,
        n,
        bits,
        block_size: bs,
    };
    let ins = [
        Some(&a_t),
        Some(&b_t),
        Some(&s_t),
        z_t.as_ref(),
        None,
        c.bias.then_some(&bias_t),
    ];
    let what = format!(
        "bits {bits} block {bs} K {k} N {n} rows {m} zp {:?} f16 scales {} f16 A {} bias {}",
        c.zp, c.f16_scales, c.f16_a, c.bias
    );
    let get = |y: Result<Vec<Tensor>, anyhow::Error>, path: &str| -> Vec<f32> {
        let y = y.unwrap_or_else(|e| panic!("{what} {path}: {e:#}"));
        assert_eq!(y.len(), 1, "{what} {path}: one output");
        assert_eq!(y[0].shape(), &[m, n], "{what} {path}: shape");
        let want_dtype = if c.f16_a { DType::F16 } else { DType::F32 };
        assert_eq!(y[0].dtype(), want_dtype, "{what} {path}: dtype");
        y[0].to_f32_vec().expect("float output")
    };
    let fast = get(run_fast(&op, &ins), "fast");
    let slow = get(run_slow(&op, &ins), "slow");
    let auto = get(run(&op, &ins), "run");
    let portable = get(run_fast_portable(&op, &ins), "portable");
    let panels = get(run_panels(&op, &ins), "panels");
    let panels_portable = get(run_panels_portable(&op, &ins), "panels portable");
    // f32 sums of ≤ ~400 products of |x| ≤ 2 and |w| ≲ 80: the order of the
    // terms differs between the paths (block sums, zero-point split), so 1e-5
    // of the largest output. An f16 output adds its rounding (2^-11 relative).
    let tol = if c.f16_a { 1e-3 } else { 1e-5 };
    assert_close(&format!("{what}: fast vs naive"), &fast, &want, tol);
    assert_close(&format!("{what}: slow vs naive"), &slow, &want, tol);
    let slow64: Vec<f64> = slow.iter().map(|&v| f64::from(v)).collect();
    assert_close(&format!("{what}: fast vs slow"), &fast, &slow64, tol);
    assert_close(&format!("{what}: run vs slow"), &auto, &slow64, tol);
    assert_close(
        &format!("{what}: portable vs slow"),
        &portable,
        &slow64,
        tol,
    );
    assert_close(&format!("{what}: panels vs naive"), &panels, &want, tol);
    assert_close(&format!("{what}: panels vs slow"), &panels, &slow64, tol);
    assert_close(
        &format!("{what}: panels portable vs slow"),
        &panels_portable,
        &slow64,
        tol,
    );
}

fn random_case(r: &mut StdRng, i: usize) -> Case {
    let bits = if i % 3 == 2 { 8 } else { 4 };
    let bs = [16usize, 32, 64, 128][r.random_range(0..4)];
    // Odd K, usually not a multiple of the block (the last block is padded).
    let k = bs * r.random_range(0..3usize) + 2 * r.random_range(0..bs / 2) + 1;
    let n = 2 * r.random_range(0..40usize) + 1;
    Case {
        bits,
        bs,
        k,
        n,
        m: 1 + i % 20,
        zp: [Zp::Absent, Zp::Packed, Zp::Float][r.random_range(0..3)],
        f16_scales: r.random_bool(0.5),
        f16_a: r.random_bool(0.25),
        bias: r.random_bool(0.5),
    }
}

#[test]
fn nbits_fast_matches_slow_and_naive() {
    let mut r = rng();
    for i in 0..60 {
        let c = random_case(&mut r, i);
        check(&mut r, &c);
    }
}

/// Whole-block K (every block full), the layout `.cellm` Q4/Q8 weights have.
#[test]
fn nbits_fast_whole_blocks() {
    let mut r = rng();
    for (i, &(bits, zp)) in [(4, Zp::Float), (4, Zp::Absent), (8, Zp::Absent)]
        .iter()
        .enumerate()
    {
        let c = Case {
            bits,
            bs: 32,
            k: 32 * r.random_range(1..12usize),
            n: r.random_range(1..200usize),
            m: 1 + i,
            zp,
            f16_scales: false,
            f16_a: false,
            bias: false,
        };
        check(&mut r, &c);
    }
}

/// Columns split over tasks: 1 thread (one task) and 3 threads (uneven splits).
#[test]
fn nbits_fast_thread_splits() {
    let mut r = rng();
    for threads in [1usize, 3] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        pool.install(|| {
            for m in [1usize, 2, 5, 8, 12] {
                // rows·K·N well above the inline-work threshold, N odd.
                // 12 rows take the panel kernel: a short K makes wide panels
                // (65536 floats / K columns), so N spans several tasks.
                let (k, n) = if m == 12 {
                    (64 + 7, 2 * r.random_range(600..900usize) + 1)
                } else {
                    (32 * 9 + 7, 2 * r.random_range(100..200usize) + 1)
                };
                let c = Case {
                    bits: if m == 5 { 8 } else { 4 },
                    bs: 32,
                    k,
                    n,
                    m,
                    zp: if m == 2 { Zp::Packed } else { Zp::Float },
                    f16_scales: m == 8,
                    f16_a: false,
                    bias: m == 1,
                };
                check(&mut r, &c);
            }
        });
    }
}

#[test]
fn nbits_rejects_bad_inputs() {
    let a = Tensor::from_vec(vec![1, 32], vec![0f32; 32]);
    let b = Tensor::from_vec(vec![3, 1, 16], vec![0u8; 48]);
    let s = Tensor::from_vec(vec![3], vec![1f32; 3]);
    let op = |bits, k| MatMulNBits {
        k,
        n: 3,
        bits,
        block_size: 32,
    };
    assert!(run_fast(&op(4, 32), &[Some(&a), Some(&b), Some(&s)]).is_ok());
    // 3 bits, a B too small for 8 bits, and A's K differing from the op's.
    assert!(run_fast(&op(3, 32), &[Some(&a), Some(&b), Some(&s)]).is_err());
    assert!(run_fast(&op(8, 32), &[Some(&a), Some(&b), Some(&s)]).is_err());
    let a20 = Tensor::from_vec(vec![1, 20], vec![0f32; 20]);
    assert!(run_fast(&op(4, 32), &[Some(&a20), Some(&b), Some(&s)]).is_err());
    // Float zero points of another dtype than the scales.
    let z = Tensor::from_vec(vec![3], vec![f16::from_f32(8.0); 3]);
    assert!(run_fast(&op(4, 32), &[Some(&a), Some(&b), Some(&s), Some(&z)]).is_err());
}

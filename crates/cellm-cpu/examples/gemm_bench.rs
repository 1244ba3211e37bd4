//! Kernel micro-benchmarks (best of N runs), for tuning the CPU kernels:
//!
//! ```sh
//! cargo run --release -p cellm-cpu --example gemm_bench            # MatMul shapes vs gemm
//! cargo run --release -p cellm-cpu --example gemm_bench -- attn    # one attention head, softmax, GELU
//! cargo run --release -p cellm-cpu --example gemm_bench -- f16     # f32 A x f16 B (MatMul, MatMulEpilogue)
//! cargo run --release -p cellm-cpu --example gemm_bench -- decode  # one decode step's MatMuls, f32 vs f16
//! cargo run --release -p cellm-cpu --example gemm_bench -- one     # 576x192 f16 alone (for perf)
//! ```
use cellm_ir::ops::MatMul;
use cellm_ir::Tensor;
fn best(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut b = f64::MAX;
    for _ in 0..reps {
        let t = std::time::Instant::now();
        f();
        b = b.min(t.elapsed().as_secs_f64());
    }
    b
}
fn main() {
    if std::env::args().any(|a| a == "one") {
        let (k, n) = (576usize, 192usize);
        let w = Tensor::from_vec(
            vec![k, n],
            (0..k * n)
                .map(|i| half::f16::from_f32((i % 5) as f32 * 0.1))
                .collect::<Vec<_>>(),
        );
        let a = Tensor::from_vec(vec![1, 1, k], vec![0.1f32; k]);
        let t = best(20000, || {
            let _ =
                cellm_cpu::ops::eval(&cellm_ir::Op::MatMul(MatMul), &[Some(&a), Some(&w)]).unwrap();
        });
        println!("576x192 f16: {:.2} us", t * 1e6);
        return;
    }
    if std::env::args().any(|a| a == "decode") {
        decode_sequence();
        return;
    }
    if std::env::args().any(|a| a == "f16") {
        f16_weights();
        return;
    }
    if std::env::args().any(|a| a == "attn") {
        attention_shapes();
        return;
    }
    let shapes = [
        (1usize, 576usize, 1536usize),
        (1, 1536, 576),
        (1, 576, 49280),
        (4, 576, 1536),
        (80, 576, 1536),
        (80, 1536, 576),
        (80, 576, 49280),
        (1024, 768, 768),
        (1024, 768, 3072),
    ];
    for (m, k, n) in shapes {
        let a = Tensor::from_vec(
            vec![m, k],
            (0..m * k)
                .map(|i| (i % 7) as f32 * 0.1)
                .collect::<Vec<f32>>(),
        );
        // Several B copies so small ones are not all served from cache.
        let copies = (64 << 20) / (k * n * 4) + 1;
        let bs: Vec<Tensor> = (0..copies)
            .map(|c| {
                Tensor::from_vec(
                    vec![k, n],
                    (0..k * n)
                        .map(|i| ((i + c) % 5) as f32 * 0.1)
                        .collect::<Vec<f32>>(),
                )
            })
            .collect();
        let reps = (4e9 / (2.0 * (m * k * n) as f64)).clamp(5.0, 3000.0) as usize;
        let mut i = 0;
        let t = best(reps, || {
            i += 1;
            let _ = cellm_cpu::ops::eval(
                &cellm_ir::Op::MatMul(MatMul),
                &[Some(&a), Some(&bs[i % copies])],
            )
            .unwrap();
        });
        let mut c = vec![0f32; m * n];
        let av = a.f32s().unwrap();
        let t2 = best(reps, || {
            i += 1;
            let bv = bs[i % copies].f32s().unwrap();
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    av.as_ptr(),
                    1,
                    k as isize,
                    bv.as_ptr(),
                    1,
                    n as isize,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::Rayon(0),
                )
            };
        });
        let gf = |t: f64| 2.0 * (m * k * n) as f64 / t / 1e9;
        println!("{m:5}x{k:5}x{n:6}: cellm {:8.3} ms {:6.1} GF/s {:5.1} GB/s | gemm {:8.3} ms {:6.1} GF/s {:5.1} GB/s", t * 1e3, gf(t), (k * n * 4) as f64 / t / 1e9, t2 * 1e3, gf(t2), (k * n * 4) as f64 / t2 / 1e9);
    }
}

/// The two GEMMs of one attention head in the vision encoder (seq 1024, head dim 64, hidden 768).
#[allow(dead_code)]
pub fn attention_shapes() {
    let (s, d, h) = (1024usize, 64usize, 768usize);
    let q: Vec<f32> = (0..s * h).map(|i| (i % 7) as f32 * 0.01).collect();
    let k: Vec<f32> = (0..s * d).map(|i| (i % 5) as f32 * 0.01).collect();
    let mut scores = vec![0f32; s * s];
    let mut out = vec![0f32; s * h];
    for par in [gemm::Parallelism::None, gemm::Parallelism::Rayon(0)] {
        let t = best(20, || unsafe {
            gemm::gemm(
                s,
                s,
                d,
                scores.as_mut_ptr(),
                1,
                s as isize,
                true,
                q.as_ptr(),
                1,
                h as isize,
                k.as_ptr(),
                d as isize,
                1,
                1.0f32,
                0.125f32,
                false,
                false,
                false,
                par,
            )
        });
        let t2 = best(20, || unsafe {
            gemm::gemm(
                s,
                d,
                s,
                out.as_mut_ptr(),
                1,
                h as isize,
                false,
                scores.as_ptr(),
                1,
                s as isize,
                k.as_ptr(),
                1,
                d as isize,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                par,
            )
        });
        let gf = |t: f64| 2.0 * (s * s * d) as f64 / t / 1e9;
        println!(
            "attention {par:?}: QK^T {:.3} ms {:.1} GF/s, AV {:.3} ms {:.1} GF/s",
            t * 1e3,
            gf(t),
            t2 * 1e3,
            gf(t2)
        );
    }
    // Rows split in two by hand, each half single-threaded.
    let half = s / 2;
    let t2 = best(20, || {
        let (o1, o2) = out.split_at_mut(half * h);
        let (p1, p2) = (o1.as_mut_ptr() as usize, o2.as_mut_ptr() as usize);
        let sc = scores.as_ptr() as usize;
        let kp = k.as_ptr() as usize;
        rayon::join(
            || unsafe {
                gemm::gemm(
                    half,
                    d,
                    s,
                    p1 as *mut f32,
                    1,
                    h as isize,
                    false,
                    sc as *const f32,
                    1,
                    s as isize,
                    kp as *const f32,
                    1,
                    d as isize,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            },
            || unsafe {
                gemm::gemm(
                    half,
                    d,
                    s,
                    p2 as *mut f32,
                    1,
                    h as isize,
                    false,
                    (sc as *const f32).add(half * s),
                    1,
                    s as isize,
                    kp as *const f32,
                    1,
                    d as isize,
                    0.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            },
        );
    });
    println!("AV split rows by hand: {:.3} ms", t2 * 1e3);
    let mut x: Vec<f32> = (0..s * s).map(|i| (i % 13) as f32 * 0.3).collect();
    let t = best(20, || {
        for row in x.chunks_mut(s) {
            let m = cellm_cpu::vmath::max_slice(row);
            let sum = cellm_cpu::vmath::exp_sub_sum(row, m);
            cellm_cpu::vmath::scale_slice(row, 1.0 / sum);
        }
    });
    println!("softmax 1024x1024 one thread: {:.3} ms", t * 1e3);
    let t_max = best(20, || {
        std::hint::black_box(cellm_cpu::vmath::max_slice(&x));
    });
    let t_exp = best(20, || {
        std::hint::black_box(cellm_cpu::vmath::exp_sub_sum(&mut x, 0.5));
    });
    let t_scale = best(20, || cellm_cpu::vmath::scale_slice(&mut x, 1.0001));
    let mut y = vec![0f32; x.len()];
    let t_gelu = best(20, || cellm_cpu::vmath::gelu_tanh_slice(&x, &mut y));
    println!(
        "1M: max {:.3} ms, exp_sub_sum {:.3} ms, scale {:.3} ms, gelu_tanh {:.3} ms",
        t_max * 1e3,
        t_exp * 1e3,
        t_scale * 1e3,
        t_gelu * 1e3
    );
}

/// f32 A x f16 B: MatMul against MatMulEpilogue (both through mat_mul.rs's sgemm_f16b).
pub fn f16_weights() {
    use cellm_ir::ops::MatMulEpilogue;
    for (m, k, n) in [
        (1usize, 576usize, 1536usize),
        (1, 1536, 576),
        (1, 576, 49280),
        (4, 576, 1536),
        (80, 576, 1536),
    ] {
        let a = Tensor::from_vec(
            vec![m, k],
            (0..m * k)
                .map(|i| (i % 7) as f32 * 0.1)
                .collect::<Vec<f32>>(),
        );
        let copies = (64 << 20) / (k * n * 2) + 1;
        let bs: Vec<Tensor> = (0..copies)
            .map(|c| {
                Tensor::from_vec(
                    vec![k, n],
                    (0..k * n)
                        .map(|i| half::f16::from_f32(((i + c) % 5) as f32 * 0.1))
                        .collect::<Vec<_>>(),
                )
            })
            .collect();
        let reps = (2e9 / (2.0 * (m * k * n) as f64)).clamp(5.0, 2000.0) as usize;
        let mut i = 0;
        let t1 = best(reps, || {
            i += 1;
            let _ = cellm_cpu::ops::eval(
                &cellm_ir::Op::MatMul(MatMul),
                &[Some(&a), Some(&bs[i % copies])],
            )
            .unwrap();
        });
        let t2 = best(reps, || {
            i += 1;
            let _ = cellm_cpu::ops::eval(
                &cellm_ir::Op::MatMulEpilogue(MatMulEpilogue),
                &[Some(&a), Some(&bs[i % copies]), None, None],
            )
            .unwrap();
        });
        let gbs = |t: f64| (k * n * 2) as f64 / t / 1e9;
        println!("f16 B {m:4}x{k:5}x{n:6}: MatMul {:8.3} ms {:5.1} GB/s | MatMulEpilogue {:8.3} ms {:5.1} GB/s", t1 * 1e3, gbs(t1), t2 * 1e3, gbs(t2));
    }
}

/// One decode step's MatMuls of the full-size decoder (30 layers + lm_head),
/// distinct weights, f32 (gemm) and f16 (streaming F16C kernel).
pub fn decode_sequence() {
    let mut shapes = vec![];
    for _ in 0..30 {
        shapes.extend([
            (576usize, 576usize),
            (576, 192),
            (576, 192),
            (576, 576),
            (576, 1536),
            (576, 1536),
            (1536, 576),
        ]);
    }
    shapes.push((576, 49280));
    let w32: Vec<Tensor> = shapes
        .iter()
        .map(|&(k, n)| {
            Tensor::from_vec(
                vec![k, n],
                (0..k * n)
                    .map(|i| (i % 5) as f32 * 0.1)
                    .collect::<Vec<f32>>(),
            )
        })
        .collect();
    let w16: Vec<Tensor> = shapes
        .iter()
        .map(|&(k, n)| {
            Tensor::from_vec(
                vec![k, n],
                (0..k * n)
                    .map(|i| half::f16::from_f32((i % 5) as f32 * 0.1))
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let a576 = Tensor::from_vec(vec![1, 1, 576], vec![0.1f32; 576]);
    let a1536 = Tensor::from_vec(vec![1, 1, 1536], vec![0.1f32; 1536]);
    let step = |ws: &[Tensor]| {
        for w in ws {
            let a = if w.shape()[0] == 576 { &a576 } else { &a1536 };
            let _ =
                cellm_cpu::ops::eval(&cellm_ir::Op::MatMul(MatMul), &[Some(a), Some(w)]).unwrap();
        }
    };
    for _ in 0..3 {
        let t32 = best(5, || step(&w32));
        let t16 = best(5, || step(&w16));
        println!(
            "decode step MatMuls: f32 {:.2} ms, f16 {:.2} ms",
            t32 * 1e3,
            t16 * 1e3
        );
    }
    // Per shape class, f16 vs f32.
    for &(k, n) in &[
        (576usize, 576usize),
        (576, 192),
        (576, 1536),
        (1536, 576),
        (576, 49280),
    ] {
        let i = shapes.iter().position(|&s| s == (k, n)).unwrap();
        let a = if k == 576 { &a576 } else { &a1536 };
        let t32 = best(50, || {
            let _ = cellm_cpu::ops::eval(&cellm_ir::Op::MatMul(MatMul), &[Some(a), Some(&w32[i])])
                .unwrap();
        });
        let t16 = best(50, || {
            let _ = cellm_cpu::ops::eval(&cellm_ir::Op::MatMul(MatMul), &[Some(a), Some(&w16[i])])
                .unwrap();
        });
        println!(
            "  {k}x{n}: f32 {:.1} us, f16 {:.1} us (hot cache)",
            t32 * 1e6,
            t16 * 1e6
        );
    }
}

//! Scratch: times cellm-cpu MatMul on decoder/vision shapes (best of N).
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

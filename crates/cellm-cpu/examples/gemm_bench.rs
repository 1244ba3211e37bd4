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

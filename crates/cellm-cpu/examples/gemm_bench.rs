//! Scratch: times cellm-cpu MatMul on decoder/vision shapes.
use cellm_ir::ops::MatMul;
use cellm_ir::Tensor;
fn main() {
    let shapes = [
        (1usize, 576usize, 1536usize),
        (1, 1536, 576),
        (1, 576, 49280),
        (80, 576, 1536),
        (80, 1536, 576),
        (80, 576, 576),
        (80, 576, 49280),
        (1024, 768, 768),
        (1024, 768, 3072),
        (1024, 3072, 768),
    ];
    for (m, k, n) in shapes {
        let a = Tensor::from_vec(
            vec![m, k],
            (0..m * k)
                .map(|i| (i % 7) as f32 * 0.1)
                .collect::<Vec<f32>>(),
        );
        let b = Tensor::from_vec(
            vec![k, n],
            (0..k * n)
                .map(|i| (i % 5) as f32 * 0.1)
                .collect::<Vec<f32>>(),
        );
        let reps = (2e9 / (2.0 * (m * k * n) as f64)).clamp(3.0, 2000.0) as usize;
        let mut ts = vec![];
        for _ in 0..reps {
            let t = std::time::Instant::now();
            let _ =
                cellm_cpu::ops::eval(&cellm_ir::Op::MatMul(MatMul), &[Some(&a), Some(&b)]).unwrap();
            ts.push(t.elapsed().as_secs_f64());
        }
        ts.sort_by(f64::total_cmp);
        let t = ts[ts.len() / 2];
        println!(
            "{m:5}x{k:5}x{n:6}: {:9.3} ms  {:7.1} GF/s  {:6.1} GB/s(B)",
            t * 1e3,
            2.0 * (m * k * n) as f64 / t / 1e9,
            (k * n * 4) as f64 / t / 1e9
        );
    }
}

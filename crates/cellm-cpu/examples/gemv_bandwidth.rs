//! One-row products (decode-step GEMVs) with the SmolVLM-256M decoder's
//! weight shapes, row-major against column panels, f16 and f32: GB/s of
//! weights streamed. Each shape cycles through 30 copies (3 for lm_head), as
//! a 30-layer decode step does, so most come from memory (the o projection's
//! 20 MB of f16 copies fit a 32 MB L3).
//!
//!     cargo run --release -p cellm-cpu --example gemv_bandwidth

use cellm_cpu::ops::eval;
use cellm_ir::ops::MatMul;
use cellm_ir::{DType, Op, Tensor};
use half::f16;
use std::time::Instant;

fn weight(seed: &mut u64, k: usize, n: usize, dtype: DType) -> Tensor {
    let mut next = || {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let v: Vec<f32> = (0..k * n).map(|_| next()).collect();
    match dtype {
        DType::F16 => Tensor::from_vec(
            vec![k, n],
            v.into_iter().map(f16::from_f32).collect::<Vec<_>>(),
        ),
        _ => Tensor::from_vec(vec![k, n], v),
    }
}

fn main() {
    let shapes = [
        ("gate+up", 576, 3072, 30),
        ("down", 1536, 576, 30),
        ("q,k,v", 576, 960, 30),
        ("o", 576, 576, 30),
        ("lm_head", 576, 49280, 3),
    ];
    let mut seed = 1u64;
    println!(
        "{:<8} {:>5} x {:<6} {:>5} {:>16} {:>16}",
        "weight", "K", "N", "dtype", "row-major GB/s", "panels GB/s"
    );
    for (name, k, n, copies) in shapes {
        let a = Tensor::from_vec(
            vec![1, k],
            (0..k).map(|i| (i % 7) as f32 * 0.1).collect::<Vec<_>>(),
        );
        for dtype in [DType::F16, DType::F32] {
            let rows: Vec<Tensor> = (0..copies)
                .map(|_| weight(&mut seed, k, n, dtype))
                .collect();
            let panels: Vec<Tensor> = rows
                .iter()
                .map(|t| t.to_panels(32).expect("panels"))
                .collect();
            let bytes = (k * n * dtype.size()) as f64;
            let reps = (2e9 / bytes) as usize + copies;
            let rate = |ws: &[Tensor]| {
                let mut best = f64::MAX;
                for _ in 0..3 {
                    let t = Instant::now();
                    for r in 0..reps {
                        eval(&Op::MatMul(MatMul), &[Some(&a), Some(&ws[r % copies])])
                            .expect("MatMul");
                    }
                    best = best.min(t.elapsed().as_secs_f64() / reps as f64);
                }
                bytes / best / 1e9
            };
            let (r, p) = rayon::ThreadPoolBuilder::new()
                .build()
                .expect("pool")
                .install(|| (rate(&rows), rate(&panels)));
            println!(
                "{name:<8} {k:>5} x {n:<6} {:>5} {r:>16.1} {p:>16.1}",
                dtype.to_string()
            );
        }
    }
}

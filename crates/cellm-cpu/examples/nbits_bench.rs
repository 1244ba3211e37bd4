//! MatMulNBits decode timing on SmolLM2-135M's shapes: one row of A through
//! 30 layers of 4-bit q/k/v/o/gate/up/down (float zero points, like Q4_1) and
//! an 8-bit lm_head, every weight distinct (so nothing stays in cache), as
//! one decode step reads them.
//! `cargo run --release -p cellm-cpu --example nbits_bench [rows] [reps]`;
//! RAYON_NUM_THREADS picks the threads, PATHS=fast,panels,slow the kernels.

use cellm_cpu::ops::mat_mul_n_bits::{run_fast, run_panels, run_slow};
use cellm_ir::ops::MatMulNBits;
use cellm_ir::Tensor;
use std::time::Instant;

struct Weight {
    op: MatMulNBits,
    b: Tensor,
    scales: Tensor,
    zp: Option<Tensor>,
}

fn weight(k: usize, n: usize, bits: usize, seed: &mut u64) -> Weight {
    let blocks = k / 32;
    let mut next = || {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 33) as u32
    };
    let codes: Vec<u8> = (0..n * blocks * 32 * bits / 8)
        .map(|_| next() as u8)
        .collect();
    let scales: Vec<f32> = (0..n * blocks)
        .map(|_| (next() % 1000) as f32 * 1e-5)
        .collect();
    let zp = (bits == 4).then(|| {
        Tensor::from_vec(
            vec![n * blocks],
            (0..n * blocks)
                .map(|_| (next() % 1600) as f32 * 0.01)
                .collect::<Vec<f32>>(),
        )
    });
    Weight {
        op: MatMulNBits {
            k,
            n,
            bits,
            block_size: 32,
        },
        b: Tensor::from_vec(vec![n, blocks, 32 * bits / 8], codes),
        scales: Tensor::from_vec(vec![n * blocks], scales),
        zp,
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let rows = args.first().copied().unwrap_or(1);
    let reps = args.get(1).copied().unwrap_or(10);
    let (h, ffn, kv, vocab) = (576, 1536, 192, 49152);
    let mut seed = 1u64;
    let mut layers = vec![];
    for _ in 0..30 {
        for (k, n) in [
            (h, h),
            (h, kv),
            (h, kv),
            (h, h),
            (h, ffn),
            (h, ffn),
            (ffn, h),
        ] {
            layers.push(weight(k, n, 4, &mut seed));
        }
    }
    let head = weight(h, vocab, 8, &mut seed);
    let a_h = Tensor::from_vec(vec![rows, h], vec![0.01f32; rows * h]);
    let a_f = Tensor::from_vec(vec![rows, ffn], vec![0.01f32; rows * ffn]);
    let run = |w: &Weight, path: &str| -> anyhow::Result<Tensor> {
        let a = if w.op.k == h { &a_h } else { &a_f };
        let ins = [Some(a), Some(&w.b), Some(&w.scales), w.zp.as_ref()];
        let mut y = match path {
            "fast" => run_fast(&w.op, &ins)?,
            "panels" => run_panels(&w.op, &ins)?,
            _ => run_slow(&w.op, &ins)?,
        };
        Ok(y.remove(0))
    };
    let paths = std::env::var("PATHS").unwrap_or_else(|_| "fast,panels,slow".into());
    for path in paths.split(',') {
        let fast = path != "slow";
        let mut best_layers = f64::MAX;
        let mut best_head = f64::MAX;
        for _ in 0..reps {
            let t0 = Instant::now();
            for w in &layers {
                std::hint::black_box(run(w, path)?);
            }
            let t1 = Instant::now();
            std::hint::black_box(run(&head, path)?);
            best_layers = best_layers.min((t1 - t0).as_secs_f64());
            best_head = best_head.min(t1.elapsed().as_secs_f64());
            if !fast {
                break;
            }
        }
        let bytes =
            |w: &Weight| w.b.len() + 4 * w.scales.len() + w.zp.as_ref().map_or(0, |z| 4 * z.len());
        let layer_bytes: usize = layers.iter().map(bytes).sum();
        println!(
            "{} rows {rows}, {} threads: layers {:.2} ms ({:.1} GB/s), lm_head {:.2} ms ({:.1} GB/s), total {:.2} ms",
            path,
            rayon::current_num_threads(),
            best_layers * 1e3,
            layer_bytes as f64 / best_layers / 1e9,
            best_head * 1e3,
            bytes(&head) as f64 / best_head / 1e9,
            (best_layers + best_head) * 1e3
        );
    }
    Ok(())
}

//! MatMul of f32 A with f16 B (weights stored as f16 by `--dtype f16`),
//! accumulating and returning f32.
//!
//! Few rows of A (decode steps) stream B once: each rayon task owns a slice
//! of output columns, widens B's rows into a small f32 buffer (F16C through
//! the `half` crate's slice conversion) and accumulates into its outputs, so
//! no f32 copy of the weight ever exists. More rows (prefill) widen B once
//! and take the f32 GEMM.

use anyhow::{bail, Result};
use cellm_ir::Tensor;
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

/// Up to this many rows of A stream B; above it B is widened once.
const STREAM_ROWS: usize = 8;
/// Output columns per task.
const COLS_PER_TASK: usize = 256;

/// `a` [.., M, K] f32, `b` [K, N] f16 (a 2-D weight, the form the pass makes).
pub fn run(a: &Tensor, b: &Tensor) -> Result<Option<Tensor>> {
    let (as_, bs) = (a.shape(), b.shape());
    if bs.len() != 2 || as_.len() < 2 {
        return Ok(None);
    }
    let (k, n) = (bs[0], bs[1]);
    if as_[as_.len() - 1] != k {
        bail!("MatMul: inner dims differ: A {as_:?} vs B {bs:?}");
    }
    let rows: usize = as_[..as_.len() - 1].iter().product();
    if rows > STREAM_ROWS {
        return Ok(None);
    }
    let av = a.view::<f32>()?;
    let bv = b.view::<f16>()?;
    let mut out = vec![0f32; rows * n];
    // Column blocks in parallel; each writes its own columns of every row.
    let mut blocks: Vec<(usize, Vec<f32>)> = (0..n)
        .step_by(COLS_PER_TASK)
        .map(|c0| (c0, vec![0f32; rows * COLS_PER_TASK.min(n - c0)]))
        .collect();
    blocks.par_iter_mut().for_each(|(c0, acc)| {
        let w = COLS_PER_TASK.min(n - *c0);
        let mut row = vec![0f32; w];
        for kk in 0..k {
            bv[kk * n + *c0..kk * n + *c0 + w].convert_to_f32_slice(&mut row);
            for r in 0..rows {
                let x = av[r * k + kk];
                if x == 0.0 {
                    continue;
                }
                for (o, &wv) in acc[r * w..(r + 1) * w].iter_mut().zip(&row) {
                    *o += x * wv;
                }
            }
        }
    });
    for (c0, acc) in blocks {
        let w = COLS_PER_TASK.min(n - c0);
        for r in 0..rows {
            out[r * n + c0..r * n + c0 + w].copy_from_slice(&acc[r * w..(r + 1) * w]);
        }
    }
    let mut shape = as_[..as_.len() - 1].to_vec();
    shape.push(n);
    Ok(Some(Tensor::from_vec(shape, out)))
}

/// B widened to f32 (prefill and other shapes): then the f32 GEMM runs.
pub fn widen(b: &Tensor) -> Result<Tensor> {
    let mut v = vec![0f32; b.len()];
    b.view::<f16>()?.convert_to_f32_slice(&mut v);
    Ok(Tensor::from_vec(b.shape().to_vec(), v))
}

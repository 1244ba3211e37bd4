//! CPU kernel for NonZero: `[rank, n]` i64 coordinates of the nonzero
//! elements in row-major order (a scalar counts as rank 1, like onnxruntime).

use super::common::input;
use anyhow::Result;
use cellm_ir::ops::NonZero;
use cellm_ir::shape::strides;
use cellm_ir::Tensor;

pub fn run(_op: &NonZero, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    // Every nonzero value of any dtype stays nonzero as f64 (NaN included).
    let hits: Vec<usize> = x
        .to_f64_vec()
        .iter()
        .enumerate()
        .filter(|(_, &v)| v != 0.0)
        .map(|(i, _)| i)
        .collect();
    let n = hits.len();
    let rank = x.rank().max(1);
    let st = if x.rank() == 0 {
        vec![1]
    } else {
        strides(x.shape())
    };
    let dims = if x.rank() == 0 {
        vec![1]
    } else {
        x.shape().to_vec()
    };
    let mut out = vec![0i64; rank * n];
    for (col, &flat) in hits.iter().enumerate() {
        for d in 0..rank {
            out[d * n + col] = ((flat / st[d]) % dims[d]) as i64;
        }
    }
    Ok(vec![Tensor::from_vec(vec![rank, n], out)])
}

//! CPU kernel for Shape: the input's dims as i64, sliced by `start`/`end`
//! (negative values count from the end; both are clamped to [0, rank]).

use super::common::input;
use anyhow::Result;
use cellm_ir::ops::Shape;
use cellm_ir::Tensor;

pub fn run(op: &Shape, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0)?;
    let r = x.rank() as i64;
    let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
    let start = clamp(op.start);
    let end = clamp(op.end.unwrap_or(r)).max(start);
    let dims: Vec<i64> = x.shape()[start..end].iter().map(|&d| d as i64).collect();
    Ok(vec![Tensor::from_vec(vec![dims.len()], dims)])
}

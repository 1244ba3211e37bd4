//! CPU kernel for MatMulInteger: operands minus their zero points (scalar, or
//! per row of A / per column of B) widened to i32, then the i32 MatMul.

use super::common::{input, opt_input};
use super::quantize::ints_i32;
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{MatMul, MatMulInteger};
use cellm_ir::Tensor;

/// `t` minus its zero point, as an i32 tensor; `zp` has 1 value or one per
/// index of dim `dim_from_end` (1 = last dim, 2 = second to last).
pub(crate) fn centered(
    t: &Tensor,
    zp: Option<&Tensor>,
    dim_from_end: usize,
    what: &str,
) -> Result<Tensor> {
    let mut v = ints_i32(t, what)?;
    if let Some(z) = zp {
        if z.dtype() != t.dtype() {
            bail!(
                "{what}: zero point is {} but the operand is {}",
                z.dtype(),
                t.dtype()
            );
        }
        let zv = ints_i32(z, what)?;
        if zv.len() == 1 {
            v.iter_mut().for_each(|x| *x -= zv[0]);
        } else {
            let rank = t.rank();
            if rank < dim_from_end || t.shape()[rank - dim_from_end] != zv.len() {
                bail!(
                    "{what}: zero point has {} values, operand shape is {:?}",
                    zv.len(),
                    t.shape()
                );
            }
            let inner: usize = t.shape()[rank - dim_from_end + 1..].iter().product();
            let dim = zv.len();
            v.iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x -= zv[(i / inner) % dim]);
        }
    }
    Ok(Tensor::from_vec(t.shape().to_vec(), v))
}

pub fn run(_op: &MatMulInteger, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let a = input(inputs, 0).context("MatMulInteger input A")?;
    let b = input(inputs, 1).context("MatMulInteger input B")?;
    let a_rows = if a.rank() >= 2 { 2 } else { 1 };
    let ac = centered(
        a,
        opt_input(inputs, 2),
        a_rows,
        "MatMulInteger a_zero_point",
    )?;
    let bc = centered(b, opt_input(inputs, 3), 1, "MatMulInteger b_zero_point")?;
    super::mat_mul::run(&MatMul, &[Some(&ac), Some(&bc)]).context("MatMulInteger")
}

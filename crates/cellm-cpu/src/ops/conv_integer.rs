//! CPU kernel for ConvInteger: input and weight minus their zero points (x's
//! per tensor, w's per tensor or per output channel), convolved by the float
//! Conv kernel in f32, then rounded to i32. Products of 8-bit values are exact
//! in f32; sums stay exact below 2^24, far above what these weights reach, and
//! the result is scaled back to float right after anyway.

use super::common::{input, opt_input};
use super::mat_mul_integer::centered;
use anyhow::{Context, Result};
use cellm_ir::ops::ConvInteger;
use cellm_ir::Tensor;

fn to_f32(t: &Tensor) -> Result<Tensor> {
    let v: Vec<f32> = t.view::<i32>()?.iter().map(|&x| x as f32).collect();
    Ok(Tensor::from_vec(t.shape().to_vec(), v))
}

pub fn run(op: &ConvInteger, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0).context("ConvInteger input x")?;
    let w = input(inputs, 1).context("ConvInteger input w")?;
    let xz = opt_input(inputs, 2);
    if xz.is_some_and(|z| z.len() != 1) {
        anyhow::bail!("ConvInteger: x_zero_point must be a single value");
    }
    let xc = centered(x, xz, 1, "ConvInteger x_zero_point")?;
    // Per-output-channel zero points index W's first dim.
    let wc = centered(
        w,
        opt_input(inputs, 3),
        w.rank(),
        "ConvInteger w_zero_point",
    )?;
    let y = super::conv::run(&op.conv, &[Some(&to_f32(&xc)?), Some(&to_f32(&wc)?)])
        .context("ConvInteger")?;
    let y0 = y.first().context("ConvInteger: conv gave no output")?;
    let v: Vec<i32> = y0.f32s()?.iter().map(|&f| f.round() as i32).collect();
    Ok(vec![Tensor::from_vec(y0.shape().to_vec(), v)])
}

//! Trilu (`shaders/trilu.wgsl`).

use super::{u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::Trilu;

pub fn encode(k: &mut Kern, op: &Trilu, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "Trilu input")?;
    let r = x.shape.len();
    if r < 2 {
        bail!("Trilu: input must have rank >= 2, got {:?}", x.shape);
    }
    let diag = match args.oh(1) {
        Some(t) => *t.to_i64_vec().context("Trilu k")?.first().unwrap_or(&0),
        None => 0,
    };
    let diag = diag.clamp(i32::MIN as i64, i32::MAX as i64) as i32;
    let out = k.alloc(x.dtype, x.shape.clone())?;
    let n = x.len();
    let p = [
        u32_of(n, "Trilu")?,
        u32_of(x.shape[r - 2], "Trilu")?,
        u32_of(x.shape[r - 1], "Trilu")?,
        diag as u32,
        u32::from(op.upper),
    ];
    k.dispatch_1d("trilu", &p, &[x, &out], n)?;
    Ok(vec![out])
}

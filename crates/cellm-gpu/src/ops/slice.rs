//! Slice: a strided copy starting at the clamped starts, stepping by
//! step × stride (negative for reversed slices).

use super::{infer_shapes, strided_copy, Args};
use crate::kernel::{strides, DevTensor, Kern};
use anyhow::{bail, Context, Result};
use cellm_ir::shape::normalize_axis;
use cellm_ir::Op;

/// First index of `[start::step]` over a dim of `n` (ONNX clamping).
fn first_index(n: usize, start: i64, step: i64) -> i64 {
    let n = n as i64;
    let s = if start < 0 {
        start.saturating_add(n)
    } else {
        start
    };
    if step > 0 {
        s.clamp(0, n)
    } else {
        s.clamp(0, (n - 1).max(0))
    }
}

pub fn encode(k: &mut Kern, op: &Op, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "Slice data")?;
    let rank = x.shape.len();
    let starts = args.ints(1, "Slice starts")?;
    let ends = args.ints(2, "Slice ends")?;
    let axes: Vec<i64> = match args.oh(3) {
        Some(t) => t.to_i64_vec().context("Slice axes")?,
        None => (0..starts.len() as i64).collect(),
    };
    let steps: Vec<i64> = match args.oh(4) {
        Some(t) => t.to_i64_vec().context("Slice steps")?,
        None => vec![1; starts.len()],
    };
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        bail!("Slice: starts/ends/axes/steps lengths differ");
    }
    let (_, shape) = infer_shapes(op, args).context("Slice")?.remove(0);
    let st = strides(&x.shape);
    let mut base = 0isize;
    let mut src: Vec<isize> = st.iter().map(|&s| s as isize).collect();
    for i in 0..starts.len() {
        let a = normalize_axis(axes[i], rank)?;
        if steps[i] == 0 {
            bail!("Slice: step 0 on axis {a}");
        }
        let first = first_index(x.shape[a], starts[i], steps[i]);
        base += first as isize * st[a] as isize;
        src[a] = steps[i] as isize * st[a] as isize;
    }
    let out = k.alloc(x.dtype, shape.clone())?;
    strided_copy::encode(
        k,
        x,
        &out,
        &strided_copy::Copy {
            shape: &shape,
            src_base: base,
            src_strides: &src,
            src_mods: None,
            dst_base: 0,
            dst_strides: &strides(&shape),
        },
    )?;
    Ok(vec![out])
}

//! ReduceMean/Sum/Max/Min/Prod over any axes (`shaders/reduce.wgsl`).

use super::{infer_shapes, u32_of, Args};
use crate::kernel::{dims8, strides, word_of, DevTensor, Kern, Word};
use anyhow::{Context, Result};
use cellm_ir::ops::{Reduce, ReduceKind};
use cellm_ir::shape::normalize_axis;
use cellm_ir::Op;

pub fn encode(k: &mut Kern, op: &Op, r: &Reduce, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "Reduce data")?;
    let axes: Option<Vec<i64>> = match args.oh(1) {
        Some(t) => Some(t.to_i64_vec().context("Reduce axes")?),
        None => r.axes.clone(),
    };
    let rank = x.shape.len();
    let axes: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|&a| normalize_axis(a, rank))
            .collect::<Result<_>>()?,
        _ if r.noop_with_empty_axes => return Ok(vec![x.clone()]),
        _ => (0..rank).collect(),
    };
    let (_, shape) = infer_shapes(op, args).context("Reduce")?.remove(0);
    let st = strides(&x.shape);
    let (mut kept_shape, mut kept_st, mut red_shape, mut red_st) = (vec![], vec![], vec![], vec![]);
    for (d, (&n, &s)) in x.shape.iter().zip(&st).enumerate() {
        if axes.contains(&d) {
            red_shape.push(n);
            red_st.push(s);
        } else {
            kept_shape.push(n);
            kept_st.push(s);
        }
    }
    let n_red: usize = red_shape.iter().product();
    let kind = match r.kind {
        ReduceKind::Mean => 0,
        ReduceKind::Sum => 1,
        ReduceKind::Max => 2,
        ReduceKind::Min => 3,
        ReduceKind::Prod => 4,
    };
    let out = k.alloc(x.dtype, shape)?;
    let n = out.len();
    let mut p = vec![
        u32_of(n, "Reduce")?,
        kept_shape.len() as u32,
        red_shape.len() as u32,
        u32_of(n_red, "Reduce")?,
        kind,
        u32::from(word_of(x.dtype)? == Word::I32),
        0,
        0,
    ];
    p.extend(dims8(&kept_shape, "Reduce")?);
    p.extend(dims8(&kept_st, "Reduce")?);
    p.extend(dims8(&red_shape, "Reduce")?);
    p.extend(dims8(&red_st, "Reduce")?);
    k.dispatch_groups("reduce", &p, &[x, &out], n)?;
    Ok(vec![out])
}

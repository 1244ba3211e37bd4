//! Conv: defaults group 1, strides 1, dilations 1, pads 0, auto_pad NOTSET.
//! The spatial rank comes from `kernel_shape` or the weight's known rank;
//! auto_pad VALID is resolved to zero pads here, SAME_* need input shapes.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{anyhow, bail, Result};
use cellm_ir::ops::{AutoPad, Conv};
use cellm_ir::Op;

pub fn import(node: &NodeProto, ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 2, 3)?;
    check_outputs(node, 1)?;
    let kernel_shape = attr::usizes(node, "kernel_shape")?;
    let spatial = match (&kernel_shape, ctx.known_rank(node, 1)) {
        (Some(k), _) => k.len(),
        (None, Some(rank)) if rank >= 3 => rank - 2,
        _ => bail!("cannot tell the number of spatial dims: no 'kernel_shape' and the weight's rank is unknown"),
    };
    if spatial == 0 {
        bail!("attribute 'kernel_shape' is empty");
    }
    let per_dim = |name: &str| -> Result<Vec<usize>> {
        match attr::usizes(node, name)? {
            None => Ok(vec![1; spatial]),
            Some(v) if v.len() == spatial && v.iter().all(|&x| x >= 1) => Ok(v),
            Some(v) => bail!("attribute '{name}' = {v:?} must have {spatial} values >= 1"),
        }
    };
    let strides = per_dim("strides")?;
    let dilations = per_dim("dilations")?;
    let group = attr::usize_or(node, "group", 1)?;
    if group == 0 {
        bail!("attribute 'group' must be >= 1");
    }
    let auto_pad = match attr::string(node, "auto_pad")?.as_deref() {
        None | Some("NOTSET") => AutoPad::NotSet,
        Some("VALID") => AutoPad::Valid,
        Some("SAME_UPPER") => AutoPad::SameUpper,
        Some("SAME_LOWER") => AutoPad::SameLower,
        Some(other) => bail!(
            "attribute 'auto_pad' = '{other}' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER"
        ),
    };
    let pads = match attr::usizes(node, "pads")? {
        Some(p) if auto_pad != AutoPad::NotSet && p.iter().any(|&x| x != 0) => {
            bail!("attributes 'pads' {p:?} and 'auto_pad' cannot be used together")
        }
        Some(p) if p.len() == 2 * spatial => p,
        Some(p) => bail!("attribute 'pads' = {p:?} must have {} values", 2 * spatial),
        None => vec![0; 2 * spatial],
    };
    // VALID means no padding, which NOTSET with zero pads already says.
    let auto_pad = if auto_pad == AutoPad::Valid {
        AutoPad::NotSet
    } else {
        auto_pad
    };
    if let Some(k) = &kernel_shape {
        if k.contains(&0) {
            return Err(anyhow!("attribute 'kernel_shape' = {k:?} has a zero"));
        }
    }
    Ok(Op::Conv(Conv {
        kernel_shape,
        strides,
        pads,
        dilations,
        group,
        auto_pad,
    }))
}

//! com.microsoft GatherBlockQuantized: `gather_axis` default 0,
//! `quantize_axis` default 1, `block_size` default 128, `bits` default 4.
//! Inputs: data, indices, scales, optional zero_points.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{bail, Result};
use cellm_ir::ops::GatherBlockQuantized;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 3, 4)?;
    check_outputs(node, 1)?;
    let bits = attr::usize_or(node, "bits", 4)?;
    if bits != 4 {
        bail!("attribute 'bits' = {bits} is not supported (only 4)");
    }
    let block_size = attr::usize_or(node, "block_size", 128)?;
    if block_size < 16 || !block_size.is_power_of_two() {
        bail!("attribute 'block_size' = {block_size} must be a power of two >= 16");
    }
    Ok(Op::GatherBlockQuantized(GatherBlockQuantized {
        gather_axis: attr::int_or(node, "gather_axis", 0)?,
        quantize_axis: attr::int_or(node, "quantize_axis", 1)?,
        block_size,
        bits,
    }))
}

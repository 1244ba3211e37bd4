//! com.microsoft MatMulNBits: required `K`, `N`, `block_size`; `bits` default 4
//! (only 4 is supported); `accuracy_level` only tunes onnxruntime's compute
//! precision and is ignored. Inputs: A, B, scales, optional zero_points, g_idx, bias.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{anyhow, bail, Result};
use cellm_ir::ops::MatMulNBits;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 3, 6)?;
    check_outputs(node, 1)?;
    let required = |name: &str| -> Result<usize> {
        let v = attr::int(node, name)?.ok_or_else(|| anyhow!("attribute '{name}' is required"))?;
        usize::try_from(v).map_err(|_| anyhow!("attribute '{name}' = {v} must be >= 0"))
    };
    let bits = attr::usize_or(node, "bits", 4)?;
    if bits != 4 {
        bail!("attribute 'bits' = {bits} is not supported (only 4)");
    }
    let block_size = required("block_size")?;
    if block_size < 16 || !block_size.is_power_of_two() {
        bail!("attribute 'block_size' = {block_size} must be a power of two >= 16");
    }
    Ok(Op::MatMulNBits(MatMulNBits {
        k: required("K")?,
        n: required("N")?,
        bits,
        block_size,
    }))
}

//! LayerNormalization(x, scale, bias?): `axis` default -1, `epsilon` default
//! 1e-5. The training outputs Mean and InvStdDev are not supported.

use super::{check_inputs, check_outputs, has_output, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{bail, Result};
use cellm_ir::ops::LayerNormalization;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 2, 3)?;
    check_outputs(node, 3)?;
    if has_output(node, 1) || has_output(node, 2) {
        bail!("the Mean / InvStdDev outputs are not supported");
    }
    // stash_type 1 (f32 statistics) is what the IR computes.
    attr::reject_int(node, "stash_type", 1)?;
    Ok(Op::LayerNormalization(LayerNormalization {
        axis: attr::int_or(node, "axis", -1)?,
        epsilon: attr::float_or(node, "epsilon", 1e-5)?,
    }))
}

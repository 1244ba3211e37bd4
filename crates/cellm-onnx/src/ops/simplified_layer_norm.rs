//! SimplifiedLayerNormalization (RMSNorm, onnxruntime): `axis` default -1,
//! `epsilon` default 1e-5. The inv_std_var output is not supported.

use super::{check_inputs, check_outputs, has_output, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{bail, Result};
use cellm_ir::ops::SimplifiedLayerNormalization;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 2, 2)?;
    check_outputs(node, 2)?;
    if has_output(node, 1) {
        bail!("the inv_std_var output is not supported");
    }
    attr::reject_int(node, "stash_type", 1)?;
    Ok(Op::SimplifiedLayerNormalization(
        SimplifiedLayerNormalization {
            axis: attr::int_or(node, "axis", -1)?,
            epsilon: attr::float_or(node, "epsilon", 1e-5)?,
        },
    ))
}

//! com.microsoft SkipSimplifiedLayerNormalization(input, skip, gamma, bias?):
//! `epsilon` default 1e-12 (onnxruntime's schema). Up to four outputs.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::Result;
use cellm_ir::ops::SkipSimplifiedLayerNormalization;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 3, 4)?;
    check_outputs(node, 4)?;
    Ok(Op::SkipSimplifiedLayerNormalization(
        SkipSimplifiedLayerNormalization {
            epsilon: attr::float_or(node, "epsilon", 1e-12)?,
        },
    ))
}

//! com.microsoft RotaryEmbedding(input, position_ids, cos_cache, sin_cache):
//! `interleaved` default 0, `num_heads` default 0 (from the input shape),
//! `rotary_embedding_dim` default 0 (the whole head), `scale` default 1.0;
//! `is_packed_batching` is not supported.

use super::{check_inputs, check_outputs, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::Result;
use cellm_ir::ops::RotaryEmbedding;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    check_inputs(node, 4, 4)?;
    check_outputs(node, 1)?;
    attr::reject_int(node, "is_packed_batching", 0)?;
    Ok(Op::RotaryEmbedding(RotaryEmbedding {
        interleaved: attr::flag_or(node, "interleaved", false)?,
        num_heads: attr::usize_or(node, "num_heads", 0)?,
        rotary_embedding_dim: attr::usize_or(node, "rotary_embedding_dim", 0)?,
        scale: attr::float_or(node, "scale", 1.0)?,
    }))
}

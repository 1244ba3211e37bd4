//! com.microsoft MultiHeadAttention(query, key?, value?, bias?,
//! key_padding_mask?, attention_bias?, past_key?, past_value?, ...):
//! `num_heads` required, `scale` default 1/sqrt(head_size) (kept as None),
//! `mask_filter_value` default -10000, `unidirectional` default 0.

use super::{check_inputs, check_outputs, has_input, ImportCtx};
use crate::{attr, proto::NodeProto};
use anyhow::{anyhow, bail, Result};
use cellm_ir::ops::MultiHeadAttention;
use cellm_ir::Op;

pub fn import(node: &NodeProto, _ctx: &ImportCtx) -> Result<Op> {
    // Inputs 8..=9 (past_sequence_length, cache_indirection) are for beam
    // search with a shared buffer, which the IR op does not model.
    check_inputs(node, 1, 8)?;
    check_outputs(node, 3)?;
    let num_heads = match attr::int(node, "num_heads")? {
        None => bail!("attribute 'num_heads' is required"),
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|&n| n >= 1)
            .ok_or_else(|| anyhow!("attribute 'num_heads' must be >= 1, got {n}"))?,
    };
    if has_input(node, 2) && !has_input(node, 1) {
        bail!("value (input 2) is given without key (input 1)");
    }
    Ok(Op::MultiHeadAttention(MultiHeadAttention {
        num_heads,
        scale: attr::float(node, "scale")?,
        mask_filter_value: attr::float_or(node, "mask_filter_value", -10000.0)?,
        unidirectional: attr::flag_or(node, "unidirectional", false)?,
        kv_num_heads: None,
    }))
}

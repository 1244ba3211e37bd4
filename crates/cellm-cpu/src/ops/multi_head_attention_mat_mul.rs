//! CPU kernel for MultiHeadAttentionMatMul: MultiHeadAttention's kernel, then
//! MatMul's on its output. The fusion pays off on the GPU (the split-K merge
//! runs inside the projection); on the CPU the two kernels run in turn, so
//! this is also the reference the GPU kernel is tested against.

use super::{mat_mul, multi_head_attention};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::multi_head_attention_mat_mul::WEIGHT;
use cellm_ir::ops::{MatMul, MultiHeadAttentionMatMul};
use cellm_ir::Tensor;

pub fn run(op: &MultiHeadAttentionMatMul, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    if inputs.len() != WEIGHT + 1 {
        bail!(
            "MultiHeadAttentionMatMul: takes {} inputs, got {}",
            WEIGHT + 1,
            inputs.len()
        );
    }
    let w = inputs[WEIGHT].context("MultiHeadAttentionMatMul weight is required")?;
    let attn = multi_head_attention::run(&op.attention, &inputs[..WEIGHT])
        .context("MultiHeadAttentionMatMul attention")?;
    let out = attn
        .first()
        .context("MultiHeadAttentionMatMul: attention returned nothing")?;
    mat_mul::run(&MatMul, &[Some(out), Some(w)]).context("MultiHeadAttentionMatMul projection")
}

//! MultiHeadAttentionMatMul: attention, then its output projection, in two
//! launches either way. Unsplit, MultiHeadAttention's kernel writes the
//! attention output and MatMul's kernel projects it. When a one-row step
//! splits its keys (flash decoding at long context),
//! `shaders/multi_head_attention_mat_mul_gemv.wgsl` merges the chunks'
//! partial softmax states as it stages the GEMV's A row, which saves the
//! merge launch MultiHeadAttention alone would make.

use super::multi_head_attention::{encode_unmerged, Attention, Partials};
use super::{mat_mul, mat_mul_silu_mul::weight_dtype_ok, multi_head_attention, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::multi_head_attention_mat_mul::WEIGHT;
use cellm_ir::ops::MultiHeadAttentionMatMul;

/// Attention's inputs of the fused op's args.
fn attention_args(args: &Args) -> Args {
    let take = |n: usize| n.min(WEIGHT);
    Args {
        dev: args.dev[..take(args.dev.len())].to_vec(),
        host: args.host[..take(args.host.len())].to_vec(),
        wanted: vec![true, false, false],
    }
}

/// Attention as MultiHeadAttention supports it and a 2-D weight it may multiply.
pub fn supported(op: &MultiHeadAttentionMatMul, args: &Args) -> bool {
    let (Some(q), Some(w)) = (args.od(0), args.od(WEIGHT)) else {
        return false;
    };
    multi_head_attention::supported(&op.attention, &attention_args(args))
        && w.shape.len() == 2
        && weight_dtype_ok(q.dtype, w.dtype)
}

pub fn encode(k: &mut Kern, op: &MultiHeadAttentionMatMul, args: &Args) -> Result<Vec<DevTensor>> {
    let w = args.d(WEIGHT, "MultiHeadAttentionMatMul weight")?.clone();
    let q = args.d(0, "MultiHeadAttentionMatMul query")?;
    // One query row: the merge fits the GEMV's staging of A.
    let one_row = q.shape.len() == 3 && q.shape[0] * q.shape[1] == 1;
    let attn = encode_unmerged(k, &op.attention, &attention_args(args), one_row)
        .context("MultiHeadAttentionMatMul attention")?;
    match attn {
        Attention::Done(outs) => {
            let a = outs.into_iter().next().context("attention output")?;
            let mm = Args {
                dev: vec![Some(a.clone()), Some(w)],
                host: vec![],
                wanted: vec![],
            };
            let y = mat_mul::encode(k, &mm).context("MultiHeadAttentionMatMul projection")?;
            k.recycle(a);
            Ok(y)
        }
        Attention::Split(p) => merge_project(k, p, &w),
    }
}

/// The merge-and-project GEMV: c [1, 1, N] = merge(partials) · W.
fn merge_project(k: &mut Kern, p: Partials, w: &DevTensor) -> Result<Vec<DevTensor>> {
    let kdim = p.rows * p.hv;
    let [kw, n] = w.shape[..] else {
        bail!("MultiHeadAttentionMatMul: weight {:?} is not 2-D", w.shape);
    };
    if kw != kdim {
        bail!(
            "MultiHeadAttentionMatMul: attention gives {kdim} values per row, weight is {:?}",
            w.shape
        );
    }
    let mut shape = p.shape.clone();
    if let Some(last) = shape.last_mut() {
        *last = n;
    }
    let out = k.alloc(p.dtype, shape)?;
    let tiles_n = n.div_ceil(16);
    let what = "MultiHeadAttentionMatMul";
    let params = [
        u32_of(n, what)?,
        u32_of(kdim, what)?,
        u32_of(p.hv, what)?,
        u32_of(p.splits, what)?,
        u32_of(p.rows, what)?,
        u32_of(tiles_n, what)?,
        u32::from(p.dtype == cellm_ir::DType::F16),
    ];
    k.dispatch_groups(
        "multi_head_attention_mat_mul_gemv",
        &params,
        &[&p.part, w, &out],
        tiles_n,
    )?;
    k.recycle(p.part);
    Ok(vec![out])
}

//! com.microsoft RotaryEmbedding (`shaders/rotary_embedding.wgsl`).

use super::{need_float, u32_of, Args};
use crate::kernel::{word_of, DevTensor, Kern, Word};
use anyhow::{bail, Result};
use cellm_ir::ops::RotaryEmbedding;

pub fn encode(k: &mut Kern, op: &RotaryEmbedding, args: &Args) -> Result<Vec<DevTensor>> {
    let x = args.d(0, "RotaryEmbedding input")?;
    let pos = args.d(1, "RotaryEmbedding position_ids")?;
    let cos = args.d(2, "RotaryEmbedding cos_cache")?;
    let sin = args.d(3, "RotaryEmbedding sin_cache")?;
    need_float(x, "RotaryEmbedding input")?;
    if word_of(pos.dtype)? != Word::I32 {
        bail!(
            "RotaryEmbedding: position_ids must be integers, got {}",
            pos.dtype
        );
    }
    if cos.shape.len() != 2 || cos.shape != sin.shape {
        bail!(
            "RotaryEmbedding: cos_cache {:?} and sin_cache {:?} must be equal 2-D",
            cos.shape,
            sin.shape
        );
    }
    let (max_pos, half_cache) = (cos.shape[0], cos.shape[1]);
    let xs = &x.shape;
    let (batch, seq, heads, head_size, seq_stride, head_stride) = match xs.len() {
        3 => {
            let hidden = xs[2];
            let head_size = match hidden.checked_div(op.num_heads) {
                Some(h) => h,
                None if op.rotary_embedding_dim == 0 => 2 * half_cache,
                None => {
                    bail!("RotaryEmbedding: num_heads is required when rotary_embedding_dim is set")
                }
            };
            if head_size == 0 || hidden % head_size != 0 {
                bail!("RotaryEmbedding: hidden size {hidden} is not a multiple of head size {head_size}");
            }
            (
                xs[0],
                xs[1],
                hidden / head_size,
                head_size,
                hidden,
                head_size,
            )
        }
        4 => (xs[0], xs[2], xs[1], xs[3], xs[3], xs[2] * xs[3]),
        r => bail!("RotaryEmbedding: input must be 3-D or 4-D, got rank {r}"),
    };
    let rotary_dim = if op.rotary_embedding_dim > 0 {
        op.rotary_embedding_dim
    } else {
        2 * half_cache
    };
    if rotary_dim > head_size || rotary_dim % 2 != 0 || rotary_dim / 2 > half_cache {
        bail!("RotaryEmbedding: rotary dim {rotary_dim} does not fit head size {head_size} and cache width {half_cache}");
    }
    let scalar_pos = pos.len() == 1 && pos.shape.len() <= 1;
    if !scalar_pos && pos.shape != [batch, seq] {
        bail!(
            "RotaryEmbedding: position_ids {:?} must be [{batch}, {seq}] or one value",
            pos.shape
        );
    }
    let half = rotary_dim / 2;
    let out = k.alloc(x.dtype, xs.clone())?;
    k.copy(x, &out)?;
    let n = batch * seq * heads * half;
    let p = [
        n,
        seq,
        heads,
        half,
        seq_stride,
        head_stride,
        seq * heads * head_size,
        half_cache,
        usize::from(op.interleaved),
        usize::from(scalar_pos),
        max_pos,
    ]
    .iter()
    .map(|&v| u32_of(v, "RotaryEmbedding"))
    .collect::<Result<Vec<_>>>()?;
    k.dispatch_1d("rotary_embedding", &p, &[x, pos, cos, sin, &out], n)?;
    Ok(vec![out])
}

//! CPU kernel for com.microsoft RotaryEmbedding (opset 1), following
//! onnxruntime's CPU kernel and `rotary_embedding_helper.h`:
//! - input [B, S, H*D] (D = hidden / num_heads, or 2 * cos_cache.shape[1] when
//!   num_heads is 0) or [B, H, S, D];
//! - position_ids [B, S], or one value p meaning positions p, p+1, ...;
//! - cos/sin caches [max_pos, rotary_dim / 2]; rotary_dim = the attribute, or
//!   2 * cos_cache.shape[1] when it is 0;
//! - interleaved rotates pairs (2i, 2i+1), otherwise halves (i, i + rotary_dim/2);
//! - channels past rotary_dim pass through unchanged.
//!
//! f16 is computed in f32 and rounded once. `scale` is unused by onnxruntime's
//! CPU kernel, so it is ignored here too.

use super::common::{f32_to_tensor, f32_values, input};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::RotaryEmbedding;
use cellm_ir::{DType, Tensor};

pub fn run(op: &RotaryEmbedding, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let x = input(inputs, 0).context("RotaryEmbedding input")?;
    let pos = input(inputs, 1).context("RotaryEmbedding position_ids")?;
    let cos = input(inputs, 2).context("RotaryEmbedding cos_cache")?;
    let sin = input(inputs, 3).context("RotaryEmbedding sin_cache")?;
    if !matches!(x.dtype(), DType::F32 | DType::F16) {
        bail!("RotaryEmbedding: unsupported dtype {}", x.dtype());
    }
    if cos.rank() != 2 || cos.shape() != sin.shape() {
        bail!(
            "RotaryEmbedding: cos_cache {:?} and sin_cache {:?} must be equal 2-D",
            cos.shape(),
            sin.shape()
        );
    }
    let (max_pos, half_cache) = (cos.shape()[0], cos.shape()[1]);
    let xs = x.shape();
    // Element (b, s, h, d) lives at b*batch_stride + s*seq_stride + h*head_stride + d.
    let (batch, seq, heads, head_size, seq_stride, head_stride) = match xs.len() {
        3 => {
            let hidden = xs[2];
            let head_size = match (op.num_heads, op.rotary_embedding_dim) {
                (0, 0) => 2 * half_cache,
                (0, _) => {
                    bail!("RotaryEmbedding: num_heads is required when rotary_embedding_dim is set")
                }
                (heads, _) => hidden / heads,
            };
            if head_size == 0 || hidden % head_size != 0 {
                bail!("RotaryEmbedding: hidden size {hidden} is not a multiple of head size {head_size}");
            }
            let heads = hidden / head_size;
            (xs[0], xs[1], heads, head_size, hidden, head_size)
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
        bail!(
            "RotaryEmbedding: rotary dim {rotary_dim} does not fit head size {head_size} and cache width {half_cache}"
        );
    }
    let half = rotary_dim / 2;
    let pos_v = pos.to_i64_vec().context("RotaryEmbedding position_ids")?;
    let position = |b: usize, s: usize| -> Result<usize> {
        let p = if pos_v.len() == 1 && pos.rank() <= 1 {
            pos_v[0] + s as i64
        } else if pos.shape() == [batch, seq] {
            pos_v[b * seq + s]
        } else {
            bail!(
                "RotaryEmbedding: position_ids {:?} must be [{batch}, {seq}] or one value",
                pos.shape()
            );
        };
        if p < 0 || p as usize >= max_pos {
            bail!("RotaryEmbedding: position {p} is outside the cache of {max_pos}");
        }
        Ok(p as usize)
    };
    let xv = f32_values(x, "RotaryEmbedding input")?;
    let cv = f32_values(cos, "RotaryEmbedding cos_cache")?;
    let sv = f32_values(sin, "RotaryEmbedding sin_cache")?;
    let mut out = xv.to_vec(); // Channels past rotary_dim keep their values.
    let batch_stride = seq * heads * head_size;
    for b in 0..batch {
        for s in 0..seq {
            let p = position(b, s)?;
            let c = &cv[p * half_cache..p * half_cache + half];
            let sn = &sv[p * half_cache..p * half_cache + half];
            for h in 0..heads {
                let base = b * batch_stride + s * seq_stride + h * head_stride;
                let src = &xv[base..base + rotary_dim];
                let dst = &mut out[base..base + rotary_dim];
                for i in 0..half {
                    let (i0, i1) = if op.interleaved {
                        (2 * i, 2 * i + 1)
                    } else {
                        (i, i + half)
                    };
                    let (x0, x1) = (src[i0], src[i1]);
                    dst[i0] = x0 * c[i] - x1 * sn[i];
                    dst[i1] = x1 * c[i] + x0 * sn[i];
                }
            }
        }
    }
    Ok(vec![f32_to_tensor(x.dtype(), xs.to_vec(), out)?])
}

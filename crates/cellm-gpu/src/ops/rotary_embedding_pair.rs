//! RotaryEmbeddingPair: two com.microsoft RotaryEmbedding ops sharing
//! position_ids and caches, in one launch (`shaders/rotary_embedding_pair.wgsl`).
//! Each input keeps its own layout and head count, as the single op reads
//! them (`rotary_embedding.rs`). Tensors split over more storage bindings
//! than the device allows per launch take the single op twice instead.

use super::{need_float, u32_of, Args};
use crate::kernel::{word_of, DevTensor, Kern, Word};
use anyhow::{bail, Result};
use cellm_ir::ops::{RotaryEmbedding, RotaryEmbeddingPair};

/// Where one input's elements lie: element (b, s, h, d) at
/// b*batch_stride + s*seq_stride + h*head_stride + d.
struct Geometry {
    batch: usize,
    seq: usize,
    heads: usize,
    head_size: usize,
    seq_stride: usize,
    head_stride: usize,
}

/// The single op's reading of input `x` (3-D [B, S, H*D] or 4-D [B, H, S, D]).
fn geometry(op: &RotaryEmbedding, x: &DevTensor, half_cache: usize) -> Result<Geometry> {
    let xs = &x.shape;
    Ok(match xs.len() {
        3 => {
            let hidden = xs[2];
            let head_size = match (op.num_heads, op.rotary_embedding_dim) {
                (0, 0) => 2 * half_cache,
                (0, _) => bail!("num_heads is required when rotary_embedding_dim is set"),
                (h, _) => hidden / h,
            };
            if head_size == 0 || !hidden.is_multiple_of(head_size) {
                bail!("hidden size {hidden} is not a multiple of head size {head_size}");
            }
            Geometry {
                batch: xs[0],
                seq: xs[1],
                heads: hidden / head_size,
                head_size,
                seq_stride: hidden,
                head_stride: head_size,
            }
        }
        4 => Geometry {
            batch: xs[0],
            seq: xs[2],
            heads: xs[1],
            head_size: xs[3],
            seq_stride: xs[3],
            head_stride: xs[2] * xs[3],
        },
        r => bail!("input must be 3-D or 4-D, got rank {r}"),
    })
}

/// Float inputs of one dtype and rank 3 or 4, integer positions.
pub fn supported(args: &Args) -> bool {
    let (Some(x0), Some(x1), Some(pos)) = (args.od(0), args.od(1), args.od(2)) else {
        return false;
    };
    matches!(x0.dtype, cellm_ir::DType::F32 | cellm_ir::DType::F16)
        && x1.dtype == x0.dtype
        && (3..=4).contains(&x0.shape.len())
        && (3..=4).contains(&x1.shape.len())
        && word_of(pos.dtype).is_ok_and(|w| w == Word::I32)
}

/// Where the caches lie: separate cos and sin tensors [max_pos, C], or one
/// merged [max_pos, 2C] tensor (MatMulMultiRotary's: row p = C cos values,
/// then C sin values) bound at both cache slots.
pub enum Caches<'a> {
    Split {
        cos: &'a DevTensor,
        sin: &'a DevTensor,
    },
    Merged(&'a DevTensor),
}

pub fn encode(k: &mut Kern, op: &RotaryEmbeddingPair, args: &Args) -> Result<Vec<DevTensor>> {
    let xs = [
        args.d(0, "RotaryEmbeddingPair x0")?,
        args.d(1, "RotaryEmbeddingPair x1")?,
    ];
    let pos = args.d(2, "RotaryEmbeddingPair position_ids")?;
    let cos = args.d(3, "RotaryEmbeddingPair cos_cache")?;
    let sin = args.d(4, "RotaryEmbeddingPair sin_cache")?;
    encode_with(k, op, xs, pos, Caches::Split { cos, sin })
}

/// The pair on `xs` with position_ids `pos` and the caches as `caches` says.
pub fn encode_with(
    k: &mut Kern,
    op: &RotaryEmbeddingPair,
    xs: [&DevTensor; 2],
    pos: &DevTensor,
    caches: Caches,
) -> Result<Vec<DevTensor>> {
    for x in xs {
        need_float(x, "RotaryEmbeddingPair input")?;
    }
    if xs[1].dtype != xs[0].dtype {
        bail!(
            "RotaryEmbeddingPair: x0 is {} but x1 is {}",
            xs[0].dtype,
            xs[1].dtype
        );
    }
    if word_of(pos.dtype)? != Word::I32 {
        bail!(
            "RotaryEmbeddingPair: position_ids must be integers, got {}",
            pos.dtype
        );
    }
    // (cos binding, sin binding, row stride, offset of sin within a row, merged).
    let (cos, sin, row_stride, sin_offset, merged) = match caches {
        Caches::Split { cos, sin } => {
            if cos.shape.len() != 2 || cos.shape != sin.shape {
                bail!(
                    "RotaryEmbeddingPair: cos_cache {:?} and sin_cache {:?} must be equal 2-D",
                    cos.shape,
                    sin.shape
                );
            }
            (cos, sin, cos.shape[1], 0, false)
        }
        Caches::Merged(cs) => {
            if cs.shape.len() != 2 || !cs.shape[1].is_multiple_of(2) {
                bail!(
                    "RotaryEmbeddingPair: merged cos/sin cache {:?} must be 2-D of even width",
                    cs.shape
                );
            }
            (cs, cs, cs.shape[1], cs.shape[1] / 2, true)
        }
    };
    let (max_pos, half_cache) = (cos.shape[0], row_stride - sin_offset);
    let rotary_dim = if op.rotary_embedding_dim > 0 {
        op.rotary_embedding_dim
    } else {
        2 * half_cache
    };
    let half = rotary_dim / 2;
    let mut geos = Vec::with_capacity(2);
    for (i, x) in xs.iter().enumerate() {
        let geo = geometry(&op.single(i), x, half_cache)
            .map_err(|e| anyhow::anyhow!("RotaryEmbeddingPair x{i} {:?}: {e}", x.shape))?;
        if rotary_dim > geo.head_size || !rotary_dim.is_multiple_of(2) || half > half_cache {
            bail!(
                "RotaryEmbeddingPair x{i}: rotary dim {rotary_dim} does not fit head size {} and cache width {half_cache}",
                geo.head_size
            );
        }
        geos.push(geo);
    }
    let (batch, seq) = (geos[0].batch, geos[0].seq);
    if (geos[1].batch, geos[1].seq) != (batch, seq) {
        bail!(
            "RotaryEmbeddingPair: x0 {:?} and x1 {:?} differ in batch or sequence",
            xs[0].shape,
            xs[1].shape
        );
    }
    let scalar_pos = pos.len() == 1 && pos.shape.len() <= 1;
    if !scalar_pos && pos.shape != [batch, seq] {
        bail!(
            "RotaryEmbeddingPair: position_ids {:?} must be [{batch}, {seq}] or one value",
            pos.shape
        );
    }
    let bindings: u32 = [xs[0], xs[1], pos, cos, sin, xs[0], xs[1]]
        .iter()
        .map(|t| t.layout().chunks)
        .sum();
    if bindings > k.ctx.limits.max_storage_buffers_per_shader_stage {
        if merged {
            bail!(
                "RotaryEmbeddingPair: {bindings} storage bindings exceed the device's {} (merged cos/sin cache)",
                k.ctx.limits.max_storage_buffers_per_shader_stage
            );
        }
        // Split over more bindings than one launch may use: the single op twice.
        let mut outs = Vec::with_capacity(2);
        for (i, x) in xs.iter().enumerate() {
            let one = Args {
                dev: vec![
                    Some((*x).clone()),
                    Some(pos.clone()),
                    Some(cos.clone()),
                    Some(sin.clone()),
                ],
                host: vec![],
                wanted: vec![],
            };
            outs.extend(super::rotary_embedding::encode(k, &op.single(i), &one)?);
        }
        return Ok(outs);
    }
    let mut outs = Vec::with_capacity(2);
    for (x, geo) in xs.iter().zip(&geos) {
        let out = k.alloc(x.dtype, x.shape.clone())?;
        // Channels past the rotary dim pass through: copy them first.
        if rotary_dim < geo.head_size {
            k.copy(x, &out)?;
        }
        outs.push(out);
    }
    let counts: Vec<usize> = geos.iter().map(|g| batch * seq * g.heads * half).collect();
    let total = counts[0] + counts[1];
    if total == 0 {
        return Ok(outs);
    }
    let mut p = vec![
        counts[0],
        total,
        seq,
        half,
        row_stride,
        usize::from(op.interleaved),
        usize::from(scalar_pos),
        max_pos,
    ];
    for g in &geos {
        p.extend([
            g.heads,
            g.seq_stride,
            g.head_stride,
            seq * g.heads * g.head_size,
        ]);
    }
    p.push(sin_offset);
    let p = p
        .iter()
        .map(|&v| u32_of(v, "RotaryEmbeddingPair"))
        .collect::<Result<Vec<_>>>()?;
    k.dispatch_1d(
        "rotary_embedding_pair",
        &p,
        &[xs[0], xs[1], pos, cos, sin, &outs[0], &outs[1]],
        total,
    )?;
    Ok(outs)
}

//! MatMulMultiRotary: the q/k/v projections with the q and k rotaries, in
//! one launch for up to [`MAX_ROWS`] rows (the decode steps:
//! `shaders/mat_mul_multi_rotary_gemv.wgsl`). The bindings are A, three
//! weight slots, the merged cos/sin cache and three outputs: 8, WebGPU's
//! default storage buffers per stage.
//!
//! position_ids is a parameter input (host value): graph inputs and host
//! shape math keep it on the host, so reading it costs no readback, and the
//! few rows' positions travel in the uniforms. Out-of-cache positions are
//! an error here (as on the CPU) rather than silently unrotated.
//!
//! Otherwise (more rows: prefill; A not 3-D; K or M zero; more than three
//! weights; tensors split over more bindings than the device allows) two
//! launches: MatMulMulti's kernels, then RotaryEmbeddingPair's with the
//! merged cache bound at both cache slots. Same results either way.
//!
//! Outputs named in `f16_outputs` (keys and values for an f16 KV cache) are
//! f16: the fused kernel rounds them on store, the two-launch form casts them.

use super::rotary_embedding_pair::Caches;
use super::{need_float, u32_of, Args};
use crate::kernel::{DevTensor, Kern};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::mat_mul_multi_rotary::FIRST_WEIGHT;
use cellm_ir::ops::MatMulMultiRotary;
use cellm_ir::{DType, Tensor};

/// Rows the fused launch takes (their positions fill uniform words 16..32).
pub const MAX_ROWS: usize = 16;
/// Weight slots of the fused kernel.
const SLOTS: usize = 3;

/// Launches beyond one that `rows` rows of `op` take: above [`MAX_ROWS`]
/// the two-launch form, plus a cast per f16-stored output.
pub fn extra_launches(op: &MatMulMultiRotary, rows: usize) -> usize {
    if rows <= MAX_ROWS {
        0
    } else {
        1 + op.f16_outputs.len()
    }
}

/// Float A of rank >= 2, two or more weights as MatMulMulti takes them, a
/// float cache, integer position_ids on the host.
pub fn supported(args: &Args) -> bool {
    let (Some(a), Some(cs), Some(pos)) = (args.od(0), args.od(2), args.oh(1)) else {
        return false;
    };
    let ws: Vec<Option<&DevTensor>> = (FIRST_WEIGHT..args.dev.len()).map(|i| args.od(i)).collect();
    matches!(a.dtype, DType::F32 | DType::F16)
        && matches!(cs.dtype, DType::F32 | DType::F16)
        && matches!(pos.dtype(), DType::I64 | DType::I32)
        && a.shape.len() >= 2
        && ws.len() >= 2
        && ws.iter().all(|w| {
            w.is_some_and(|w| {
                w.shape.len() == 2
                    && Some(&w.shape[0]) == a.shape.last()
                    && super::mat_mul_silu_mul::weight_dtype_ok(a.dtype, w.dtype)
            })
        })
}

/// The position of each of the `batch`·`seq` rows, each inside the cache.
fn positions(pos: &Tensor, batch: usize, seq: usize, max_pos: usize) -> Result<Vec<usize>> {
    let v = pos.to_i64_vec().context("MatMulMultiRotary position_ids")?;
    let scalar = v.len() == 1 && pos.rank() <= 1;
    if !scalar && pos.shape() != [batch, seq] {
        bail!(
            "MatMulMultiRotary: position_ids {:?} must be [{batch}, {seq}] or one value",
            pos.shape()
        );
    }
    (0..batch * seq)
        .map(|r| {
            let p = if scalar {
                v[0] + (r % seq.max(1)) as i64
            } else {
                v[r]
            };
            if p < 0 || p as usize >= max_pos {
                bail!("MatMulMultiRotary: position {p} is outside the cache of {max_pos}");
            }
            Ok(p as usize)
        })
        .collect()
}

pub fn encode(k: &mut Kern, op: &MatMulMultiRotary, args: &Args) -> Result<Vec<DevTensor>> {
    let a = args.d(0, "MatMulMultiRotary A")?;
    let pos = args.h(1, "MatMulMultiRotary position_ids")?;
    let cs = args.d(2, "MatMulMultiRotary cos_sin_cache")?;
    need_float(a, "MatMulMultiRotary A")?;
    need_float(cs, "MatMulMultiRotary cos_sin_cache")?;
    let ws = (FIRST_WEIGHT..args.dev.len().max(FIRST_WEIGHT + 2))
        .map(|i| args.d(i, &format!("MatMulMultiRotary weight {}", i - FIRST_WEIGHT)))
        .collect::<Result<Vec<_>>>()?;
    if cs.shape.len() != 2 || !cs.shape[1].is_multiple_of(2) {
        bail!(
            "MatMulMultiRotary: cos_sin_cache {:?} must be 2-D of even width",
            cs.shape
        );
    }
    let (max_pos, half_cache) = (cs.shape[0], cs.shape[1] / 2);
    let kdim = a.shape.last().copied().unwrap_or(0);
    let m: usize = a.shape[..a.shape.len().saturating_sub(1)].iter().product();
    // Fused launch: 3-D A ([B, S, K]: outputs are [B, S, H*D]), few rows.
    let fused = (|| {
        if a.shape.len() != 3 || m == 0 || m > MAX_ROWS || kdim == 0 || ws.len() > SLOTS {
            return Ok(None);
        }
        let (batch, seq) = (a.shape[0], a.shape[1]);
        let rows = positions(pos, batch, seq, max_pos)?;
        let rotary_dim = if op.rotary_embedding_dim > 0 {
            op.rotary_embedding_dim
        } else {
            2 * half_cache
        };
        let half = rotary_dim / 2;
        let mut head_sizes = [0usize; 2];
        for (i, hs) in head_sizes.iter_mut().enumerate() {
            let w = ws[i];
            if w.shape.len() != 2 || w.shape[0] != kdim {
                return Ok(None); // The fallback names the mismatch.
            }
            let n = w.shape[1];
            let size = match (op.num_heads[i], op.rotary_embedding_dim) {
                (0, 0) => 2 * half_cache,
                (0, _) => return Ok(None),
                (h, _) => n / h,
            };
            if size == 0
                || !n.is_multiple_of(size)
                || rotary_dim > size
                || !rotary_dim.is_multiple_of(2)
                || half > half_cache
            {
                return Ok(None);
            }
            *hs = size;
        }
        Ok::<_, anyhow::Error>(Some((rows, half, rotary_dim, head_sizes)))
    })()?;
    let Some((rows, half, rotary_dim, head_sizes)) = fused else {
        return fallback(k, op, a, pos, cs, &ws);
    };
    let mut ns = Vec::with_capacity(ws.len());
    for (i, w) in ws.iter().enumerate() {
        if w.shape.len() != 2 || w.shape[0] != kdim {
            bail!(
                "MatMulMultiRotary: A {:?} and weight {i} {:?} do not multiply",
                a.shape,
                w.shape
            );
        }
        if !super::mat_mul_silu_mul::weight_dtype_ok(a.dtype, w.dtype) {
            bail!(
                "MatMulMultiRotary: A is {} but weight {i} is {}",
                a.dtype,
                w.dtype
            );
        }
        ns.push(w.shape[1]);
    }
    let mut outs = Vec::with_capacity(ws.len());
    for (i, &n) in ns.iter().enumerate() {
        // The kernel stores through accessors, so an f16 output rounds on store.
        let dtype = if op.f16_outputs.contains(&i) {
            DType::F16
        } else {
            a.dtype
        };
        outs.push(k.alloc(dtype, vec![a.shape[0], a.shape[1], n])?);
    }
    let dummy = k.alloc(a.dtype, vec![0])?;
    let mut ts: Vec<&DevTensor> = vec![a];
    ts.extend((0..SLOTS).map(|i| ws.get(i).copied().unwrap_or(a)));
    ts.push(cs);
    ts.extend((0..SLOTS).map(|i| outs.get(i).unwrap_or(&dummy)));
    let bindings: u32 = ts.iter().map(|t| t.layout().chunks).sum();
    if bindings > k.ctx.limits.max_storage_buffers_per_shader_stage {
        return fallback(k, op, a, pos, cs, &ws);
    }
    // Work items per output: a rotated one's pairs and pass-through channels.
    let items: Vec<usize> = ns
        .iter()
        .enumerate()
        .map(|(i, &n)| match head_sizes.get(i) {
            Some(&hs) => (n / hs) * (half + hs - rotary_dim),
            None => n,
        })
        .collect();
    let tiles: Vec<usize> = items.iter().map(|n| n.div_ceil(16)).collect();
    let per_row: usize = tiles.iter().sum();
    let mut p = vec![0usize; 16];
    p[0] = m;
    p[1] = kdim;
    p[2] = ws.len();
    p[3] = per_row;
    for (i, (&n, &t)) in ns.iter().zip(&tiles).enumerate() {
        p[4 + i] = n;
        p[7 + i] = t;
    }
    p[10] = half;
    p[11] = half_cache;
    p[12] = usize::from(op.interleaved);
    p[13] = head_sizes[0];
    p[14] = head_sizes[1];
    p[15] = rotary_dim;
    p.extend(rows);
    let p = p
        .iter()
        .map(|&v| u32_of(v, "MatMulMultiRotary"))
        .collect::<Result<Vec<_>>>()?;
    k.dispatch_groups("mat_mul_multi_rotary_gemv", &p, &ts, per_row * m)?;
    Ok(outs)
}

/// Two launches: the products, then the rotary pair on the first two.
fn fallback(
    k: &mut Kern,
    op: &MatMulMultiRotary,
    a: &DevTensor,
    pos: &Tensor,
    cs: &DevTensor,
    ws: &[&DevTensor],
) -> Result<Vec<DevTensor>> {
    let mut dev = vec![Some(a.clone())];
    dev.extend(ws.iter().map(|w| Some((*w).clone())));
    let mm = Args {
        dev,
        host: vec![],
        wanted: vec![],
    };
    let mut ys = super::mat_mul_multi::encode(k, &mm)?;
    if ys.len() < 2 {
        bail!("MatMulMultiRotary: needs two or more weights");
    }
    // Validates positions as the fused path does; then the pair kernel reads
    // them from the device.
    let lead = &a.shape[..a.shape.len().saturating_sub(1)];
    if let [batch, seq] = *lead {
        positions(pos, batch, seq, cs.shape[0])?;
    }
    let pos_dev = k.upload(pos)?;
    let rest = ys.split_off(2);
    let rot = super::rotary_embedding_pair::encode_with(
        k,
        &op.pair(),
        [&ys[0], &ys[1]],
        &pos_dev,
        Caches::Merged(cs),
    )
    .context("MatMulMultiRotary rotary")?;
    let mut outs: Vec<DevTensor> = rot.into_iter().chain(rest).collect();
    // Prefill only: one more launch per f16-stored output.
    for &i in &op.f16_outputs {
        let Some(y) = outs.get(i).filter(|y| y.dtype != DType::F16) else {
            continue;
        };
        let to_f16 = Args {
            dev: vec![Some(y.clone())],
            host: vec![],
            wanted: vec![],
        };
        let cast = cellm_ir::ops::Cast { to: DType::F16 };
        outs[i] = super::cast::encode(k, &cast, &to_f16)?.remove(0);
    }
    Ok(outs)
}

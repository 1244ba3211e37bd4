//! com.microsoft MultiHeadAttention (and its grouped-query form): present K/V
//! by strided copies when a past is joined or present is read, then
//! `shaders/multi_head_attention.wgsl` (a thread per query row) or
//! `shaders/multi_head_attention_blocked.wgsl` (a 256-thread workgroup per
//! row). Few rows over a long key range (decode steps at long context) split
//! the keys over several workgroups per row (flash decoding): the blocked
//! kernel writes per-chunk partial softmax states and
//! `shaders/multi_head_attention_merge.wgsl` combines them, two dispatches.

use super::{strided_copy, u32_of, Args};
use crate::kernel::{strides, DevTensor, Kern};
use anyhow::{bail, Result};
use cellm_ir::ops::MultiHeadAttention;
use cellm_ir::DType;
use std::cell::Cell;

/// From this many (batch, query, head) rows on, one thread per row keeps a
/// GPU busy; below it (decode steps, short prefills) each row gets a
/// 256-thread workgroup that splits the keys and the value dims.
const MANY_ROWS: usize = 4096;
const FEW_ROWS_ON_CPU: usize = 64;

/// Split-K: from this many keys on, few rows split their keys over several
/// workgroups (below it one workgroup per row does a tile or two, and the
/// merge dispatch would cost more than it saves).
const SPLIT_MIN_KEYS: usize = 512;
/// Workgroups the split aims at: about two per SM of a large GPU (a decode
/// step has only rows x heads, e.g. 9, otherwise).
const SPLIT_TARGET_GROUPS: usize = 256;
/// Fewest keys per chunk: half a 256-key tile, so a chunk still keeps most
/// of the workgroup's threads loading.
const SPLIT_MIN_CHUNK: usize = 128;
const MAX_SPLITS: usize = 32;

thread_local! {
    static FORCED_SPLITS: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Test hook: on this thread, attention with at least one key takes the
/// split-K path with `splits` key chunks (of ceil(total / splits) keys, so
/// chunk edges fall inside tiles), whatever the device and row count;
/// `None` restores the automatic choice. Lavapipe never splits on its own
/// (it has few lanes), so the tests force it to cover the split kernels.
pub fn force_key_splits(splits: Option<usize>) {
    FORCED_SPLITS.with(|f| f.set(splits));
}

/// (splits, keys per chunk) for `n` rows over `total` keys, or `None` for
/// the single-dispatch path. Automatic splits only for few rows on a real
/// GPU: enough chunks to reach [`SPLIT_TARGET_GROUPS`] workgroups, each of
/// at least [`SPLIT_MIN_CHUNK`] keys (a multiple of 32, the dot phase's key
/// slots), at most [`MAX_SPLITS`].
fn key_splits(n: usize, total: usize, cpu: bool) -> Option<(usize, usize)> {
    if total == 0 || n == 0 {
        return None;
    }
    if let Some(f) = FORCED_SPLITS.with(Cell::get) {
        let chunk = total.div_ceil(f.max(1));
        return Some((total.div_ceil(chunk), chunk));
    }
    if cpu || total < SPLIT_MIN_KEYS || n >= SPLIT_TARGET_GROUPS {
        return None;
    }
    let want = SPLIT_TARGET_GROUPS
        .div_ceil(n)
        .min(total / SPLIT_MIN_CHUNK)
        .min(MAX_SPLITS);
    if want < 2 {
        return None;
    }
    let chunk = total.div_ceil(want).div_ceil(32) * 32;
    Some((total.div_ceil(chunk), chunk))
}

/// Largest head size: the blocked kernel caches the query row (256 floats)
/// and a lane of it accumulates at most 4 output dims.
const MAX_HV: usize = 256;

/// Lanes per value row in the blocked kernel (its `VL`): the fewest (a power
/// of two, 4..=64) with 4 dims per lane covering `hv`; the rest of its 256
/// threads form 256 / VL groups that take different keys, so small heads get
/// more key groups. VL is also the keys one group takes per 256-key tile.
fn value_lanes(hv: usize) -> u32 {
    hv.div_ceil(4).next_power_of_two().clamp(4, 64) as u32
}

/// Packed QKV, the projection bias and huge value heads run on the host.
pub fn supported(op: &MultiHeadAttention, args: &Args) -> bool {
    let (Some(k), Some(v)) = (args.od(1), args.od(2)) else {
        return false;
    };
    let hv = match v.shape.len() {
        4 => v.shape[3],
        3 => v.shape[2] / op.kv_heads().max(1),
        _ => 0,
    };
    let hd = args
        .od(0)
        .and_then(|q| q.shape.get(2))
        .map_or(0, |&h| h / op.num_heads.max(1));
    args.od(3).is_none()
        && k.shape.len() == v.shape.len()
        && hv <= MAX_HV
        && hd <= MAX_HV
        && args.od(0).is_some()
}

/// Copies new keys/values ([B, L, H*d] or [B, H, L, d]) after the past ones.
fn present(
    k: &mut Kern,
    past: Option<&DevTensor>,
    new: &DevTensor,
    bnsh: bool,
    dims: [usize; 5],
) -> Result<DevTensor> {
    let [b, h, p, l, d] = dims;
    let t = p + l;
    let out = k.alloc(new.dtype, vec![b, h, t, d])?;
    let dst = [h * t * d, t * d, d, 1];
    if let Some(past) = past {
        let shape = [b, h, p, d];
        let src: Vec<isize> = strides(&shape).into_iter().map(|s| s as isize).collect();
        strided_copy::encode(
            k,
            past,
            &out,
            &strided_copy::Copy {
                shape: &shape,
                src_base: 0,
                src_strides: &src,
                src_mods: None,
                dst_base: 0,
                dst_strides: &dst,
            },
        )?;
    }
    let src: [isize; 4] = if bnsh {
        [(h * l * d) as isize, (l * d) as isize, d as isize, 1]
    } else {
        [(l * h * d) as isize, d as isize, (h * d) as isize, 1]
    };
    strided_copy::encode(
        k,
        new,
        &out,
        &strided_copy::Copy {
            shape: &[b, h, l, d],
            src_base: 0,
            src_strides: &src,
            src_mods: None,
            dst_base: p * d,
            dst_strides: &dst,
        },
    )?;
    Ok(out)
}

pub fn encode(k: &mut Kern, op: &MultiHeadAttention, args: &Args) -> Result<Vec<DevTensor>> {
    match encode_unmerged(k, op, args, false)? {
        Attention::Done(outs) => Ok(outs),
        Attention::Split(_) => bail!("MultiHeadAttention: split-K partials left unmerged"),
    }
}

/// Split-K partials not merged yet: `part` is [splits, rows, (max, sum,
/// acc[hv])] f32, rows being (batch, query, head) in order.
pub struct Partials {
    pub part: DevTensor,
    pub rows: usize,
    pub hv: usize,
    pub splits: usize,
    /// dtype and shape the merged output would have.
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// What [`encode_unmerged`] leaves: the outputs, or split-K partials whose
/// merge the caller takes over (MultiHeadAttentionMatMul's projection).
pub enum Attention {
    Done(Vec<DevTensor>),
    Split(Partials),
}

/// [`encode`], but with `defer_merge` a split-K attention stops before its
/// merge launch and returns the partials (only when no present output is
/// wanted).
pub fn encode_unmerged(
    k: &mut Kern,
    op: &MultiHeadAttention,
    args: &Args,
    defer_merge: bool,
) -> Result<Attention> {
    let q = args.d(0, "MultiHeadAttention query")?;
    let key = args.d(1, "MultiHeadAttention key")?;
    let val = args.d(2, "MultiHeadAttention value")?;
    let kpm = args.od(4);
    let attn_bias = args.od(5);
    let (past_k, past_v) = (args.od(6), args.od(7));
    let heads = op.num_heads;
    let kvh = op.kv_heads();
    let qs = &q.shape;
    if qs.len() != 3 {
        bail!("MultiHeadAttention: query must be [B, S, hidden], got {qs:?}");
    }
    let (batch, seq, q_hidden) = (qs[0], qs[1], qs[2]);
    if heads == 0 || !q_hidden.is_multiple_of(heads) || kvh == 0 || !heads.is_multiple_of(kvh) {
        bail!("MultiHeadAttention: hidden size {q_hidden} does not split into {heads} heads over {kvh} key/value heads");
    }
    let hd = q_hidden / heads;
    let (ks, vs) = (&key.shape, &val.shape);
    let bnsh = ks.len() == 4;
    let (kv_len, hv) = if bnsh {
        if ks[..] != [batch, kvh, ks[2], hd] || vs.len() != 4 || vs[..3] != ks[..3] {
            bail!("MultiHeadAttention: 4-D key {ks:?} / value {vs:?} do not match [{batch}, {kvh}, L, {hd}]");
        }
        (ks[2], vs[3])
    } else {
        if ks.len() != 3
            || ks[..] != [batch, ks[1], kvh * hd]
            || vs.len() != 3
            || vs[..2] != ks[..2]
            || !vs[2].is_multiple_of(kvh)
        {
            bail!("MultiHeadAttention: key {ks:?} / value {vs:?} do not match query {qs:?}");
        }
        (ks[1], vs[2] / kvh)
    };
    let past_len = match (past_k, past_v) {
        (None, None) => 0,
        (Some(_), Some(_)) if op.kv_num_heads.is_some() => {
            bail!("MultiHeadAttention: kv_num_heads takes no past_key/past_value")
        }
        (Some(pk), Some(pv)) => {
            let p = pk.shape.get(2).copied().unwrap_or(0);
            if pk.shape != [batch, heads, p, hd] || pv.shape != [batch, heads, p, hv] {
                bail!("MultiHeadAttention: past_key {:?} / past_value {:?} do not match [{batch}, {heads}, P, {hd}|{hv}]", pk.shape, pv.shape);
            }
            p
        }
        _ => bail!("MultiHeadAttention: past_key and past_value must be given together"),
    };
    let total = past_len + kv_len;
    // present K/V ([B, H, T, d]) are built only when there is a past to join
    // or a reader of the present outputs; otherwise attention reads key and
    // value where they lie.
    let want_present = past_k.is_some() || args.wants(1) || args.wants(2);
    let (pk, pv, kst, vst) = if want_present && op.kv_num_heads.is_none() {
        let pk = present(k, past_k, key, bnsh, [batch, heads, past_len, kv_len, hd])?;
        let pv = present(k, past_v, val, bnsh, [batch, heads, past_len, kv_len, hv])?;
        let kst = [heads * total * hd, total * hd, hd];
        let vst = [heads * total * hv, total * hv, hv];
        (pk, pv, kst, vst)
    } else if bnsh {
        let kst = [kvh * kv_len * hd, kv_len * hd, hd];
        let vst = [kvh * kv_len * hv, kv_len * hv, hv];
        (key.clone(), val.clone(), kst, vst)
    } else {
        let kst = [kv_len * kvh * hd, hd, kvh * hd];
        let vst = [kv_len * kvh * hv, hv, kvh * hv];
        (key.clone(), val.clone(), kst, vst)
    };
    let mask_kind = match kpm {
        None => 0,
        Some(m) if m.shape == [batch] => 1,
        Some(m) if m.shape == [batch, total] => 2,
        Some(m) if m.shape == [batch, seq, total] => 3,
        Some(m) => bail!("MultiHeadAttention: key_padding_mask {:?} must be [{batch}], [{batch}, {total}] or [{batch}, {seq}, {total}]", m.shape),
    };
    let (b_bcast, h_bcast) = match attn_bias {
        None => (false, false),
        Some(ab) => {
            let s = &ab.shape;
            if s.len() != 4
                || !(s[0] == 1 || s[0] == batch)
                || !(s[1] == 1 || s[1] == heads)
                || s[2..] != [seq, total]
            {
                bail!("MultiHeadAttention: attention_bias {s:?} must be [{batch}|1, {heads}|1, {seq}, {total}]");
            }
            (s[0] == 1, s[1] == 1)
        }
    };
    let scale = op
        .scale
        .filter(|&s| s != 0.0)
        .unwrap_or(1.0 / (hd as f32).sqrt());
    let out_shape = vec![batch, seq, heads * hv];
    let n = batch * seq * heads;
    let causal = op.unidirectional && seq > 1;
    // Keys end with this step's queries: the causal past is T - S.
    let causal_past = total.saturating_sub(seq);
    let w = |v: usize| u32_of(v, "MultiHeadAttention");
    let p = vec![
        w(n)?,
        w(seq)?,
        heads as u32,
        w(total)?,
        hd as u32,
        hv as u32,
        scale.to_bits(),
        mask_kind,
        op.mask_filter_value.to_bits(),
        u32::from(causal),
        w(causal_past)?,
        u32::from(attn_bias.is_some()),
        u32::from(b_bcast),
        u32::from(h_bcast),
        if want_present && op.kv_num_heads.is_none() {
            heads as u32
        } else {
            kvh as u32
        },
        w(kst[0])?,
        w(kst[1])?,
        w(kst[2])?,
        w(vst[0])?,
        w(vst[1])?,
        w(vst[2])?,
        value_lanes(hv),
        0,
        0,
    ];
    let mask_buf = kpm.unwrap_or(q);
    let bias_buf = attn_bias.unwrap_or(q);
    // A CPU "GPU" (lavapipe) has few lanes and slow barriers: rows it is.
    let cpu = k.ctx.adapter.device_type == "Cpu";
    let many = if cpu { FEW_ROWS_ON_CPU } else { MANY_ROWS };
    let split = key_splits(n, total, cpu);
    let presents = want_present && op.kv_num_heads.is_none();
    // hv == 0: nothing to write (and the blocked kernel clamps value dims to
    // hv - 1).
    let split = split.filter(|_| hv > 0);
    if let Some((splits, chunk)) = split {
        // Key chunks per row: partials, f32 whatever the storage,
        // [splits, n, (max, sum, acc[hv])].
        let part = k.alloc(DType::F32, vec![splits, n, hv + 2])?;
        let mut p = p;
        p[22] = w(splits)?;
        p[23] = w(chunk)?;
        let bufs = [q, &pk, &pv, mask_buf, bias_buf, &part];
        k.dispatch_groups("multi_head_attention_blocked", &p, &bufs, n * splits)?;
        if defer_merge && !presents {
            return Ok(Attention::Split(Partials {
                part,
                rows: n,
                hv,
                splits,
                dtype: q.dtype,
                shape: out_shape,
            }));
        }
        let out = k.alloc(q.dtype, out_shape)?;
        let mp = [w(n)?, hv as u32, w(splits)?];
        k.dispatch_1d("multi_head_attention_merge", &mp, &[&part, &out], n * hv)?;
        k.recycle(part);
        return Ok(Attention::Done(if presents {
            vec![out, pk, pv]
        } else {
            vec![out]
        }));
    }
    let out = k.alloc(q.dtype, out_shape)?;
    let bufs = [q, &pk, &pv, mask_buf, bias_buf, &out];
    if hv > 0 {
        if n >= many {
            k.dispatch_1d("multi_head_attention", &p, &bufs, n)?;
        } else {
            k.dispatch_groups("multi_head_attention_blocked", &p, &bufs, n)?;
        }
    }
    if presents {
        Ok(Attention::Done(vec![out, pk, pv]))
    } else {
        Ok(Attention::Done(vec![out]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_split_rule() {
        // The 9-head decode step: 16 chunks of 128 keys at 2048, none below
        // 512 keys, none on lavapipe, none for many rows.
        assert_eq!(key_splits(9, 2048, false), Some((16, 128)));
        assert_eq!(key_splits(9, 511, false), None);
        assert_eq!(key_splits(9, 2048, true), None);
        assert_eq!(key_splits(300, 4096, false), None);
        // Many keys: capped at 32 chunks, chunks a multiple of 32 keys that
        // cover every key.
        let (s, c) = key_splits(2, 100_000, false).unwrap();
        assert!(s <= MAX_SPLITS && c % 32 == 0 && s * c >= 100_000 && (s - 1) * c < 100_000);
        // Forced: exactly that many chunks here, covering every key.
        force_key_splits(Some(3));
        assert_eq!(key_splits(9, 700, true), Some((3, 234)));
        assert_eq!(key_splits(9, 0, true), None);
        force_key_splits(None);
        assert_eq!(key_splits(9, 700, true), None);
    }
}

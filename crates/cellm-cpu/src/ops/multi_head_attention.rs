//! CPU kernel for com.microsoft MultiHeadAttention, following onnxruntime's CPU
//! kernel (`multihead_attention.cc`, `attention_cpu_base.h`):
//! - query [B, S, H*D]; key [B, L, H*D] or [B, H, L, D]; value [B, L, H*Dv] or
//!   [B, H, L, Dv] (packed QKV / KV layouts are not supported, as on onnxruntime's CPU);
//! - bias [H*D + H*D + H*Dv] added to q, k, v (3-D key/value only);
//! - key_padding_mask (int): [B] key lengths, [B, T] or [B, S, T] with 0 = masked;
//! - attention_bias [B|1, H|1, S, T], added to the scaled scores;
//! - past_key/past_value [B, H, P, D|Dv] are prepended to key/value (T = P + L).
//!
//! scores = scale * Q K^T (scale defaults to 1/sqrt(D)) + attention_bias + mask,
//! where masked keys get `mask_filter_value` (padding) or f32::MIN (causal:
//! key t > P + s, when `unidirectional` and S > 1). Softmax and everything else
//! run in f32, also for f16 inputs (rounded once at the end).
//! Outputs: output [B, S, H*Dv], present_key [B, H, T, D], present_value [B, H, T, Dv].

use super::common::{f32_to_tensor, f32_values, input, opt_input};
use super::mat_mul::sgemm_strided;
use super::softmax::softmax_f32;
use crate::attention_rows::{self, DecodeShape, KvData, KvRows, ScoreTerms};
use anyhow::{bail, Context, Result};
use cellm_ir::ops::MultiHeadAttention;
use cellm_ir::{DType, Tensor};
use half::f16;

pub fn run(op: &MultiHeadAttention, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let q = input(inputs, 0).context("MultiHeadAttention query")?;
    let (Some(k), Some(v)) = (opt_input(inputs, 1), opt_input(inputs, 2)) else {
        bail!("MultiHeadAttention: packed QKV/KV (no key or value input) is not supported");
    };
    let bias = opt_input(inputs, 3);
    let key_padding_mask = opt_input(inputs, 4);
    let attn_bias = opt_input(inputs, 5);
    let (past_k, past_v) = (opt_input(inputs, 6), opt_input(inputs, 7));
    let dtype = q.dtype();
    if !matches!(dtype, DType::F32 | DType::F16) {
        bail!("MultiHeadAttention: unsupported dtype {dtype}");
    }
    for (t, name) in [
        (Some(k), "key"),
        (Some(v), "value"),
        (bias, "bias"),
        (attn_bias, "attention_bias"),
    ]
    .into_iter()
    .chain([(past_k, "past_key"), (past_v, "past_value")])
    {
        if let Some(t) = t {
            // Keys/values from an f16 KV cache under an f32 query are widened
            // as they are read.
            let f16_kv = dtype == DType::F32
                && t.dtype() == DType::F16
                && matches!(name, "key" | "value" | "past_key" | "past_value");
            if t.dtype() != dtype && !f16_kv {
                bail!(
                    "MultiHeadAttention: {name} is {} but query is {dtype}",
                    t.dtype()
                );
            }
        }
    }

    if op.kv_num_heads.is_some() {
        return run_grouped(op, q, k, v, key_padding_mask, attn_bias);
    }
    let heads = op.num_heads;
    let qs = q.shape();
    if qs.len() != 3 {
        bail!("MultiHeadAttention: query must be [B, S, hidden], got {qs:?}");
    }
    let (batch, seq, q_hidden) = (qs[0], qs[1], qs[2]);
    if heads == 0 || q_hidden % heads != 0 {
        bail!("MultiHeadAttention: hidden size {q_hidden} is not a multiple of num_heads {heads}");
    }
    let hd = q_hidden / heads;
    let (ks, vs) = (k.shape(), v.shape());
    let bnsh = match (ks.len(), vs.len()) {
        (3, 3) => false,
        (4, 4) => true,
        _ => bail!("MultiHeadAttention: key {ks:?} and value {vs:?} must both be 3-D or both 4-D"),
    };
    let (kv_len, hv) = if bnsh {
        if ks[..3] != [batch, heads, ks[2]] || ks[3] != hd || vs[..3] != ks[..3] {
            bail!("MultiHeadAttention: 4-D key {ks:?} / value {vs:?} do not match [{batch}, {heads}, L, {hd}]");
        }
        (ks[2], vs[3])
    } else {
        if ks != [batch, ks[1], q_hidden] || vs[..2] != ks[..2] || vs[2] % heads != 0 {
            bail!("MultiHeadAttention: key {ks:?} / value {vs:?} do not match query {qs:?}");
        }
        (ks[1], vs[2] / heads)
    };
    let past_len = match (past_k, past_v) {
        (None, None) => 0,
        (Some(pk), Some(pv)) => {
            let p = pk.shape().get(2).copied().unwrap_or(0);
            if pk.shape() != [batch, heads, p, hd] || pv.shape() != [batch, heads, p, hv] {
                bail!(
                    "MultiHeadAttention: past_key {:?} / past_value {:?} do not match [{batch}, {heads}, P, {hd}|{hv}]",
                    pk.shape(),
                    pv.shape()
                );
            }
            p
        }
        _ => bail!("MultiHeadAttention: past_key and past_value must be given together"),
    };
    let total = past_len + kv_len;

    // Q with its bias, kept in the input's [B, S, H*D] layout (GEMM strides do the transpose).
    let mut qv = f32_values(q, "MultiHeadAttention query")?.into_owned();
    let (mut kv_new, mut vv_new) = (
        f32_values(k, "MultiHeadAttention key")?.into_owned(),
        f32_values(v, "MultiHeadAttention value")?.into_owned(),
    );
    if let Some(b) = bias {
        if bnsh {
            bail!("MultiHeadAttention: bias is not allowed with 4-D key/value");
        }
        let bv = f32_values(b, "MultiHeadAttention bias")?;
        let v_hidden = heads * hv;
        if bv.len() != 2 * q_hidden + v_hidden {
            bail!(
                "MultiHeadAttention: bias has {} values, expected {}",
                bv.len(),
                2 * q_hidden + v_hidden
            );
        }
        add_row_bias(&mut qv, &bv[..q_hidden]);
        add_row_bias(&mut kv_new, &bv[q_hidden..2 * q_hidden]);
        add_row_bias(&mut vv_new, &bv[2 * q_hidden..]);
    }

    let past_kv = match (past_k, past_v) {
        (Some(pk), Some(pv)) => Some((
            f32_values(pk, "MultiHeadAttention past_key")?,
            f32_values(pv, "MultiHeadAttention past_value")?,
        )),
        _ => None,
    };
    let layout = Layout {
        batch,
        heads,
        past_len,
        kv_len,
        bnsh,
    };
    let present_k = layout.present(past_kv.as_ref().map(|p| &p.0[..]), &kv_new, hd);
    let present_v = layout.present(past_kv.as_ref().map(|p| &p.1[..]), &vv_new, hv);

    let mask = build_mask(op, key_padding_mask, batch, seq, kv_len, past_len)?;
    let bias_v = attention_bias(attn_bias, batch, heads, seq, total)?;
    let shape = Shape {
        batch,
        seq,
        heads,
        kv_heads: heads,
        hd,
        hv,
        total,
    };
    let out_hidden = heads * hv;
    let out = attend(
        op,
        &shape,
        &qv,
        KvView {
            data: KvData::F32(&present_k),
            strides: [heads * total * hd, total * hd, hd],
        },
        KvView {
            data: KvData::F32(&present_v),
            strides: [heads * total * hv, total * hv, hv],
        },
        mask.as_deref(),
        bias_v.as_ref(),
    );
    Ok(vec![
        f32_to_tensor(dtype, vec![batch, seq, out_hidden], out)?,
        f32_to_tensor(dtype, vec![batch, heads, total, hd], present_k)?,
        f32_to_tensor(dtype, vec![batch, heads, total, hv], present_v)?,
    ])
}

fn bias_heads(h_bcast: bool, heads: usize) -> usize {
    if h_bcast {
        1
    } else {
        heads
    }
}

/// Adds `bias` to every row of `data` (rows of `bias.len()` values).
fn add_row_bias(data: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        return;
    }
    data.chunks_exact_mut(bias.len())
        .for_each(|row| row.iter_mut().zip(bias).for_each(|(x, b)| *x += b));
}

/// Where new key/value rows come from and where they go in the present cache.
struct Layout {
    batch: usize,
    heads: usize,
    past_len: usize,
    kv_len: usize,
    /// New key/value are [B, H, L, D] rather than [B, L, H*D].
    bnsh: bool,
}

impl Layout {
    /// present [B, H, P + L, d] = concat(past [B, H, P, d], new rows) along the sequence.
    fn present(&self, past: Option<&[f32]>, new: &[f32], d: usize) -> Vec<f32> {
        let (p, l, heads) = (self.past_len, self.kv_len, self.heads);
        let t = p + l;
        let mut out = vec![0f32; self.batch * heads * t * d];
        for b in 0..self.batch {
            for h in 0..heads {
                let dst = &mut out[(b * heads + h) * t * d..(b * heads + h + 1) * t * d];
                if let Some(past) = past {
                    dst[..p * d].copy_from_slice(
                        &past[(b * heads + h) * p * d..(b * heads + h + 1) * p * d],
                    );
                }
                for j in 0..l {
                    let src = if self.bnsh {
                        ((b * heads + h) * l + j) * d
                    } else {
                        (b * l + j) * heads * d + h * d
                    };
                    dst[(p + j) * d..(p + j + 1) * d].copy_from_slice(&new[src..src + d]);
                }
            }
        }
        out
    }
}

/// Additive [B, S, T] mask from key_padding_mask and causality, or None when neither applies.
fn build_mask(
    op: &MultiHeadAttention,
    key_padding_mask: Option<&Tensor>,
    batch: usize,
    seq: usize,
    kv_len: usize,
    past_len: usize,
) -> Result<Option<Vec<f32>>> {
    let total = past_len + kv_len;
    let causal = op.unidirectional && seq > 1;
    if key_padding_mask.is_none() && !causal {
        return Ok(None);
    }
    let mut mask = vec![0f32; batch * seq * total];
    if let Some(m) = key_padding_mask {
        let mv = m
            .to_i64_vec()
            .context("MultiHeadAttention key_padding_mask")?;
        let s = m.shape();
        let filter = op.mask_filter_value;
        if s == [batch] {
            // Key lengths: keys at or after the length are padding.
            for b in 0..batch {
                let end = mv[b].clamp(0, total as i64) as usize;
                for sq in 0..seq {
                    mask[(b * seq + sq) * total + end..(b * seq + sq + 1) * total].fill(filter);
                }
            }
        } else if s == [batch, total] {
            for b in 0..batch {
                for sq in 0..seq {
                    for t in 0..total {
                        if mv[b * total + t] == 0 {
                            mask[(b * seq + sq) * total + t] = filter;
                        }
                    }
                }
            }
        } else if s == [batch, seq, total] {
            for (mk, &v) in mask.iter_mut().zip(&mv) {
                if v == 0 {
                    *mk = filter;
                }
            }
        } else {
            bail!("MultiHeadAttention: key_padding_mask {s:?} must be [{batch}], [{batch}, {total}] or [{batch}, {seq}, {total}]");
        }
    }
    if causal {
        for b in 0..batch {
            for sq in 0..seq {
                let row = &mut mask[(b * seq + sq) * total..(b * seq + sq + 1) * total];
                row.iter_mut()
                    .skip(past_len + sq + 1)
                    .for_each(|m| *m = f32::MIN);
            }
        }
    }
    Ok(Some(mask))
}

/// Grouped-query attention (`kv_num_heads` set by the `kv_cache` pass): key
/// and value have `kv_num_heads` heads, [B, T, Hkv*D] or [B, Hkv, T, D], and
/// are read where they lie (a KV cache view) — no present copy is made.
/// Only `output` is produced.
fn run_grouped(
    op: &MultiHeadAttention,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    key_padding_mask: Option<&Tensor>,
    attn_bias: Option<&Tensor>,
) -> Result<Vec<Tensor>> {
    let heads = op.num_heads;
    let kvh = op.kv_heads();
    let qs = q.shape();
    if qs.len() != 3
        || heads == 0
        || kvh == 0
        || !heads.is_multiple_of(kvh)
        || !qs[2].is_multiple_of(heads)
    {
        bail!("MultiHeadAttention: query {qs:?} does not split into {heads} heads over {kvh} key/value heads");
    }
    let (batch, seq, q_hidden) = (qs[0], qs[1], qs[2]);
    let hd = q_hidden / heads;
    let (ks, vs) = (k.shape(), v.shape());
    // Element (b, kv head, t, d) of K lives at b*bs + h*hs + t*ts + d.
    let (total, hv, kst, vst) = match (ks.len(), vs.len()) {
        (3, 3) => {
            if ks != [batch, ks[1], kvh * hd] || vs[..2] != ks[..2] || !vs[2].is_multiple_of(kvh) {
                bail!("MultiHeadAttention: key {ks:?} / value {vs:?} must be [{batch}, T, {kvh}*{hd}]");
            }
            let (t, hv) = (ks[1], vs[2] / kvh);
            (
                t,
                hv,
                [t * kvh * hd, hd, kvh * hd],
                [t * kvh * hv, hv, kvh * hv],
            )
        }
        (4, 4) => {
            if ks != [batch, kvh, ks[2], hd] || vs[..3] != ks[..3] {
                bail!("MultiHeadAttention: key {ks:?} / value {vs:?} must be [{batch}, {kvh}, T, {hd}]");
            }
            let (t, hv) = (ks[2], vs[3]);
            (
                t,
                hv,
                [kvh * t * hd, t * hd, hd],
                [kvh * t * hv, t * hv, hv],
            )
        }
        _ => bail!("MultiHeadAttention: key {ks:?} and value {vs:?} must both be 3-D or 4-D"),
    };
    let dtype = q.dtype();
    let qv = f32_values(q, "MultiHeadAttention query")?;
    let kv = KvSource::of(k, "MultiHeadAttention key")?;
    let vv = KvSource::of(v, "MultiHeadAttention value")?;
    // The keys end with this step's queries, so the causal past is T - S.
    let past = total.saturating_sub(seq);
    let mask = build_mask(op, key_padding_mask, batch, seq, total - past, past)?;
    let bias_v = attention_bias(attn_bias, batch, heads, seq, total)?;
    let shape = Shape {
        batch,
        seq,
        heads,
        kv_heads: kvh,
        hd,
        hv,
        total,
    };
    let out = attend(
        op,
        &shape,
        &qv,
        KvView {
            data: kv.data(),
            strides: kst,
        },
        KvView {
            data: vv.data(),
            strides: vst,
        },
        mask.as_deref(),
        bias_v.as_ref(),
    );
    Ok(vec![f32_to_tensor(
        dtype,
        vec![batch, seq, heads * hv],
        out,
    )?])
}

/// Sizes of one attention: query heads, key/value heads, head sizes, keys.
struct Shape {
    batch: usize,
    seq: usize,
    heads: usize,
    kv_heads: usize,
    hd: usize,
    hv: usize,
    total: usize,
}

/// A key/value input's elements: f16 read in place, other floats as f32.
enum KvSource<'a> {
    F32(std::borrow::Cow<'a, [f32]>),
    F16(&'a [f16]),
}

impl<'a> KvSource<'a> {
    fn of(t: &'a Tensor, what: &str) -> Result<KvSource<'a>> {
        Ok(match t.dtype() {
            DType::F16 => KvSource::F16(t.view::<f16>()?),
            _ => KvSource::F32(f32_values(t, what)?),
        })
    }

    fn data(&self) -> KvData<'_> {
        match self {
            KvSource::F32(v) => KvData::F32(v),
            KvSource::F16(v) => KvData::F16(v),
        }
    }
}

/// Keys or values where they lie: element (b, kv head, t, d) at
/// `b*strides[0] + head*strides[1] + t*strides[2] + d`.
struct KvView<'a> {
    data: KvData<'a>,
    strides: [usize; 3],
}

impl KvView<'_> {
    /// Batch row `b` as the decode kernels take it.
    fn rows(&self, b: usize) -> KvRows<'_> {
        let first = b * self.strides[0];
        KvRows {
            data: match self.data {
                KvData::F32(d) => KvData::F32(&d[first..]),
                KvData::F16(d) => KvData::F16(&d[first..]),
            },
            head_stride: self.strides[1],
            row_stride: self.strides[2],
        }
    }

    /// The `rows` × `width` elements of (batch `b`, kv head `g`) as f32 and
    /// their row stride: in place for f32, widened into `scratch` for f16.
    fn head<'s>(
        &'s self,
        b: usize,
        g: usize,
        rows: usize,
        width: usize,
        scratch: &'s mut Vec<f32>,
    ) -> (&'s [f32], usize) {
        let base = b * self.strides[0] + g * self.strides[1];
        match self.data {
            KvData::F32(d) => (&d[base..], self.strides[2]),
            KvData::F16(d) => {
                scratch.resize(rows * width, 0.0);
                for (t, dst) in scratch.chunks_exact_mut(width.max(1)).enumerate() {
                    let src = base + t * self.strides[2];
                    super::mat_mul::f16_to_f32(&d[src..src + width], dst);
                }
                (scratch.as_slice(), width)
            }
        }
    }
}

/// attention_bias [B|1, H|1, S, T] as f32 values with its two broadcast flags.
type Bias<'a> = (std::borrow::Cow<'a, [f32]>, bool, bool);

fn attention_bias<'a>(
    ab: Option<&'a Tensor>,
    batch: usize,
    heads: usize,
    seq: usize,
    total: usize,
) -> Result<Option<Bias<'a>>> {
    let Some(ab) = ab else { return Ok(None) };
    let s = ab.shape();
    if s.len() != 4
        || !(s[0] == 1 || s[0] == batch)
        || !(s[1] == 1 || s[1] == heads)
        || s[2..] != [seq, total]
    {
        bail!("MultiHeadAttention: attention_bias {s:?} must be [{batch}|1, {heads}|1, {seq}, {total}]");
    }
    Ok(Some((
        f32_values(ab, "MultiHeadAttention attention_bias")?,
        s[0] == 1,
        s[1] == 1,
    )))
}

/// out [B, S, H*hv] = softmax(scale * Q K^T + bias + mask) V per (batch,
/// head), query head h reading key/value head h / (H / kv_heads). Q is
/// [B, S, H*hd]; the additive mask is [B, S, T].
fn attend(
    op: &MultiHeadAttention,
    sh: &Shape,
    q: &[f32],
    k: KvView,
    v: KvView,
    mask: Option<&[f32]>,
    bias: Option<&Bias>,
) -> Vec<f32> {
    let Shape {
        batch,
        seq,
        heads,
        kv_heads,
        hd,
        hv,
        total,
    } = *sh;
    let q_hidden = heads * hd;
    let out_hidden = heads * hv;
    let mut out = vec![0f32; batch * seq * out_hidden];
    if seq == 0 || total == 0 {
        return out; // nothing to attend from or to.
    }
    let rep = heads / kv_heads.max(1);
    let scale = op
        .scale
        .filter(|&s| s != 0.0)
        .unwrap_or(1.0 / (hd as f32).sqrt());
    let plane = seq * total;
    // Adds the additive terms (bias, mask) of batch b, head h to its scores.
    let add_terms = |scores: &mut [f32], b: usize, h: usize| {
        if let Some((bv, b_bcast, h_bcast)) = bias {
            let bi = if *b_bcast { 0 } else { b };
            let hi = if *h_bcast { 0 } else { h };
            let src = &bv[(bi * bias_heads(*h_bcast, heads) + hi) * plane..][..plane];
            scores.iter_mut().zip(src).for_each(|(s, x)| *s += x);
        }
        if let Some(m) = mask {
            scores
                .iter_mut()
                .zip(&m[b * plane..(b + 1) * plane])
                .for_each(|(s, m)| *s += m);
        }
    };
    let has_terms = bias.is_some() || mask.is_some();
    if seq == 1 {
        // One query row per head (a decode step): see `attention_rows`.
        let dims = DecodeShape {
            heads,
            kv_heads,
            hd,
            hv,
            total,
        };
        for b in 0..batch {
            // Seq 1: a head's scores are one row of `plane` = total.
            let terms = |h: usize, row: &mut [f32]| add_terms(row, b, h);
            attention_rows::decode_attention(
                &dims,
                &q[b * q_hidden..(b + 1) * q_hidden],
                k.rows(b),
                v.rows(b),
                scale,
                has_terms.then_some(&terms as &ScoreTerms),
                &mut out[b * out_hidden..(b + 1) * out_hidden],
            );
        }
        return out;
    }
    let mut scores = vec![0f32; plane];
    let (mut k_wide, mut v_wide) = (Vec::new(), Vec::new());
    for b in 0..batch {
        for g in 0..kv_heads {
            // The query heads of one key/value head share its (widened) rows.
            let (k_bh, k_row) = k.head(b, g, total, hd, &mut k_wide);
            let (v_bh, v_row) = v.head(b, g, total, hv, &mut v_wide);
            for h in g * rep..(g + 1) * rep {
                scores.fill(0.0);
                add_terms(&mut scores, b, h);
                let q_bh = &q[b * seq * q_hidden + h * hd..];
                sgemm_strided(
                    seq,
                    hd,
                    total,
                    scale,
                    q_bh,
                    (q_hidden, 1),
                    k_bh,
                    (1, k_row),
                    1.0,
                    &mut scores,
                    (total, 1),
                );
                softmax_f32(&mut scores, total, 1);
                let out_bh = &mut out[b * seq * out_hidden + h * hv..];
                sgemm_strided(
                    seq,
                    total,
                    hv,
                    1.0,
                    &scores,
                    (total, 1),
                    v_bh,
                    (v_row, 1),
                    0.0,
                    out_bh,
                    (out_hidden, 1),
                );
            }
        }
    }
    out
}

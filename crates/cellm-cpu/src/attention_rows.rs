//! Attention for one query row per head (a decode step), over keys and
//! values where they lie (a KV cache view, f32 or f16).
//!
//! The keys are split into one range per core, and every range is read once,
//! front to back, for all heads: the cache is token-major ([T, kv heads·D]),
//! so a loop per key/value head strided through it, and with three key/value
//! heads on two cores one core had twice the work. Per range: the scores of
//! every query head (`key_scores`), then after one softmax over all keys the
//! range's share of the weighted value sums (`weighted_values`), which are
//! added up in range order.

use crate::ops::softmax::softmax_f32;
use half::f16;

/// Key or value elements: f32, or f16 from an f16 KV cache (widened a few
/// keys at a time, so a step never copies the whole cache).
#[derive(Clone, Copy)]
pub enum KvData<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
}

/// One batch row's keys or values: element (kv head g, key t, d) at
/// `g·head_stride + t·row_stride + d`.
#[derive(Clone, Copy)]
pub struct KvRows<'a> {
    pub data: KvData<'a>,
    pub head_stride: usize,
    pub row_stride: usize,
}

/// Sizes of one decode step's attention.
#[derive(Clone, Copy, Debug)]
pub struct DecodeShape {
    pub heads: usize,
    pub kv_heads: usize,
    /// Key (and query) head size.
    pub hd: usize,
    /// Value head size.
    pub hv: usize,
    /// Keys.
    pub total: usize,
}

/// `terms(h, row)`: adds query head h's additive terms (bias, mask) to its
/// scaled scores.
pub type ScoreTerms<'a> = dyn Fn(usize, &mut [f32]) + Sync + 'a;

/// Keys widened from f16 at a time (their f32 copy stays in L1).
const WIDEN_KEYS: usize = 32;
/// Below this many multiply-adds a step runs on the calling thread.
const PARALLEL_MIN_MACS: usize = 1 << 16;

/// `out[h·hv..][..hv] = softmax_t(scale·q_h·k_{t,g} + terms_h) · v_{t,g}` for
/// each query head h, g = h / (heads / kv_heads), q_h = `q[h·hd..][..hd]`.
/// `terms(h, row)` adds head h's additive terms (bias, mask) to its `total`
/// scaled scores before the softmax.
pub fn decode_attention(
    sh: &DecodeShape,
    q: &[f32],
    keys: KvRows,
    values: KvRows,
    scale: f32,
    terms: Option<&ScoreTerms>,
    out: &mut [f32],
) {
    let (heads, kv_heads, hd, hv, total) = (sh.heads, sh.kv_heads, sh.hd, sh.hv, sh.total);
    assert!(kv_heads > 0 && heads.is_multiple_of(kv_heads));
    assert!(q.len() >= heads * hd && out.len() >= heads * hv);
    // Key/value bounds: each kernel asserts its block covers its rows, and
    // f16 rows are sliced as they are widened.
    let out = &mut out[..heads * hv];
    if total == 0 {
        out.fill(0.0);
        return;
    }
    let tasks = if heads * total * (hd + hv) >= PARALLEL_MIN_MACS {
        crate::par::threads().min(total)
    } else {
        1
    };
    let per = total.div_ceil(tasks);
    let range = |i: usize| i * per..((i + 1) * per).min(total);
    let map = |f: &(dyn Fn(usize) -> Vec<f32> + Sync)| -> Vec<Vec<f32>> {
        if tasks > 1 {
            use rayon::prelude::*;
            (0..tasks).into_par_iter().map(f).collect()
        } else {
            vec![f(0)]
        }
    };

    let parts = map(&|i| {
        let r = range(i);
        let mut s = vec![0f32; heads * r.len()];
        key_scores(sh, q, keys, r, scale, &mut s);
        s
    });
    let mut scores = vec![0f32; heads * total];
    for (i, part) in parts.iter().enumerate() {
        let r = range(i);
        for h in 0..heads {
            scores[h * total + r.start..h * total + r.end]
                .copy_from_slice(&part[h * r.len()..(h + 1) * r.len()]);
        }
    }
    if let Some(terms) = terms {
        for (h, row) in scores.chunks_exact_mut(total).enumerate() {
            terms(h, row);
        }
    }
    softmax_f32(&mut scores, total, 1);

    let parts = map(&|i| {
        let mut acc = vec![0f32; heads * hv];
        weighted_values(sh, &scores, values, range(i), &mut acc);
        acc
    });
    out.copy_from_slice(&parts[0]);
    for part in &parts[1..] {
        out.iter_mut().zip(part).for_each(|(o, p)| *o += p);
    }
}

/// `s[h·n + (t - range.start)] = scale·q_h·k_{t,g}` for t in `range`, n = its length.
fn key_scores(
    sh: &DecodeShape,
    q: &[f32],
    keys: KvRows,
    range: std::ops::Range<usize>,
    scale: f32,
    s: &mut [f32],
) {
    let mut dst = ScoreDst {
        s,
        row_len: range.len(),
    };
    let start = range.start;
    for_blocks(keys, sh.kv_heads, sh.hd, range, |t0, block| {
        kernels::scores(sh, q, block, scale, dst.reborrow(), t0 - start)
    });
}

/// `acc[h·hv..][..hv] += Σ_{t in range} p[h·total + t]·v_{t,g}`, in key order.
fn weighted_values(
    sh: &DecodeShape,
    p: &[f32],
    values: KvRows,
    range: std::ops::Range<usize>,
    acc: &mut [f32],
) {
    for_blocks(values, sh.kv_heads, sh.hv, range, |t0, block| {
        kernels::weighted(sh, p, t0, block, acc)
    });
}

/// Calls `f(first key, block)` over the keys (or values) in `range` as f32
/// blocks: one block where they lie for f32, a few widened keys at a time for
/// f16.
fn for_blocks(
    rows: KvRows,
    kv_heads: usize,
    width: usize,
    range: std::ops::Range<usize>,
    mut f: impl FnMut(usize, Block),
) {
    match rows.data {
        KvData::F32(d) => f(
            range.start,
            Block {
                data: &d[range.start * rows.row_stride..],
                head_stride: rows.head_stride,
                row_stride: rows.row_stride,
                n: range.len(),
            },
        ),
        KvData::F16(d) => {
            let mut wide = Vec::new();
            for t0 in range.clone().step_by(WIDEN_KEYS) {
                let m = WIDEN_KEYS.min(range.end - t0);
                widen(d, rows, kv_heads, width, t0, m, &mut wide);
                let block = Block {
                    data: &wide,
                    head_stride: width,
                    row_stride: kv_heads * width,
                    n: m,
                };
                f(t0, block);
            }
        }
    }
}

/// Keys (or values) t0..t0+m of every kv head as f32, token-major
/// ([m, kv_heads·width]).
fn widen(
    d: &[f16],
    rows: KvRows,
    kv_heads: usize,
    width: usize,
    t0: usize,
    m: usize,
    wide: &mut Vec<f32>,
) {
    wide.resize(m * kv_heads * width, 0.0);
    for t in 0..m {
        for g in 0..kv_heads {
            let src = g * rows.head_stride + (t0 + t) * rows.row_stride;
            let dst = (t * kv_heads + g) * width;
            crate::ops::mat_mul::f16_to_f32(&d[src..src + width], &mut wide[dst..dst + width]);
        }
    }
}

/// Where `kernels::scores` writes: head h's score of range key i at
/// `s[h·row_len + col0 + i]`.
struct ScoreDst<'a> {
    s: &'a mut [f32],
    row_len: usize,
}

impl ScoreDst<'_> {
    fn reborrow(&mut self) -> ScoreDst<'_> {
        ScoreDst {
            s: self.s,
            row_len: self.row_len,
        }
    }
}

/// `n` keys or values as f32, the first at the start of `data`: element
/// (kv head g, row i, d) at `g·head_stride + i·row_stride + d`.
#[derive(Clone, Copy)]
struct Block<'a> {
    data: &'a [f32],
    head_stride: usize,
    row_stride: usize,
    n: usize,
}

impl Block<'_> {
    /// Whether rows of `width` elements lie inside `data`.
    fn covers(&self, kv_heads: usize, width: usize) -> bool {
        self.n == 0
            || self.data.len()
                >= (kv_heads - 1) * self.head_stride + (self.n - 1) * self.row_stride + width
    }
}

mod kernels {
    use super::{Block, DecodeShape, ScoreDst};

    /// Scores of the block's keys for every query head, into `dst` from
    /// column `col0`.
    pub fn scores(
        sh: &DecodeShape,
        q: &[f32],
        keys: Block,
        scale: f32,
        dst: ScoreDst,
        col0: usize,
    ) {
        let rep = sh.heads / sh.kv_heads;
        assert!(keys.covers(sh.kv_heads, sh.hd));
        assert!(dst.s.len() >= (sh.heads - 1) * dst.row_len + col0 + keys.n);
        #[cfg(target_arch = "x86_64")]
        if sh.hd.is_multiple_of(8) && crate::vmath::has_avx2() {
            // SAFETY: AVX2+FMA present; the asserts bound every access.
            unsafe { avx2::scores(sh, rep, q, keys, scale, dst, col0) };
            return;
        }
        for i in 0..keys.n {
            for g in 0..sh.kv_heads {
                let k = &keys.data[g * keys.head_stride + i * keys.row_stride..][..sh.hd];
                for h in g * rep..(g + 1) * rep {
                    let dot: f32 = q[h * sh.hd..][..sh.hd]
                        .iter()
                        .zip(k)
                        .map(|(a, b)| a * b)
                        .sum();
                    dst.s[h * dst.row_len + col0 + i] = scale * dot;
                }
            }
        }
    }

    /// `acc[h·hv..] += Σ_i p[h·total + t0 + i]·v_{i,g}` over the block's
    /// value rows, in order.
    pub fn weighted(sh: &DecodeShape, p: &[f32], t0: usize, values: Block, acc: &mut [f32]) {
        let rep = sh.heads / sh.kv_heads;
        assert!(values.covers(sh.kv_heads, sh.hv));
        assert!(p.len() >= sh.heads * sh.total && t0 + values.n <= sh.total);
        assert!(acc.len() >= sh.heads * sh.hv);
        #[cfg(target_arch = "x86_64")]
        if sh.hv.is_multiple_of(8) && crate::vmath::has_avx2() {
            // SAFETY: as above.
            unsafe { avx2::weighted(sh, rep, p, t0, values, acc) };
            return;
        }
        for i in 0..values.n {
            for g in 0..sh.kv_heads {
                let v = &values.data[g * values.head_stride + i * values.row_stride..][..sh.hv];
                for h in g * rep..(g + 1) * rep {
                    let w = p[h * sh.total + t0 + i];
                    for (a, &x) in acc[h * sh.hv..(h + 1) * sh.hv].iter_mut().zip(v) {
                        *a = w.mul_add(x, *a);
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod avx2 {
        use super::super::{Block, DecodeShape, ScoreDst};
        use std::arch::x86_64::*;

        /// The sum of one vector's lanes.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn sum_of(a: __m256) -> f32 {
            let h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
            let h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)))
        }

        /// Safety: AVX2+FMA; `hd` a multiple of 8; bounds as asserted by the caller.
        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn scores(
            sh: &DecodeShape,
            rep: usize,
            q: &[f32],
            keys: Block,
            scale: f32,
            dst: ScoreDst,
            col0: usize,
        ) {
            let (hs, ts) = (keys.head_stride, keys.row_stride);
            let (qp, kp, sp) = (q.as_ptr(), keys.data.as_ptr(), dst.s.as_mut_ptr());
            // Key by key, heads in memory order: the cache is read front to
            // back, and the heads' dots are independent FMA chains.
            for i in 0..keys.n {
                for g in 0..sh.kv_heads {
                    let k = kp.add(g * hs + i * ts);
                    for h in g * rep..(g + 1) * rep {
                        let qh = qp.add(h * sh.hd);
                        let mut acc = _mm256_setzero_ps();
                        let mut d = 0;
                        while d < sh.hd {
                            acc = _mm256_fmadd_ps(
                                _mm256_loadu_ps(qh.add(d)),
                                _mm256_loadu_ps(k.add(d)),
                                acc,
                            );
                            d += 8;
                        }
                        *sp.add(h * dst.row_len + col0 + i) = scale * sum_of(acc);
                    }
                }
            }
        }

        /// Safety: AVX2+FMA; `hv` a multiple of 8; bounds as asserted by the caller.
        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn weighted(
            sh: &DecodeShape,
            rep: usize,
            p: &[f32],
            t0: usize,
            values: Block,
            acc: &mut [f32],
        ) {
            let (hs, ts) = (values.head_stride, values.row_stride);
            let (pp, vp, ap) = (p.as_ptr(), values.data.as_ptr(), acc.as_mut_ptr());
            for i in 0..values.n {
                for g in 0..sh.kv_heads {
                    let v = vp.add(g * hs + i * ts);
                    for h in g * rep..(g + 1) * rep {
                        let w = _mm256_set1_ps(*pp.add(h * sh.total + t0 + i));
                        let a = ap.add(h * sh.hv);
                        let mut d = 0;
                        while d < sh.hv {
                            _mm256_storeu_ps(
                                a.add(d),
                                _mm256_fmadd_ps(
                                    w,
                                    _mm256_loadu_ps(v.add(d)),
                                    _mm256_loadu_ps(a.add(d)),
                                ),
                            );
                            d += 8;
                        }
                    }
                }
            }
        }
    }
}

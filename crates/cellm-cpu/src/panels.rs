//! Products with f32 or f16 weights stored in column panels (cellm-ir's
//! `Layout::Panels`: B [K, N] as ceil(N/w) panels, each K×w row-major, the
//! last zero-padded), the form cellm-opt's `weight_panels` gives CPU plans.
//!
//! A few rows of A (decode steps) stream each panel once, front to back,
//! with the panel's outputs in registers: no partial sums in memory and one
//! sequential stream per core, which is what lets a one-row product run at
//! memory speed. The cores take disjoint panel ranges, so nothing is summed
//! across threads. More rows (prefill): a 6 × 16 tile kernel reads the
//! panels as they lie, the packed B a GEMM would otherwise make for itself
//! (f32, measured 51-57 GMAC/s on 256 rows against 32-42 for `gemm` called
//! per panel, and 47-56 against 27-36 on 64 rows); f16 panels widen 8
//! weights at a time inside it. Without AVX2 the f32 panels go through
//! `gemm` one panel at a time and the f16 ones widen into a row-major f32
//! buffer for it.

use half::f16;

/// Rows of A up to which the product streams B (the GEMV path).
pub const GEMV_MAX_ROWS: usize = 4;
/// Rows of C per tile of the many-row kernel (see `panel_tile_32`).
const TILE_ROWS: usize = 6;
/// B sizes (elements) below which one core does the whole product (the
/// hand-off would cost more than it saves).
const PARALLEL_MIN: usize = 1 << 16;

/// A tile kernel's row driver (`panel_tile_32!`): `(m, k, a, lda, b, c,
/// ldc)`, rows 0..m of the 16 columns of C at `c` from the 16 panel columns
/// at `b`. Unsafe: the CPU must have its target features (a `tile_rows`
/// that returns it checked them) and the pointers must cover the rows.
pub type TileRows<T> = unsafe fn(usize, usize, *const f32, usize, *const T, *mut f32, usize);

/// Weight element types the panel kernels read.
pub trait PanelWeight: Copy + Send + Sync {
    /// dst[j] = Σ_kk a[kk]·panel[kk·width + j] for one K×width panel.
    fn panel_product(k: usize, a: &[f32], panel: &[Self], width: usize, dst: &mut [f32]);
    /// f32 values of `src` into `dst`.
    fn widen(src: &[Self], dst: &mut [f32]);
    /// The many-row tile kernel's row driver for 32-wide panels, where this
    /// CPU runs it.
    fn tile_rows() -> Option<TileRows<Self>> {
        None
    }
    /// Many-row product straight from the panels, when the type allows it.
    fn direct_gemm(
        _m: usize,
        _k: usize,
        _n: usize,
        _a: &[f32],
        _b: &[Self],
        _width: usize,
        _c: &mut [f32],
    ) -> bool {
        false
    }
}

impl PanelWeight for f16 {
    fn panel_product(k: usize, a: &[f32], panel: &[f16], width: usize, dst: &mut [f32]) {
        assert!(a.len() >= k && panel.len() >= k * width && dst.len() >= width);
        #[cfg(target_arch = "x86_64")]
        if width == 32 && crate::vmath::has_avx2() && std::arch::is_x86_feature_detected!("f16c") {
            // SAFETY: AVX2, FMA and F16C are present; the assert bounds the reads.
            unsafe { avx2::panel_product_32_f16(k, a, panel, dst) };
            return;
        }
        scalar_panel_product(k, a, panel, width, dst, |h| h.to_f32());
    }
    fn widen(src: &[f16], dst: &mut [f32]) {
        crate::ops::mat_mul::f16_to_f32(src, dst);
    }
    fn tile_rows() -> Option<TileRows<f16>> {
        #[cfg(target_arch = "x86_64")]
        if crate::vmath::has_avx2() && std::arch::is_x86_feature_detected!("f16c") {
            return Some(avx2::tile_rows_f16);
        }
        None
    }
}

impl PanelWeight for f32 {
    fn panel_product(k: usize, a: &[f32], panel: &[f32], width: usize, dst: &mut [f32]) {
        assert!(a.len() >= k && panel.len() >= k * width && dst.len() >= width);
        #[cfg(target_arch = "x86_64")]
        if width == 32 && crate::vmath::has_avx2() {
            // SAFETY: AVX2 and FMA are present; the assert bounds the reads.
            unsafe { avx2::panel_product_32_f32(k, a, panel, dst) };
            return;
        }
        scalar_panel_product(k, a, panel, width, dst, |v| v);
    }
    fn widen(src: &[f32], dst: &mut [f32]) {
        dst.copy_from_slice(&src[..dst.len()]);
    }
    fn tile_rows() -> Option<TileRows<f32>> {
        #[cfg(target_arch = "x86_64")]
        if crate::vmath::has_avx2() {
            return Some(avx2::tile_rows_f32);
        }
        None
    }
    fn direct_gemm(
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        b: &[f32],
        width: usize,
        c: &mut [f32],
    ) -> bool {
        // Panel p is a k×width matrix (row stride width) at p·k·width.
        for p in 0..n.div_ceil(width) {
            let panel = &b[p * k * width..(p + 1) * k * width];
            crate::ops::mat_mul::gemm_columns(m, k, n, a, panel, width, p * width, c);
        }
        true
    }
}

/// Every row of C for one 32-wide panel through a tile kernel's row driver,
/// its 16-column halves in turn.
///
/// Safety: the CPU must have the driver's target features.
#[allow(clippy::too_many_arguments)]
unsafe fn tiled_rows<T>(
    m: usize,
    k: usize,
    a: &[f32],
    panel: &[T],
    width: usize,
    dst: &mut [f32],
    ldd: usize,
    rows: TileRows<T>,
) {
    assert!(width == 32 && m > 0);
    assert!(a.len() >= m * k && panel.len() >= k * width && dst.len() >= (m - 1) * ldd + width);
    let (ap, bp, cp) = (a.as_ptr(), panel.as_ptr(), dst.as_mut_ptr());
    // The asserts bound every row read and written.
    for half in [0, 16] {
        rows(m, k, ap, k, bp.add(half), cp.add(half), ldd);
    }
}

fn scalar_panel_product<T: Copy>(
    k: usize,
    a: &[f32],
    panel: &[T],
    width: usize,
    dst: &mut [f32],
    to_f32: impl Fn(T) -> f32,
) {
    dst[..width].fill(0.0);
    for (kk, &s) in a[..k].iter().enumerate() {
        let row = &panel[kk * width..(kk + 1) * width];
        for (d, &h) in dst.iter_mut().zip(row) {
            *d += s * to_f32(h);
        }
    }
}

/// Row-major C[m, n] = A[m, k]·B with B [k, n] in panels of `width`.
pub fn sgemm_panels<T: PanelWeight>(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[T],
    width: usize,
    c: &mut [f32],
) {
    assert!(width > 0 && b.len() >= k * n.div_ceil(width) * width);
    assert!(a.len() >= m * k && c.len() >= m * n);
    let c = &mut c[..m * n];
    if m == 0 || n == 0 {
        return;
    }
    let tiled = if m > GEMV_MAX_ROWS && width == 32 {
        T::tile_rows()
    } else {
        None
    };
    if m > GEMV_MAX_ROWS && tiled.is_none() && T::direct_gemm(m, k, n, a, b, width, c) {
        return;
    }
    if m > GEMV_MAX_ROWS && tiled.is_none() {
        crate::ops::mat_mul::gemm_widened(m, k, n, a, c, &|j0, w, row, dst| {
            // Columns j0..j0+w of B's row `row`: whole panels (j0 and w are
            // multiples of 64, so of any panel width dividing 64) except at N.
            let mut j = j0;
            while j < j0 + w {
                let (p, off) = (j / width, j % width);
                let take = (width - off).min(j0 + w - j);
                let src = (p * k + row) * width + off;
                T::widen(&b[src..src + take], &mut dst[j - j0..j - j0 + take]);
                j += take;
            }
        });
        return;
    }
    let panels = n.div_ceil(width);
    let tasks = if k * n >= PARALLEL_MIN {
        crate::par::threads().min(panels)
    } else {
        1
    };
    let per = panels.div_ceil(tasks);
    // Each task's outputs, m rows × its panels' columns, then placed in C.
    let task = |t: usize| -> Vec<f32> {
        let ps = t * per..((t + 1) * per).min(panels);
        let mut out = vec![0f32; m * ps.len() * width];
        let cols = ps.len() * width;
        for (q, p) in ps.enumerate() {
            let panel = &b[p * k * width..(p + 1) * k * width];
            if let Some(rows) = tiled {
                // SAFETY: `tile_rows` returned the driver, so the CPU runs it.
                unsafe { tiled_rows(m, k, a, panel, width, &mut out[q * width..], cols, rows) };
                continue;
            }
            for i in 0..m {
                let dst = &mut out[i * cols + q * width..i * cols + (q + 1) * width];
                T::panel_product(k, &a[i * k..(i + 1) * k], panel, width, dst);
            }
        }
        out
    };
    let outs: Vec<Vec<f32>> = if tasks > 1 {
        use rayon::prelude::*;
        (0..tasks).into_par_iter().map(task).collect()
    } else {
        vec![task(0)]
    };
    for (t, out) in outs.iter().enumerate() {
        let j0 = t * per * width;
        if j0 >= n {
            break;
        }
        let cols = out.len() / m;
        let used = cols.min(n - j0);
        for i in 0..m {
            c[i * n + j0..i * n + j0 + used].copy_from_slice(&out[i * cols..i * cols + used]);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use half::f16;
    use std::arch::x86_64::*;

    /// `$name(k, a, panel, dst)`: 32 outputs in four vectors, two K rows per
    /// step into two sets of accumulators (two independent FMA chains),
    /// summed at the end; `$load(ptr)` reads 8 weights as f32.
    ///
    /// Safety of the generated fn: the CPU must have the target features;
    /// `a.len() >= k`, `panel.len() >= 32·k`, `dst.len() >= 32`.
    macro_rules! panel_product_32 {
        ($name:ident, $t:ty, $features:literal, $load:expr) => {
            #[target_feature(enable = $features)]
            pub unsafe fn $name(k: usize, a: &[f32], panel: &[$t], dst: &mut [f32]) {
                let (ap, bp) = (a.as_ptr(), panel.as_ptr());
                let load = $load;
                let mut even = [_mm256_setzero_ps(); 4];
                let mut odd = [_mm256_setzero_ps(); 4];
                let mut kk = 0;
                while kk + 2 <= k {
                    let (s0, s1) = (_mm256_set1_ps(*ap.add(kk)), _mm256_set1_ps(*ap.add(kk + 1)));
                    let row = bp.add(kk * 32);
                    for t in 0..4 {
                        even[t] = _mm256_fmadd_ps(s0, load(row.add(t * 8)), even[t]);
                        odd[t] = _mm256_fmadd_ps(s1, load(row.add(32 + t * 8)), odd[t]);
                    }
                    kk += 2;
                }
                if kk < k {
                    let s = _mm256_set1_ps(*ap.add(kk));
                    let row = bp.add(kk * 32);
                    for (t, acc) in even.iter_mut().enumerate() {
                        *acc = _mm256_fmadd_ps(s, load(row.add(t * 8)), *acc);
                    }
                }
                for t in 0..4 {
                    _mm256_storeu_ps(dst.as_mut_ptr().add(t * 8), _mm256_add_ps(even[t], odd[t]));
                }
            }
        };
    }

    panel_product_32!(panel_product_32_f32, f32, "avx2,fma", |p: *const f32| {
        _mm256_loadu_ps(p)
    });
    panel_product_32!(
        panel_product_32_f16,
        f16,
        "avx2,fma,f16c",
        |p: *const f16| { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    );

    /// `$name::<MR>(k, a, lda, panel, dst, ldd)`: an MR × 16 tile of C from
    /// 16 columns of a 32-wide panel (`panel` points at the first), rows of A
    /// at `a + r·lda`, of C at `dst + r·ldd`. Each output is one FMA chain
    /// over K in order. MR = 6 keeps 12 accumulators, the two B vectors and
    /// a broadcast in the 16 registers (a 3 × 32 tile spilled two
    /// accumulators and ran at a third of this speed).
    ///
    /// Safety of the generated fn: the CPU must have the target features;
    /// A rows cover k, the panel 32·k, the C rows 16.
    macro_rules! panel_tile_32 {
        ($name:ident, $rows:ident, $t:ty, $features:literal, $load:expr) => {
            #[target_feature(enable = $features)]
            pub unsafe fn $name<const MR: usize>(
                k: usize,
                a: *const f32,
                lda: usize,
                panel: *const $t,
                dst: *mut f32,
                ldd: usize,
            ) {
                let load = $load;
                let mut acc = [[_mm256_setzero_ps(); 2]; MR];
                for kk in 0..k {
                    let row = panel.add(kk * 32);
                    let b = [load(row), load(row.add(8))];
                    for (r, acc_r) in acc.iter_mut().enumerate() {
                        let s = _mm256_set1_ps(*a.add(r * lda + kk));
                        acc_r[0] = _mm256_fmadd_ps(s, b[0], acc_r[0]);
                        acc_r[1] = _mm256_fmadd_ps(s, b[1], acc_r[1]);
                    }
                }
                for (r, acc_r) in acc.iter().enumerate() {
                    _mm256_storeu_ps(dst.add(r * ldd), acc_r[0]);
                    _mm256_storeu_ps(dst.add(r * ldd + 8), acc_r[1]);
                }
            }

            /// Rows 0..m of C's 16 columns at `c`, in tiles of `TILE_ROWS`
            /// rows and one smaller tile.
            ///
            /// Safety: as the tile, for every row.
            #[target_feature(enable = $features)]
            pub unsafe fn $rows(
                m: usize,
                k: usize,
                a: *const f32,
                lda: usize,
                b: *const $t,
                c: *mut f32,
                ldc: usize,
            ) {
                use super::TILE_ROWS;
                let mut i = 0;
                while i + TILE_ROWS <= m {
                    $name::<TILE_ROWS>(k, a.add(i * lda), lda, b, c.add(i * ldc), ldc);
                    i += TILE_ROWS;
                }
                let (a, c) = (a.add(i * lda), c.add(i * ldc));
                match m - i {
                    0 => {}
                    1 => $name::<1>(k, a, lda, b, c, ldc),
                    2 => $name::<2>(k, a, lda, b, c, ldc),
                    3 => $name::<3>(k, a, lda, b, c, ldc),
                    4 => $name::<4>(k, a, lda, b, c, ldc),
                    _ => $name::<5>(k, a, lda, b, c, ldc),
                }
            }
        };
    }

    panel_tile_32!(
        panel_tile_32_f32,
        tile_rows_f32,
        f32,
        "avx2,fma",
        |p: *const f32| { _mm256_loadu_ps(p) }
    );
    panel_tile_32!(
        panel_tile_32_f16,
        tile_rows_f16,
        f16,
        "avx2,fma,f16c",
        |p: *const f16| { _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i)) }
    );
}

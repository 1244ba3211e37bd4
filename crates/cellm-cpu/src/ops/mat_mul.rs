//! CPU kernel for MatMul (numpy semantics: batch dims broadcast, 1-D operands
//! promoted to a row (A) or a column (B) and the promoted dim dropped again).
//! f32/f64 go through the `gemm` crate (packed, AVX2/AVX-512 microkernels
//! chosen at run time, split over rayon's threads) with explicit strides
//! (broadcast batches need no copy). A few rows of A (decode steps) are bound
//! by reading B, which gemm streams on one core: B's rows are split over the
//! cores instead and the partial products summed. f32 A with f16 B (weights
//! stored as halves) streams the halves through F16C in registers. f16 is
//! computed in f32 and rounded once; integers are naive with wrapping
//! arithmetic (numpy's overflow behaviour).

use super::common::input;
use anyhow::{bail, Context, Result};
use cellm_ir::ops::MatMul;
use cellm_ir::shape::{broadcast_shapes, strides};
use cellm_ir::{DType, Layout, Tensor};
use half::f16;

pub fn run(_op: &MatMul, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    let a = input(inputs, 0).context("MatMul input A")?;
    let b = input(inputs, 1).context("MatMul input B")?;
    let f16_weight = b.dtype() == DType::F16;
    let f32_panels = b.dtype() == DType::F32 && b.layout() != Layout::RowMajor;
    if a.dtype() == DType::F32 && (f16_weight || f32_panels) {
        // f16-stored weights (the f16_weights pass) and panel-stored weights
        // (CPU plans): a 2-D B goes to the weight kernels, which read halves
        // and panels in place; other shapes widen B first.
        if let ([k, n], Some((&ka, lead))) = (b.shape(), a.shape().split_last()) {
            if ka == *k && !lead.is_empty() {
                let rows: usize = lead.iter().product();
                let mut c = vec![0f32; rows * n];
                weight_gemm(rows, *k, *n, a.view::<f32>()?, b, &mut c, "MatMul B")?;
                let mut shape = lead.to_vec();
                shape.push(*n);
                return Ok(vec![Tensor::from_vec(shape, c)]);
            }
        }
    }
    if a.dtype() == DType::F32 && f16_weight {
        let mut wide = vec![0f32; b.len()];
        half::slice::HalfFloatSliceExt::convert_to_f32_slice(
            b.to_row_major().view::<f16>()?,
            &mut wide,
        );
        let wide = Tensor::from_vec(b.shape().to_vec(), wide);
        return run(_op, &[Some(a), Some(&wide)]);
    }
    if a.dtype() != b.dtype() {
        bail!("MatMul: A is {} but B is {}", a.dtype(), b.dtype());
    }
    if b.layout() != Layout::RowMajor {
        // Panel-stored weights under other A: the generic path, row-major.
        return run(_op, &[Some(a), Some(&b.to_row_major())]);
    }
    let plan = Plan::new(a.shape(), b.shape()).context("MatMul")?;
    let out = match a.dtype() {
        DType::F32 => Tensor::from_vec(
            plan.out_shape.clone(),
            plan.run(a.view::<f32>()?, b.view::<f32>()?),
        ),
        DType::F64 => Tensor::from_vec(
            plan.out_shape.clone(),
            plan.run(a.view::<f64>()?, b.view::<f64>()?),
        ),
        DType::F16 => {
            let av: Vec<f32> = a.view::<f16>()?.iter().map(|v| v.to_f32()).collect();
            let bv: Vec<f32> = b.view::<f16>()?.iter().map(|v| v.to_f32()).collect();
            let c = plan.run(&av, &bv);
            Tensor::from_vec(
                plan.out_shape.clone(),
                c.into_iter().map(f16::from_f32).collect::<Vec<_>>(),
            )
        }
        DType::I64 => Tensor::from_vec(
            plan.out_shape.clone(),
            plan.run(a.view::<i64>()?, b.view::<i64>()?),
        ),
        DType::I32 => Tensor::from_vec(
            plan.out_shape.clone(),
            plan.run(a.view::<i32>()?, b.view::<i32>()?),
        ),
        other => bail!("MatMul: unsupported dtype {other}"),
    };
    Ok(vec![out])
}

/// Shapes and per-batch matrix offsets of one MatMul.
struct Plan {
    m: usize,
    k: usize,
    n: usize,
    /// Element offset of each output batch's A / B matrix (broadcast batches repeat).
    a_offsets: Vec<usize>,
    b_offsets: Vec<usize>,
    out_shape: Vec<usize>,
}

impl Plan {
    fn new(a_shape: &[usize], b_shape: &[usize]) -> Result<Plan> {
        if a_shape.is_empty() || b_shape.is_empty() {
            bail!("scalar operands are not allowed (A {a_shape:?}, B {b_shape:?})");
        }
        // Promote 1-D operands: A [K] -> [1, K], B [K] -> [K, 1].
        let a2: Vec<usize> = if a_shape.len() == 1 {
            vec![1, a_shape[0]]
        } else {
            a_shape.to_vec()
        };
        let b2: Vec<usize> = if b_shape.len() == 1 {
            vec![b_shape[0], 1]
        } else {
            b_shape.to_vec()
        };
        let (m, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
        let (kb, n) = (b2[b2.len() - 2], b2[b2.len() - 1]);
        if k != kb {
            bail!("inner dims differ: A {a_shape:?} x B {b_shape:?}");
        }
        let a_batch = &a2[..a2.len() - 2];
        let b_batch = &b2[..b2.len() - 2];
        let batch = broadcast_shapes(a_batch, b_batch).with_context(|| {
            format!("batch dims of A {a_shape:?} and B {b_shape:?} do not broadcast")
        })?;
        let a_offsets = batch_offsets(a_batch, &batch, m * k);
        let b_offsets = batch_offsets(b_batch, &batch, k * n);
        let mut out_shape = batch.clone();
        if a_shape.len() > 1 {
            out_shape.push(m);
        }
        if b_shape.len() > 1 {
            out_shape.push(n);
        }
        Ok(Plan {
            m,
            k,
            n,
            a_offsets,
            b_offsets,
            out_shape,
        })
    }

    fn run<T: Gemm>(&self, a: &[T], b: &[T]) -> Vec<T> {
        let (m, k, n) = (self.m, self.k, self.n);
        let batches = self.a_offsets.len();
        let mut c = vec![T::default(); batches * m * n];
        if c.is_empty() || k == 0 {
            return c; // empty product: zeros (the sum over an empty K).
        }
        // Every batch reads the same B and A's batches are contiguous: one tall GEMM.
        let b_shared = self.b_offsets.iter().all(|&o| o == 0);
        let a_contiguous = self
            .a_offsets
            .iter()
            .enumerate()
            .all(|(i, &o)| o == i * m * k);
        if b_shared && a_contiguous {
            T::gemm(batches * m, k, n, a, b, &mut c);
            return c;
        }
        for (i, c_mat) in c.chunks_exact_mut(m * n).enumerate() {
            let a_mat = &a[self.a_offsets[i]..self.a_offsets[i] + m * k];
            let b_mat = &b[self.b_offsets[i]..self.b_offsets[i] + k * n];
            T::gemm(m, k, n, a_mat, b_mat, c_mat);
        }
        c
    }
}

/// Offsets (in elements) of the operand matrix for each index of the broadcast
/// batch shape `batch`; dims of size 1 (or missing) in `own` repeat.
fn batch_offsets(own: &[usize], batch: &[usize], mat_size: usize) -> Vec<usize> {
    let own_strides = strides(own);
    let lead = batch.len() - own.len();
    let total: usize = batch.iter().product();
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; batch.len()];
    for _ in 0..total {
        let mut off = 0;
        for (j, (&d, &s)) in own.iter().zip(&own_strides).enumerate() {
            if d != 1 {
                off += idx[lead + j] * s;
            }
        }
        out.push(off * mat_size);
        for ax in (0..batch.len()).rev() {
            idx[ax] += 1;
            if idx[ax] < batch[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    out
}

/// Row-major C[m,n] = A[m,k]·B[k,n] in f32 on dense slices (at least those
/// sizes), through `gemm` over all cores (its own GEMV path for one row).
pub(crate) fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    <f32 as Gemm>::gemm(m, k, n, a, b, c)
}

/// Row-major C[m,n] = A[m,k] * B[k,n] on dense slices of exactly those sizes.
pub(crate) trait Gemm: Copy + Default {
    fn gemm(m: usize, k: usize, n: usize, a: &[Self], b: &[Self], c: &mut [Self]);
}

impl Gemm for f32 {
    fn gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
        assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
        if m <= SPLIT_K_ROWS && k * n >= SPLIT_K_MIN && k >= 8 && crate::par::threads() > 1 {
            split_k_gemm(m, k, n, a, b, c);
            return;
        }
        // SAFETY: the assert above keeps every access of the dense row-major
        // operands in bounds.
        unsafe { dense_gemm(m, k, n, a.as_ptr(), b.as_ptr(), c.as_mut_ptr()) }
    }
}

impl Gemm for f64 {
    fn gemm(m: usize, k: usize, n: usize, a: &[f64], b: &[f64], c: &mut [f64]) {
        assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
        // SAFETY: as for f32.
        unsafe { dense_gemm(m, k, n, a.as_ptr(), b.as_ptr(), c.as_mut_ptr()) }
    }
}

/// Up to this many rows of A the product is bound by reading B (decode
/// steps); gemm streams B on one core there, so B's rows are split instead.
const SPLIT_K_ROWS: usize = 4;
/// B sizes (elements) worth a hand-off to the other cores.
const SPLIT_K_MIN: usize = 1 << 18;

/// C = A·B for a few rows of A: one contiguous K range of B's rows per core
/// (each a single-threaded gemm into its own partial C), partials summed.
fn split_k_gemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    use rayon::prelude::*;
    let parts = crate::par::threads().min(k / 4);
    let per = k.div_ceil(parts);
    let ranges = k.div_ceil(per);
    // A's columns ks against B's rows ks, single-threaded.
    let part = |ks: std::ops::Range<usize>, dst: &mut [f32]| {
        // SAFETY: A is m×k (row stride k), B's rows ks lie inside b, dst is m×n.
        unsafe {
            gemm::gemm(
                m,
                n,
                ks.len(),
                dst.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr().add(ks.start),
                1,
                k as isize,
                b.as_ptr().add(ks.start * n),
                1,
                n as isize,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    };
    let c = &mut c[..m * n];
    let ((), partials) = rayon::join(
        || part(0..per.min(k), c),
        || {
            (1..ranges)
                .into_par_iter()
                .map(|t| {
                    let mut p = vec![0f32; m * n];
                    part(t * per..((t + 1) * per).min(k), &mut p);
                    p
                })
                .collect::<Vec<Vec<f32>>>()
        },
    );
    for p in &partials {
        c.iter_mut().zip(p).for_each(|(x, y)| *x += y);
    }
}

/// Row-major C[m,n] = A[m,k]·B[k,n] through `gemm` on all rayon threads.
///
/// # Safety
/// `a`, `b`, `c` must hold at least m·k, k·n, m·n elements.
unsafe fn dense_gemm<T: Copy + 'static + num_one::One>(
    m: usize,
    k: usize,
    n: usize,
    a: *const T,
    b: *const T,
    c: *mut T,
) {
    if m == 0 || n == 0 {
        return;
    }
    // gemm computes dst = alpha·dst + beta·lhs·rhs; read_dst = false ignores
    // the (uninitialised-for-it) old dst.
    gemm::gemm(
        m,
        n,
        k,
        c,
        1,
        n as isize,
        false,
        a,
        1,
        k as isize,
        b,
        1,
        n as isize,
        T::ZERO,
        T::ONE,
        false,
        false,
        false,
        gemm::Parallelism::Rayon(0),
    );
}

/// 0 and 1 of the float types `gemm` runs.
mod num_one {
    pub trait One {
        const ZERO: Self;
        const ONE: Self;
    }
    impl One for f32 {
        const ZERO: f32 = 0.0;
        const ONE: f32 = 1.0;
    }
    impl One for f64 {
        const ZERO: f64 = 0.0;
        const ONE: f64 = 1.0;
    }
}

macro_rules! naive_int_gemm {
    ($t:ty) => {
        impl Gemm for $t {
            fn gemm(m: usize, k: usize, n: usize, a: &[$t], b: &[$t], c: &mut [$t]) {
                for i in 0..m {
                    let c_row = &mut c[i * n..(i + 1) * n];
                    for p in 0..k {
                        let av = a[i * k + p];
                        let b_row = &b[p * n..(p + 1) * n];
                        for (cv, &bv) in c_row.iter_mut().zip(b_row) {
                            *cv = cv.wrapping_add(av.wrapping_mul(bv));
                        }
                    }
                }
            }
        }
    };
}
naive_int_gemm!(i64);
naive_int_gemm!(i32);

/// Strided f32 GEMM for the other kernels: C = alpha * A * B + beta * C, where
/// element (i, j) of X lives at `x[i * rs + j * cs]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_strided(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
    beta: f32,
    c: &mut [f32],
    (rsc, csc): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rs: usize, cs: usize, rows: usize, cols: usize| {
        (rows.saturating_sub(1)) * rs + (cols.saturating_sub(1)) * cs
    };
    assert!(k == 0 || (last(rsa, csa, m, k) < a.len() && last(rsb, csb, k, n) < b.len()));
    assert!(last(rsc, csc, m, n) < c.len());
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let v = &mut c[i * rsc + j * csc];
                *v = if beta == 0.0 { 0.0 } else { *v * beta };
            }
        }
        return;
    }
    // SAFETY: the asserts above bound the largest index each operand is read
    // or written at. gemm computes dst = alpha·dst + beta·lhs·rhs, so our
    // (alpha, beta) swap places; beta = 0 must not read C (it may hold NaN).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            csc as isize,
            rsc as isize,
            beta != 0.0,
            a.as_ptr(),
            csa as isize,
            rsa as isize,
            b.as_ptr(),
            csb as isize,
            rsb as isize,
            beta,
            alpha,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

// ---- f32 A × f16 B (weights stored as halves, f32 accumulation) ----

/// Row-major C[m,n] = A[m,k]·B[k,n] with B in f16 (read as f32, accumulated
/// in f32). A few rows (decode steps, memory-bound on B) stream B once, its
/// K range split over the cores, converting halves in registers; more rows
/// widen B panel by panel (cheap next to m·k·n flops) for the f32 GEMM.
pub(crate) fn sgemm_f16b(m: usize, k: usize, n: usize, a: &[f32], b: &[half::f16], c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    let c = &mut c[..m * n];
    if m == 0 || n == 0 {
        return;
    }
    if m > crate::panels::GEMV_MAX_ROWS {
        gemm_widened(m, k, n, a, c, &|j0, w, row, dst| {
            let src = row * n + j0;
            f16_to_f32(&b[src..src + w], dst);
        });
        return;
    }
    c.fill(0.0);
    // One K range per core when B is big enough to pay for the hand-off
    // (≥ 256 K halves; smaller weights stream in a few microseconds).
    let parts = if k * n >= 1 << 18 && k >= 8 {
        crate::par::threads().min(k / 4)
    } else {
        1
    };
    // K ranges in multiples of 4 rows (the kernel's step); the first goes
    // straight into C on this thread while the pool computes the others.
    let per = k.div_ceil(parts).div_ceil(4) * 4;
    let ranges = k.div_ceil(per);
    if ranges <= 1 {
        gemv_f16_acc(m, k, n, a, b, 0..k, c);
        return;
    }
    let ((), partials) = rayon::join(
        || gemv_f16_acc(m, k, n, a, b, 0..per.min(k), c),
        || {
            use rayon::prelude::*;
            (1..ranges)
                .into_par_iter()
                .map(|t| {
                    let mut part = vec![0f32; m * n];
                    gemv_f16_acc(m, k, n, a, b, t * per..((t + 1) * per).min(k), &mut part);
                    part
                })
                .collect::<Vec<Vec<f32>>>()
        },
    );
    for p in &partials {
        c.iter_mut().zip(p).for_each(|(x, y)| *x += y);
    }
}

/// `widen(j0, w, row, dst)`: columns j0..j0+w of B's row `row` as f32.
pub(crate) type WidenColumns<'a> = dyn Fn(usize, usize, usize, &mut [f32]) + Sync + 'a;

/// Row-major C[m, n] = A[m, k]·B for a B stored in another form: column
/// panels of B, at most ~2 MB each as f32 (cache-sized, and no f32 copy of a
/// whole weight), are widened by `widen(j0, w, row, dst)` (columns j0..j0+w
/// of B's row `row` into `dst`) and multiplied into their columns of C by
/// the f32 GEMM. Widening is cheap next to m·k·n flops for many rows.
pub(crate) fn gemm_widened(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    c: &mut [f32],
    widen: &WidenColumns<'_>,
) {
    assert!(a.len() >= m * k && c.len() >= m * n);
    let panel = ((1 << 19) / k.max(1)).clamp(64, n.next_multiple_of(64)) / 64 * 64;
    let mut wide = vec![0f32; k * panel.min(n)];
    let mut j0 = 0;
    while j0 < n {
        let w = panel.min(n - j0);
        let wide = &mut wide[..k * w];
        crate::par::for_rows_mut(wide, w, 2 * w, |row0, rows| {
            for (r, dst) in rows.chunks_exact_mut(w).enumerate() {
                widen(j0, w, row0 + r, dst);
            }
        });
        gemm_columns(m, k, n, a, wide, w, j0, c);
        j0 += w;
    }
}

/// C's columns j0..j0+w (C row-major m×n) = A[m, k]·P for a k×w matrix P
/// with row stride `p_stride` (≥ w), through the f32 GEMM on all threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_columns(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    p: &[f32],
    p_stride: usize,
    j0: usize,
    c: &mut [f32],
) {
    let w = p_stride.min(n - j0);
    assert!(a.len() >= m * k && c.len() >= m * n && j0 + w <= n);
    assert!(k == 0 || p.len() >= (k - 1) * p_stride + w);
    // SAFETY: A is m×k (row stride k), P k×w (row stride p_stride) and C's
    // columns j0..j0+w of its m rows (row stride n) lie inside the slices
    // (asserted above).
    unsafe {
        gemm::gemm(
            m,
            w,
            k,
            c.as_mut_ptr().add(j0),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            p.as_ptr(),
            1,
            p_stride as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(0),
        );
    }
}

/// C[rows, n] = A[rows, k]·B for a 2-D weight B [k, n] of the MatMul
/// family: f32, f16 (under f32 A) row-major or in column panels, or another
/// float dtype (widened). `what` names the op's weight in errors.
pub(crate) fn weight_gemm(
    rows: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &Tensor,
    c: &mut [f32],
    what: &str,
) -> Result<()> {
    if k == 0 {
        c[..rows * n].fill(0.0);
        return Ok(());
    }
    match (b.dtype(), b.layout()) {
        (DType::F16, Layout::RowMajor) => sgemm_f16b(rows, k, n, a, b.view::<f16>()?, c),
        (DType::F16, Layout::Panels { .. }) => {
            let (panels, width) = b.panels::<f16>()?;
            crate::panels::sgemm_panels(rows, k, n, a, panels, width, c);
        }
        (DType::F32, Layout::Panels { .. }) => {
            let (panels, width) = b.panels::<f32>()?;
            crate::panels::sgemm_panels(rows, k, n, a, panels, width, c);
        }
        (_, Layout::Panels { .. }) => {
            weight_gemm(rows, k, n, a, &b.to_row_major(), c, what)?;
        }
        (_, Layout::RowMajor) => sgemm(rows, k, n, a, &super::common::f32_values(b, what)?, c),
    }
    Ok(())
}

/// f16 → f32 for a slice (F16C when the CPU has it).
pub(crate) fn f16_to_f32(src: &[half::f16], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if crate::vmath::has_avx2() && std::arch::is_x86_feature_detected!("f16c") {
        // SAFETY: AVX2, FMA and F16C are present (checked above).
        unsafe { f16c::convert(src, dst) };
        return;
    }
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_f32();
    }
}

/// c[i][..] += Σ_{kk in ks} a[i][kk]·b[kk][..] over the `m` rows of A (row
/// stride k) and all n columns of the f16 B (row stride n); c is m×n.
fn gemv_f16_acc(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[half::f16],
    ks: std::ops::Range<usize>,
    c: &mut [f32],
) {
    assert!(ks.end <= k && a.len() >= m * k && b.len() >= k * n && c.len() >= m * n);
    #[cfg(target_arch = "x86_64")]
    if crate::vmath::has_avx2() && std::arch::is_x86_feature_detected!("f16c") {
        // SAFETY: features checked above; the assert bounds every access.
        unsafe { f16c::gemv_acc(m, k, n, a, b, ks, c) };
        return;
    }
    for kk in ks {
        let row = &b[kk * n..(kk + 1) * n];
        for i in 0..m {
            let s = a[i * k + kk];
            for (cv, bv) in c[i * n..(i + 1) * n].iter_mut().zip(row) {
                *cv += s * bv.to_f32();
            }
        }
    }
}

/// AVX2 + FMA + F16C kernels: halves are widened in registers (vcvtph2ps).
#[cfg(target_arch = "x86_64")]
mod f16c {
    use half::f16;
    use std::arch::x86_64::*;

    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `dst.len() <= src.len()`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn convert(src: &[f16], dst: &mut [f32]) {
        let n = dst.len().min(src.len());
        let mut j = 0;
        while j + 8 <= n {
            let h = _mm_loadu_si128(src.as_ptr().add(j) as *const __m128i);
            _mm256_storeu_ps(dst.as_mut_ptr().add(j), _mm256_cvtph_ps(h));
            j += 8;
        }
        for t in j..n {
            dst[t] = src[t].to_f32();
        }
    }

    /// Columns per block: the block of each C row stays in L1 while four
    /// f16 B rows stream through it (whole rows for the decoder's widths).
    const BLOCK: usize = 2048;

    /// See `gemv_f16_acc`.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C; `ks.end <= k`, `a.len() >= m·k`,
    /// `b.len() >= k·n`, `c.len() >= m·n`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn gemv_acc(
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        b: &[f16],
        ks: std::ops::Range<usize>,
        c: &mut [f32],
    ) {
        let bp = b.as_ptr() as *const u16;
        let ap = a.as_ptr();
        let cp = c.as_mut_ptr();
        // Eight halves of B row `row` from column `j`, widened.
        macro_rules! load {
            ($row:expr, $j:expr) => {
                _mm256_cvtph_ps(_mm_loadu_si128(bp.add($row * n + $j) as *const __m128i))
            };
        }
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + BLOCK).min(n);
            let vec_end = j0 + (j1 - j0) / 8 * 8;
            let mut kk = ks.start;
            while kk + 4 <= ks.end {
                // Row by row of A (one row in decode steps), the four A
                // values broadcast once per block: 16 columns per iteration.
                for i in 0..m {
                    let ar = ap.add(i * k + kk);
                    let (s0, s1, s2, s3) = (
                        _mm256_set1_ps(*ar),
                        _mm256_set1_ps(*ar.add(1)),
                        _mm256_set1_ps(*ar.add(2)),
                        _mm256_set1_ps(*ar.add(3)),
                    );
                    let crow = cp.add(i * n);
                    let mut j = j0;
                    while j + 16 <= vec_end {
                        let mut x = _mm256_loadu_ps(crow.add(j));
                        let mut y = _mm256_loadu_ps(crow.add(j + 8));
                        x = _mm256_fmadd_ps(s0, load!(kk, j), x);
                        y = _mm256_fmadd_ps(s0, load!(kk, j + 8), y);
                        x = _mm256_fmadd_ps(s1, load!(kk + 1, j), x);
                        y = _mm256_fmadd_ps(s1, load!(kk + 1, j + 8), y);
                        x = _mm256_fmadd_ps(s2, load!(kk + 2, j), x);
                        y = _mm256_fmadd_ps(s2, load!(kk + 2, j + 8), y);
                        x = _mm256_fmadd_ps(s3, load!(kk + 3, j), x);
                        y = _mm256_fmadd_ps(s3, load!(kk + 3, j + 8), y);
                        _mm256_storeu_ps(crow.add(j), x);
                        _mm256_storeu_ps(crow.add(j + 8), y);
                        j += 16;
                    }
                    while j < vec_end {
                        let mut x = _mm256_loadu_ps(crow.add(j));
                        x = _mm256_fmadd_ps(s0, load!(kk, j), x);
                        x = _mm256_fmadd_ps(s1, load!(kk + 1, j), x);
                        x = _mm256_fmadd_ps(s2, load!(kk + 2, j), x);
                        x = _mm256_fmadd_ps(s3, load!(kk + 3, j), x);
                        _mm256_storeu_ps(crow.add(j), x);
                        j += 8;
                    }
                }
                tail_columns(m, k, n, a, b, kk..kk + 4, vec_end..j1, c);
                kk += 4;
            }
            // The range's last rows (fewer than 4).
            while kk < ks.end {
                for i in 0..m {
                    let s = _mm256_set1_ps(*ap.add(i * k + kk));
                    let crow = cp.add(i * n);
                    let mut j = j0;
                    while j < vec_end {
                        _mm256_storeu_ps(
                            crow.add(j),
                            _mm256_fmadd_ps(s, load!(kk, j), _mm256_loadu_ps(crow.add(j))),
                        );
                        j += 8;
                    }
                }
                tail_columns(m, k, n, a, b, kk..kk + 1, vec_end..j1, c);
                kk += 1;
            }
            j0 = j1;
        }
    }

    /// Scalar update of columns `js` (the fewer-than-8 at a block's end) from rows `ks`.
    #[allow(clippy::too_many_arguments)]
    fn tail_columns(
        m: usize,
        k: usize,
        n: usize,
        a: &[f32],
        b: &[f16],
        ks: std::ops::Range<usize>,
        js: std::ops::Range<usize>,
        c: &mut [f32],
    ) {
        for kk in ks {
            for j in js.clone() {
                let bv = b[kk * n + j].to_f32();
                for i in 0..m {
                    c[i * n + j] += a[i * k + kk] * bv;
                }
            }
        }
    }
}

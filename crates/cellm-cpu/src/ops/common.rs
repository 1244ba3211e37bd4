//! Helpers shared by the CPU kernels.

use anyhow::{anyhow, Result};
use cellm_ir::Tensor;

/// Input `i`, or an error saying it is required.
pub fn input<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> Result<&'a Tensor> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| anyhow!("input {i} is required"))
}

/// Optional input `i`.
pub fn opt_input<'a>(inputs: &[Option<&'a Tensor>], i: usize) -> Option<&'a Tensor> {
    inputs.get(i).copied().flatten()
}

// ---- Helpers for the float kernels (MatMul, Conv, Softmax, norms, attention). ----

/// f32 copy of a float tensor (f16/f64 converted); `what` names op and input in errors.
/// f32 values of a float tensor: borrowed when it already is f32 (weights are
/// read in place), converted otherwise.
pub fn f32_values<'a>(t: &'a Tensor, what: &str) -> Result<std::borrow::Cow<'a, [f32]>> {
    if t.dtype() == cellm_ir::DType::F32 {
        return Ok(std::borrow::Cow::Borrowed(t.f32s()?));
    }
    Ok(std::borrow::Cow::Owned(
        t.to_f32_vec().map_err(|e| anyhow!("{what}: {e}"))?,
    ))
}

/// A tensor of float `dtype` from f32 values (f16 rounds to nearest even, f64 widens).
pub fn f32_to_tensor(
    dtype: cellm_ir::DType,
    shape: Vec<usize>,
    values: Vec<f32>,
) -> Result<Tensor> {
    use cellm_ir::DType;
    Ok(match dtype {
        DType::F32 => Tensor::from_vec(shape, values),
        DType::F16 => Tensor::from_vec(
            shape,
            values
                .into_iter()
                .map(half::f16::from_f32)
                .collect::<Vec<_>>(),
        ),
        DType::F64 => {
            Tensor::from_vec(shape, values.into_iter().map(f64::from).collect::<Vec<_>>())
        }
        other => anyhow::bail!("cannot store float results as {other}"),
    })
}

/// `values` of `shape` broadcast numpy-style (right-aligned, 1 stretches) to `target`, densely.
pub fn broadcast_values_to<T: Copy>(
    values: &[T],
    shape: &[usize],
    target: &[usize],
) -> Result<Vec<T>> {
    if shape == target {
        return Ok(values.to_vec());
    }
    let rank = target.len();
    if shape.len() > rank && shape[..shape.len() - rank].iter().any(|&d| d != 1) {
        anyhow::bail!("shape {shape:?} does not broadcast to {target:?}");
    }
    // Source strides per target axis; 0 where the source dim is 1 or missing.
    let src = &shape[shape.len().saturating_sub(rank)..];
    let src_strides = cellm_ir::shape::strides(src);
    let mut strides = vec![0usize; rank];
    for (i, (&d, &s)) in src.iter().zip(&src_strides).enumerate() {
        let t = rank - src.len() + i;
        if d == target[t] {
            strides[t] = s;
        } else if d != 1 {
            anyhow::bail!("shape {shape:?} does not broadcast to {target:?}");
        }
    }
    let total: usize = target.iter().product();
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; rank];
    for _ in 0..total {
        let off: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
        out.push(values[off]);
        for ax in (0..rank).rev() {
            idx[ax] += 1;
            if idx[ax] < target[ax] {
                break;
            }
            idx[ax] = 0;
        }
    }
    Ok(out)
}

// ---- Typed storage, dtype dispatch and strided iteration (elementwise and data-movement kernels) ----

use bytemuck::Pod;
use cellm_ir::shape::numel;
use cellm_ir::{DType, Element};

/// Owner that lets a typed `Vec` become tensor storage without a copy (and
/// keeps it aligned for its element type).
struct PodVec<W: Pod>(Vec<W>);

impl<W: Pod> AsRef<[u8]> for PodVec<W> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// A tensor of `dtype` whose elements are stored as `W` (a type of the same
/// size, e.g. `u8` for bool or `u16` for f16 bits).
pub fn tensor_from_pod<W: Pod + Send + Sync>(
    dtype: DType,
    shape: Vec<usize>,
    values: Vec<W>,
) -> Result<Tensor> {
    if std::mem::size_of::<W>() != dtype.size() {
        anyhow::bail!(
            "{}-byte values cannot hold {dtype} elements",
            std::mem::size_of::<W>()
        );
    }
    Tensor::from_bytes(dtype, shape, bytes::Bytes::from_owner(PodVec(values)))
}

/// The elements of `t` as `W`s of the same size as its dtype.
pub fn pod_view<W: Pod>(t: &Tensor) -> Result<&[W]> {
    if std::mem::size_of::<W>() != t.dtype().size() {
        anyhow::bail!(
            "{} tensor viewed as {}-byte values",
            t.dtype(),
            std::mem::size_of::<W>()
        );
    }
    bytemuck::try_cast_slice(&t.bytes()[..])
        .map_err(|e| anyhow!("{} tensor storage: {e}", t.dtype()))
}

/// Runs `$body` with `$W` bound to the unsigned integer type as wide as
/// `$dtype`'s elements: for kernels that only move elements around.
macro_rules! with_word {
    ($dtype:expr, $W:ident => $body:expr) => {{
        match $dtype.size() {
            1 => {
                type $W = u8;
                $body
            }
            2 => {
                type $W = u16;
                $body
            }
            4 => {
                type $W = u32;
                $body
            }
            8 => {
                type $W = u64;
                $body
            }
            size => anyhow::bail!("unsupported element size {size}"),
        }
    }};
}
pub(crate) use with_word;

/// Runs `$body` with `$T` bound to the Rust type of numeric `$dtype` (bool is
/// rejected; callers that accept it handle it first).
macro_rules! with_num {
    ($dtype:expr, $T:ident => $body:expr) => {{
        match $dtype {
            cellm_ir::DType::F32 => {
                type $T = f32;
                $body
            }
            cellm_ir::DType::F16 => {
                type $T = half::f16;
                $body
            }
            cellm_ir::DType::F64 => {
                type $T = f64;
                $body
            }
            cellm_ir::DType::I64 => {
                type $T = i64;
                $body
            }
            cellm_ir::DType::I32 => {
                type $T = i32;
                $body
            }
            cellm_ir::DType::I8 => {
                type $T = i8;
                $body
            }
            cellm_ir::DType::U8 => {
                type $T = u8;
                $body
            }
            other => anyhow::bail!("{other} is not a numeric dtype"),
        }
    }};
}
pub(crate) use with_num;

/// Numeric element types with the conversions kernels need. Float→int
/// conversions truncate toward zero (saturating), int→int wrap, like C casts
/// on in-range values.
pub trait Num: Element + PartialOrd {
    const IS_FLOAT: bool;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    fn to_i64(self) -> i64;
    fn from_i64(v: i64) -> Self;
}

macro_rules! impl_num {
    ($($t:ty: $float:literal),*) => {$(
        impl Num for $t {
            const IS_FLOAT: bool = $float;
            fn to_f64(self) -> f64 {
                self as f64
            }
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_i64(v: i64) -> Self {
                v as $t
            }
        }
    )*};
}
impl_num!(f32: true, f64: true, i64: false, i32: false, i8: false, u8: false);

impl Num for half::f16 {
    const IS_FLOAT: bool = true;
    fn to_f64(self) -> f64 {
        self.to_f64()
    }
    fn from_f64(v: f64) -> Self {
        half::f16::from_f64(v)
    }
    fn to_i64(self) -> i64 {
        self.to_f64() as i64
    }
    fn from_i64(v: i64) -> Self {
        half::f16::from_f64(v as f64)
    }
}

/// Row-major element strides of `shape`, signed.
pub fn contiguous_strides(shape: &[usize]) -> Vec<isize> {
    cellm_ir::shape::strides(shape)
        .into_iter()
        .map(|s| s as isize)
        .collect()
}

/// Strides that read a tensor of `in_shape` as if broadcast to `out_shape`
/// (numpy rules: aligned right, size-1 dims repeat with stride 0).
pub fn broadcast_strides(in_shape: &[usize], out_shape: &[usize]) -> Result<Vec<isize>> {
    if in_shape.len() > out_shape.len() {
        anyhow::bail!("shape {in_shape:?} does not broadcast to {out_shape:?}");
    }
    let lead = out_shape.len() - in_shape.len();
    let own = contiguous_strides(in_shape);
    let mut out = vec![0; out_shape.len()];
    for (i, &d) in in_shape.iter().enumerate() {
        if d == out_shape[lead + i] {
            out[lead + i] = if d == 1 { 0 } else { own[i] };
        } else if d != 1 {
            anyhow::bail!("shape {in_shape:?} does not broadcast to {out_shape:?}");
        }
    }
    Ok(out)
}

/// Walks `shape` in row-major order, one row at a time along the innermost
/// dim (after merging dims that are contiguous for every operand), calling
/// `f(offsets, len, steps)` with each operand's offset at the row start and its
/// step along the row. `strides[k]` are operand `k`'s strides per dim and
/// `base[k]` its offset of index 0. Nothing is called for an empty shape.
pub fn for_each_row<const K: usize>(
    shape: &[usize],
    strides: [&[isize]; K],
    base: [isize; K],
    mut f: impl FnMut([isize; K], usize, [isize; K]),
) {
    if shape.contains(&0) {
        return;
    }
    let mut dims: Vec<(usize, [isize; K])> = Vec::with_capacity(shape.len());
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 {
            continue;
        }
        let s: [isize; K] = std::array::from_fn(|k| strides[k][i]);
        if let Some(outer) = dims.last_mut() {
            if (0..K).all(|k| outer.1[k] == s[k] * d as isize) {
                *outer = (outer.0 * d, s);
                continue;
            }
        }
        dims.push((d, s));
    }
    let Some((len, step)) = dims.pop() else {
        f(base, 1, [0; K]);
        return;
    };
    let mut idx = vec![0usize; dims.len()];
    let mut off = base;
    loop {
        f(off, len, step);
        let mut ax = dims.len();
        loop {
            if ax == 0 {
                return;
            }
            ax -= 1;
            let (d, s) = dims[ax];
            idx[ax] += 1;
            if idx[ax] < d {
                for k in 0..K {
                    off[k] += s[k];
                }
                break;
            }
            idx[ax] = 0;
            for k in 0..K {
                off[k] -= s[k] * (d as isize - 1);
            }
        }
    }
}

/// Smallest and largest offset a strided walk of `shape` reaches (shape non-empty).
fn offset_range(shape: &[usize], strides: &[isize], base: isize) -> (isize, isize) {
    let (mut lo, mut hi) = (base, base);
    for (&d, &s) in shape.iter().zip(strides) {
        let span = s * (d as isize - 1);
        if span < 0 {
            lo += span;
        } else {
            hi += span;
        }
    }
    (lo, hi)
}

/// Copies the elements of a strided view of `src` into a new row-major vector.
pub fn strided_copy<W: Copy>(src: &[W], shape: &[usize], strides: &[isize], base: isize) -> Vec<W> {
    let mut out = Vec::with_capacity(numel(shape));
    for_each_row(shape, [strides], [base], |[o], len, [s]| {
        let o = o as usize;
        if s == 1 {
            out.extend_from_slice(&src[o..o + len]);
        } else {
            out.extend((0..len).map(|i| src[(o as isize + i as isize * s) as usize]));
        }
    });
    out
}

/// A new tensor holding the strided view (`shape`, element `strides`, `base`
/// offset) of `t`; fails when the view reaches outside `t`.
pub fn strided_tensor(
    t: &Tensor,
    shape: Vec<usize>,
    strides: &[isize],
    base: isize,
) -> Result<Tensor> {
    if strides.len() != shape.len() {
        anyhow::bail!(
            "view of rank {} given {} strides",
            shape.len(),
            strides.len()
        );
    }
    if numel(&shape) > 0 {
        let (lo, hi) = offset_range(&shape, strides, base);
        if lo < 0 || hi >= t.len() as isize {
            anyhow::bail!(
                "view {shape:?} reaches outside a tensor of shape {:?}",
                t.shape()
            );
        }
    }
    with_word!(t.dtype(), W => {
        let src = pod_view::<W>(t)?;
        let out = strided_copy(src, &shape, strides, base);
        tensor_from_pod(t.dtype(), shape, out)
    })
}

/// `t` broadcast (numpy rules) to `shape`.
pub fn expand_to(t: &Tensor, shape: &[usize]) -> Result<Tensor> {
    if t.shape() == shape {
        return Ok(t.clone());
    }
    let strides = broadcast_strides(t.shape(), shape)?;
    strided_tensor(t, shape.to_vec(), &strides, 0)
}

/// Applies `f` elementwise over `a` and `b` broadcast together (numpy rules);
/// returns the output shape and values.
pub fn broadcast_map2<A: Copy, B: Copy, O>(
    a: &[A],
    a_shape: &[usize],
    b: &[B],
    b_shape: &[usize],
    f: impl Fn(A, B) -> O,
) -> Result<(Vec<usize>, Vec<O>)> {
    if a.len() != numel(a_shape) || b.len() != numel(b_shape) {
        anyhow::bail!("operand sizes do not match shapes {a_shape:?} and {b_shape:?}");
    }
    let shape = cellm_ir::shape::broadcast_shapes(a_shape, b_shape)?;
    let n = numel(&shape);
    // Fast paths: equal sizes (same or only leading-1 differences) and scalars.
    if a.len() == n && b.len() == n {
        return Ok((shape, a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()));
    }
    if a.len() == 1 && b.len() == n {
        let x = a[0];
        return Ok((shape, b.iter().map(|&y| f(x, y)).collect()));
    }
    if b.len() == 1 && a.len() == n {
        let y = b[0];
        return Ok((shape, a.iter().map(|&x| f(x, y)).collect()));
    }
    let sa = broadcast_strides(a_shape, &shape)?;
    let sb = broadcast_strides(b_shape, &shape)?;
    let mut out = Vec::with_capacity(n);
    for_each_row(&shape, [&sa, &sb], [0, 0], |[oa, ob], len, [ia, ib]| {
        let (oa, ob) = (oa as usize, ob as usize);
        match (ia, ib) {
            (1, 1) => out.extend(
                a[oa..oa + len]
                    .iter()
                    .zip(&b[ob..ob + len])
                    .map(|(&x, &y)| f(x, y)),
            ),
            (0, 1) => out.extend(b[ob..ob + len].iter().map(|&y| f(a[oa], y))),
            (1, 0) => out.extend(a[oa..oa + len].iter().map(|&x| f(x, b[ob]))),
            _ => out.extend((0..len).map(|i| {
                f(
                    a[(oa as isize + i as isize * ia) as usize],
                    b[(ob as isize + i as isize * ib) as usize],
                )
            })),
        }
    });
    Ok((shape, out))
}

/// Integer values of a 0-D or 1-D shape-like input (`what` names it in errors).
pub fn int_list(t: &Tensor, what: &str) -> Result<Vec<i64>> {
    if t.rank() > 1 {
        anyhow::bail!("{what} must be 0-D or 1-D, got shape {:?}", t.shape());
    }
    t.to_i64_vec().map_err(|e| anyhow!("{what}: {e}"))
}

/// A dim count from a (possibly negative, ONNX-style) shape value.
pub fn to_dim(v: i64, what: &str) -> Result<usize> {
    usize::try_from(v).map_err(|_| anyhow!("{what}: negative dim {v}"))
}

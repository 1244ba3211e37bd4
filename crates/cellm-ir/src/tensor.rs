//! Dense tensors backed by reference-counted bytes.
//!
//! Storage is `bytes::Bytes`, so weights decoded from an mmap'd model stay in
//! the page cache (no copy), and values made by kernels move in without a copy
//! (`Bytes::from_owner`). Storage is always aligned for its dtype, so typed
//! views are plain casts.
//!
//! A tensor's bytes are row-major unless its [`Layout`] says otherwise: a
//! CPU plan may store a 2-D weight in column panels (see
//! [`Tensor::to_panels`]), which only the kernels that read that layout
//! accept; every row-major accessor refuses such a tensor.

use crate::dtype::DType;
use crate::shape::numel;
use bytes::Bytes;
use half::f16;

#[derive(Clone)]
pub struct Tensor {
    dtype: DType,
    shape: Vec<usize>,
    data: Bytes,
    layout: Layout,
}

/// How a tensor's elements are ordered in its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Layout {
    #[default]
    RowMajor,
    /// A 2-D [K, N] tensor as ceil(N / width) panels of `width` columns,
    /// each K×width row-major, the last one zero-padded. A one-row product
    /// then streams each panel front to back with its outputs in registers
    /// (the CPU's decode GEMVs; see cellm-opt's `weight_panels`).
    Panels { width: usize },
}

impl Layout {
    /// Elements stored for a tensor of `shape` in this layout.
    pub fn stored_len(self, shape: &[usize]) -> usize {
        match (self, shape) {
            (Layout::Panels { width }, &[k, n]) => k * n.div_ceil(width.max(1)) * width,
            _ => numel(shape),
        }
    }
}

/// Owner that lets a typed `Vec` become `Bytes` without a copy.
struct VecOwner<T: bytemuck::Pod>(Vec<T>);

impl<T: bytemuck::Pod> AsRef<[u8]> for VecOwner<T> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Element types that tensors can be built from and viewed as.
pub trait Element: bytemuck::Pod + Send + Sync + 'static {
    const DTYPE: DType;
}
impl Element for f32 {
    const DTYPE: DType = DType::F32;
}
impl Element for f64 {
    const DTYPE: DType = DType::F64;
}
impl Element for f16 {
    const DTYPE: DType = DType::F16;
}
impl Element for i64 {
    const DTYPE: DType = DType::I64;
}
impl Element for i32 {
    const DTYPE: DType = DType::I32;
}
impl Element for i8 {
    const DTYPE: DType = DType::I8;
}
impl Element for u8 {
    const DTYPE: DType = DType::U8;
}

impl Tensor {
    /// A tensor from raw little-endian bytes. Copies only when `data` is not
    /// aligned for `dtype` (possible for initializers inside a protobuf).
    pub fn from_bytes(dtype: DType, shape: Vec<usize>, data: Bytes) -> anyhow::Result<Tensor> {
        Tensor::from_bytes_in(dtype, shape, Layout::RowMajor, data)
    }

    /// [`Tensor::from_bytes`] for bytes stored in `layout`.
    pub fn from_bytes_in(
        dtype: DType,
        shape: Vec<usize>,
        layout: Layout,
        data: Bytes,
    ) -> anyhow::Result<Tensor> {
        if let Layout::Panels { width } = layout {
            if shape.len() != 2 || width == 0 {
                anyhow::bail!("a {dtype} {shape:?} tensor cannot be stored in panels of {width}");
            }
        }
        let want = layout.stored_len(&shape) * dtype.size();
        if data.len() != want {
            anyhow::bail!(
                "tensor of {dtype} {shape:?} needs {want} bytes but {} were given",
                data.len()
            );
        }
        let data = if !(data.as_ptr() as usize).is_multiple_of(dtype.size()) {
            let mut words = vec![0u64; want.div_ceil(8)];
            bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..want].copy_from_slice(&data);
            Bytes::from_owner(VecOwner(words)).slice(0..want)
        } else {
            data
        };
        Ok(Tensor {
            dtype,
            shape,
            data,
            layout,
        })
    }

    pub fn from_vec<T: Element>(shape: Vec<usize>, values: Vec<T>) -> Tensor {
        assert_eq!(
            numel(&shape),
            values.len(),
            "shape {shape:?} does not match {} values",
            values.len()
        );
        Tensor {
            dtype: T::DTYPE,
            shape,
            data: Bytes::from_owner(VecOwner(values)),
            layout: Layout::RowMajor,
        }
    }

    pub fn from_bools(shape: Vec<usize>, values: Vec<bool>) -> Tensor {
        let bytes: Vec<u8> = values.into_iter().map(u8::from).collect();
        let mut t = Tensor::from_vec(shape, bytes);
        t.dtype = DType::Bool;
        t
    }

    pub fn scalar<T: Element>(v: T) -> Tensor {
        Tensor::from_vec(vec![], vec![v])
    }

    /// All-zero tensor.
    pub fn zeros(dtype: DType, shape: Vec<usize>) -> Tensor {
        let n = numel(&shape) * dtype.size();
        let words = vec![0u64; n.div_ceil(8)];
        Tensor {
            dtype,
            shape,
            data: Bytes::from_owner(VecOwner(words)).slice(0..n),
            layout: Layout::RowMajor,
        }
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn len(&self) -> usize {
        numel(&self.shape)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The stored bytes, in [`Tensor::layout`] order.
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }
    pub fn layout(&self) -> Layout {
        self.layout
    }

    fn require_row_major(&self) -> anyhow::Result<()> {
        if let Layout::Panels { width } = self.layout {
            anyhow::bail!(
                "the {} {:?} tensor is stored in column panels of {width}, \
                 which only the CPU weight-product kernels read",
                self.dtype,
                self.shape
            );
        }
        Ok(())
    }

    /// Same data under another shape of equal size.
    pub fn reshaped(&self, shape: Vec<usize>) -> anyhow::Result<Tensor> {
        self.require_row_major()?;
        if numel(&shape) != self.len() {
            anyhow::bail!("cannot reshape {:?} into {shape:?}", self.shape);
        }
        Ok(Tensor {
            dtype: self.dtype,
            shape,
            data: self.data.clone(),
            layout: Layout::RowMajor,
        })
    }

    /// Typed row-major view; fails when the dtype differs or the tensor is
    /// stored in another layout.
    pub fn view<T: Element>(&self) -> anyhow::Result<&[T]> {
        let ok = self.dtype == T::DTYPE || (self.dtype == DType::Bool && T::DTYPE == DType::U8);
        if !ok {
            anyhow::bail!("expected a {} tensor, got {}", T::DTYPE, self.dtype);
        }
        self.require_row_major()?;
        Ok(bytemuck::cast_slice(&self.data))
    }

    /// A 2-D row-major tensor re-stored in column panels of `width` (see
    /// [`Layout::Panels`]); the logical shape and values are unchanged.
    pub fn to_panels(&self, width: usize) -> anyhow::Result<Tensor> {
        self.require_row_major()?;
        let &[k, n] = self.shape.as_slice() else {
            anyhow::bail!(
                "only a 2-D tensor can be stored in panels, got {:?}",
                self.shape
            );
        };
        if width == 0 {
            anyhow::bail!("panel width must be positive");
        }
        let layout = Layout::Panels { width };
        Ok(self.relaid(layout, k, n, width, |row_major, panel| (row_major, panel)))
    }

    /// A copy of this 2-D [k, n] tensor stored in `layout`; `order(row-major
    /// offset, panel offset)` gives (source, destination) for each run of a
    /// panel row, so one loop serves both directions.
    fn relaid(
        &self,
        layout: Layout,
        k: usize,
        n: usize,
        width: usize,
        order: impl Fn(usize, usize) -> (usize, usize),
    ) -> Tensor {
        let es = self.dtype.size();
        let len = layout.stored_len(&self.shape) * es;
        let mut words = vec![0u64; len.div_ceil(8)];
        let out = bytemuck::cast_slice_mut::<u64, u8>(&mut words);
        for p in 0..n.div_ceil(width) {
            let (j0, w) = (p * width, width.min(n - p * width));
            for kk in 0..k {
                let (src, dst) = order((kk * n + j0) * es, (p * k + kk) * width * es);
                out[dst..dst + w * es].copy_from_slice(&self.data[src..src + w * es]);
            }
        }
        Tensor {
            dtype: self.dtype,
            shape: self.shape.clone(),
            data: Bytes::from_owner(VecOwner(words)).slice(0..len),
            layout,
        }
    }

    /// The stored elements of a panel-stored tensor and the panel width.
    pub fn panels<T: Element>(&self) -> anyhow::Result<(&[T], usize)> {
        let Layout::Panels { width } = self.layout else {
            anyhow::bail!(
                "the {} {:?} tensor is row-major, not in panels",
                self.dtype,
                self.shape
            );
        };
        if self.dtype != T::DTYPE {
            anyhow::bail!("expected a {} tensor, got {}", T::DTYPE, self.dtype);
        }
        Ok((bytemuck::cast_slice(&self.data), width))
    }

    /// The same values stored row-major (a copy for a panel-stored tensor).
    pub fn to_row_major(&self) -> Tensor {
        let Layout::Panels { width } = self.layout else {
            return self.clone();
        };
        let (k, n) = (self.shape[0], self.shape[1]);
        self.relaid(Layout::RowMajor, k, n, width, |row_major, panel| {
            (panel, row_major)
        })
    }

    pub fn f32s(&self) -> anyhow::Result<&[f32]> {
        self.view::<f32>()
    }
    pub fn i64s(&self) -> anyhow::Result<&[i64]> {
        self.view::<i64>()
    }
    pub fn bools(&self) -> anyhow::Result<&[u8]> {
        if self.dtype != DType::Bool {
            anyhow::bail!("expected a bool tensor, got {}", self.dtype);
        }
        Ok(&self.data)
    }

    /// Values converted to f64 (for comparisons and small host-side math).
    /// A panel-stored tensor is read in row-major order.
    pub fn to_f64_vec(&self) -> Vec<f64> {
        if self.layout != Layout::RowMajor {
            return self.to_row_major().to_f64_vec();
        }
        let b = &self.data[..];
        match self.dtype {
            DType::F32 => bytemuck::cast_slice::<u8, f32>(b)
                .iter()
                .map(|&v| v as f64)
                .collect(),
            DType::F16 => bytemuck::cast_slice::<u8, f16>(b)
                .iter()
                .map(|v| v.to_f64())
                .collect(),
            DType::F64 => bytemuck::cast_slice::<u8, f64>(b).to_vec(),
            DType::I64 => bytemuck::cast_slice::<u8, i64>(b)
                .iter()
                .map(|&v| v as f64)
                .collect(),
            DType::I32 => bytemuck::cast_slice::<u8, i32>(b)
                .iter()
                .map(|&v| v as f64)
                .collect(),
            DType::I8 => bytemuck::cast_slice::<u8, i8>(b)
                .iter()
                .map(|&v| v as f64)
                .collect(),
            DType::U8 | DType::Bool => b.iter().map(|&v| v as f64).collect(),
        }
    }

    /// Integer values (for shape math): i64/i32/u8/i8/bool tensors.
    pub fn to_i64_vec(&self) -> anyhow::Result<Vec<i64>> {
        self.require_row_major()?;
        let b = &self.data[..];
        Ok(match self.dtype {
            DType::I64 => bytemuck::cast_slice::<u8, i64>(b).to_vec(),
            DType::I32 => bytemuck::cast_slice::<u8, i32>(b)
                .iter()
                .map(|&v| v as i64)
                .collect(),
            DType::I8 => bytemuck::cast_slice::<u8, i8>(b)
                .iter()
                .map(|&v| v as i64)
                .collect(),
            DType::U8 | DType::Bool => b.iter().map(|&v| v as i64).collect(),
            other => anyhow::bail!("expected an integer tensor, got {other}"),
        })
    }

    /// f32 copy of a float tensor (f16/f64 converted).
    pub fn to_f32_vec(&self) -> anyhow::Result<Vec<f32>> {
        Ok(match self.dtype {
            DType::F32 => self.f32s()?.to_vec(),
            DType::F16 => self.view::<f16>()?.iter().map(|v| v.to_f32()).collect(),
            DType::F64 => self.view::<f64>()?.iter().map(|&v| v as f32).collect(),
            other => anyhow::bail!("expected a float tensor, got {other}"),
        })
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.layout {
            Layout::RowMajor => write!(f, "Tensor({} {:?})", self.dtype, self.shape),
            Layout::Panels { width } => {
                write!(
                    f,
                    "Tensor({} {:?} in panels of {width})",
                    self.dtype, self.shape
                )
            }
        }
    }
}

impl PartialEq for Tensor {
    fn eq(&self, other: &Tensor) -> bool {
        self.dtype == other.dtype
            && self.shape == other.shape
            && self.layout == other.layout
            && self.data == other.data
    }
}

/// Tensors as (dtype, shape, little-endian bytes), for plans on disk.
#[cfg(feature = "serde")]
mod serde_impl {
    use super::{Layout, Tensor};
    use crate::DType;
    use bytes::Bytes;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Repr {
        dtype: DType,
        shape: Vec<usize>,
        data: Vec<u8>,
        #[serde(default)]
        layout: Layout,
    }

    impl serde::Serialize for Tensor {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            Repr {
                dtype: self.dtype,
                shape: self.shape.clone(),
                data: self.data.to_vec(),
                layout: self.layout,
            }
            .serialize(s)
        }
    }

    impl<'de> serde::Deserialize<'de> for Tensor {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Tensor, D::Error> {
            let r = Repr::deserialize(d)?;
            Tensor::from_bytes_in(r.dtype, r.shape, r.layout, Bytes::from(r.data))
                .map_err(serde::de::Error::custom)
        }
    }
}

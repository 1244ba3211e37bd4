//! `TensorProto` → `cellm_ir::Tensor`: raw data (kept as a slice of the
//! model's buffer), typed fields, and external data files (mmap'd once each).

use crate::proto::{TensorProto, DATA_LOCATION_EXTERNAL};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use cellm_ir::{DType, Tensor};
use half::f16;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

/// Reads tensor payloads; external data files are mapped on first use and
/// shared by every tensor that lives in them.
pub struct TensorReader<'a> {
    dir: Option<&'a Path>,
    mapped: HashMap<PathBuf, Bytes>,
}

impl<'a> TensorReader<'a> {
    /// `dir` is the model's folder, against which external data is resolved.
    pub fn new(dir: Option<&'a Path>) -> TensorReader<'a> {
        TensorReader {
            dir,
            mapped: HashMap::new(),
        }
    }

    /// Converts `t`. Errors name neither the tensor nor the file; callers add
    /// that context.
    pub fn read(&mut self, t: &TensorProto) -> Result<Tensor> {
        let dtype = DType::from_onnx(t.data_type).ok_or_else(|| {
            anyhow!(
                "unsupported data type {} ({})",
                t.data_type,
                onnx_type_name(t.data_type)
            )
        })?;
        let shape = t
            .dims
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| anyhow!("negative dim {d} in {:?}", t.dims)))
            .collect::<Result<Vec<usize>>>()?;
        let numel = shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| anyhow!("dims {:?} overflow", t.dims))?;
        if numel.checked_mul(dtype.size()).is_none() {
            bail!("dims {:?} overflow", t.dims);
        }

        if t.data_location == DATA_LOCATION_EXTERNAL {
            let data = self.external(t)?;
            return Tensor::from_bytes(dtype, shape, data);
        }
        if !t.raw_data.is_empty() {
            return Tensor::from_bytes(dtype, shape, t.raw_data.clone());
        }
        typed_fields(t, dtype, shape, numel)
    }

    fn external(&mut self, t: &TensorProto) -> Result<Bytes> {
        let mut location = None;
        let mut offset = 0usize;
        let mut length = None;
        for e in &t.external_data {
            match e.key.as_str() {
                "location" => location = Some(e.value.as_str()),
                "offset" => {
                    offset = e
                        .value
                        .parse()
                        .with_context(|| format!("bad external data offset '{}'", e.value))?
                }
                "length" => {
                    length = Some(
                        e.value
                            .parse()
                            .with_context(|| format!("bad external data length '{}'", e.value))?,
                    )
                }
                // "checksum" and unknown keys do not change where the bytes are.
                _ => {}
            }
        }
        let location = location.ok_or_else(|| anyhow!("external data without a 'location'"))?;
        let rel = Path::new(location);
        // The ONNX checker forbids leaving the model's folder; a model file
        // must not make us read arbitrary files.
        if rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            bail!("external data location '{location}' is not a path inside the model's folder");
        }
        let dir = self.dir.ok_or_else(|| {
            anyhow!("external data '{location}' needs the model's folder, which is unknown")
        })?;
        let path = dir.join(rel);
        let file = match self.mapped.get(&path) {
            Some(b) => b.clone(),
            None => {
                let b = cellm_ir::hugemem::map_file(&path)?;
                self.mapped.insert(path.clone(), b.clone());
                b
            }
        };
        let end = match length {
            Some(len) => offset.checked_add(len),
            None => Some(file.len()),
        };
        match end {
            Some(end) if offset <= end && end <= file.len() => Ok(file.slice(offset..end)),
            _ => bail!(
                "external data {}: offset {offset} length {length:?} is outside the file ({} bytes)",
                path.display(),
                file.len()
            ),
        }
    }
}

fn check_len(field: &str, got: usize, want: usize) -> Result<()> {
    if got != want {
        bail!("{field} holds {got} values but the dims need {want}");
    }
    Ok(())
}

/// Values stored in the typed repeated fields (small constants, old exporters).
fn typed_fields(t: &TensorProto, dtype: DType, shape: Vec<usize>, numel: usize) -> Result<Tensor> {
    // An empty tensor may carry no data field at all.
    let int32s = |name: &str| -> Result<&[i32]> {
        check_len(name, t.int32_data.len(), numel)?;
        Ok(&t.int32_data)
    };
    Ok(match dtype {
        DType::F32 => {
            check_len("float_data", t.float_data.len(), numel)?;
            Tensor::from_vec(shape, t.float_data.clone())
        }
        DType::F64 => {
            check_len("double_data", t.double_data.len(), numel)?;
            Tensor::from_vec(shape, t.double_data.clone())
        }
        DType::I64 => {
            check_len("int64_data", t.int64_data.len(), numel)?;
            Tensor::from_vec(shape, t.int64_data.clone())
        }
        DType::I32 => Tensor::from_vec(shape, int32s("int32_data")?.to_vec()),
        // f16 values are stored as their bit patterns, one per int32.
        DType::F16 => {
            let v = int32s("int32_data")?
                .iter()
                .map(|&x| {
                    u16::try_from(x)
                        .map(f16::from_bits)
                        .map_err(|_| anyhow!("f16 bits {x} out of range"))
                })
                .collect::<Result<Vec<f16>>>()?;
            Tensor::from_vec(shape, v)
        }
        DType::I8 => {
            let v = int32s("int32_data")?
                .iter()
                .map(|&x| i8::try_from(x).map_err(|_| anyhow!("int8 value {x} out of range")))
                .collect::<Result<Vec<i8>>>()?;
            Tensor::from_vec(shape, v)
        }
        DType::U8 => {
            let v = int32s("int32_data")?
                .iter()
                .map(|&x| u8::try_from(x).map_err(|_| anyhow!("uint8 value {x} out of range")))
                .collect::<Result<Vec<u8>>>()?;
            Tensor::from_vec(shape, v)
        }
        DType::Bool => {
            let v = int32s("int32_data")?.iter().map(|&x| x != 0).collect();
            Tensor::from_bools(shape, v)
        }
    })
}

/// Name of an ONNX `TensorProto.DataType` code, for error messages.
pub fn onnx_type_name(code: i32) -> &'static str {
    match code {
        0 => "UNDEFINED",
        1 => "FLOAT",
        2 => "UINT8",
        3 => "INT8",
        4 => "UINT16",
        5 => "INT16",
        6 => "INT32",
        7 => "INT64",
        8 => "STRING",
        9 => "BOOL",
        10 => "FLOAT16",
        11 => "DOUBLE",
        12 => "UINT32",
        13 => "UINT64",
        14 => "COMPLEX64",
        15 => "COMPLEX128",
        16 => "BFLOAT16",
        17..=20 => "FLOAT8",
        21 => "UINT4",
        22 => "INT4",
        23 => "FLOAT4E2M1",
        _ => "unknown",
    }
}

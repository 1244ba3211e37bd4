//! Reading and writing numpy `.npy` files (format versions 1-3, C order).

use crate::dtype::DType;
use crate::tensor::Tensor;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use std::path::Path;

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses `.npy` bytes. `what` names the source in errors.
pub fn parse(data: &[u8], what: &str) -> Result<Tensor> {
    if data.len() < 10 || &data[..6] != MAGIC {
        bail!("{what}: not a .npy file (bad magic)");
    }
    let major = data[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([data[8], data[9]]) as usize, 10),
        2 | 3 => {
            if data.len() < 12 {
                bail!("{what}: truncated .npy header");
            }
            (
                u32::from_le_bytes([data[8], data[9], data[10], data[11]]) as usize,
                12,
            )
        }
        v => bail!("{what}: unsupported .npy version {v}"),
    };
    let header = data
        .get(start..start + header_len)
        .with_context(|| format!("{what}: truncated .npy header"))?;
    let header =
        std::str::from_utf8(header).with_context(|| format!("{what}: header is not text"))?;
    let descr =
        dict_value(header, "descr").with_context(|| format!("{what}: no descr in header"))?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let dtype = DType::from_npy_descr(descr)
        .with_context(|| format!("{what}: unsupported dtype {descr}"))?;
    let fortran =
        dict_value(header, "fortran_order").with_context(|| format!("{what}: no fortran_order"))?;
    if fortran.starts_with("True") {
        bail!("{what}: Fortran-ordered arrays are not supported");
    }
    let shape_txt = dict_value(header, "shape").with_context(|| format!("{what}: no shape"))?;
    let inner = shape_txt
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .with_context(|| format!("{what}: bad shape {shape_txt}"))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{what}: bad shape {shape_txt}"))?;
    let body = &data[start + header_len..];
    let want = shape.iter().product::<usize>() * dtype.size();
    if body.len() < want {
        bail!(
            "{what}: data truncated: {} bytes for {dtype} {shape:?} (need {want})",
            body.len()
        );
    }
    Tensor::from_bytes(dtype, shape, Bytes::copy_from_slice(&body[..want]))
}

/// The text after `'key':` up to the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat1 = format!("'{key}':");
    let pat2 = format!("\"{key}\":");
    let pos = header
        .find(&pat1)
        .map(|p| p + pat1.len())
        .or_else(|| header.find(&pat2).map(|p| p + pat2.len()))?;
    let rest = header[pos..].trim_start();
    if rest.starts_with('(') {
        let end = rest.find(')')?;
        return Some(&rest[..=end]);
    }
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    Some(rest[..end].trim())
}

pub fn read(path: &Path) -> Result<Tensor> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&data, &path.display().to_string())
}

/// Serialises a tensor as `.npy` (version 1).
pub fn to_bytes(t: &Tensor) -> Vec<u8> {
    let shape = match t.shape().len() {
        0 => "()".to_string(),
        1 => format!("({},)", t.shape()[0]),
        _ => format!(
            "({})",
            t.shape()
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        t.dtype().npy_descr()
    );
    let total = MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + t.bytes().len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(t.bytes());
    out
}

/// Writes atomically: a temp file in the same folder, then a rename.
pub fn write(path: &Path, t: &Tensor) -> Result<()> {
    crate::fsutil::write_atomic(path, &to_bytes(t))
}

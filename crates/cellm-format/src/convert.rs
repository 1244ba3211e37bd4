//! Conversion front end: picks the reader from the input and writes `.cellm`.

use crate::format::{write_cellm, Header, PendingTensor};
use crate::quant::WeightDType;
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// `--dtype`: what the converted tensors are stored as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertDType {
    /// As in the source (quantized blocks copied as they are).
    Keep,
    /// Matrices as f16; 1-D tensors (norm weights) stay f32.
    F16,
    F32,
}

impl ConvertDType {
    pub fn parse(s: &str) -> Result<ConvertDType> {
        Ok(match s {
            "keep" => ConvertDType::Keep,
            "f16" => ConvertDType::F16,
            "f32" => ConvertDType::F32,
            other => bail!("--dtype must be keep, f16 or f32, got '{other}'"),
        })
    }

    pub fn target(self, src: WeightDType, shape: &[usize]) -> WeightDType {
        match self {
            ConvertDType::Keep => src,
            ConvertDType::F32 => WeightDType::F32,
            ConvertDType::F16 if shape.len() < 2 => WeightDType::F32,
            ConvertDType::F16 => WeightDType::F16,
        }
    }
}

/// A planned conversion: the header and the tensors, produced lazily.
pub struct Converted {
    pub header: Header,
    pub tensors: Vec<PendingTensor>,
}

/// What kind of file or folder `input` is.
fn is_gguf(input: &Path) -> Result<bool> {
    if input.is_dir() {
        return Ok(false);
    }
    let mut magic = [0u8; 4];
    let mut f =
        std::fs::File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    Ok(f.read_exact(&mut magic).is_ok() && &magic == b"GGUF")
}

/// Plans the conversion of a GGUF file, a `.safetensors` file (config.json
/// beside it) or a HF model folder.
pub fn plan(input: &Path, dtype: ConvertDType) -> Result<Converted> {
    if is_gguf(input)? {
        let g = crate::gguf::Gguf::open(input)?;
        crate::gguf::convert(&g, dtype).with_context(|| format!("converting {}", input.display()))
    } else {
        crate::safetensors::convert(input, dtype)
            .with_context(|| format!("converting {}", input.display()))
    }
}

/// Converts `input` into `output`; `progress(done, total)` after each tensor.
pub fn convert_file(
    input: &Path,
    output: &Path,
    dtype: ConvertDType,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let c = plan(input, dtype)?;
    write_cellm(output, &c.header, c.tensors, progress)
}

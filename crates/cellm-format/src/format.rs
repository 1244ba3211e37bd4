//! The `.cellm` container (see `docs/cellm-format.md`): a 64-byte preamble, a
//! JSON header (config, tokenizer, chat template, generation defaults and the
//! tensor table), then 64-byte aligned tensor data. The reader maps the file
//! and hands out tensors as slices of the map (no copy).

use crate::quant::{self, WeightDType};
use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use cellm_ir::{DType, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::Xxh3;

pub const MAGIC: &[u8; 8] = b"CELLMWTS";
pub const VERSION: u32 = 1;
/// Alignment of the data section and of every tensor in it.
pub const ALIGN: usize = 64;
const PREAMBLE: usize = 64;

/// Generation defaults carried by the model.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GenerationDefaults {
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// Tokens that end a generation.
    #[serde(default)]
    pub eos_token_ids: Vec<u32>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    /// Whether plain prompts start with BOS (GGUF `tokenizer.ggml.add_bos_token`).
    #[serde(default)]
    pub add_bos_token: bool,
}

/// One row of the tensor table. `offset` counts from the start of the data section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorEntry {
    pub name: String,
    pub dtype: WeightDType,
    /// Row-major, outermost first (HF order: a linear weight is [out, in]).
    pub shape: Vec<usize>,
    pub offset: u64,
    pub size: u64,
}

/// The JSON header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Model family after routing: "llama" (idefics3 wrappers route to their text model).
    pub architecture: String,
    /// HF-style `config.json` (wrappers keep theirs; `text_config` holds the decoder's).
    pub config: serde_json::Value,
    /// A HF `tokenizer.json` document, when the source had a tokenizer.
    #[serde(default)]
    pub tokenizer: Option<serde_json::Value>,
    #[serde(default)]
    pub chat_template: Option<String>,
    #[serde(default)]
    pub generation: GenerationDefaults,
    /// Where the weights came from (free-form, for people).
    #[serde(default)]
    pub source: serde_json::Value,
    #[serde(default)]
    pub tensors: Vec<TensorEntry>,
}

/// A tensor as stored: raw bytes of its dtype.
#[derive(Clone, Debug)]
pub struct WeightTensor {
    pub name: String,
    pub dtype: WeightDType,
    pub shape: Vec<usize>,
    pub data: Bytes,
}

impl WeightTensor {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// All values as f32 (dequantized when quantized).
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        quant::dequantize(self.dtype, &self.data, self.numel())
            .with_context(|| format!("tensor '{}'", self.name))
    }

    /// Values of row `r` of a 2-D tensor as f32 (an embedding lookup).
    pub fn row_f32(&self, r: usize) -> Result<Vec<f32>> {
        let [rows, cols] = self.shape[..] else {
            bail!("tensor '{}' {:?} is not 2-D", self.name, self.shape);
        };
        if r >= rows {
            bail!(
                "row {r} is out of range for '{}' with {rows} rows",
                self.name
            );
        }
        let row_bytes = self.dtype.nbytes(&[cols])?;
        quant::dequantize(
            self.dtype,
            &self.data[r * row_bytes..(r + 1) * row_bytes],
            cols,
        )
    }

    /// An IR tensor sharing the stored bytes (f32/f16 only).
    pub fn to_ir(&self) -> Result<Tensor> {
        let dtype = match self.dtype {
            WeightDType::F32 => DType::F32,
            WeightDType::F16 => DType::F16,
            q => bail!(
                "tensor '{}' is {q}; dequantize it before using it as an IR tensor",
                self.name
            ),
        };
        Tensor::from_bytes(dtype, self.shape.clone(), self.data.clone())
    }
}

/// An opened `.cellm` file. Tensors borrow the mapping through `Bytes`.
pub struct CellmFile {
    pub path: PathBuf,
    pub header: Header,
    data: Bytes,
    index: HashMap<String, usize>,
    /// The opened file (the inode that is mapped) and where its data section starts.
    file: std::fs::File,
    data_offset: u64,
}

fn rd_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn rd_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl CellmFile {
    /// Opens and checks the file, including its checksum.
    pub fn open(path: &Path) -> Result<CellmFile> {
        Self::open_with(path, true)
    }

    /// Opens without hashing the data (fast path for large files already checked).
    pub fn open_unverified(path: &Path) -> Result<CellmFile> {
        Self::open_with(path, false)
    }

    fn open_with(path: &Path, verify: bool) -> Result<CellmFile> {
        Self::open_inner(path, verify).with_context(|| format!("{}", path.display()))
    }

    fn open_inner(path: &Path, verify: bool) -> Result<CellmFile> {
        let file = std::fs::File::open(path).context("cannot open")?;
        let all = cellm_ir::hugemem::map(&file).context("cannot map")?;
        let b = &all[..];
        if b.len() < PREAMBLE {
            bail!(
                "not a .cellm file: {} bytes is shorter than the 64-byte preamble (truncated?)",
                b.len()
            );
        }
        if &b[..8] != MAGIC {
            bail!("not a .cellm file (bad magic {:?})", &b[..8]);
        }
        let version = rd_u32(b, 8);
        if version != VERSION {
            bail!("unsupported .cellm version {version} (this build reads {VERSION})");
        }
        let header_len = rd_u64(b, 16) as usize;
        let data_offset = rd_u64(b, 24) as usize;
        let data_len = rd_u64(b, 32) as usize;
        let checksum = rd_u64(b, 40);
        let header_end = PREAMBLE
            .checked_add(header_len)
            .context("header length overflows")?;
        if data_offset < header_end || !data_offset.is_multiple_of(ALIGN) {
            bail!("corrupt preamble: data offset {data_offset} with a {header_len}-byte header");
        }
        let end = data_offset
            .checked_add(data_len)
            .context("data length overflows")?;
        if b.len() < end {
            bail!(
                "truncated: the preamble promises {end} bytes but the file has {}",
                b.len()
            );
        }
        if verify {
            let got = xxhash_rust::xxh3::xxh3_64(&b[PREAMBLE..end]);
            if got != checksum {
                bail!("checksum mismatch (stored {checksum:016x}, computed {got:016x}): the file is corrupt");
            }
        }
        let header: Header =
            serde_json::from_slice(&b[PREAMBLE..header_end]).context("corrupt JSON header")?;
        let data = all.slice(data_offset..end);
        let mut index = HashMap::new();
        for (i, t) in header.tensors.iter().enumerate() {
            let want = t
                .dtype
                .nbytes(&t.shape)
                .with_context(|| format!("tensor '{}'", t.name))?;
            let tend = t.offset.saturating_add(t.size);
            if t.size as usize != want
                || tend as usize > data_len
                || !(t.offset as usize).is_multiple_of(ALIGN)
            {
                bail!(
                    "corrupt tensor table: '{}' ({} {:?}) at {}+{} does not fit the {data_len}-byte data section",
                    t.name,
                    t.dtype,
                    t.shape,
                    t.offset,
                    t.size
                );
            }
            if index.insert(t.name.clone(), i).is_some() {
                bail!("corrupt tensor table: '{}' appears twice", t.name);
            }
        }
        Ok(CellmFile {
            path: path.to_path_buf(),
            header,
            data,
            index,
            file,
            data_offset: data_offset as u64,
        })
    }

    pub fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.index.get(name).map(|&i| &self.header.tensors[i])
    }

    /// A copy of tensor `name`'s stored bytes, read from the file rather than
    /// through the mapping: for data transformed once at load (weights
    /// re-laid out or dequantized), whose mapped pages would otherwise stay
    /// in the process's resident memory next to the transformed copy.
    pub fn read_tensor_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let e = self
            .entry(name)
            .ok_or_else(|| anyhow!("{}: no tensor named '{name}'", self.path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; e.size as usize];
            self.file
                .read_exact_at(&mut buf, self.data_offset + e.offset)
                .with_context(|| format!("{}: reading tensor '{name}'", self.path.display()))?;
            Ok(buf)
        }
        #[cfg(not(unix))]
        {
            let _ = (&self.file, self.data_offset);
            Ok(self.tensor(name)?.data.to_vec())
        }
    }

    /// The tensor `name`, sharing the mapped bytes.
    pub fn tensor(&self, name: &str) -> Result<WeightTensor> {
        let e = self
            .entry(name)
            .ok_or_else(|| anyhow!("{}: no tensor named '{name}'", self.path.display()))?;
        let start = e.offset as usize;
        Ok(WeightTensor {
            name: e.name.clone(),
            dtype: e.dtype,
            shape: e.shape.clone(),
            data: self.data.slice(start..start + e.size as usize),
        })
    }
}

/// A tensor to be written: its bytes are produced when the writer reaches it,
/// so a converter never holds the whole model in memory.
pub struct PendingTensor {
    pub name: String,
    pub dtype: WeightDType,
    pub shape: Vec<usize>,
    pub produce: Box<dyn FnOnce() -> Result<Vec<u8>>>,
}

/// Writes `header` (its tensor table is replaced) and `tensors` to `path`
/// through a temporary file and a rename, so readers never see a partial file.
/// `progress(done, total)` is called after each tensor.
pub fn write_cellm(
    path: &Path,
    header: &Header,
    tensors: Vec<PendingTensor>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<()> {
    let mut header = header.clone();
    header.tensors.clear();
    let mut offset = 0u64;
    for t in &tensors {
        let size = t
            .dtype
            .nbytes(&t.shape)
            .with_context(|| format!("tensor '{}'", t.name))? as u64;
        header.tensors.push(TensorEntry {
            name: t.name.clone(),
            dtype: t.dtype,
            shape: t.shape.clone(),
            offset,
            size,
        });
        offset = (offset + size).next_multiple_of(ALIGN as u64);
    }
    let data_len = offset;
    let json = serde_json::to_vec(&header)?;
    let data_offset = (PREAMBLE + json.len()).next_multiple_of(ALIGN);

    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let total = tensors.len();
    let result = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let mut hash = Xxh3::new();
        let mut pre = [0u8; PREAMBLE];
        pre[..8].copy_from_slice(MAGIC);
        pre[8..12].copy_from_slice(&VERSION.to_le_bytes());
        pre[16..24].copy_from_slice(&(json.len() as u64).to_le_bytes());
        pre[24..32].copy_from_slice(&(data_offset as u64).to_le_bytes());
        pre[32..40].copy_from_slice(&data_len.to_le_bytes());
        w.write_all(&pre)?;
        let mut put = |w: &mut std::io::BufWriter<std::fs::File>, b: &[u8]| -> Result<()> {
            hash.update(b);
            w.write_all(b)?;
            Ok(())
        };
        put(&mut w, &json)?;
        put(&mut w, &vec![0u8; data_offset - PREAMBLE - json.len()])?;
        let mut written = 0u64;
        for (i, (t, e)) in tensors.into_iter().zip(&header.tensors).enumerate() {
            let bytes = (t.produce)().with_context(|| format!("tensor '{}'", t.name))?;
            if bytes.len() as u64 != e.size {
                bail!(
                    "tensor '{}': produced {} bytes, its {} {:?} needs {}",
                    e.name,
                    bytes.len(),
                    e.dtype,
                    e.shape,
                    e.size
                );
            }
            put(&mut w, &vec![0u8; (e.offset - written) as usize])?;
            put(&mut w, &bytes)?;
            written = e.offset + e.size;
            progress(i + 1, total);
        }
        put(&mut w, &vec![0u8; (data_len - written) as usize])?;
        let digest = hash.digest();
        let mut file = w.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(40))?;
        file.write_all(&digest.to_le_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

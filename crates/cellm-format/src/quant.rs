//! Weight dtypes of `.cellm` files, including GGML's block-quantized layouts
//! (byte-identical to GGUF's, so `--dtype keep` copies blocks as they are):
//! - `q4_0`: 32 values in 18 bytes: f16 scale `d`, 16 bytes of nibbles;
//!   value j = (low nibble of byte j - 8) * d, value j+16 = (high nibble - 8) * d;
//! - `q4_1`: 32 values in 20 bytes: f16 `d`, f16 `m`, 16 bytes of nibbles;
//!   value = nibble * d + m (same nibble order as q4_0);
//! - `q8_0`: 32 values in 34 bytes: f16 `d`, 32 × i8; value = q * d.
//!
//! Blocks run along the last (contiguous) dim, so its size must be a multiple of 32.

use anyhow::{bail, Result};
use half::f16;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Values per quantization block.
pub const QK: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q8_0,
}

impl WeightDType {
    /// Values per block (1 for plain floats).
    pub fn block_elems(self) -> usize {
        match self {
            WeightDType::F32 | WeightDType::F16 => 1,
            _ => QK,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            WeightDType::F32 => 4,
            WeightDType::F16 => 2,
            WeightDType::Q4_0 => 18,
            WeightDType::Q4_1 => 20,
            WeightDType::Q8_0 => 34,
        }
    }

    pub fn is_quantized(self) -> bool {
        self.block_elems() > 1
    }

    /// Bytes of a tensor of this dtype and `shape`; quantized tensors need a
    /// last dim that is a multiple of the block size.
    pub fn nbytes(self, shape: &[usize]) -> Result<usize> {
        let numel: usize = shape.iter().product();
        if self.is_quantized() {
            let last = shape.last().copied().unwrap_or(1);
            if last % QK != 0 {
                bail!("a {self} tensor needs a last dim that is a multiple of {QK}, got shape {shape:?}");
            }
        }
        Ok(numel / self.block_elems() * self.block_bytes())
    }
}

impl fmt::Display for WeightDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WeightDType::F32 => "f32",
            WeightDType::F16 => "f16",
            WeightDType::Q4_0 => "q4_0",
            WeightDType::Q4_1 => "q4_1",
            WeightDType::Q8_0 => "q8_0",
        })
    }
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Decodes `data` (whole blocks of `dtype`) into `out` (one f32 per value).
pub fn dequantize_into(dtype: WeightDType, data: &[u8], out: &mut [f32]) -> Result<()> {
    let blocks = out.len() / dtype.block_elems();
    if blocks * dtype.block_elems() != out.len() || data.len() != blocks * dtype.block_bytes() {
        bail!(
            "{dtype}: {} bytes do not hold {} values",
            data.len(),
            out.len()
        );
    }
    match dtype {
        WeightDType::F32 => out
            .iter_mut()
            .zip(data.chunks_exact(4))
            .for_each(|(o, b)| *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        WeightDType::F16 => out
            .iter_mut()
            .zip(data.chunks_exact(2))
            .for_each(|(o, b)| *o = f16::from_le_bytes([b[0], b[1]]).to_f32()),
        WeightDType::Q4_0 => {
            for (o, b) in out.chunks_exact_mut(QK).zip(data.chunks_exact(18)) {
                let d = f16_at(b, 0);
                for j in 0..16 {
                    let q = b[2 + j];
                    o[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
                    o[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
                }
            }
        }
        WeightDType::Q4_1 => {
            for (o, b) in out.chunks_exact_mut(QK).zip(data.chunks_exact(20)) {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                for j in 0..16 {
                    let q = b[4 + j];
                    o[j] = (q & 0x0f) as f32 * d + m;
                    o[j + 16] = (q >> 4) as f32 * d + m;
                }
            }
        }
        WeightDType::Q8_0 => {
            for (o, b) in out.chunks_exact_mut(QK).zip(data.chunks_exact(34)) {
                let d = f16_at(b, 0);
                for j in 0..QK {
                    o[j] = (b[2 + j] as i8) as f32 * d;
                }
            }
        }
    }
    Ok(())
}

/// `dequantize_into` into a new vector of `numel` values.
pub fn dequantize(dtype: WeightDType, data: &[u8], numel: usize) -> Result<Vec<f32>> {
    let mut out = vec![0f32; numel];
    dequantize_into(dtype, data, &mut out)?;
    Ok(out)
}

/// Encodes f32 values as `dtype`, with ggml's reference quantizers
/// (`quantize_row_q4_0_ref` etc.), so re-quantizing is what llama.cpp would do.
pub fn quantize(dtype: WeightDType, values: &[f32]) -> Result<Vec<u8>> {
    if !values.len().is_multiple_of(dtype.block_elems()) {
        bail!(
            "{dtype}: {} values are not whole blocks of {}",
            values.len(),
            dtype.block_elems()
        );
    }
    let mut out = Vec::with_capacity(values.len() / dtype.block_elems() * dtype.block_bytes());
    match dtype {
        WeightDType::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        WeightDType::F16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_le_bytes())),
        WeightDType::Q4_0 => {
            for x in values.chunks_exact(QK) {
                // The value of largest magnitude, sign kept, maps to -8.
                let max = x
                    .iter()
                    .copied()
                    .fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
                let d = max / -8.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                for j in 0..16 {
                    let q0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
                    let q1 = ((x[j + 16] * id + 8.5) as i8).min(15) as u8;
                    out.push(q0 | (q1 << 4));
                }
            }
        }
        WeightDType::Q4_1 => {
            for x in values.chunks_exact(QK) {
                let min = x.iter().copied().fold(f32::INFINITY, f32::min);
                let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let d = (max - min) / 15.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                out.extend_from_slice(&f16::from_f32(min).to_le_bytes());
                for j in 0..16 {
                    let q0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
                    let q1 = (((x[j + 16] - min) * id + 0.5) as i8).min(15) as u8;
                    out.push(q0 | (q1 << 4));
                }
            }
        }
        WeightDType::Q8_0 => {
            for x in values.chunks_exact(QK) {
                let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                out.extend_from_slice(&f16::from_f32(d).to_le_bytes());
                for v in x {
                    out.push(((v * id).round() as i8) as u8);
                }
            }
        }
    }
    Ok(out)
}

/// A `[n, k]` block-quantized matrix in com.microsoft MatMulNBits' layout
/// (what the IR's `MatMulNBits` reads as B, scales, zero points), exactly
/// equal in value to the GGML blocks it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct NBitsMatrix {
    pub bits: usize,
    pub block_size: usize,
    /// [n, k / 32, 32 * bits / 8]; 4 bits: value 2i in the low nibble of byte i.
    pub codes: Vec<u8>,
    /// [n * k / 32]
    pub scales: Vec<f32>,
    /// Float zero points [n * k / 32] (q4_1), or None for the op's default
    /// 2^(bits-1) (q4_0: 8, q8_0: 128).
    pub zero_points: Option<Vec<f32>>,
}

/// Re-lays GGML blocks of a `[n, k]` matrix (`dtype` q4_0, q4_1 or q8_0) as
/// MatMulNBits operands, value for value:
/// - q4_0: (q - 8)·d → codes q, scale d, default zero point 8;
/// - q4_1: q·d + m = (q - (-m/d))·d → codes q, scale d, float zero point -m/d
///   (a block with d = 0 holds m everywhere: codes 1, scale m, zero point 0);
/// - q8_0: i·d = ((i + 128) - 128)·d → codes i + 128 (8 bits), scale d.
///
/// Scales stay f32: d is an f16 value, so nothing rounds, and -m/d as f32
/// is within 2^-24 relative of the exact zero point.
pub fn to_n_bits(dtype: WeightDType, data: &[u8], n: usize, k: usize) -> Result<NBitsMatrix> {
    if !k.is_multiple_of(QK) || data.len() != dtype.nbytes(&[n, k])? {
        bail!(
            "{dtype}: {} bytes are not a [{n}, {k}] matrix of whole blocks",
            data.len()
        );
    }
    let blocks = n * k / QK;
    let bits = if dtype == WeightDType::Q8_0 { 8 } else { 4 };
    let mut codes = Vec::with_capacity(blocks * QK * bits / 8);
    let mut scales = Vec::with_capacity(blocks);
    let mut zero_points = Vec::new();
    // GGML's 4-bit order: byte j holds values j (low nibble) and j + 16 (high).
    let nibbles = |qs: &[u8]| -> [u8; QK] {
        let mut q = [0u8; QK];
        for j in 0..16 {
            q[j] = qs[j] & 0x0f;
            q[j + 16] = qs[j] >> 4;
        }
        q
    };
    let pack = |codes: &mut Vec<u8>, q: &[u8; QK]| {
        codes.extend(q.chunks_exact(2).map(|p| p[0] | (p[1] << 4)));
    };
    let blocks_of = data.chunks_exact(dtype.block_bytes());
    match dtype {
        WeightDType::Q4_0 => {
            for b in blocks_of {
                scales.push(f16_at(b, 0));
                pack(&mut codes, &nibbles(&b[2..18]));
            }
        }
        WeightDType::Q4_1 => {
            zero_points.reserve(blocks);
            for b in blocks_of {
                let (d, m) = (f16_at(b, 0), f16_at(b, 2));
                if d == 0.0 {
                    scales.push(m);
                    zero_points.push(0.0);
                    pack(&mut codes, &[1u8; QK]);
                } else {
                    scales.push(d);
                    zero_points.push(-m / d);
                    pack(&mut codes, &nibbles(&b[4..20]));
                }
            }
        }
        WeightDType::Q8_0 => {
            for b in blocks_of {
                scales.push(f16_at(b, 0));
                codes.extend(b[2..34].iter().map(|&q| q ^ 0x80));
            }
        }
        WeightDType::F32 | WeightDType::F16 => bail!("{dtype} is not block-quantized"),
    }
    let zero_points = (dtype == WeightDType::Q4_1).then_some(zero_points);
    Ok(NBitsMatrix {
        bits,
        block_size: QK,
        codes,
        scales,
        zero_points,
    })
}

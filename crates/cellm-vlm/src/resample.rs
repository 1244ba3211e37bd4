//! Pillow's LANCZOS resize, ported so that results are bit-identical to
//! `PIL.Image.resize(size, Image.LANCZOS)` on 8-bit images.
//!
//! Port of Pillow `src/libImaging/Resample.c` (python-pillow/Pillow):
//! `precompute_coeffs`, `lanczos_filter`, `normalize_coeffs_8bpc`,
//! `ImagingResampleHorizontal_8bpc` / `ImagingResampleVertical_8bpc` and
//! `ImagingResampleInner`. Coefficients are computed in f64 exactly as the C
//! code does, rounded to 22-bit fixed point (`PRECISION_BITS = 32 - 8 - 2`),
//! accumulated in 32-bit ints, horizontal pass first over only the source rows
//! the vertical pass reads, with a u8 clip between the passes. HF's Idefics3
//! processor resizes through PIL, so matching it needs this exact arithmetic
//! (the `image` crate's Lanczos3 differs by 1 on many pixels).

use anyhow::{bail, Result};

/// Fractional bits of the fixed-point coefficients (Pillow: `32 - 8 - 2`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Support radius of Pillow's LANCZOS filter (a = 3).
const LANCZOS_SUPPORT: f64 = 3.0;

/// An interleaved 8-bit image with 1 to 4 channels, rows top to bottom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct U8Image {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub data: Vec<u8>,
}

impl U8Image {
    pub fn new(width: usize, height: usize, channels: usize, data: Vec<u8>) -> Result<U8Image> {
        if !(1..=4).contains(&channels) {
            bail!("U8Image: {channels} channels (1 to 4 supported)");
        }
        if data.len() != width * height * channels {
            bail!(
                "U8Image: {width}x{height}x{channels} needs {} bytes, got {}",
                width * height * channels,
                data.len()
            );
        }
        Ok(U8Image {
            width,
            height,
            channels,
            data,
        })
    }

    /// The region `x0..x1` × `y0..y1` (numpy `a[y0:y1, x0:x1]`).
    pub fn crop(&self, x0: usize, y0: usize, x1: usize, y1: usize) -> Result<U8Image> {
        if x0 > x1 || y0 > y1 || x1 > self.width || y1 > self.height {
            bail!(
                "crop ({x0},{y0})-({x1},{y1}) is outside a {}x{} image",
                self.width,
                self.height
            );
        }
        let c = self.channels;
        let mut data = Vec::with_capacity((x1 - x0) * (y1 - y0) * c);
        for y in y0..y1 {
            let row = &self.data[(y * self.width) * c..(y * self.width + self.width) * c];
            data.extend_from_slice(&row[x0 * c..x1 * c]);
        }
        Ok(U8Image {
            width: x1 - x0,
            height: y1 - y0,
            channels: c,
            data,
        })
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

fn lanczos(x: f64) -> f64 {
    // Truncated sinc, exactly as Pillow (note the half-open interval).
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// Per output pixel: first source index, tap count, and `ksize` fixed-point
/// coefficients (zero beyond the tap count).
struct Coeffs {
    ksize: usize,
    bounds: Vec<(usize, usize)>,
    fixed: Vec<i32>,
}

/// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`.
/// `in0`/`in1` are the box edges in source pixels (f32 like Pillow's box).
fn precompute_coeffs(in_size: usize, in0: f32, in1: f32, out_size: usize) -> Result<Coeffs> {
    if out_size == 0 || in_size == 0 {
        bail!("resize: zero-sized image ({in_size} -> {out_size})");
    }
    // `(double)(in1 - in0)`: the subtraction happens in f32, as in C.
    let scale = (in1 - in0) as f64 / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = LANCZOS_SUPPORT * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut fixed = vec![0i32; out_size * ksize];
    let mut weights = vec![0f64; ksize];
    let ss = 1.0 / filterscale;
    for xx in 0..out_size {
        let center = in0 as f64 + (xx as f64 + 0.5) * scale;
        // C's `(int)` truncates toward zero; the clamp below covers negatives.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
        let taps = (xmax - xmin).max(0) as usize;
        if taps > ksize {
            bail!("resize: {taps} taps exceed the kernel size {ksize}");
        }
        let mut ww = 0.0;
        for (x, w) in weights.iter_mut().enumerate().take(taps) {
            *w = lanczos((x as f64 + xmin as f64 - center + 0.5) * ss);
            ww += *w;
        }
        let row = &mut fixed[xx * ksize..xx * ksize + taps];
        for (dst, &w) in row.iter_mut().zip(&weights[..taps]) {
            let w = if ww != 0.0 { w / ww } else { w };
            let scaled = w * (1u32 << PRECISION_BITS) as f64;
            *dst = if w < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            };
        }
        bounds.push((xmin as usize, taps));
    }
    Ok(Coeffs {
        ksize,
        bounds,
        fixed,
    })
}

/// Pillow's `clip8`: arithmetic shift, then clamp to 0..=255.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const ROUND_HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Horizontal pass over source rows `row0..row0 + rows`.
fn resample_horizontal(
    src: &U8Image,
    row0: usize,
    rows: usize,
    out_w: usize,
    k: &Coeffs,
) -> U8Image {
    let c = src.channels;
    let mut out = vec![0u8; out_w * rows * c];
    for yy in 0..rows {
        let src_row = &src.data[(yy + row0) * src.width * c..(yy + row0 + 1) * src.width * c];
        let dst_row = &mut out[yy * out_w * c..(yy + 1) * out_w * c];
        for (xx, &(xmin, taps)) in k.bounds.iter().enumerate() {
            let coeffs = &k.fixed[xx * k.ksize..xx * k.ksize + taps];
            for ch in 0..c {
                // i32 accumulation with wrapping, like the C `int` sums.
                let mut acc = ROUND_HALF;
                for (x, &w) in coeffs.iter().enumerate() {
                    acc = acc.wrapping_add((src_row[(x + xmin) * c + ch] as i32).wrapping_mul(w));
                }
                dst_row[xx * c + ch] = clip8(acc);
            }
        }
    }
    U8Image {
        width: out_w,
        height: rows,
        channels: c,
        data: out,
    }
}

/// Vertical pass; `row_shift` is subtracted from every bound (Pillow shifts
/// the bounds when the horizontal pass kept only the rows in use).
fn resample_vertical(src: &U8Image, out_h: usize, k: &Coeffs, row_shift: usize) -> U8Image {
    let c = src.channels;
    let w = src.width;
    let mut out = vec![0u8; w * out_h * c];
    let mut acc = vec![0i32; w * c];
    for (yy, &(ymin, taps)) in k.bounds.iter().enumerate() {
        let coeffs = &k.fixed[yy * k.ksize..yy * k.ksize + taps];
        acc.fill(ROUND_HALF);
        // Row-at-a-time accumulation: same sums in the same order per pixel.
        for (y, &wgt) in coeffs.iter().enumerate() {
            let sy = y + ymin - row_shift;
            let src_row = &src.data[sy * w * c..(sy + 1) * w * c];
            for (a, &v) in acc.iter_mut().zip(src_row) {
                *a = a.wrapping_add((v as i32).wrapping_mul(wgt));
            }
        }
        for (d, &a) in out[yy * w * c..(yy + 1) * w * c].iter_mut().zip(&acc) {
            *d = clip8(a);
        }
    }
    U8Image {
        width: w,
        height: out_h,
        channels: c,
        data: out,
    }
}

/// `PIL.Image.resize((out_w, out_h), LANCZOS, box)` for an 8-bit image.
/// `box_` is `(x0, y0, x1, y1)` in source pixels; `None` means the whole image.
pub fn resize_lanczos(
    src: &U8Image,
    out_w: usize,
    out_h: usize,
    box_: Option<[f32; 4]>,
) -> Result<U8Image> {
    if out_w == 0 || out_h == 0 {
        bail!("resize: output size {out_w}x{out_h} is empty");
    }
    if src.width == 0 || src.height == 0 {
        bail!("resize: input image {}x{} is empty", src.width, src.height);
    }
    let b = box_.unwrap_or([0.0, 0.0, src.width as f32, src.height as f32]);
    if b[0] < 0.0 || b[1] < 0.0 || b[2] > src.width as f32 || b[3] > src.height as f32 {
        bail!(
            "resize: box {b:?} is outside the {}x{} image",
            src.width,
            src.height
        );
    }
    if b[2] - b[0] < 0.0 || b[3] - b[1] < 0.0 {
        bail!("resize: box {b:?} has negative size");
    }
    // Python's `Image.resize` returns a copy when nothing changes.
    if (out_w, out_h) == (src.width, src.height)
        && b == [0.0, 0.0, src.width as f32, src.height as f32]
    {
        return Ok(src.clone());
    }
    let need_horizontal = out_w != src.width || b[0] != 0.0 || b[2] != out_w as f32;
    let need_vertical = out_h != src.height || b[1] != 0.0 || b[3] != out_h as f32;

    let vert = precompute_coeffs(src.height, b[1], b[3], out_h)?;
    let ybox_first = vert.bounds[0].0;
    let (last_min, last_taps) = vert.bounds[out_h - 1];
    let ybox_last = last_min + last_taps;

    let mut row_shift = 0;
    let horizontal;
    let mid: &U8Image = if need_horizontal {
        let horiz = precompute_coeffs(src.width, b[0], b[2], out_w)?;
        horizontal = resample_horizontal(src, ybox_first, ybox_last - ybox_first, out_w, &horiz);
        row_shift = ybox_first;
        &horizontal
    } else {
        src
    };
    if need_vertical {
        Ok(resample_vertical(mid, out_h, &vert, row_shift))
    } else {
        Ok(mid.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct float evaluation of the same filter: fixed-point results must be
    /// within 1 level of it (rounding of coefficients and of the mid image).
    fn reference_1d(src: &[f64], out: usize) -> Vec<f64> {
        let scale = src.len() as f64 / out as f64;
        let fs = scale.max(1.0);
        let support = 3.0 * fs;
        (0..out)
            .map(|i| {
                let center = (i as f64 + 0.5) * scale;
                let lo = ((center - support + 0.5) as i64).max(0) as usize;
                let hi = ((center + support + 0.5) as i64).min(src.len() as i64) as usize;
                let w: Vec<f64> = (lo..hi)
                    .map(|x| lanczos((x as f64 - center + 0.5) / fs))
                    .collect();
                let sum: f64 = w.iter().sum();
                (lo..hi)
                    .zip(&w)
                    .map(|(x, w)| src[x] * w / sum)
                    .sum::<f64>()
                    .round()
                    .clamp(0.0, 255.0)
            })
            .collect()
    }

    #[test]
    fn horizontal_only_matches_float_reference() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7);
        println!("seed {seed}");
        let mut state = seed | 1;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        };
        for &(w, ow) in &[(37usize, 11usize), (20, 53), (64, 64 * 3)] {
            let data: Vec<u8> = (0..w).map(|_| next()).collect();
            let img = U8Image::new(w, 1, 1, data.clone()).expect("valid image");
            let out = resize_lanczos(&img, ow, 1, None).expect("resize");
            let want = reference_1d(&data.iter().map(|&v| v as f64).collect::<Vec<_>>(), ow);
            for (i, (&g, &r)) in out.data.iter().zip(&want).enumerate() {
                assert!((g as f64 - r).abs() <= 1.0, "{w}->{ow} at {i}: {g} vs {r}");
            }
        }
    }

    #[test]
    fn identity_resize_is_a_copy() {
        let img = U8Image::new(3, 2, 3, (0..18).collect()).expect("valid image");
        assert_eq!(resize_lanczos(&img, 3, 2, None).expect("resize"), img);
    }

    #[test]
    fn constant_image_stays_constant() {
        let img = U8Image::new(13, 9, 3, vec![200; 13 * 9 * 3]).expect("valid image");
        let out = resize_lanczos(&img, 40, 5, None).expect("resize");
        assert!(out.data.iter().all(|&v| v == 200));
    }
}

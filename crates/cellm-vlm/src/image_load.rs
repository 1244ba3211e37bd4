//! Image decoding the way `transformers.image_utils.load_image` does it:
//! PIL open, `ImageOps.exif_transpose`, `convert("RGB")`.
//!
//! PIL's `convert("RGB")` drops alpha without compositing and copies gray to
//! three channels. For 16-bit sources PIL keeps only part of the value:
//! 16-bit RGB(A) and gray+alpha PNGs are opened as 8-bit modes from the high
//! byte, while 16-bit gray opens as `I;16` / `I` and converts to RGB by
//! clamping the value to 255 (so most of the image turns white). Both are
//! reproduced here.
//!
//! Known deviations from PIL (decoders differ, not this code): JPEG through
//! `zune-jpeg` differs from libjpeg-turbo by up to a few levels; lossy WebP
//! may differ from libwebp; a GIF's transparent pixels come back as whatever
//! colour the `image` crate's first-frame compositing leaves (PIL returns the
//! palette colour of the transparent index).

use crate::resample::U8Image;
use anyhow::{Context, Result};
use image::{DynamicImage, ImageDecoder, ImageReader};
use std::io::Cursor;
use std::path::Path;

/// Decodes an image file into RGB8 like `load_image(path)`.
pub fn load_rgb(path: &Path) -> Result<U8Image> {
    let bytes = std::fs::read(path).with_context(|| format!("reading image {}", path.display()))?;
    decode_rgb(&bytes).with_context(|| format!("decoding image {}", path.display()))
}

/// Decodes encoded image bytes (JPEG, PNG, WebP, GIF) into RGB8, with the
/// EXIF orientation applied.
pub fn decode_rgb(bytes: &[u8]) -> Result<U8Image> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .context("guessing the image format")?;
    let mut decoder = reader
        .into_decoder()
        .context("unsupported or unknown image format")?;
    // A broken EXIF block should not make the image unreadable; PIL also
    // ignores orientation it cannot parse.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).context("decoding pixels")?;
    img.apply_orientation(orientation);
    to_rgb_like_pil(&img)
}

/// `convert("RGB")` as PIL does it for the mode PIL would have opened.
pub fn to_rgb_like_pil(img: &DynamicImage) -> Result<U8Image> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let n = w * h;
    let mut out = Vec::with_capacity(n * 3);
    match img {
        DynamicImage::ImageRgb8(b) => out.extend_from_slice(b.as_raw()),
        DynamicImage::ImageRgba8(b) => {
            for p in b.as_raw().chunks_exact(4) {
                out.extend_from_slice(&p[..3]);
            }
        }
        DynamicImage::ImageLuma8(b) => {
            for &v in b.as_raw() {
                out.extend_from_slice(&[v, v, v]);
            }
        }
        DynamicImage::ImageLumaA8(b) => {
            for p in b.as_raw().chunks_exact(2) {
                out.extend_from_slice(&[p[0], p[0], p[0]]);
            }
        }
        // PIL "I;16" -> "RGB": values above 255 saturate.
        DynamicImage::ImageLuma16(b) => {
            for &v in b.as_raw() {
                let v = v.min(255) as u8;
                out.extend_from_slice(&[v, v, v]);
            }
        }
        // PIL opens 16-bit LA/RGB/RGBA PNGs as 8-bit modes from the high byte.
        DynamicImage::ImageLumaA16(b) => {
            for p in b.as_raw().chunks_exact(2) {
                let v = (p[0] >> 8) as u8;
                out.extend_from_slice(&[v, v, v]);
            }
        }
        DynamicImage::ImageRgb16(b) => out.extend(b.as_raw().iter().map(|&v| (v >> 8) as u8)),
        DynamicImage::ImageRgba16(b) => {
            for p in b.as_raw().chunks_exact(4) {
                out.extend(p[..3].iter().map(|&v| (v >> 8) as u8));
            }
        }
        // Float images do not come from the enabled decoders; take the
        // `image` crate's own conversion.
        other => out.extend_from_slice(other.to_rgb8().as_raw()),
    }
    U8Image::new(w, h, 3, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, LumaA, Rgba};

    #[test]
    fn alpha_is_dropped_not_composited() {
        let img = ImageBuffer::<Rgba<u8>, _>::from_raw(2, 1, vec![10, 20, 30, 0, 40, 50, 60, 128])
            .expect("buffer size");
        let rgb = to_rgb_like_pil(&DynamicImage::ImageRgba8(img)).expect("convert");
        assert_eq!(rgb.data, vec![10, 20, 30, 40, 50, 60]);
    }

    #[test]
    fn gray_is_copied_and_16_bit_gray_saturates() {
        let g = ImageBuffer::<Luma<u8>, _>::from_raw(1, 1, vec![77]).expect("buffer size");
        assert_eq!(
            to_rgb_like_pil(&DynamicImage::ImageLuma8(g))
                .expect("convert")
                .data,
            vec![77; 3]
        );
        let g16 = ImageBuffer::<Luma<u16>, _>::from_raw(2, 1, vec![200, 300]).expect("buffer size");
        let rgb = to_rgb_like_pil(&DynamicImage::ImageLuma16(g16)).expect("convert");
        assert_eq!(rgb.data, vec![200, 200, 200, 255, 255, 255]);
        let la =
            ImageBuffer::<LumaA<u16>, _>::from_raw(1, 1, vec![0xAB12, 7]).expect("buffer size");
        assert_eq!(
            to_rgb_like_pil(&DynamicImage::ImageLumaA16(la))
                .expect("convert")
                .data,
            vec![0xAB; 3]
        );
    }

    #[test]
    fn garbage_bytes_are_an_error() {
        assert!(decode_rgb(b"definitely not an image").is_err());
    }
}

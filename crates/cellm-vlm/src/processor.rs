//! Idefics3 (SmolVLM) image preprocessing and the whole processor, matching
//! transformers 4.48.3 `Idefics3ImageProcessor` / `Idefics3Processor`.

use crate::image_load;
use crate::prompt::{self, ChatMessage, ChatTemplate, TextTokenizer};
use crate::resample::{resize_lanczos, U8Image};
use anyhow::{bail, Context, Result};
use cellm_ir::Tensor;
use serde_json::Value;
use std::path::Path;

/// HF's `MAX_IMAGE_SIZE`: stage 1 never exceeds this side.
const HF_MAX_IMAGE_SIZE: usize = 4096;
/// PIL's `Image.LANCZOS` (HF's `resample` value); the only filter ported.
const PIL_LANCZOS: i64 = 1;

/// Image processor settings from `preprocessor_config.json` plus
/// `image_seq_len` from `processor_config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageProcessorConfig {
    pub do_resize: bool,
    /// `size.longest_edge`: stage-1 target of the longest side.
    pub longest_edge: usize,
    /// `max_image_size.longest_edge`: side of every frame fed to the encoder.
    pub max_image_size: usize,
    pub do_image_splitting: bool,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f64; 3],
    pub image_std: [f64; 3],
    pub resample: i64,
    pub image_seq_len: usize,
}

fn field<'a>(v: &'a Value, key: &str, file: &str) -> Result<&'a Value> {
    v.get(key)
        .with_context(|| format!("{file}: missing `{key}`"))
}
fn as_bool(v: &Value, key: &str, file: &str, default: bool) -> Result<bool> {
    match v.get(key) {
        None => Ok(default),
        Some(x) => x
            .as_bool()
            .with_context(|| format!("{file}: `{key}` is not a bool")),
    }
}
fn as_usize(v: &Value, what: &str, file: &str) -> Result<usize> {
    v.as_u64()
        .map(|x| x as usize)
        .with_context(|| format!("{file}: `{what}` is not a non-negative integer"))
}
fn as_triple(v: &Value, key: &str, file: &str) -> Result<[f64; 3]> {
    let a = field(v, key, file)?
        .as_array()
        .with_context(|| format!("{file}: `{key}` is not a list"))?;
    if a.len() != 3 {
        bail!("{file}: `{key}` has {} values, expected 3", a.len());
    }
    let mut out = [0.0; 3];
    for (o, x) in out.iter_mut().zip(a) {
        *o = x
            .as_f64()
            .with_context(|| format!("{file}: `{key}` holds a non-number"))?;
    }
    Ok(out)
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

impl ImageProcessorConfig {
    /// Reads `preprocessor_config.json` and `processor_config.json` of a
    /// HF model folder.
    pub fn from_model_dir(dir: &Path) -> Result<ImageProcessorConfig> {
        let pre = read_json(&dir.join("preprocessor_config.json"))?;
        let f = "preprocessor_config.json";
        let longest = field(field(&pre, "size", f)?, "longest_edge", f)?;
        let max_size = field(field(&pre, "max_image_size", f)?, "longest_edge", f)?;
        let proc_path = dir.join("processor_config.json");
        // Idefics3Processor's default when the file or key is absent.
        let image_seq_len = if proc_path.exists() {
            match read_json(&proc_path)?.get("image_seq_len") {
                Some(v) => as_usize(v, "image_seq_len", "processor_config.json")?,
                None => 169,
            }
        } else {
            169
        };
        let cfg = ImageProcessorConfig {
            do_resize: as_bool(&pre, "do_resize", f, true)?,
            longest_edge: as_usize(longest, "size.longest_edge", f)?,
            max_image_size: as_usize(max_size, "max_image_size.longest_edge", f)?,
            do_image_splitting: as_bool(&pre, "do_image_splitting", f, true)?,
            do_rescale: as_bool(&pre, "do_rescale", f, true)?,
            rescale_factor: match pre.get("rescale_factor") {
                Some(v) => v
                    .as_f64()
                    .with_context(|| format!("{f}: `rescale_factor` is not a number"))?,
                None => 1.0 / 255.0,
            },
            do_normalize: as_bool(&pre, "do_normalize", f, true)?,
            image_mean: as_triple(&pre, "image_mean", f)?,
            image_std: as_triple(&pre, "image_std", f)?,
            resample: match pre.get("resample") {
                Some(v) => v
                    .as_i64()
                    .with_context(|| format!("{f}: `resample` is not an integer"))?,
                None => PIL_LANCZOS,
            },
            image_seq_len,
        };
        if cfg.resample != PIL_LANCZOS {
            bail!(
                "{f}: resample {} is not supported (only PIL LANCZOS = 1 is ported)",
                cfg.resample
            );
        }
        if cfg.longest_edge == 0 || cfg.max_image_size == 0 {
            bail!("{f}: image sizes must be positive");
        }
        if cfg.image_std.contains(&0.0) {
            bail!("{f}: image_std has a zero");
        }
        Ok(cfg)
    }
}

/// HF `get_resize_output_image_size` (height, width) for stage 1: longest
/// side to `longest_edge`, the other side truncated then rounded up to even,
/// then capped at 4096.
pub fn longest_edge_size(height: usize, width: usize, longest_edge: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let (mut h, mut w) = if width >= height {
        let h = (longest_edge as f64 / aspect) as usize;
        (h + h % 2, longest_edge)
    } else {
        let w = (longest_edge as f64 * aspect) as usize;
        (longest_edge, w + w % 2)
    };
    h = h.max(1);
    w = w.max(1);
    // `_resize_output_size_scale_below_upper_bound`
    let aspect = w as f64 / h as f64;
    if w >= h && w > HF_MAX_IMAGE_SIZE {
        w = HF_MAX_IMAGE_SIZE;
        h = (w as f64 / aspect) as usize;
    } else if h > w && h > HF_MAX_IMAGE_SIZE {
        h = HF_MAX_IMAGE_SIZE;
        w = (h as f64 * aspect) as usize;
    }
    (h.max(1), w.max(1))
}

/// HF `resize_for_vision_encoder` (height, width): both sides to multiples
/// of `max_size`, the short side derived from the long one's aspect ratio.
pub fn vision_encoder_size(height: usize, width: usize, max_size: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    if width >= height {
        let w = width.div_ceil(max_size) * max_size;
        let h = (w as f64 / aspect) as usize;
        (h.div_ceil(max_size) * max_size, w)
    } else {
        let h = height.div_ceil(max_size) * max_size;
        let w = (h as f64 * aspect) as usize;
        (h, w.div_ceil(max_size) * max_size)
    }
}

/// Output of [`Idefics3Processor::preprocess`] for one sample.
#[derive(Clone, Debug)]
pub struct ProcessedImages {
    /// f32 `[1, N, 3, S, S]`: frames of all images in order (each image's
    /// tiles row-major, then its global frame), rescaled and normalised.
    pub pixel_values: Tensor,
    /// bool `[1, N, S, S]` (all true: every frame is S×S).
    pub pixel_attention_mask: Tensor,
    /// (rows, cols) of tiles per image; (0, 0) when not split.
    pub rows_cols: Vec<(usize, usize)>,
    /// u8 `[1, N, 3, S, S]`: the same frames before rescaling.
    pub pixel_u8: Tensor,
}

impl ProcessedImages {
    pub fn num_frames(&self) -> usize {
        self.pixel_values.shape()[1]
    }
}

/// Tokens and images for one prompt, ready for the model.
#[derive(Clone, Debug)]
pub struct ProcessorOutput {
    /// The prompt after image token expansion (the string tokenised).
    pub prompt: String,
    pub input_ids: Vec<u32>,
    pub images: Option<ProcessedImages>,
}

impl ProcessorOutput {
    /// i64 `[1, L]` input ids.
    pub fn input_ids_tensor(&self) -> Tensor {
        let ids: Vec<i64> = self.input_ids.iter().map(|&v| v as i64).collect();
        Tensor::from_vec(vec![1, ids.len()], ids)
    }
    /// i64 `[1, L]` attention mask (all ones: a single unpadded sample).
    pub fn attention_mask_tensor(&self) -> Tensor {
        Tensor::from_vec(
            vec![1, self.input_ids.len()],
            vec![1i64; self.input_ids.len()],
        )
    }
}

/// The Idefics3 processor: image preprocessing, chat template, tokenizer.
#[derive(Clone)]
pub struct Idefics3Processor {
    pub config: ImageProcessorConfig,
    pub template: ChatTemplate,
    pub tokenizer: TextTokenizer,
}

impl Idefics3Processor {
    /// Loads `preprocessor_config.json`, `processor_config.json`,
    /// `chat_template.json` and `tokenizer.json` from a HF model folder.
    pub fn from_model_dir(dir: &Path) -> Result<Idefics3Processor> {
        Ok(Idefics3Processor {
            config: ImageProcessorConfig::from_model_dir(dir)?,
            template: ChatTemplate::from_json_file(&dir.join("chat_template.json"))?,
            tokenizer: TextTokenizer::from_file(&dir.join("tokenizer.json"))?,
        })
    }

    /// Frames (u8, S×S RGB) of one RGB image and its (rows, cols).
    pub fn image_frames(
        &self,
        image: &U8Image,
        split: bool,
    ) -> Result<(Vec<U8Image>, (usize, usize))> {
        if image.channels != 3 {
            bail!(
                "preprocess: expected an RGB image, got {} channels",
                image.channels
            );
        }
        if image.width == 0 || image.height == 0 {
            bail!("preprocess: empty image {}x{}", image.width, image.height);
        }
        let cfg = &self.config;
        let max = cfg.max_image_size;
        let stage1 = if cfg.do_resize {
            let (h, w) = longest_edge_size(image.height, image.width, cfg.longest_edge);
            resize_lanczos(image, w, h, None)?
        } else {
            image.clone()
        };
        if !split {
            return Ok((vec![resize_lanczos(&stage1, max, max, None)?], (0, 0)));
        }
        let (h2, w2) = vision_encoder_size(stage1.height, stage1.width, max);
        let stage2 = resize_lanczos(&stage1, w2, h2, None)?;
        // HF `split_image`.
        let (h, w) = (stage2.height, stage2.width);
        if h <= max && w <= max {
            return Ok((vec![stage2], (0, 0)));
        }
        let (rows, cols) = (h.div_ceil(max), w.div_ceil(max));
        let (tile_h, tile_w) = (h.div_ceil(rows), w.div_ceil(cols));
        let mut frames = Vec::with_capacity(rows * cols + 1);
        for r in 0..rows {
            for c in 0..cols {
                let (x0, y0) = (c * tile_w, r * tile_h);
                frames.push(stage2.crop(x0, y0, (x0 + tile_w).min(w), (y0 + tile_h).min(h))?);
            }
        }
        frames.push(resize_lanczos(&stage2, max, max, None)?);
        Ok((frames, (rows, cols)))
    }

    /// Preprocesses the images of one sample. `split` overrides the
    /// config's `do_image_splitting`.
    pub fn preprocess(&self, images: &[U8Image], split: Option<bool>) -> Result<ProcessedImages> {
        if images.is_empty() {
            bail!("preprocess: no images");
        }
        let split = split.unwrap_or(self.config.do_image_splitting);
        let side = self.config.max_image_size;
        let plane = side * side;
        let mut u8s: Vec<u8> = Vec::new();
        let mut rows_cols = Vec::with_capacity(images.len());
        let mut n = 0;
        for (i, img) in images.iter().enumerate() {
            let (frames, rc) = self
                .image_frames(img, split)
                .with_context(|| format!("image {i}"))?;
            rows_cols.push(rc);
            for f in frames {
                if (f.width, f.height) != (side, side) {
                    bail!(
                        "image {i}: frame {}x{} is not {side}x{side}",
                        f.width,
                        f.height
                    );
                }
                // HWC -> CHW
                let start = u8s.len();
                u8s.resize(start + 3 * plane, 0);
                for (p, px) in f.data.chunks_exact(3).enumerate() {
                    for (c, &v) in px.iter().enumerate() {
                        u8s[start + c * plane + p] = v;
                    }
                }
                n += 1;
            }
        }
        let pixel_values = self.normalize(&u8s);
        Ok(ProcessedImages {
            pixel_values: Tensor::from_vec(vec![1, n, 3, side, side], pixel_values),
            pixel_attention_mask: Tensor::from_bools(vec![1, n, side, side], vec![true; n * plane]),
            rows_cols,
            pixel_u8: Tensor::from_vec(vec![1, n, 3, side, side], u8s),
        })
    }

    /// HF rescale then normalise of CHW u8 frames: `f32(f64(u8) * factor)`,
    /// then `(x - f32(mean)) / f32(std)` in f32, the same ops in the same
    /// precision as numpy, so the result is bit-identical.
    pub fn normalize(&self, chw_frames: &[u8]) -> Vec<f32> {
        let cfg = &self.config;
        let plane = cfg.max_image_size * cfg.max_image_size;
        let mut lut = [[0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, out) in table.iter_mut().enumerate() {
                let mut x = if cfg.do_rescale {
                    (v as f64 * cfg.rescale_factor) as f32
                } else {
                    v as f32
                };
                if cfg.do_normalize {
                    x = (x - cfg.image_mean[c] as f32) / cfg.image_std[c] as f32;
                }
                *out = x;
            }
        }
        chw_frames
            .iter()
            .enumerate()
            .map(|(i, &v)| lut[(i / plane) % 3][v as usize])
            .collect()
    }

    /// Chat template rendering plus image token expansion.
    pub fn build_prompt(
        &self,
        messages: &[ChatMessage],
        rows_cols: &[(usize, usize)],
    ) -> Result<String> {
        prompt::build_prompt(
            &self.template,
            messages,
            rows_cols,
            self.config.image_seq_len,
        )
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text)
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.tokenizer.decode(ids, skip_special_tokens)
    }

    /// The whole processor for one conversation: images preprocessed (one
    /// per `{"type": "image"}` item, in order), prompt built and tokenised.
    pub fn process(
        &self,
        messages: &[ChatMessage],
        images: &[U8Image],
        split: Option<bool>,
    ) -> Result<ProcessorOutput> {
        let processed = if images.is_empty() {
            None
        } else {
            Some(self.preprocess(images, split)?)
        };
        let rows_cols = processed
            .as_ref()
            .map(|p| p.rows_cols.clone())
            .unwrap_or_default();
        let prompt = self.build_prompt(messages, &rows_cols)?;
        let input_ids = self.encode(&prompt)?;
        Ok(ProcessorOutput {
            prompt,
            input_ids,
            images: processed,
        })
    }

    /// [`Self::process`] with images read from files.
    pub fn process_files(
        &self,
        messages: &[ChatMessage],
        image_paths: &[&Path],
        split: Option<bool>,
    ) -> Result<ProcessorOutput> {
        let images = image_paths
            .iter()
            .map(|p| image_load::load_rgb(p))
            .collect::<Result<Vec<_>>>()?;
        self.process(messages, &images, split)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_sizes_match_hf_geometry() {
        // (h, w) pairs from the fixture manifest's geometry entries.
        assert_eq!(longest_edge_size(600, 512, 2048), (2048, 1748));
        assert_eq!(longest_edge_size(400, 600, 2048), (1366, 2048));
        assert_eq!(longest_edge_size(300, 451, 2048), (1362, 2048));
        assert_eq!(longest_edge_size(303, 384, 2048), (1616, 2048));
        assert_eq!(vision_encoder_size(1362, 2048, 512), (1536, 2048));
        assert_eq!(vision_encoder_size(2048, 1748, 512), (2048, 2048));
    }
}

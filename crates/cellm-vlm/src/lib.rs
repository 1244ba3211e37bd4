//! SmolVLM (Idefics3) processor: what HF transformers 4.48.3's
//! `Idefics3Processor` does, reimplemented bit-exactly.
//!
//! Public API:
//! - [`image_load::load_rgb`] / [`image_load::decode_rgb`]: JPEG/PNG/WebP/GIF
//!   to RGB8 like `load_image` (EXIF orientation, `convert("RGB")`).
//! - [`resample::resize_lanczos`]: Pillow's fixed-point LANCZOS resize on a
//!   [`U8Image`] (interleaved u8, 1–4 channels).
//! - [`Idefics3Processor::from_model_dir`]: configs, chat template and
//!   tokenizer of a HF model folder. Then
//!   - [`Idefics3Processor::preprocess`]`(images, split)` →
//!     [`ProcessedImages`] (`pixel_values` f32 `[1, N, 3, 512, 512]`,
//!     `pixel_attention_mask` bool `[1, N, 512, 512]`, `rows_cols`,
//!     `pixel_u8`); frames of all images are concatenated (one sample),
//!   - [`Idefics3Processor::build_prompt`]`(messages, rows_cols)`: chat
//!     template + image token expansion,
//!   - [`Idefics3Processor::encode`] / [`Idefics3Processor::decode`],
//!   - [`Idefics3Processor::process`]: all of it → [`ProcessorOutput`].
//! - [`prompt`]: [`ChatMessage`] / [`Content`], [`ChatTemplate`],
//!   [`prompt::expand_image_tokens`], [`prompt::build_prompt`],
//!   [`TextTokenizer`].

pub mod image_load;
pub mod processor;
pub mod prompt;
pub mod resample;

pub use processor::{Idefics3Processor, ImageProcessorConfig, ProcessedImages, ProcessorOutput};
pub use prompt::{ChatMessage, ChatTemplate, Content, TextTokenizer};
pub use resample::U8Image;

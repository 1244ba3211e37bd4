//! The model's tokenizer as stored in the header: HF `tokenizer.json` text.
//! Tokenising itself is `cellm_vlm::TextTokenizer`'s job.

use crate::format::Header;
use anyhow::{Context, Result};

/// The `tokenizer.json` text stored in a `.cellm` header.
pub fn tokenizer_json(header: &Header) -> Result<String> {
    let t = header
        .tokenizer
        .as_ref()
        .context("the model has no tokenizer in its header; pass --tokenizer")?;
    Ok(t.to_string())
}

//! The model's tokenizer: the HF `tokenizer.json` stored in the header (or a file).

use crate::format::Header;
use anyhow::{anyhow, Context, Result};
use std::path::Path;
use std::str::FromStr;

#[derive(Clone)]
pub struct ModelTokenizer {
    inner: tokenizers::Tokenizer,
}

impl ModelTokenizer {
    pub fn from_json(json: &str) -> Result<ModelTokenizer> {
        let inner = tokenizers::Tokenizer::from_str(json)
            .map_err(|e| anyhow!("parsing tokenizer.json: {e}"))?;
        Ok(ModelTokenizer { inner })
    }

    pub fn from_file(path: &Path) -> Result<ModelTokenizer> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading tokenizer {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("{}", path.display()))
    }

    /// The tokenizer stored in a `.cellm` header.
    pub fn from_header(header: &Header) -> Result<ModelTokenizer> {
        let t = header
            .tokenizer
            .as_ref()
            .context("the model has no tokenizer in its header; pass --tokenizer")?;
        Self::from_json(&t.to_string())
    }

    /// Ids of `text`; special tokens in the text are matched, none are added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizing {} chars: {e}", text.len()))?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| anyhow!("decoding {} ids: {e}", ids.len()))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}

//! Prompt side of the Idefics3 processor: chat template rendering, image
//! token expansion and (de)tokenisation, as transformers 4.48.3 does them.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Placeholder the chat template emits for each image.
pub const IMAGE_TOKEN: &str = "<image>";
/// Token that brackets every image block.
pub const FAKE_IMAGE_TOKEN: &str = "<fake_token_around_image>";
/// Tag in front of the global (whole-image) frame.
pub const GLOBAL_IMAGE_TOKEN: &str = "<global-img>";

/// One item of a message's content list, serialised like HF's
/// `{"type": "image"}` / `{"type": "text", "text": ...}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Content {
    Image,
    Text { text: String },
}

/// A chat message: `{"role": ..., "content": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: Vec<Content>,
}

impl ChatMessage {
    pub fn new(role: &str, content: Vec<Content>) -> ChatMessage {
        ChatMessage {
            role: role.to_string(),
            content,
        }
    }
    pub fn text(text: &str) -> Content {
        Content::Text {
            text: text.to_string(),
        }
    }
}

/// A Jinja chat template (HF `chat_template.json` / tokenizer_config's
/// `chat_template`), rendered with minijinja in HF's settings.
#[derive(Clone, Debug)]
pub struct ChatTemplate {
    source: String,
}

impl ChatTemplate {
    pub fn new(source: &str) -> ChatTemplate {
        ChatTemplate {
            source: source.to_string(),
        }
    }

    /// Reads `{"chat_template": "..."}` from a `chat_template.json` file.
    pub fn from_json_file(path: &Path) -> Result<ChatTemplate> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let src = v
            .get("chat_template")
            .and_then(|t| t.as_str())
            .with_context(|| format!("{}: no string field `chat_template`", path.display()))?;
        Ok(ChatTemplate::new(src))
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// `processor.apply_chat_template(messages, add_generation_prompt=...)`.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let mut env = minijinja::Environment::new();
        // transformers compiles chat templates with these two options.
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        let ctx = minijinja::context! {
            messages => minijinja::Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
        };
        env.render_str(&self.source, ctx)
            .map_err(|e| anyhow!("rendering the chat template: {e:#}"))
    }
}

/// The text that replaces one `<image>` (HF `get_image_prompt_string`):
/// per tile `<fake_token_around_image><row_r_col_c>` + `<image>`×seq_len, a
/// `\n` after each row, then `\n` and the global frame; without tiles only
/// the global frame, bracketed by fake tokens.
pub fn image_prompt_string(rows: usize, cols: usize, image_seq_len: usize) -> String {
    let image_run = IMAGE_TOKEN.repeat(image_seq_len);
    let global = format!("{FAKE_IMAGE_TOKEN}{GLOBAL_IMAGE_TOKEN}{image_run}{FAKE_IMAGE_TOKEN}");
    if rows == 0 && cols == 0 {
        return global;
    }
    let mut s = String::new();
    for r in 1..=rows {
        for c in 1..=cols {
            s.push_str(&format!("{FAKE_IMAGE_TOKEN}<row_{r}_col_{c}>{image_run}"));
        }
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&global);
    s
}

/// Replaces the k-th `<image>` of `prompt` with the expansion for image k.
pub fn expand_image_tokens(
    prompt: &str,
    rows_cols: &[(usize, usize)],
    image_seq_len: usize,
) -> Result<String> {
    let parts: Vec<&str> = prompt.split(IMAGE_TOKEN).collect();
    let in_text = parts.len() - 1;
    if in_text != rows_cols.len() {
        bail!(
            "the prompt has {in_text} `{IMAGE_TOKEN}` tokens but {} images were given",
            rows_cols.len()
        );
    }
    let mut out = String::from(parts[0]);
    for (&(rows, cols), rest) in rows_cols.iter().zip(&parts[1..]) {
        out.push_str(&image_prompt_string(rows, cols, image_seq_len));
        out.push_str(rest);
    }
    Ok(out)
}

/// Chat template rendering (with the generation prompt) then image token
/// expansion: the exact string HF's processor tokenises.
pub fn build_prompt(
    template: &ChatTemplate,
    messages: &[ChatMessage],
    rows_cols: &[(usize, usize)],
    image_seq_len: usize,
) -> Result<String> {
    let prompt = template.render(messages, true)?;
    expand_image_tokens(&prompt, rows_cols, image_seq_len)
}

/// HF `tokenizer.json` tokenizer (byte-level BPE with special added tokens).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
}

impl TextTokenizer {
    /// A tokenizer from `tokenizer.json` text (e.g. stored in a `.cellm` header).
    pub fn from_json(json: &str) -> Result<TextTokenizer> {
        let inner = std::str::FromStr::from_str(json)
            .map_err(|e| anyhow!("parsing tokenizer.json: {e}"))?;
        Ok(TextTokenizer { inner })
    }

    pub fn from_file(path: &Path) -> Result<TextTokenizer> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| anyhow!("loading tokenizer {}: {e}", path.display()))?;
        Ok(TextTokenizer { inner })
    }

    /// Token ids of `text`, special tokens matched, none added (SmolVLM's
    /// post-processor adds none either, so this equals HF's default call).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, false)
            .map_err(|e| anyhow!("tokenizing {} chars: {e}", text.len()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids` like `tokenizer.decode`; byte pieces that do not form
    /// valid UTF-8 become U+FFFD.
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

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_expansion_layout() {
        let s = image_prompt_string(1, 2, 2);
        let want = "<fake_token_around_image><row_1_col_1><image><image>\
                    <fake_token_around_image><row_1_col_2><image><image>\n\n\
                    <fake_token_around_image><global-img><image><image><fake_token_around_image>";
        assert_eq!(s, want);
    }

    #[test]
    fn image_count_mismatch_is_an_error() {
        assert!(expand_image_tokens("a<image>b<image>", &[(0, 0)], 4).is_err());
        assert!(expand_image_tokens("no images", &[], 4).is_ok());
    }

    #[test]
    fn template_renders_roles_and_generation_prompt() {
        let t = ChatTemplate::new(
            "{% for m in messages %}{{ m['role'] | capitalize }}:{% for c in m['content'] %}\
             {% if c['type'] == 'text' %}{{ c['text'] }}{% else %}<image>{% endif %}{% endfor %}.\n\
             {% endfor %}{% if add_generation_prompt %}A:{% endif %}",
        );
        let msgs = [ChatMessage::new(
            "user",
            vec![Content::Image, ChatMessage::text("hi")],
        )];
        assert_eq!(
            t.render(&msgs, true).expect("render"),
            "User:<image>hi.\nA:"
        );
        assert_eq!(t.render(&msgs, false).expect("render"), "User:<image>hi.\n");
    }
}

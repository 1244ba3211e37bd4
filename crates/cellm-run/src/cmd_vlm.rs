//! `cellm-run vlm`: image(s) + prompt → text with a SmolVLM model folder.

use crate::backend_arg::BackendArg;
use crate::embedded;
use anyhow::{bail, Context, Result};
use cellm_runtime::generate::GenerateConfig;
use cellm_runtime::smolvlm::SmolVlm;
use cellm_runtime::SamplingConfig;
use cellm_vlm::{ChatMessage, Content};
use clap::Args;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Args)]
pub struct VlmArgs {
    /// HuggingFace-style SmolVLM folder (config.json, tokenizer.json, onnx/…).
    /// Without it, the bundled look-alike with random weights runs.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// An image (JPEG, PNG, WebP, GIF); repeat for several, in order.
    #[arg(long = "image")]
    pub images: Vec<PathBuf>,
    /// The user's text. `<image>` marks where each --image goes; without
    /// markers the images come first.
    #[arg(long)]
    pub prompt: Option<String>,
    /// A whole HF-style conversation (JSON list of {role, content}) instead of --prompt.
    #[arg(long, conflicts_with = "prompt")]
    pub messages: Option<PathBuf>,
    /// ONNX variant (file suffix): fp32, fp16, q4, q4f16, int8, uint8, bnb4, quantized.
    #[arg(long, default_value = "fp32")]
    pub onnx_variant: String,
    /// Split large images into tiles plus a global view (default: the processor config).
    #[arg(long, overrides_with = "no_split_image")]
    pub split_image: bool,
    #[arg(long, overrides_with = "split_image")]
    pub no_split_image: bool,
    #[arg(long, default_value_t = 64)]
    pub max_new_tokens: usize,
    /// End tokens are suppressed until this many tokens were generated.
    #[arg(long, default_value_t = 0)]
    pub min_new_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// 0 = off.
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print id, text and log-probability of every generated token.
    #[arg(long)]
    pub show_tokens: bool,
    /// Print the three graphs' inputs and outputs before running.
    #[arg(long)]
    pub dump_io: bool,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// End with one JSON line: prompt_ids, generated_ids, text, timings.
    #[arg(long)]
    pub json: bool,
    /// Which text decoder runs: the model folder's ONNX graph, or the native
    /// llama graph built from --cellm-model.
    #[arg(long, value_enum, default_value_t = DecoderBackend::Onnx)]
    pub decoder_backend: DecoderBackend,
    /// `.cellm` weights of the text decoder (for --decoder-backend cellm).
    #[arg(long)]
    pub cellm_model: Option<PathBuf>,
    /// Run the graphs as imported, without the optimisation passes (and without a plan).
    #[arg(long)]
    pub no_opt: bool,
    /// Plans folder (default `$CELLM_CACHE_DIR/plans` or the user cache's `cellm/plans`).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Storage of MatMul weights and of the decoder's KV caches: f32 (as in
    /// the model) or f16 (half the bytes; f32 accumulation, softmax and norm
    /// statistics; about 1e-3 relative change in outputs).
    #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
    pub dtype: String,
    /// KV-cache capacity in tokens, preallocated per layer (it grows by
    /// doubling, one copy, if a conversation gets longer).
    #[arg(long, default_value_t = cellm_runtime::decoder::DEFAULT_MAX_SEQ)]
    pub max_seq: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DecoderBackend {
    Onnx,
    Cellm,
}

impl VlmArgs {
    pub fn split(&self) -> Option<bool> {
        if self.split_image {
            Some(true)
        } else if self.no_split_image {
            Some(false)
        } else {
            None
        }
    }
}

/// Builds the conversation: one user turn from --prompt, or --messages.
pub fn build_messages(
    prompt: Option<&str>,
    messages: Option<&Path>,
    n_images: usize,
) -> Result<Vec<ChatMessage>> {
    if let Some(path) = messages {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --messages {}", path.display()))?;
        let msgs: Vec<ChatMessage> = serde_json::from_str(&text).with_context(|| {
            format!(
                "--messages {}: expected a JSON list of {{\"role\", \"content\": [...]}}",
                path.display()
            )
        })?;
        let n = msgs
            .iter()
            .flat_map(|m| &m.content)
            .filter(|c| matches!(c, Content::Image))
            .count();
        if n != n_images {
            bail!(
                "--messages {} has {n} image items but {n_images} --image were given",
                path.display()
            );
        }
        return Ok(msgs);
    }
    let prompt = prompt.unwrap_or("");
    let mut content = vec![];
    let pieces: Vec<&str> = prompt.split("<image>").collect();
    let markers = pieces.len() - 1;
    if markers == 0 {
        content.extend(std::iter::repeat_n(Content::Image, n_images));
        if !prompt.is_empty() {
            content.push(ChatMessage::text(prompt));
        }
    } else {
        if markers != n_images {
            bail!("--prompt has {markers} <image> markers but {n_images} --image were given");
        }
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                content.push(Content::Image);
            }
            if !piece.is_empty() {
                content.push(ChatMessage::text(piece));
            }
        }
    }
    if content.is_empty() {
        bail!("nothing to say: give --prompt, --image or --messages");
    }
    Ok(vec![ChatMessage::new("user", content)])
}

pub fn run(mut a: VlmArgs) -> Result<()> {
    let backend = a.backend.resolve()?;
    let model_dir = match &a.model_dir {
        Some(d) => d.clone(),
        None => {
            eprintln!("{}", embedded::NOTICE);
            let (dir, photo) = embedded::unpack()?;
            if a.images.is_empty() && a.messages.is_none() {
                a.images.push(photo);
            }
            if a.prompt.is_none() && a.messages.is_none() {
                a.prompt = Some("Can you describe this image?".into());
            }
            dir
        }
    };
    let messages = build_messages(a.prompt.as_deref(), a.messages.as_deref(), a.images.len())?;
    let images = a
        .images
        .iter()
        .map(|p| {
            cellm_vlm::image_load::load_rgb(p).with_context(|| format!("--image {}", p.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    if a.no_opt && a.dtype != "f32" {
        anyhow::bail!(
            "--dtype {} needs the optimisation passes; drop --no-opt",
            a.dtype
        );
    }
    let opts = cellm_runtime::ExecOptions {
        optimize: !a.no_opt,
        plan_cache: Some(cellm_runtime::plan::cache_dir(a.cache_dir.as_deref())),
        plan_options: cellm_runtime::plan::PlanOptions {
            dtype: a.dtype.clone(),
            max_seq: Some(a.max_seq),
        },
    };
    let mut vlm = SmolVlm::load_with(&model_dir, &a.onnx_variant, &backend, &opts)?;
    if let Some(plan) = &vlm.plan {
        eprintln!("{}", plan.report());
    }
    if a.decoder_backend == DecoderBackend::Cellm {
        let path = a
            .cellm_model
            .as_ref()
            .context("--decoder-backend cellm needs --cellm-model")?;
        let file = cellm_format::CellmFile::open(path)?;
        let dec = cellm_format::build_llama_decoder(&file, &Default::default())?;
        vlm.set_decoder(cellm_runtime::Executable::decoder(
            dec.graph, &backend, &opts,
        )?)?;
    }
    if a.dump_io {
        for stem in ["vision_encoder", "embed_tokens", "decoder_model_merged"] {
            crate::cmd_inspect::print_io(&vlm.model.onnx_path(stem))?;
        }
    }
    let cfg = GenerateConfig {
        max_new_tokens: a.max_new_tokens,
        min_new_tokens: a.min_new_tokens,
        end_ids: end_ids(&vlm),
        sampling: SamplingConfig {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            seed: a.seed,
        },
    };
    let tokenizer = vlm.processor.tokenizer.clone();
    let mut stream = TextStream::default();
    let show = a.show_tokens;
    let out = vlm.run(&messages, &images, a.split(), &cfg, &mut |ev| {
        if show {
            let piece = tokenizer.decode(&[ev.id], false).unwrap_or_default();
            println!(
                "step {:>3}  id {:>6}  logprob {:>9.4}  {:?}",
                ev.step, ev.id, ev.logprob, piece
            );
        } else {
            stream.push(&tokenizer, ev.id);
        }
    })?;
    if !show {
        stream.finish(&out.text);
    }
    if a.json {
        let j = serde_json::json!({
            "prompt_ids": out.prompt_ids,
            "generated_ids": out.generated_ids,
            "text": out.text,
            "timings": {
                "load_s": out.timings.load_s,
                "vision_s": out.timings.vision_s,
                "prefill_s": out.timings.prefill_s,
                "decode_s_per_token": out.timings.decode_s_per_token,
            }
        });
        println!("{j}");
    }
    Ok(())
}

/// End ids from the model folder plus `<end_of_utterance>` when the tokenizer knows it.
fn end_ids(vlm: &SmolVlm) -> Vec<u32> {
    let mut ids = vlm.model.eos_ids();
    if let Some(id) = vlm.processor.tokenizer.token_to_id("<end_of_utterance>") {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// Streams decoded text: re-decodes the whole answer and prints what is new,
/// holding back while the tail is an incomplete UTF-8 sequence.
#[derive(Default)]
pub struct TextStream {
    ids: Vec<u32>,
    printed: String,
}

impl TextStream {
    pub fn push(&mut self, tok: &cellm_vlm::TextTokenizer, id: u32) {
        self.ids.push(id);
        let Ok(text) = tok.decode(&self.ids, true) else {
            return;
        };
        if text.ends_with('\u{FFFD}') {
            return;
        }
        if let Some(new) = text.strip_prefix(self.printed.as_str()) {
            print!("{new}");
            let _ = std::io::stdout().flush();
            self.printed = text;
        }
    }

    pub fn finish(&mut self, full: &str) {
        if let Some(rest) = full.strip_prefix(self.printed.as_str()) {
            print!("{rest}");
        }
        println!();
    }
}

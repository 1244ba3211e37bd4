//! `cellm-run chat`: text generation with a `.cellm` llama model (native decoder graph).

use crate::backend_arg::BackendArg;
use anyhow::{bail, Context, Result};
use cellm_format::chat::{builtin_template, render_chat, Message};
use cellm_format::llama_graph::Embedder;
use cellm_format::{build_llama_decoder, tokenizer_json, CellmFile, LlamaGraphOptions};
use cellm_ir::DType;
use cellm_runtime::decoder::KvDecoder;
use cellm_runtime::generate::{generate, GenerateConfig};
use cellm_runtime::plan::{LoadedPlan, PlanOptions};
use cellm_runtime::{Backend, ExecOptions, Executable, SamplingConfig};
use cellm_vlm::TextTokenizer;
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChatFormat {
    /// The model's own template (from the .cellm header), else chatml.
    Auto,
    Chatml,
    Smolvlm,
    Gemma,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KvEncoding {
    F16,
    F32,
}

#[derive(Args)]
pub struct ChatArgs {
    /// A .cellm model (see `cellm-run convert`).
    #[arg(long)]
    pub model: PathBuf,
    /// A tokenizer.json to use instead of the one in the model's header.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    #[arg(long)]
    pub prompt: String,
    /// Wrap the prompt in the chat template as one user turn (else plain
    /// completion; special tokens written in the prompt are still parsed).
    #[arg(long)]
    pub chat: bool,
    #[arg(long, value_enum, default_value_t = ChatFormat::Auto)]
    pub chat_format: ChatFormat,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub gen: usize,
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
    /// KV-cache capacity in tokens, preallocated per layer (grows by doubling
    /// if a conversation gets longer).
    #[arg(long, default_value_t = cellm_runtime::decoder::DEFAULT_MAX_SEQ)]
    pub max_seq: usize,
    /// dtype of the KV cache.
    #[arg(long, value_enum, default_value_t = KvEncoding::F32)]
    pub kv_encoding: KvEncoding,
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
    /// Skip the checksum of the model file (faster open of large files).
    #[arg(long)]
    pub no_verify: bool,
    /// Run the graph as built, without the optimisation passes (and without a plan).
    #[arg(long)]
    pub no_opt: bool,
    /// Plans folder (default `$CELLM_CACHE_DIR/plans` or the user cache's `cellm/plans`).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// End with one JSON line: prompt_ids, generated_ids, text, timings.
    #[arg(long)]
    pub json: bool,
}

/// Prints the decoded answer as it grows, holding back incomplete UTF-8.
struct Stream<'a> {
    tok: &'a TextTokenizer,
    ids: Vec<u32>,
    printed: String,
}

impl Stream<'_> {
    fn push(&mut self, id: u32) {
        self.ids.push(id);
        let Ok(text) = self.tok.decode(&self.ids, true) else {
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
}

/// The optimised llama decoder of `file` from the plans folder, compiled (built
/// from the file, optimised, stored) when no valid plan is there. The key
/// covers the file's contents, the graph options and, as for `vlm`, the
/// weight dtype and --max-seq.
fn load_plan(
    a: &ChatArgs,
    file: &CellmFile,
    opts: &LlamaGraphOptions,
    backend: &Backend,
) -> Result<LoadedPlan> {
    let plan_opts = PlanOptions {
        dtype: "f32".into(),
        max_seq: Some(a.max_seq),
    };
    let builder = format!("llama_decoder kv_dtype={}", opts.kv_dtype);
    cellm_runtime::plan::load_or_compile_built(
        std::slice::from_ref(&a.model),
        &plan_opts,
        &builder,
        backend,
        &cellm_runtime::plan::cache_dir(a.cache_dir.as_deref()),
        false,
        // The file is already open (and checked): build from it, not from the bytes.
        &mut |_, _| Ok(build_llama_decoder(file, opts)?.graph),
    )
}

pub fn run(a: ChatArgs) -> Result<()> {
    let t0 = Instant::now();
    let backend = a.backend.resolve()?;
    let file = if a.no_verify {
        CellmFile::open_unverified(&a.model)?
    } else {
        CellmFile::open(&a.model)?
    };
    let tok = match &a.tokenizer {
        Some(p) => TextTokenizer::from_file(p)?,
        None => tokenizer_json(&file.header)
            .and_then(|j| TextTokenizer::from_json(&j))
            .with_context(|| format!("{}", a.model.display()))?,
    };
    let gen_defaults = file.header.generation.clone();
    let name_of = |id: Option<u32>| id.and_then(|i| tok.id_to_token(i)).unwrap_or_default();
    let text = if a.chat {
        let template = match a.chat_format {
            ChatFormat::Auto => match &file.header.chat_template {
                Some(t) => t.clone(),
                None => builtin_template("chatml").unwrap_or_default().to_string(),
            },
            ChatFormat::Chatml => builtin_template("chatml").unwrap_or_default().to_string(),
            ChatFormat::Smolvlm => builtin_template("smolvlm").unwrap_or_default().to_string(),
            ChatFormat::Gemma => builtin_template("gemma").unwrap_or_default().to_string(),
        };
        let messages = [Message {
            role: "user".into(),
            content: a.prompt.clone(),
        }];
        render_chat(
            &template,
            &messages,
            true,
            &name_of(gen_defaults.bos_token_id),
            &name_of(gen_defaults.eos_token_ids.first().copied()),
        )?
    } else {
        a.prompt.clone()
    };
    let mut prompt_ids = tok.encode(&text)?;
    if !a.chat && gen_defaults.add_bos_token {
        if let Some(bos) = gen_defaults.bos_token_id {
            if prompt_ids.first() != Some(&bos) {
                prompt_ids.insert(0, bos);
            }
        }
    }
    if prompt_ids.is_empty() {
        bail!("the prompt encodes to no tokens");
    }
    let opts = LlamaGraphOptions {
        kv_dtype: match a.kv_encoding {
            KvEncoding::F16 => DType::F16,
            KvEncoding::F32 => DType::F32,
        },
    };
    let (exe, embedder) = if a.no_opt {
        let model = build_llama_decoder(&file, &opts)?;
        let exec_opts = ExecOptions {
            optimize: false,
            ..Default::default()
        };
        (
            Executable::decoder(model.graph, &backend, &exec_opts)?,
            model.embedder,
        )
    } else {
        let plan = load_plan(&a, &file, &opts, &backend)?;
        eprintln!("{}", plan.info.report());
        let graph = plan
            .graphs
            .into_iter()
            .next()
            .context("the plan holds no graph")?;
        let embedder = Embedder::new(file.tensor("model.embed_tokens.weight")?)
            .with_context(|| format!("{}", a.model.display()))?;
        // The builder already made the KV caches of `--kv-encoding`.
        (
            Executable::prepared_decoder(graph, &backend, "f32")?,
            embedder,
        )
    };
    let mut decoder = KvDecoder::with_max_seq(exe, a.max_seq)?;
    let load_s = t0.elapsed().as_secs_f64();

    let mut end_ids = gen_defaults.eos_token_ids.clone();
    if a.chat {
        // Chat turns end with the template's end-of-turn token.
        for t in ["<|im_end|>", "<end_of_utterance>", "<end_of_turn>"] {
            if let Some(id) = tok.token_to_id(t) {
                if text.contains(t) && !end_ids.contains(&id) {
                    end_ids.push(id);
                }
            }
        }
    }
    let cfg = GenerateConfig {
        max_new_tokens: a.gen,
        min_new_tokens: 0,
        end_ids,
        sampling: SamplingConfig {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            seed: a.seed,
        },
    };
    let prompt_embeds = embedder.embed(&prompt_ids)?;
    let mut stream = Stream {
        tok: &tok,
        ids: vec![],
        printed: String::new(),
    };
    let out = generate(
        &mut decoder,
        &prompt_embeds,
        &mut |id| embedder.embed(&[id]).map(cellm_runtime::EmbedRows::Host),
        &cfg,
        &mut |ev| stream.push(ev.id),
    )?;
    let full = tok.decode(&out.ids, true)?;
    if let Some(rest) = full.strip_prefix(stream.printed.as_str()) {
        print!("{rest}");
    }
    println!();
    let decode_total: f64 = out.decode_s.iter().sum();
    let per_token = if out.decode_s.is_empty() {
        0.0
    } else {
        decode_total / out.decode_s.len() as f64
    };
    if a.json {
        let j = serde_json::json!({
            "prompt_ids": prompt_ids,
            "generated_ids": out.ids,
            "text": full,
            "backend": backend.name(),
            "timings": {
                "load_s": load_s,
                "prefill_s": out.prefill_s,
                "prefill_tokens": prompt_ids.len(),
                "decode_s_per_token": per_token,
                "decode_tokens_per_s": if per_token > 0.0 { 1.0 / per_token } else { 0.0 },
            }
        });
        println!("{j}");
    }
    Ok(())
}

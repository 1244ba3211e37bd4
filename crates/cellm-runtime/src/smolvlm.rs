//! The SmolVLM pipeline: processor → vision encoder → embed_tokens → image
//! features merged into the `<image>` rows → KV-cached decoder.

use crate::backend::{Backend, EmbedRows, ExecOptions, Executable};
use crate::decoder::KvDecoder;
use crate::generate::{generate, GenerateConfig, TokenEvent};
use crate::model_dir::ModelDir;
use anyhow::{bail, Context, Result};
use cellm_ir::Tensor;
use cellm_vlm::{ChatMessage, Idefics3Processor, ProcessedImages, U8Image};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

pub struct SmolVlm {
    pub model: ModelDir,
    pub processor: Idefics3Processor,
    vision: Executable,
    embed: Executable,
    decoder: KvDecoder,
    image_token_id: u32,
    pub load_s: f64,
    /// The plan the graphs came from, when a plan cache was used.
    pub plan: Option<crate::plan::PlanInfo>,
}

/// The pipeline's graphs, in plan order.
pub const GRAPHS: [&str; 3] = ["vision_encoder", "embed_tokens", "decoder_model_merged"];

#[derive(Clone, Debug, Default)]
pub struct VlmTimings {
    pub load_s: f64,
    pub vision_s: f64,
    pub prefill_s: f64,
    /// Median over decode steps.
    pub decode_s_per_token: f64,
}

#[derive(Clone, Debug, Default)]
pub struct VlmOutput {
    pub prompt_ids: Vec<u32>,
    pub generated_ids: Vec<u32>,
    pub text: String,
    pub timings: VlmTimings,
}

fn load_graph(path: &Path, backend: &Backend, opts: &ExecOptions) -> Result<Executable> {
    Executable::with_options(cellm_onnx::load(path)?, backend, opts)
        .with_context(|| format!("loading {}", path.display()))
}

impl SmolVlm {
    /// Loads the three graphs, optimised (the default [`ExecOptions`]).
    pub fn load(dir: &Path, variant: &str, backend: &Backend) -> Result<SmolVlm> {
        SmolVlm::load_with(dir, variant, backend, &ExecOptions::default())
    }

    pub fn load_with(
        dir: &Path,
        variant: &str,
        backend: &Backend,
        opts: &ExecOptions,
    ) -> Result<SmolVlm> {
        let t = Instant::now();
        let model = ModelDir::open(dir, variant)?;
        let processor = Idefics3Processor::from_model_dir(dir)?;
        let paths = GRAPHS.map(|stem| model.onnx_path(stem));
        let (vision, embed, decoder, plan) = match (&opts.plan_cache, opts.optimize) {
            (Some(dir), true) => {
                let p =
                    crate::plan::load_or_compile(&paths, &opts.plan_options, backend, dir, false)?;
                let [v, e, d]: [cellm_ir::Graph; 3] = p
                    .graphs
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("plan holds the wrong number of graphs"))?;
                let exe = |g, path: &Path| {
                    Executable::prepared(g, backend)
                        .with_context(|| format!("loading {}", path.display()))
                };
                let dec = Executable::prepared_decoder(d, backend, &opts.plan_options.dtype)
                    .with_context(|| format!("loading {}", paths[2].display()))?;
                (exe(v, &paths[0])?, exe(e, &paths[1])?, dec, Some(p.info))
            }
            _ => (
                load_graph(&paths[0], backend, opts)?,
                load_graph(&paths[1], backend, opts)?,
                Executable::decoder(cellm_onnx::load(&paths[2])?, backend, opts)
                    .with_context(|| format!("loading {}", paths[2].display()))?,
                None,
            ),
        };
        let max_seq = opts
            .plan_options
            .max_seq
            .unwrap_or(crate::decoder::DEFAULT_MAX_SEQ);
        let decoder = KvDecoder::with_max_seq(decoder, max_seq)?;
        let image_token_id = model.image_token_id()?;
        Ok(SmolVlm {
            model,
            processor,
            vision,
            embed,
            decoder,
            image_token_id,
            load_s: t.elapsed().as_secs_f64(),
            plan,
        })
    }

    /// Runs the text decoder from another graph with the same signature
    /// (e.g. the native llama graph built from `.cellm` weights).
    pub fn set_decoder(&mut self, decoder: Executable) -> Result<()> {
        self.decoder = KvDecoder::new(decoder)?;
        Ok(())
    }

    /// Image features `[n_real_images_frames, tokens, hidden]` of preprocessed frames.
    pub fn encode_images(&self, images: &ProcessedImages) -> Result<Tensor> {
        let mut inputs = HashMap::new();
        inputs.insert("pixel_values".to_string(), images.pixel_values.clone());
        inputs.insert(
            "pixel_attention_mask".to_string(),
            images.pixel_attention_mask.clone(),
        );
        let mut out = self.vision.run(&inputs).context("vision encoder")?;
        out.remove("image_features")
            .context("vision encoder returned no image_features")
    }

    /// Embedding rows `[n, hidden]` (f32) of token ids.
    pub fn embed_ids(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let t = Tensor::from_vec(
            vec![1, ids.len()],
            ids.iter().map(|&v| v as i64).collect::<Vec<i64>>(),
        );
        let mut inputs = HashMap::new();
        inputs.insert("input_ids".to_string(), t);
        let out = self.embed.run(&inputs).context("embed_tokens")?;
        let e = out
            .get("inputs_embeds")
            .context("embed_tokens returned no inputs_embeds")?;
        e.to_f32_vec()
    }

    /// Replaces the rows of `<image>` tokens, in order, with the image features.
    pub fn merge_image_features(
        &self,
        ids: &[u32],
        embeds: &mut [f32],
        features: Option<&Tensor>,
    ) -> Result<()> {
        let hidden = self.decoder.hidden_size();
        let slots: Vec<usize> = (0..ids.len())
            .filter(|&i| ids[i] == self.image_token_id)
            .collect();
        let feats = match features {
            Some(f) => f.to_f32_vec()?,
            None => vec![],
        };
        if feats.len() != slots.len() * hidden {
            bail!(
                "the prompt has {} <image> tokens but the vision encoder gave {} feature rows",
                slots.len(),
                feats.len() / hidden.max(1)
            );
        }
        for (k, &row) in slots.iter().enumerate() {
            embeds[row * hidden..(row + 1) * hidden]
                .copy_from_slice(&feats[k * hidden..(k + 1) * hidden]);
        }
        Ok(())
    }

    /// Runs one conversation: `messages` with one `{"type": "image"}` item per
    /// image in `images`, in order.
    pub fn run(
        &mut self,
        messages: &[ChatMessage],
        images: &[U8Image],
        split: Option<bool>,
        cfg: &GenerateConfig,
        on_token: &mut dyn FnMut(TokenEvent),
    ) -> Result<VlmOutput> {
        let processed = self.processor.process(messages, images, split)?;
        let ids = processed.input_ids.clone();
        let t = Instant::now();
        let features = match &processed.images {
            Some(p) => Some(self.encode_images(p)?),
            None => None,
        };
        let vision_s = t.elapsed().as_secs_f64();
        let mut embeds = self.embed_ids(&ids)?;
        self.merge_image_features(&ids, &mut embeds, features.as_ref())?;
        self.decoder.reset();
        let embed = &self.embed;
        // On the GPU a step's embedding row goes from embed_tokens to the
        // decoder without leaving the device.
        let rows_dtype = embed
            .graph()
            .outputs
            .iter()
            .find(|&&v| embed.graph().value_name(v) == "inputs_embeds")
            .and_then(|&v| embed.graph().values[v].fact.as_ref())
            .map(|f| f.dtype);
        let on_device = rows_dtype.is_some_and(|d| self.decoder.takes_device_rows(d));
        let mut embed_one = |id: u32| -> Result<EmbedRows> {
            let mut inputs = HashMap::new();
            inputs.insert(
                "input_ids".to_string(),
                Tensor::from_vec(vec![1, 1], vec![id as i64]),
            );
            if on_device {
                return embed
                    .run_for_rows(&inputs, "inputs_embeds")
                    .context("embed_tokens");
            }
            let out = embed.run(&inputs)?;
            Ok(EmbedRows::Host(
                out.get("inputs_embeds")
                    .context("embed_tokens returned no inputs_embeds")?
                    .to_f32_vec()?,
            ))
        };
        let gen = generate(&mut self.decoder, &embeds, &mut embed_one, cfg, on_token)?;
        let text = self.processor.decode(&gen.ids, true)?;
        Ok(VlmOutput {
            prompt_ids: ids,
            generated_ids: gen.ids.clone(),
            text,
            timings: VlmTimings {
                load_s: self.load_s,
                vision_s,
                prefill_s: gen.prefill_s,
                decode_s_per_token: median(&gen.decode_s),
            },
        })
    }
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

//! The generation loop: prefill, then one token per step until an end token or
//! the token budget.

use crate::backend::EmbedRows;
use crate::decoder::KvDecoder;
use crate::sampling::{Sampler, SamplingConfig};
use anyhow::Result;
use std::time::Instant;

#[derive(Clone, Debug)]
pub struct GenerateConfig {
    pub max_new_tokens: usize,
    /// End tokens are suppressed until this many tokens were generated.
    pub min_new_tokens: usize,
    pub end_ids: Vec<u32>,
    pub sampling: SamplingConfig,
}

#[derive(Clone, Copy, Debug)]
pub struct TokenEvent {
    pub step: usize,
    pub id: u32,
    pub logprob: f32,
}

#[derive(Clone, Debug, Default)]
pub struct Generation {
    pub ids: Vec<u32>,
    pub prefill_s: f64,
    /// Seconds of each decode step (not the prefill).
    pub decode_s: Vec<f64>,
}

/// Generates from `prompt_embeds` ([n, hidden] f32). `embed` maps one token id
/// to its embedding row (on the host, or on the decoder's GPU); `on_token` sees each token as it is chosen.
pub fn generate(
    decoder: &mut KvDecoder,
    prompt_embeds: &[f32],
    embed: &mut dyn FnMut(u32) -> Result<EmbedRows>,
    cfg: &GenerateConfig,
    on_token: &mut dyn FnMut(TokenEvent),
) -> Result<Generation> {
    let mut sampler = Sampler::new(cfg.sampling.clone())?;
    let mut out = Generation::default();
    if cfg.max_new_tokens == 0 {
        return Ok(out);
    }
    let t = Instant::now();
    let mut logits = decoder.forward(prompt_embeds)?;
    out.prefill_s = t.elapsed().as_secs_f64();
    loop {
        let step = out.ids.len();
        let banned: &[u32] = if step < cfg.min_new_tokens {
            &cfg.end_ids
        } else {
            &[]
        };
        let choice = sampler.pick(&logits, banned);
        out.ids.push(choice.id);
        on_token(TokenEvent {
            step,
            id: choice.id,
            logprob: choice.logprob,
        });
        if cfg.end_ids.contains(&choice.id) || out.ids.len() >= cfg.max_new_tokens {
            break;
        }
        let t = Instant::now();
        let row = embed(choice.id)?;
        logits = decoder.forward_rows(row)?;
        out.decode_s.push(t.elapsed().as_secs_f64());
    }
    Ok(out)
}

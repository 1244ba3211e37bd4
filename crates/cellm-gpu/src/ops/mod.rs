//! Device kernels, one file per op (same names as `cellm-cpu/src/ops`). Each
//! file holds the op's uniform layout, shape guards and dispatches; the WGSL
//! lives in `/shaders/<op>.wgsl`.

use crate::kernel::{DevTensor, Kern};
use anyhow::{anyhow, bail, Context, Result};
use cellm_ir::{DType, Dim, Fact, Op, Tensor};

pub mod binary;
pub mod cast;
pub mod concat;
pub mod constant_of_shape;
pub mod conv;
pub mod conv_integer;
pub mod expand;
pub mod fused_elementwise;
pub mod gather;
pub mod gather_block_quantized;
pub mod gather_nd;
pub mod gelu;
pub mod kv_cache_append;
pub mod layer_norm;
pub mod mat_mul;
pub mod mat_mul_bnb4;
pub mod mat_mul_epilogue;
pub mod mat_mul_integer;
pub mod mat_mul_multi;
pub mod mat_mul_multi_rotary;
pub mod mat_mul_n_bits;
pub mod mat_mul_silu_mul;
pub mod multi_head_attention;
pub mod multi_head_attention_mat_mul;
pub mod quantize;
pub mod reduce;
pub mod reshape;
pub mod rotary_embedding;
pub mod rotary_embedding_pair;
pub mod scatter_nd;
pub mod silu_mul;
pub mod simplified_layer_norm;
pub mod skip_simplified_layer_norm;
pub mod slice;
pub mod softmax;
pub mod split;
pub mod strided_copy;
pub mod tile;
pub mod transpose;
pub mod trilu;
pub mod unary;
pub mod where_op;

/// Inputs of one device op: data inputs on the device, parameter inputs
/// (shapes, axes, bounds) on the host.
pub struct Args {
    pub dev: Vec<Option<DevTensor>>,
    pub host: Vec<Option<Tensor>>,
    /// Which outputs the graph reads (empty: all), so an op can skip work
    /// nobody reads.
    pub wanted: Vec<bool>,
}

impl Args {
    /// Whether output `i` is read (true when unknown).
    pub fn wants(&self, i: usize) -> bool {
        self.wanted
            .get(i)
            .copied()
            .unwrap_or(self.wanted.is_empty())
    }
    pub fn d(&self, i: usize, what: &str) -> Result<&DevTensor> {
        self.dev
            .get(i)
            .and_then(|t| t.as_ref())
            .ok_or_else(|| anyhow!("{what} (input {i}) is required"))
    }
    pub fn od(&self, i: usize) -> Option<&DevTensor> {
        self.dev.get(i).and_then(|t| t.as_ref())
    }
    pub fn oh(&self, i: usize) -> Option<&Tensor> {
        self.host.get(i).and_then(|t| t.as_ref())
    }
    pub fn h(&self, i: usize, what: &str) -> Result<&Tensor> {
        self.oh(i)
            .ok_or_else(|| anyhow!("{what} (input {i}) is required"))
    }
    pub fn ints(&self, i: usize, what: &str) -> Result<Vec<i64>> {
        self.h(i, what)?
            .to_i64_vec()
            .with_context(|| what.to_string())
    }
}

/// Inputs an op needs as host values (shapes, axes, bounds, repeats); the
/// executor reads them back when they happen to live on the device.
pub fn param_inputs(op: &Op) -> &'static [usize] {
    match op {
        Op::Reshape(_)
        | Op::Expand(_)
        | Op::Tile(_)
        | Op::Split(_)
        | Op::Squeeze(_)
        | Op::Unsqueeze(_) => &[1],
        Op::Trilu(_) | Op::Reduce(_) => &[1],
        Op::Slice(_) => &[1, 2, 3, 4],
        Op::ConstantOfShape(_) => &[0],
        // position_ids: a graph input or host shape math, so no readback.
        Op::MatMulMultiRotary(_) => &[1],
        _ => &[],
    }
}

/// Whether the device kernels handle this op with these inputs; the executor
/// runs the op on the host otherwise.
pub fn device_supported(op: &Op, args: &Args) -> bool {
    let dtypes_ok = args.dev.iter().flatten().all(|t| t.dtype != DType::F64)
        && args.host.iter().flatten().all(|t| t.dtype() != DType::F64);
    dtypes_ok
        && match op {
            Op::Unary(u) => unary::supported(u, args),
            Op::Conv(_) => args.od(0).is_some_and(|x| x.shape.len() == 4),
            Op::ScatterND(s) => s.reduction == cellm_ir::ops::ScatterReduction::None,
            Op::MultiHeadAttention(o) => multi_head_attention::supported(o, args),
            Op::KvCacheAppend(_) => kv_cache_append::supported(args),
            Op::Reduce(r) => args.od(0).is_some_and(|x| {
                x.dtype != DType::Bool
                    && !(x.dtype != DType::F32
                        && x.dtype != DType::F16
                        && r.kind == cellm_ir::ops::ReduceKind::Mean)
            }),
            Op::Shape(_) | Op::NonZero(_) | Op::Range(_) => false,
            Op::DequantizeLinear(_) => quantize::dequantize_supported(args),
            Op::QuantizeLinear(_) => quantize::quantize_supported(args),
            Op::DynamicQuantizeLinear(_) => quantize::dynamic_supported(args),
            Op::MatMulInteger(_) => mat_mul_integer::supported(args),
            Op::ConvInteger(_) => conv_integer::supported(args),
            Op::MatMulNBits(o) => mat_mul_n_bits::supported(o, args),
            Op::MatMulBnb4(_) => mat_mul_bnb4::supported(args),
            Op::GatherBlockQuantized(o) => gather_block_quantized::supported(o, args),
            Op::Gelu(_) => gelu::supported(args),
            Op::SiluMul(_) => silu_mul::supported(args),
            Op::MatMulEpilogue(_) => mat_mul_epilogue::supported(args),
            Op::MatMulSiluMul(_) => mat_mul_silu_mul::supported(args),
            Op::MatMulMulti(_) => mat_mul_multi::supported(args),
            Op::RotaryEmbeddingPair(_) => rotary_embedding_pair::supported(args),
            Op::MatMulMultiRotary(_) => mat_mul_multi_rotary::supported(args),
            Op::FusedElementwise(o) => fused_elementwise::supported(o, args),
            Op::MultiHeadAttentionMatMul(o) => multi_head_attention_mat_mul::supported(o, args),
            _ => true,
        }
}

/// Concrete output shapes from the op's own inference, given the inputs'
/// shapes and the host values of parameter inputs.
pub fn infer_shapes(op: &Op, args: &Args) -> Result<Vec<(DType, Vec<usize>)>> {
    let n = args.dev.len().max(args.host.len());
    let mut facts = Vec::with_capacity(n);
    for i in 0..n {
        let f = match (args.od(i), args.oh(i)) {
            (Some(d), _) => Some(Fact::new(
                d.dtype,
                Some(d.shape.iter().map(|&x| Dim::Known(x)).collect()),
            )),
            (None, Some(h)) => Some(Fact::new(
                h.dtype(),
                Some(h.shape().iter().map(|&x| Dim::Known(x)).collect()),
            )),
            _ => None,
        };
        facts.push(f);
    }
    let fact_refs: Vec<Option<&Fact>> = facts.iter().map(|f| f.as_ref()).collect();
    let consts: Vec<Option<&Tensor>> = (0..n).map(|i| args.oh(i)).collect();
    let out = op.infer(&fact_refs, &consts)?;
    out.into_iter()
        .map(|f| {
            let shape = f.shape.ok_or_else(|| anyhow!("output rank is unknown"))?;
            let dims = shape
                .iter()
                .map(|d| {
                    d.known()
                        .ok_or_else(|| anyhow!("output dim {d} is not known"))
                })
                .collect::<Result<Vec<usize>>>()?;
            Ok((f.dtype, dims))
        })
        .collect()
}

/// Encodes `op` and returns its outputs (all of them, in order).
pub fn encode(k: &mut Kern, op: &Op, args: &Args) -> Result<Vec<DevTensor>> {
    match op {
        Op::Unary(o) => unary::encode(k, o, args),
        Op::Binary(o) => binary::encode(k, o, args),
        Op::Cast(o) => cast::encode(k, o, args),
        Op::Where(_) => where_op::encode(k, args),
        Op::Concat(o) => concat::encode(k, o, args),
        Op::ConstantOfShape(o) => constant_of_shape::encode(k, o, args),
        Op::Conv(o) => conv::encode(k, o, args),
        Op::Expand(_) => expand::encode(k, op, args),
        Op::Flatten(_) | Op::Reshape(_) | Op::Squeeze(_) | Op::Unsqueeze(_) => {
            reshape::encode(op, args)
        }
        Op::Gather(o) => gather::encode(k, o, args),
        Op::GatherND(o) => gather_nd::encode(k, o, args),
        Op::MatMul(_) => mat_mul::encode(k, args),
        Op::MultiHeadAttention(o) => multi_head_attention::encode(k, o, args),
        Op::KvCacheAppend(_) => kv_cache_append::encode(k, args),
        Op::Reduce(o) => reduce::encode(k, op, o, args),
        Op::ScatterND(_) => scatter_nd::encode(k, args),
        Op::Slice(_) => slice::encode(k, op, args),
        Op::Softmax(o) => softmax::encode(k, o, args),
        Op::Split(o) => split::encode(k, op, o, args),
        Op::Tile(_) => tile::encode(k, op, args),
        Op::Transpose(o) => transpose::encode(k, o, args),
        Op::Trilu(o) => trilu::encode(k, o, args),
        Op::LayerNormalization(o) => layer_norm::encode(k, o, args),
        Op::SimplifiedLayerNormalization(o) => simplified_layer_norm::encode(k, o, args),
        Op::SkipSimplifiedLayerNormalization(o) => skip_simplified_layer_norm::encode(k, o, args),
        Op::RotaryEmbedding(o) => rotary_embedding::encode(k, o, args),
        Op::DequantizeLinear(o) => quantize::encode_dequantize(k, o, args),
        Op::QuantizeLinear(o) => quantize::encode_quantize(k, o, args),
        Op::DynamicQuantizeLinear(_) => quantize::encode_dynamic(k, args),
        Op::MatMulInteger(_) => mat_mul_integer::encode(k, args),
        Op::ConvInteger(o) => conv_integer::encode(k, o, args),
        Op::MatMulNBits(o) => mat_mul_n_bits::encode(k, o, args),
        Op::MatMulBnb4(o) => mat_mul_bnb4::encode(k, o, args),
        Op::GatherBlockQuantized(o) => gather_block_quantized::encode(k, o, args),
        Op::Shape(_) | Op::NonZero(_) | Op::Range(_) => bail!("{} runs on the host", op.name()),
        Op::Gelu(o) => gelu::encode(k, o, args),
        Op::SiluMul(_) => silu_mul::encode(k, args),
        Op::MatMulEpilogue(_) => mat_mul_epilogue::encode(k, args),
        Op::MatMulSiluMul(_) => mat_mul_silu_mul::encode(k, args),
        Op::MatMulMulti(_) => mat_mul_multi::encode(k, args),
        Op::RotaryEmbeddingPair(o) => rotary_embedding_pair::encode(k, o, args),
        Op::MatMulMultiRotary(o) => mat_mul_multi_rotary::encode(k, o, args),
        Op::FusedElementwise(o) => fused_elementwise::encode(k, o, args),
        Op::MultiHeadAttentionMatMul(o) => multi_head_attention_mat_mul::encode(k, o, args),
    }
}

pub fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| anyhow!("{what}: {v} does not fit the GPU's 32-bit indices"))
}

/// Requires an f32/f16 tensor.
pub fn need_float(t: &DevTensor, what: &str) -> Result<()> {
    if !matches!(t.dtype, DType::F32 | DType::F16) {
        bail!("{what} must be f32 or f16, got {}", t.dtype);
    }
    Ok(())
}

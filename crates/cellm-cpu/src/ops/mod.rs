//! CPU kernels, one file per op (same file names as `cellm-ir/src/ops`).

use anyhow::Result;
use cellm_ir::{Op, Tensor};

pub mod binary;
pub mod cast;
pub mod common;
pub mod concat;
pub mod constant_of_shape;
pub mod conv;
pub mod conv_integer;
pub mod expand;
pub mod flatten;
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
pub mod non_zero;
pub mod quantize;
pub mod range;
pub mod reduce;
pub mod reshape;
pub mod rotary_embedding;
pub mod rotary_embedding_pair;
pub mod scatter_nd;
pub mod shape_op;
pub mod silu_mul;
pub mod simplified_layer_norm;
pub mod skip_simplified_layer_norm;
pub mod slice;
pub mod softmax;
pub mod split;
pub mod squeeze;
pub mod tile;
pub mod transpose;
pub mod trilu;
pub mod unary;
pub mod unsqueeze;
pub mod where_op;

/// Runs one op on concrete inputs (`None` = omitted optional input) and
/// returns all of its outputs in order.
pub fn eval(op: &Op, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>> {
    match op {
        Op::Unary(op) => unary::run(op, inputs),
        Op::Binary(op) => binary::run(op, inputs),
        Op::Cast(op) => cast::run(op, inputs),
        Op::Where(op) => where_op::run(op, inputs),
        Op::Concat(op) => concat::run(op, inputs),
        Op::ConstantOfShape(op) => constant_of_shape::run(op, inputs),
        Op::Conv(op) => conv::run(op, inputs),
        Op::Expand(op) => expand::run(op, inputs),
        Op::Flatten(op) => flatten::run(op, inputs),
        Op::Gather(op) => gather::run(op, inputs),
        Op::GatherND(op) => gather_nd::run(op, inputs),
        Op::MatMul(op) => mat_mul::run(op, inputs),
        Op::NonZero(op) => non_zero::run(op, inputs),
        Op::Range(op) => range::run(op, inputs),
        Op::Reduce(op) => reduce::run(op, inputs),
        Op::Reshape(op) => reshape::run(op, inputs),
        Op::ScatterND(op) => scatter_nd::run(op, inputs),
        Op::Shape(op) => shape_op::run(op, inputs),
        Op::Slice(op) => slice::run(op, inputs),
        Op::Softmax(op) => softmax::run(op, inputs),
        Op::Split(op) => split::run(op, inputs),
        Op::Squeeze(op) => squeeze::run(op, inputs),
        Op::Unsqueeze(op) => unsqueeze::run(op, inputs),
        Op::Tile(op) => tile::run(op, inputs),
        Op::Transpose(op) => transpose::run(op, inputs),
        Op::Trilu(op) => trilu::run(op, inputs),
        Op::LayerNormalization(op) => layer_norm::run(op, inputs),
        Op::SimplifiedLayerNormalization(op) => simplified_layer_norm::run(op, inputs),
        Op::SkipSimplifiedLayerNormalization(op) => skip_simplified_layer_norm::run(op, inputs),
        Op::MultiHeadAttention(op) => multi_head_attention::run(op, inputs),
        Op::RotaryEmbedding(op) => rotary_embedding::run(op, inputs),
        Op::DequantizeLinear(op) => quantize::run_dequantize(op, inputs),
        Op::QuantizeLinear(op) => quantize::run_quantize(op, inputs),
        Op::DynamicQuantizeLinear(op) => quantize::run_dynamic(op, inputs),
        Op::MatMulInteger(op) => mat_mul_integer::run(op, inputs),
        Op::ConvInteger(op) => conv_integer::run(op, inputs),
        Op::MatMulNBits(op) => mat_mul_n_bits::run(op, inputs),
        Op::MatMulBnb4(op) => mat_mul_bnb4::run(op, inputs),
        Op::GatherBlockQuantized(op) => gather_block_quantized::run(op, inputs),
        Op::KvCacheAppend(_) => kv_cache_append::run(inputs),
        Op::Gelu(op) => gelu::run(op, inputs),
        Op::SiluMul(op) => silu_mul::run(op, inputs),
        Op::MatMulEpilogue(op) => mat_mul_epilogue::run(op, inputs),
        Op::MatMulSiluMul(op) => mat_mul_silu_mul::run(op, inputs),
        Op::MatMulMulti(op) => mat_mul_multi::run(op, inputs),
        Op::RotaryEmbeddingPair(op) => rotary_embedding_pair::run(op, inputs),
        Op::MatMulMultiRotary(op) => mat_mul_multi_rotary::run(op, inputs),
        Op::FusedElementwise(op) => fused_elementwise::run(op, inputs),
        Op::MultiHeadAttentionMatMul(op) => multi_head_attention_mat_mul::run(op, inputs),
    }
}

//! The op set. One file per op (or op family); each holds the op's attributes
//! and its dtype/shape inference. Kernels live in the backends under the same
//! names (`cellm-cpu/src/ops/<op>.rs`, `shaders/<op>.wgsl`).

use crate::{DType, Dim, SymShape, Tensor};

pub mod binary;
pub mod cast;
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

pub use binary::{Binary, BinaryOp};
pub use cast::Cast;
pub use concat::Concat;
pub use constant_of_shape::ConstantOfShape;
pub use conv::{AutoPad, Conv};
pub use conv_integer::ConvInteger;
pub use expand::Expand;
pub use flatten::Flatten;
pub use fused_elementwise::{FusedElementwise, Instr};
pub use gather::Gather;
pub use gather_block_quantized::GatherBlockQuantized;
pub use gather_nd::GatherND;
pub use gelu::{Gelu, GeluApproximation};
pub use kv_cache_append::KvCacheAppend;
pub use layer_norm::LayerNormalization;
pub use mat_mul::MatMul;
pub use mat_mul_bnb4::{Bnb4Type, MatMulBnb4};
pub use mat_mul_epilogue::MatMulEpilogue;
pub use mat_mul_integer::MatMulInteger;
pub use mat_mul_multi::MatMulMulti;
pub use mat_mul_multi_rotary::MatMulMultiRotary;
pub use mat_mul_n_bits::MatMulNBits;
pub use mat_mul_silu_mul::MatMulSiluMul;
pub use multi_head_attention::MultiHeadAttention;
pub use multi_head_attention_mat_mul::MultiHeadAttentionMatMul;
pub use non_zero::NonZero;
pub use quantize::{DequantizeLinear, DynamicQuantizeLinear, QuantizeLinear};
pub use range::Range;
pub use reduce::{Reduce, ReduceKind};
pub use reshape::Reshape;
pub use rotary_embedding::RotaryEmbedding;
pub use rotary_embedding_pair::RotaryEmbeddingPair;
pub use scatter_nd::{ScatterND, ScatterReduction};
pub use shape_op::Shape;
pub use silu_mul::SiluMul;
pub use simplified_layer_norm::SimplifiedLayerNormalization;
pub use skip_simplified_layer_norm::SkipSimplifiedLayerNormalization;
pub use slice::Slice;
pub use softmax::Softmax;
pub use split::Split;
pub use squeeze::Squeeze;
pub use tile::Tile;
pub use transpose::Transpose;
pub use trilu::Trilu;
pub use unary::{Unary, UnaryOp};
pub use unsqueeze::Unsqueeze;
pub use where_op::Where;

/// What is known about a value before the graph runs.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Fact {
    pub dtype: DType,
    /// `None` when the rank is unknown.
    pub shape: Option<SymShape>,
}

impl Fact {
    pub fn new(dtype: DType, shape: Option<SymShape>) -> Fact {
        Fact { dtype, shape }
    }
}

/// Input `i`'s fact, or an error naming the missing input.
pub(crate) fn need<'a>(inputs: &[Option<&'a Fact>], i: usize) -> anyhow::Result<&'a Fact> {
    inputs
        .get(i)
        .copied()
        .flatten()
        .ok_or_else(|| anyhow::anyhow!("input {i} is required"))
}

/// Input `i`'s fact when the input is given and its fact known.
pub(crate) fn opt<'a>(inputs: &[Option<&'a Fact>], i: usize) -> Option<&'a Fact> {
    inputs.get(i).copied().flatten()
}

/// Input `i`'s shape when its rank is known.
pub(crate) fn shape_of<'a>(inputs: &[Option<&'a Fact>], i: usize) -> Option<&'a [Dim]> {
    opt(inputs, i).and_then(|f| f.shape.as_deref())
}

/// The integer values of input `i` when it is a known constant.
pub(crate) fn const_ints(consts: &[Option<&Tensor>], i: usize) -> anyhow::Result<Option<Vec<i64>>> {
    match consts.get(i).copied().flatten() {
        Some(t) => Ok(Some(
            t.to_i64_vec()
                .map_err(|e| anyhow::anyhow!("input {i}: {e}"))?,
        )),
        None => Ok(None),
    }
}

/// Number of elements of 1-D input `i` (a shape, axes or repeats tensor) when known.
pub(crate) fn len_1d(inputs: &[Option<&Fact>], i: usize) -> Option<usize> {
    match shape_of(inputs, i)? {
        [d] => d.known(),
        _ => None,
    }
}

/// `n` dims that depend on runtime values.
pub(crate) fn unknown_dims(n: usize) -> SymShape {
    vec![Dim::unknown(); n]
}

/// Normalizes axes against `rank`, rejecting duplicates.
pub(crate) fn normalize_axes(axes: &[i64], rank: usize) -> anyhow::Result<Vec<usize>> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let n = crate::shape::normalize_axis(a, rank)?;
        if out.contains(&n) {
            anyhow::bail!("axis {a} is repeated in {axes:?}");
        }
        out.push(n);
    }
    Ok(out)
}

macro_rules! ops {
    ($($variant:ident($ty:ty) = $domain:literal $name:literal),* $(,)?) => {
        /// One operation of the graph.
        #[derive(Clone, Debug, PartialEq)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        pub enum Op {
            $($variant($ty),)*
        }

        impl Op {
            /// Output dtypes and shapes from what is known of the inputs
            /// (`consts` holds the inputs whose values are known).
            pub fn infer(&self, inputs: &[Option<&Fact>], consts: &[Option<&Tensor>]) -> anyhow::Result<Vec<Fact>> {
                match self {
                    $(Op::$variant(op) => op.infer(inputs, consts),)*
                }
            }

            /// Domain of the op ("" for the ONNX default domain).
            pub fn domain(&self) -> &'static str {
                match self {
                    $(Op::$variant(_) => $domain,)*
                }
            }

            /// Op family name (for unary/binary families: the family).
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Op::$variant(_) => $name,)*
                }
            }
        }
    };
}

ops! {
    Unary(Unary) = "" "Unary",
    Binary(Binary) = "" "Binary",
    Cast(Cast) = "" "Cast",
    Where(Where) = "" "Where",
    Concat(Concat) = "" "Concat",
    ConstantOfShape(ConstantOfShape) = "" "ConstantOfShape",
    Conv(Conv) = "" "Conv",
    Expand(Expand) = "" "Expand",
    Flatten(Flatten) = "" "Flatten",
    Gather(Gather) = "" "Gather",
    GatherND(GatherND) = "" "GatherND",
    MatMul(MatMul) = "" "MatMul",
    NonZero(NonZero) = "" "NonZero",
    Range(Range) = "" "Range",
    Reduce(Reduce) = "" "Reduce",
    Reshape(Reshape) = "" "Reshape",
    ScatterND(ScatterND) = "" "ScatterND",
    Shape(Shape) = "" "Shape",
    Slice(Slice) = "" "Slice",
    Softmax(Softmax) = "" "Softmax",
    Split(Split) = "" "Split",
    Squeeze(Squeeze) = "" "Squeeze",
    Unsqueeze(Unsqueeze) = "" "Unsqueeze",
    Tile(Tile) = "" "Tile",
    Transpose(Transpose) = "" "Transpose",
    Trilu(Trilu) = "" "Trilu",
    LayerNormalization(LayerNormalization) = "" "LayerNormalization",
    SimplifiedLayerNormalization(SimplifiedLayerNormalization) = "" "SimplifiedLayerNormalization",
    SkipSimplifiedLayerNormalization(SkipSimplifiedLayerNormalization) = "com.microsoft" "SkipSimplifiedLayerNormalization",
    MultiHeadAttention(MultiHeadAttention) = "com.microsoft" "MultiHeadAttention",
    RotaryEmbedding(RotaryEmbedding) = "com.microsoft" "RotaryEmbedding",
    DequantizeLinear(DequantizeLinear) = "" "DequantizeLinear",
    QuantizeLinear(QuantizeLinear) = "" "QuantizeLinear",
    DynamicQuantizeLinear(DynamicQuantizeLinear) = "" "DynamicQuantizeLinear",
    MatMulInteger(MatMulInteger) = "" "MatMulInteger",
    ConvInteger(ConvInteger) = "" "ConvInteger",
    MatMulNBits(MatMulNBits) = "com.microsoft" "MatMulNBits",
    MatMulBnb4(MatMulBnb4) = "com.microsoft" "MatMulBnb4",
    GatherBlockQuantized(GatherBlockQuantized) = "com.microsoft" "GatherBlockQuantized",
    // Fused ops made by cellm-opt passes (Gelu is also ONNX opset 20's).
    Gelu(Gelu) = "" "Gelu",
    SiluMul(SiluMul) = "cellm" "SiluMul",
    MatMulEpilogue(MatMulEpilogue) = "cellm" "MatMulEpilogue",
    KvCacheAppend(KvCacheAppend) = "cellm" "KvCacheAppend",
    MatMulSiluMul(MatMulSiluMul) = "cellm" "MatMulSiluMul",
    MatMulMulti(MatMulMulti) = "cellm" "MatMulMulti",
    RotaryEmbeddingPair(RotaryEmbeddingPair) = "cellm" "RotaryEmbeddingPair",
    MatMulMultiRotary(MatMulMultiRotary) = "cellm" "MatMulMultiRotary",
    FusedElementwise(FusedElementwise) = "cellm" "FusedElementwise",
    MultiHeadAttentionMatMul(MultiHeadAttentionMatMul) = "cellm" "MultiHeadAttentionMatMul",
}

impl Op {
    /// The ONNX op type this op stands for (unary/binary ops by member).
    pub fn name(&self) -> String {
        match self {
            Op::Unary(u) => format!("{:?}", u.op),
            Op::Binary(b) => match b.op {
                BinaryOp::Mod { .. } => "Mod".to_string(),
                other => format!("{other:?}"),
            },
            Op::Reduce(r) => format!("Reduce{:?}", r.kind),
            other => other.kind().to_string(),
        }
    }
}

//! One importer per ONNX op (or op family), and the table that maps
//! `(domain, op_type)` to it. Each importer turns a `NodeProto`'s attributes
//! into the IR op, with the defaults of the ONNX / onnxruntime contrib specs,
//! and checks the node's input and output counts.

use crate::proto::NodeProto;
use anyhow::{bail, Result};
use cellm_ir::{Graph, Op, Tensor};

pub mod binary;
pub mod cast;
pub mod concat;
pub mod constant_of_shape;
pub mod conv;
pub mod conv_integer;
pub mod dropout;
pub mod expand;
pub mod flatten;
pub mod gather;
pub mod gather_block_quantized;
pub mod gather_nd;
pub mod layer_norm;
pub mod mat_mul;
pub mod mat_mul_bnb4;
pub mod mat_mul_integer;
pub mod mat_mul_n_bits;
pub mod multi_head_attention;
pub mod non_zero;
pub mod quantize;
pub mod range;
pub mod reduce;
pub mod reshape;
pub mod rotary_embedding;
pub mod scatter_nd;
pub mod shape;
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

/// What an op importer may look at besides its node.
pub struct ImportCtx<'a> {
    /// Opset version of the node's domain.
    pub opset: i64,
    /// The graph built so far: every initializer (Constant nodes included) is
    /// in it when ops are imported.
    pub graph: &'a Graph,
}

impl ImportCtx<'_> {
    /// The constant value of input `i` of `node`, if it is an initializer.
    pub fn initializer(&self, node: &NodeProto, i: usize) -> Option<&Tensor> {
        let name = node.input.get(i).filter(|n| !n.is_empty())?;
        let v = self.graph.find(name)?;
        self.graph.initializers.get(&v)
    }

    /// The rank of input `i` of `node` when it is an initializer or a graph
    /// input with a declared shape.
    pub fn known_rank(&self, node: &NodeProto, i: usize) -> Option<usize> {
        if let Some(t) = self.initializer(node, i) {
            return Some(t.rank());
        }
        let name = node.input.get(i).filter(|n| !n.is_empty())?;
        let v = self.graph.find(name)?;
        self.graph.values[v]
            .fact
            .as_ref()?
            .shape
            .as_ref()
            .map(|s| s.len())
    }
}

/// Whether input `i` is given (present and not the empty name).
pub fn has_input(node: &NodeProto, i: usize) -> bool {
    node.input.get(i).is_some_and(|n| !n.is_empty())
}

/// Whether output `i` is asked for.
pub fn has_output(node: &NodeProto, i: usize) -> bool {
    node.output.get(i).is_some_and(|n| !n.is_empty())
}

/// Checks the input count against the spec's `min..=max`, and that the
/// required ones are not empty names.
pub fn check_inputs(node: &NodeProto, min: usize, max: usize) -> Result<()> {
    let n = node.input.len();
    if n < min || n > max {
        if min == max {
            bail!("expects {min} inputs, got {n}");
        }
        bail!("expects {min} to {max} inputs, got {n}");
    }
    if let Some(i) = (0..min).find(|&i| !has_input(node, i)) {
        bail!("required input {i} is missing");
    }
    Ok(())
}

/// Checks the output count against `1..=max`; output 0 must be named.
pub fn check_outputs(node: &NodeProto, max: usize) -> Result<()> {
    let n = node.output.len();
    if n == 0 || n > max {
        bail!("expects 1 to {max} outputs, got {n}");
    }
    Ok(())
}

pub type ImportFn = fn(&NodeProto, &ImportCtx) -> Result<Op>;

/// Domain "" is the ONNX default domain (also spelled "ai.onnx").
pub const MS: &str = "com.microsoft";

/// Every supported `(domain, op_type)`.
pub const REGISTRY: &[(&str, &str, ImportFn)] = &[
    ("", "Identity", unary::import),
    ("", "Neg", unary::import),
    ("", "Sqrt", unary::import),
    ("", "Reciprocal", unary::import),
    ("", "Sigmoid", unary::import),
    ("", "Tanh", unary::import),
    ("", "Cos", unary::import),
    ("", "Sin", unary::import),
    ("", "Exp", unary::import),
    ("", "Log", unary::import),
    ("", "Abs", unary::import),
    ("", "Relu", unary::import),
    ("", "Erf", unary::import),
    ("", "Not", unary::import),
    ("", "Dropout", dropout::import),
    ("", "Add", binary::import),
    ("", "Sub", binary::import),
    ("", "Mul", binary::import),
    ("", "Div", binary::import),
    ("", "Pow", binary::import),
    ("", "Mod", binary::import),
    ("", "Equal", binary::import),
    ("", "Less", binary::import),
    ("", "LessOrEqual", binary::import),
    ("", "Greater", binary::import),
    ("", "GreaterOrEqual", binary::import),
    ("", "And", binary::import),
    ("", "Or", binary::import),
    ("", "Cast", cast::import),
    ("", "Where", where_op::import),
    ("", "Concat", concat::import),
    ("", "ConstantOfShape", constant_of_shape::import),
    ("", "Conv", conv::import),
    ("", "Expand", expand::import),
    ("", "Flatten", flatten::import),
    ("", "Gather", gather::import),
    ("", "GatherND", gather_nd::import),
    ("", "MatMul", mat_mul::import),
    ("", "NonZero", non_zero::import),
    ("", "Range", range::import),
    ("", "ReduceMean", reduce::import),
    ("", "ReduceSum", reduce::import),
    ("", "ReduceMax", reduce::import),
    ("", "ReduceMin", reduce::import),
    ("", "ReduceProd", reduce::import),
    ("", "Reshape", reshape::import),
    ("", "ScatterND", scatter_nd::import),
    ("", "Shape", shape::import),
    ("", "Slice", slice::import),
    ("", "Softmax", softmax::import),
    ("", "Split", split::import),
    ("", "Squeeze", squeeze::import),
    ("", "Unsqueeze", unsqueeze::import),
    ("", "Tile", tile::import),
    ("", "Transpose", transpose::import),
    ("", "Trilu", trilu::import),
    ("", "LayerNormalization", layer_norm::import),
    // onnxruntime registers SimplifiedLayerNormalization in the default domain.
    (
        "",
        "SimplifiedLayerNormalization",
        simplified_layer_norm::import,
    ),
    (
        MS,
        "SimplifiedLayerNormalization",
        simplified_layer_norm::import,
    ),
    (
        MS,
        "SkipSimplifiedLayerNormalization",
        skip_simplified_layer_norm::import,
    ),
    (MS, "MultiHeadAttention", multi_head_attention::import),
    (MS, "RotaryEmbedding", rotary_embedding::import),
    ("", "DequantizeLinear", quantize::import_dequantize),
    ("", "QuantizeLinear", quantize::import_quantize),
    ("", "DynamicQuantizeLinear", quantize::import_dynamic),
    ("", "MatMulInteger", mat_mul_integer::import),
    ("", "ConvInteger", conv_integer::import),
    (MS, "MatMulNBits", mat_mul_n_bits::import),
    (MS, "MatMulBnb4", mat_mul_bnb4::import),
    (MS, "GatherBlockQuantized", gather_block_quantized::import),
];

/// The importer for `op_type` in `domain` (already normalised: "" for ONNX).
pub fn lookup(domain: &str, op_type: &str) -> Option<ImportFn> {
    REGISTRY
        .iter()
        .find(|(d, o, _)| *d == domain && *o == op_type)
        .map(|(_, _, f)| *f)
}

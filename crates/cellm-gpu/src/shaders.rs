//! WGSL sources (`/shaders/*.wgsl`), assembled per capability set.
//!
//! Every module is `enable` lines + `prelude.wgsl` + the kernel. Templating
//! is plain placeholder substitution: `{{ROUND_F16}}` becomes a native-f16 or
//! a pack/unpack implementation of `round_f16`.

use crate::device::Caps;
use anyhow::{bail, Result};

const PRELUDE: &str = include_str!("../../../shaders/prelude.wgsl");

macro_rules! kernels {
    ($($name:literal),* $(,)?) => {
        /// Kernel names and their raw sources.
        pub const KERNELS: &[(&str, &str)] = &[
            $(($name, include_str!(concat!("../../../shaders/", $name, ".wgsl"))),)*
        ];
    };
}

kernels!(
    "binary",
    "cast",
    "constant_of_shape",
    "conv",
    "f16_pack",
    "f16_pack_native",
    "f16_unpack",
    "f16_unpack_native",
    "gather",
    "gather_nd",
    "layer_norm",
    "mat_mul",
    "multi_head_attention",
    "reduce",
    "rotary_embedding",
    "round_f16",
    "scatter_nd",
    "simplified_layer_norm",
    "skip_simplified_layer_norm",
    "softmax",
    "strided_copy",
    "trilu",
    "unary",
    "where_op",
);

/// Kernels that need native f16 (SHADER_F16); the others run everywhere.
pub fn needs_f16(name: &str) -> bool {
    name.ends_with("_native")
}

const ROUND_NATIVE: &str = "fn round_f16(v: f32) -> f32 { return f32(f16(v)); }";
const ROUND_PACKED: &str =
    "fn round_f16(v: f32) -> f32 { return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x; }";

/// The complete module for `name` under `caps`.
pub fn source(name: &str, caps: Caps) -> Result<String> {
    let Some((_, body)) = KERNELS.iter().find(|(n, _)| *n == name) else {
        bail!("no WGSL kernel named '{name}'");
    };
    if needs_f16(name) && !caps.shader_f16 {
        bail!("kernel '{name}' needs SHADER_F16, which this device lacks");
    }
    let mut body = body.to_string();
    let mut f16 = needs_f16(name);
    if body.contains("{{ROUND_F16}}") {
        body = body.replace("{{ROUND_F16}}", if caps.shader_f16 { ROUND_NATIVE } else { ROUND_PACKED });
        f16 |= caps.shader_f16;
    }
    let mut out = String::new();
    if f16 {
        out.push_str("enable f16;\n");
    }
    out.push_str(PRELUDE);
    out.push('\n');
    out.push_str(&body);
    Ok(out)
}

/// Every module that can be built under `caps` (for validation).
pub fn all_sources(caps: Caps) -> Vec<(String, String)> {
    KERNELS
        .iter()
        .filter(|(n, _)| caps.shader_f16 || !needs_f16(n))
        .filter_map(|(n, _)| source(n, caps).ok().map(|s| (n.to_string(), s)))
        .collect()
}

//! WGSL sources (`/shaders/*.wgsl`), assembled per capability set and per
//! binding layout.
//!
//! Every module is `enable` lines + `prelude.wgsl` + the kernel. A kernel
//! declares its storage buffers with `//#bind NAME r|rw` lines (bindings 1..,
//! in order) and touches them only through generated accessors:
//! `ld_NAME(i) -> f32`, `lw_NAME(i) -> u32` (raw element bits), `li_NAME(i)`,
//! and for `rw` bindings `st_NAME(i, f32)`, `sw_NAME(i, u32)`, `si_NAME(i, i32)`.
//! What the accessors compile to depends on the tensor bound there
//! ([`BindLayout`]): 32-bit words, or f16 halves (native `array<f16>` with
//! SHADER_F16, otherwise two halves packed per `u32`, written with atomics
//! because two threads may own the two halves of one word); and tensors
//! larger than one storage binding are split over several bindings
//! ("chunks") of `chunk_bytes` each, the accessor picking the chunk.
//! u8/i8 tensors are stored one byte per element, four to a `u32` word (so
//! 8-bit and packed 4-bit weights keep their size on the device); their `lw_`
//! zero- or sign-extends like the 32-bit integer words, and `lq_NAME(w)` /
//! `sq_NAME(w, v)` read / write the four bytes of word `w` at once.
//! A `//#include NAME` line (after the bindings) pastes a WGSL snippet
//! several kernels share (`SNIPPETS`).

use crate::device::Caps;
use anyhow::{bail, Result};
use std::fmt::Write as _;

const PRELUDE: &str = include_str!("../../../shaders/prelude.wgsl");

/// WGSL pieces several kernels share, pasted where a kernel says
/// `//#include NAME` (after its bindings, whose accessors they may use).
const SNIPPETS: &[(&str, &str)] = &[
    (
        "attention_merge",
        include_str!("../../../shaders/attention_merge.wgsl"),
    ),
    ("div_rn", include_str!("../../../shaders/div_rn.wgsl")),
];

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
    "conv_integer",
    "dequantize",
    "fused_elementwise",
    "gather",
    "gather_block_quantized",
    "gather_nd",
    "gelu",
    "gemv",
    "layer_norm",
    "mat_mul",
    "mat_mul_epilogue",
    "mat_mul_epilogue_gemv",
    "mat_mul_bnb4",
    "mat_mul_bnb4_gemv",
    "mat_mul_integer",
    "mat_mul_integer_gemv",
    "mat_mul_multi",
    "mat_mul_multi_gemv",
    "mat_mul_multi_rotary_gemv",
    "mat_mul_n_bits",
    "mat_mul_n_bits_gemv",
    "multi_head_attention",
    "multi_head_attention_blocked",
    "multi_head_attention_merge",
    "multi_head_attention_mat_mul_gemv",
    "quantize",
    "quantize_range",
    "reduce",
    "rotary_embedding",
    "rotary_embedding_pair",
    "scatter_nd",
    "mat_mul_silu_mul",
    "mat_mul_silu_mul_gemv",
    "silu_mul",
    "simplified_layer_norm",
    "skip_simplified_layer_norm",
    "softmax",
    "strided_copy",
    "trilu",
    "unary",
    "where_op",
);

/// Signedness of byte-stored (u8/i8) elements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteElems {
    Unsigned,
    Signed,
}

/// How the tensor at one binding is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BindLayout {
    /// f16 halves (2 bytes per element) rather than 32-bit words.
    pub half: bool,
    /// Number of buffers (each at most `chunk_bytes`) the tensor spans.
    pub chunks: u32,
    /// One byte per element (u8/i8), four per word.
    pub bytes: Option<ByteElems>,
}

impl BindLayout {
    pub const WORD: BindLayout = BindLayout {
        half: false,
        chunks: 1,
        bytes: None,
    };
    pub const HALF: BindLayout = BindLayout {
        half: true,
        chunks: 1,
        bytes: None,
    };
    pub const U8: BindLayout = BindLayout {
        half: false,
        chunks: 1,
        bytes: Some(ByteElems::Unsigned),
    };
    pub const I8: BindLayout = BindLayout {
        half: false,
        chunks: 1,
        bytes: Some(ByteElems::Signed),
    };
}

/// The `//#bind` declarations of a kernel: (name, writable).
pub fn bindings(body: &str) -> Vec<(String, bool)> {
    body.lines()
        .filter_map(|l| l.trim().strip_prefix("//#bind "))
        .filter_map(|rest| {
            let mut it = rest.split_whitespace();
            let name = it.next()?.to_string();
            Some((name, it.next() == Some("rw")))
        })
        .collect()
}

/// Per-chunk access expressions: (load f32, load raw bits, store f32, store bits).
fn chunk_exprs(a: &str, lay: BindLayout, native: bool, rw: bool) -> [String; 4] {
    let half = lay.half;
    if let Some(sign) = lay.bytes {
        let word = if rw {
            format!("atomicLoad(&{a}[o >> 2u])")
        } else {
            format!("{a}[o >> 2u]")
        };
        let load = match sign {
            ByteElems::Unsigned => format!("return ({word} >> ((o & 3u) * 8u)) & 0xffu;"),
            ByteElems::Signed => format!(
                "return bitcast<u32>(extractBits(bitcast<i32>({word}), (o & 3u) * 8u, 8u));"
            ),
        };
        // Like packed halves: each thread clears then sets only its own byte.
        let store = format!(
            "let sh = (o & 3u) * 8u; atomicAnd(&{a}[o >> 2u], ~(0xffu << sh)); atomicOr(&{a}[o >> 2u], (v & 0xffu) << sh);"
        );
        return [
            format!("return bitcast<f32>(lw_c{a}(o));"),
            load,
            format!("sw_c{a}(o, bitcast<u32>(v));"),
            store,
        ];
    }
    if !half {
        return [
            format!("return bitcast<f32>({a}[o]);"),
            format!("return {a}[o];"),
            format!("{a}[o] = bitcast<u32>(v);"),
            format!("{a}[o] = v;"),
        ];
    }
    if native {
        return [
            format!("return f32({a}[o]);"),
            // f16 -> f32 -> f16 is exact, so this is the element's bit pattern.
            format!("return pack2x16float(vec2<f32>(f32({a}[o]), 0.0));"),
            format!("{a}[o] = f16(v);"),
            format!("{a}[o] = f16(unpack2x16float(v).x);"),
        ];
    }
    let word = if rw {
        format!("atomicLoad(&{a}[o >> 1u])")
    } else {
        format!("{a}[o >> 1u]")
    };
    // Each thread clears then sets only its own half of the shared word.
    let store = format!(
        "let sh = (o & 1u) * 16u; atomicAnd(&{a}[o >> 1u], ~(0xffffu << sh)); atomicOr(&{a}[o >> 1u], (v & 0xffffu) << sh);"
    );
    [
        format!("return unpack2x16float({word})[o & 1u];"),
        format!("return ({word} >> ((o & 1u) * 16u)) & 0xffffu;"),
        format!("sw_c{a}(o, pack2x16float(vec2<f32>(v, 0.0)));"),
        store,
    ]
}

/// Declarations and accessors for one `//#bind` line.
fn emit_binding(
    out: &mut String,
    name: &str,
    rw: bool,
    lay: BindLayout,
    first_binding: u32,
    native: bool,
    chunk_bytes: u64,
) {
    let elem = if lay.bytes.is_some() {
        if rw {
            "atomic<u32>"
        } else {
            "u32"
        }
    } else if !lay.half {
        "u32"
    } else if native {
        "f16"
    } else if rw {
        "atomic<u32>"
    } else {
        "u32"
    };
    let access = if rw { "read_write" } else { "read" };
    let chunk_elems = chunk_bytes
        / if lay.bytes.is_some() {
            1
        } else if lay.half {
            2
        } else {
            4
        };
    let chunks = lay.chunks.max(1);
    for c in 0..chunks {
        let _ = writeln!(
            out,
            "@group(0) @binding({}) var<storage, {access}> {name}_{c}: array<{elem}>;",
            first_binding + c
        );
    }
    let kinds: [(&str, &str, &str); 4] = [
        ("ld", "", "-> f32"),
        ("lw", "", "-> u32"),
        ("st", ", v: f32", ""),
        ("sw", ", v: u32", ""),
    ];
    for (k, (prefix, extra, ret)) in kinds.iter().enumerate() {
        if k >= 2 && !rw {
            break;
        }
        // Per-chunk helpers, then the public accessor that picks the chunk.
        for c in 0..chunks {
            let a = format!("{name}_{c}");
            let exprs = chunk_exprs(&a, lay, native, rw);
            let body = if k == 2 && lay.half && !native && lay.bytes.is_none() {
                format!("sw_c{name}_{c}(o, pack2x16float(vec2<f32>(v, 0.0)));")
            } else {
                exprs[k].clone()
            };
            let _ = writeln!(out, "fn {prefix}_c{a}(o: u32{extra}) {ret} {{ {body} }}");
        }
        let call_args = if extra.is_empty() { "" } else { ", v" };
        let ret_kw = if ret.is_empty() { "" } else { "return " };
        let mut body = String::new();
        if chunks == 1 {
            let _ = write!(body, "{ret_kw}{prefix}_c{name}_0(i{call_args});");
        } else {
            let _ = write!(
                body,
                "let c = i / {chunk_elems}u; let o = i % {chunk_elems}u; "
            );
            for c in 0..chunks - 1 {
                let _ = write!(
                    body,
                    "if (c == {c}u) {{ {ret_kw}{prefix}_c{name}_{c}(o{call_args}); {} }} ",
                    if ret.is_empty() { "return;" } else { "" }
                );
            }
            let _ = write!(
                body,
                "{ret_kw}{prefix}_c{name}_{}(o{call_args});",
                chunks - 1
            );
        }
        let _ = writeln!(out, "fn {prefix}_{name}(i: u32{extra}) {ret} {{ {body} }}");
    }
    let _ = writeln!(
        out,
        "fn li_{name}(i: u32) -> i32 {{ return bitcast<i32>(lw_{name}(i)); }}"
    );
    emit_quad_accessors(out, name, rw, lay, chunk_bytes);
    if rw {
        let _ = writeln!(
            out,
            "fn si_{name}(i: u32, v: i32) {{ sw_{name}(i, bitcast<u32>(v)); }}"
        );
    }
}

/// `lq_NAME(w)` (and `sq_NAME(w, v)` when writable): the four 8-bit elements
/// 4w..4w+3 as one little-endian word. One word access on byte layouts; on
/// others the low bytes of four elements (kernels only use them on u8/i8).
fn emit_quad_accessors(out: &mut String, name: &str, rw: bool, lay: BindLayout, chunk_bytes: u64) {
    if lay.bytes.is_none() {
        let _ = writeln!(
            out,
            "fn lq_{name}(w: u32) -> u32 {{ let i = w * 4u; return (lw_{name}(i) & 0xffu) | ((lw_{name}(i + 1u) & 0xffu) << 8u) | ((lw_{name}(i + 2u) & 0xffu) << 16u) | ((lw_{name}(i + 3u) & 0xffu) << 24u); }}"
        );
        if rw {
            let _ = writeln!(
                out,
                "fn sq_{name}(w: u32, v: u32) {{ let i = w * 4u; sw_{name}(i, v & 0xffu); sw_{name}(i + 1u, (v >> 8u) & 0xffu); sw_{name}(i + 2u, (v >> 16u) & 0xffu); sw_{name}(i + 3u, v >> 24u); }}"
            );
        }
        return;
    }
    let chunks = lay.chunks.max(1);
    let chunk_words = chunk_bytes / 4;
    let pick = |call: &str, ret: bool| -> String {
        if chunks == 1 {
            return format!(
                "{}{call}_0(w{});",
                if ret { "return " } else { "" },
                if ret { "" } else { ", v" }
            );
        }
        let mut body = format!("let c = w / {chunk_words}u; let o = w % {chunk_words}u; ");
        for c in 0..chunks {
            let args = if ret {
                "o".to_string()
            } else {
                "o, v".to_string()
            };
            let stmt = if ret {
                format!("return {call}_{c}({args});")
            } else {
                format!("{call}_{c}({args}); return;")
            };
            if c + 1 == chunks {
                body.push_str(&stmt);
            } else {
                let _ = write!(body, "if (c == {c}u) {{ {stmt} }} ");
            }
        }
        body
    };
    for c in 0..chunks {
        let a = format!("{name}_{c}");
        let load = if rw {
            format!("atomicLoad(&{a}[o])")
        } else {
            format!("{a}[o]")
        };
        let _ = writeln!(out, "fn lq_c{a}(o: u32) -> u32 {{ return {load}; }}");
        if rw {
            let _ = writeln!(
                out,
                "fn sq_c{a}(o: u32, v: u32) {{ atomicStore(&{a}[o], v); }}"
            );
        }
    }
    let _ = writeln!(
        out,
        "fn lq_{name}(w: u32) -> u32 {{ {} }}",
        pick(&format!("lq_c{name}"), true)
    );
    if rw {
        let _ = writeln!(
            out,
            "fn sq_{name}(w: u32, v: u32) {{ {} }}",
            pick(&format!("sq_c{name}"), false)
        );
    }
}

/// The complete module for `name` under `caps`, with the given layout of each
/// `//#bind` binding (in declaration order) and chunk size in bytes.
pub fn source(name: &str, caps: Caps, layouts: &[BindLayout], chunk_bytes: u64) -> Result<String> {
    let Some((_, body)) = KERNELS.iter().find(|(n, _)| *n == name) else {
        bail!("no WGSL kernel named '{name}'");
    };
    let binds = bindings(body);
    if binds.len() != layouts.len() {
        bail!(
            "kernel '{name}' has {} storage bindings, {} were given",
            binds.len(),
            layouts.len()
        );
    }
    if chunk_bytes < 4 || !chunk_bytes.is_multiple_of(4) {
        bail!("chunk size {chunk_bytes} must be a positive multiple of 4 bytes");
    }
    let native = caps.shader_f16;
    let mut out = String::new();
    if native && layouts.iter().any(|l| l.half) {
        out.push_str("enable f16;\n");
    }
    out.push_str(PRELUDE);
    out.push('\n');
    let mut next = 1u32;
    let mut it = binds.iter().zip(layouts);
    for line in body.lines() {
        if line.trim().starts_with("//#bind ") {
            if let Some(((bname, rw), lay)) = it.next() {
                emit_binding(&mut out, bname, *rw, *lay, next, native, chunk_bytes);
                next += lay.chunks.max(1);
            }
        } else if let Some(snippet) = line.trim().strip_prefix("//#include ") {
            let Some((_, text)) = SNIPPETS.iter().find(|(n, _)| *n == snippet.trim()) else {
                bail!("kernel '{name}' includes unknown WGSL snippet '{snippet}'");
            };
            out.push_str(text);
            out.push('\n');
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Layout variants to validate for a kernel with `n` bindings: every
/// word/half combination with one chunk, plus all-halves and all-words with
/// three chunks.
pub fn layout_variants(n: usize) -> Vec<Vec<BindLayout>> {
    let mut v = Vec::new();
    for mask in 0..(1u32 << n) {
        v.push(
            (0..n)
                .map(|b| BindLayout {
                    half: mask & (1 << b) != 0,
                    chunks: 1,
                    bytes: None,
                })
                .collect(),
        );
    }
    for half in [false, true] {
        v.push(vec![
            BindLayout {
                half,
                chunks: 3,
                bytes: None
            };
            n
        ]);
    }
    // Byte storage (u8/i8 tensors), one chunk unsigned and three signed.
    v.push(vec![BindLayout::U8; n]);
    v.push(vec![
        BindLayout {
            chunks: 3,
            ..BindLayout::I8
        };
        n
    ]);
    v
}

/// Every module variant under `caps` (for validation): (label, source).
pub fn all_sources(caps: Caps) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, body) in KERNELS {
        let n = bindings(body).len();
        for lay in layout_variants(n) {
            let label = format!("{name} {lay:?}");
            match source(name, caps, &lay, 1 << 16) {
                Ok(s) => out.push((label, s)),
                Err(e) => out.push((label, format!("assembly failed: {e:#}"))),
            }
        }
    }
    out
}

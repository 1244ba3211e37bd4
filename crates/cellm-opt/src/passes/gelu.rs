//! GELU fusion: the decomposed forms exporters write become one `Gelu` op.
//!
//! - erf form: x · 0.5 · (1 + erf(x / √2))   (or x · (1/√2) inside erf)
//! - tanh form: x · 0.5 · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))
//!   with x³ as Pow(x, 3) or Mul(x, Mul(x, x)), or the factored inner form
//!   √(2/π) · x · (1 + 0.044715 · x²).
//!
//! Products are matched as flattened Mul trees, so any association and
//! operand order of the factors (e.g. `(x · 0.5) · s`, `0.5 · (x · s)`) is
//! one pattern. Every intermediate value must be read only inside the
//! pattern; constants must match to 1e-3 relative (f16 exports round them).

use crate::pattern::{
    arg, binary, const_scalar, dtype, either, out, producer, readers, replace_node, shape, unary,
};
use crate::Rule;
use anyhow::{Context, Result};
use cellm_ir::ops::{BinaryOp, Gelu, GeluApproximation, UnaryOp};
use cellm_ir::{Graph, Node, Op, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct GeluFusion;

pub struct Match {
    root: NodeIndex,
    x: ValueId,
    approximate: GeluApproximation,
}

/// Factors of the product `v`: Mul nodes are expanded (the root always,
/// inner ones when read only here) down to `depth` levels. Returns the
/// product of the scalar-constant factors and the other factors.
pub fn product_factors(g: &Graph, v: ValueId, depth: usize) -> (f64, Vec<ValueId>) {
    fn walk(g: &Graph, v: ValueId, depth: usize, root: bool, c: &mut f64, out: &mut Vec<ValueId>) {
        if depth > 0 && (root || readers(g, v) == 1) {
            if let Some((_, a, b)) = binary(g, v, BinaryOp::Mul) {
                walk(g, a, depth - 1, false, c, out);
                walk(g, b, depth - 1, false, c, out);
                return;
            }
        }
        match const_scalar(g, v) {
            Some(k) => *c *= k,
            None => out.push(v),
        }
    }
    let mut c = 1.0;
    let mut out = Vec::new();
    walk(g, v, depth, true, &mut c, &mut out);
    (c, out)
}

/// `a` ≈ `b` to 1e-3 relative.
pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-3 * b.abs()
}

/// `v` = Add(1, t) or Add(t, 1), read once: returns t.
fn one_plus(g: &Graph, v: ValueId) -> Option<ValueId> {
    if readers(g, v) != 1 {
        return None;
    }
    let (_, a, b) = binary(g, v, BinaryOp::Add)?;
    let (_, t) = either(a, b, |c| close(const_scalar(g, c)?, 1.0).then_some(()))?;
    Some(t)
}

/// `v` = x / √2 or x · (1/√2) (either order), read once.
fn erf_arg_is(g: &Graph, v: ValueId, x: ValueId) -> bool {
    if readers(g, v) != 1 {
        return false;
    }
    if let Some((_, a, b)) = binary(g, v, BinaryOp::Div) {
        return a == x && const_scalar(g, b).is_some_and(|c| close(c, std::f64::consts::SQRT_2));
    }
    let (c, f) = product_factors(g, v, 1);
    f == [x] && close(c, std::f64::consts::FRAC_1_SQRT_2)
}

/// `v` = x³ as the factors of a product (with constant `c`): x·x·x or Pow(x, 3).
fn is_cube(g: &Graph, factors: &[ValueId], x: ValueId) -> bool {
    match factors {
        [a, b, c] => *a == x && *b == x && *c == x,
        [p] => {
            readers(g, *p) == 1
                && binary(g, *p, BinaryOp::Pow).is_some_and(|(_, base, e)| {
                    base == x && const_scalar(g, e).is_some_and(|e| e == 3.0)
                })
        }
        _ => false,
    }
}

/// `v` = √(2/π) · (x + 0.044715·x³) or √(2/π) · x · (1 + 0.044715·x²).
fn tanh_arg_is(g: &Graph, v: ValueId, x: ValueId) -> bool {
    let scale = (2.0 / std::f64::consts::PI).sqrt();
    if readers(g, v) != 1 {
        return false;
    }
    let (c, f) = product_factors(g, v, 3);
    if !close(c, scale) {
        return false;
    }
    match f.as_slice() {
        // √(2/π) · (x + k·x³)
        [s] => {
            if readers(g, *s) != 1 {
                return false;
            }
            let Some((_, a, b)) = binary(g, *s, BinaryOp::Add) else {
                return false;
            };
            either(a, b, |p| (p == x).then_some(())).is_some_and(|((), cube)| {
                readers(g, cube) == 1 && {
                    let (k, cf) = product_factors(g, cube, 3);
                    close(k, 0.044715) && is_cube(g, &cf, x)
                }
            })
        }
        // √(2/π) · x · (1 + k·x²)
        [a, b] => either(*a, *b, |p| (p == x).then_some(())).is_some_and(|((), s)| {
            one_plus(g, s).is_some_and(|sq| {
                readers(g, sq) == 1 && {
                    let (k, sf) = product_factors(g, sq, 2);
                    close(k, 0.044715) && sf == [x, x]
                }
            })
        }),
        _ => false,
    }
}

impl Rule for GeluFusion {
    type Match = Match;
    fn name(&self) -> &'static str {
        "gelu"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let n = &g.nodes[ix];
        match &n.op {
            Op::Binary(b) if b.op == BinaryOp::Mul => {}
            _ => return None,
        }
        let y = out(n, 0)?;
        let (c, f) = product_factors(g, y, 3);
        if !close(c, 0.5) {
            return None;
        }
        let [a, b] = f.as_slice() else { return None };
        // One factor is x, the other 1 + erf(·) or 1 + tanh(·) of x.
        let ((t, approximate), x) = either(*a, *b, |s| {
            let t = one_plus(g, s)?;
            if readers(g, t) != 1 {
                return None;
            }
            if unary(g, t, UnaryOp::Erf).is_some() {
                Some((t, GeluApproximation::None))
            } else if unary(g, t, UnaryOp::Tanh).is_some() {
                Some((t, GeluApproximation::Tanh))
            } else {
                None
            }
        })?;
        let (_, inner) = producer(g, t).and_then(|(tix, tn)| Some((tix, arg(tn, 0)?)))?;
        let ok = match approximate {
            GeluApproximation::None => erf_arg_is(g, inner, x),
            GeluApproximation::Tanh => tanh_arg_is(g, inner, x),
        };
        // No broadcasting against the constants: the output is x's shape.
        let same_shape = shape(g, x)? == shape(g, y)?;
        let float = dtype(g, x)?.is_float() && dtype(g, y)? == dtype(g, x)?;
        (ok && same_shape && float).then_some(Match {
            root: ix,
            x,
            approximate,
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        let y = out(&g.nodes[m.root], 0).context("GELU output")?;
        let name = format!("{}/fused_gelu", g.nodes[m.root].name);
        // The rest of the pattern is now unread; DCE removes it.
        replace_node(
            g,
            m.root,
            Node {
                name,
                op: Op::Gelu(Gelu {
                    approximate: m.approximate,
                }),
                inputs: vec![Some(m.x)],
                outputs: vec![Some(y)],
            },
        )?;
        Ok(())
    }
}

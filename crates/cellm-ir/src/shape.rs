//! Shapes whose dims may be symbolic (named after ONNX `dim_param`s).

use std::collections::HashMap;
use std::fmt;

/// One dimension: a number, or a symbol bound when the graph runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dim {
    Known(usize),
    Sym(String),
}

impl Dim {
    pub fn known(&self) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(*n),
            Dim::Sym(_) => None,
        }
    }

    /// The value of this dim under `bindings`, if known.
    pub fn resolve(&self, bindings: &HashMap<String, usize>) -> Option<usize> {
        match self {
            Dim::Known(n) => Some(*n),
            Dim::Sym(s) => bindings.get(s).copied(),
        }
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Self {
        Dim::Known(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(n) => write!(f, "{n}"),
            Dim::Sym(s) => f.write_str(s),
        }
    }
}

/// A shape with possibly-symbolic dims.
pub type SymShape = Vec<Dim>;

pub fn fmt_shape(shape: &[Dim]) -> String {
    let parts: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// Number of elements of a concrete shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

/// Row-major strides of a concrete shape.
pub fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Resolves a possibly negative axis against `rank` (ONNX convention).
pub fn normalize_axis(axis: i64, rank: usize) -> anyhow::Result<usize> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if a < 0 || a >= r {
        anyhow::bail!("axis {axis} is out of range for rank {rank}");
    }
    Ok(a as usize)
}

/// Numpy-style multidirectional broadcast of concrete shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> anyhow::Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank { a[i + a.len() - rank] } else { 1 };
        let db = if i + b.len() >= rank { b[i + b.len() - rank] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => anyhow::bail!("shapes {a:?} and {b:?} do not broadcast"),
        };
    }
    Ok(out)
}

/// Symbolic broadcast: equal dims stay, 1 yields to the other, otherwise unknown
/// symbols are assumed to match (ONNX models rely on that).
pub fn broadcast_sym(a: &[Dim], b: &[Dim]) -> anyhow::Result<SymShape> {
    let rank = a.len().max(b.len());
    let one = Dim::Known(1);
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank { &a[i + a.len() - rank] } else { &one };
        let db = if i + b.len() >= rank { &b[i + b.len() - rank] } else { &one };
        out.push(match (da, db) {
            (x, y) if x == y => x.clone(),
            (Dim::Known(1), y) => y.clone(),
            (x, Dim::Known(1)) => x.clone(),
            (Dim::Known(x), Dim::Known(y)) => {
                anyhow::bail!("dims {x} and {y} do not broadcast ({} vs {})", fmt_shape(a), fmt_shape(b))
            }
            (Dim::Known(x), Dim::Sym(_)) | (Dim::Sym(_), Dim::Known(x)) => Dim::Known(*x),
            (Dim::Sym(x), Dim::Sym(_)) => Dim::Sym(x.clone()),
        });
    }
    Ok(out)
}

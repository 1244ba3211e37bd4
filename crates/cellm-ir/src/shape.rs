//! Shapes whose dims may be symbolic (named after ONNX `dim_param`s).
//!
//! Symbol conventions used by shape inference:
//! - a plain name (`batch_size`) is an ONNX `dim_param`, bound from the graph
//!   inputs when the graph runs;
//! - `?` ([`Dim::unknown`]) is a dim nobody can know before the graph runs
//!   (it depends on tensor values, e.g. NonZero's count). Two `?` are NOT the
//!   same dim, so nothing may be concluded from `?` == `?`; never bind `?`;
//! - expressions of names (`past_sequence_length+sequence_length`,
//!   `batch_size*num_images`, `(a+b)*4`) are derived dims. Equal strings mean
//!   equal values, but they are never bound from inputs; a binding resolver
//!   must evaluate or ignore them.

use std::collections::HashMap;
use std::fmt;

/// One dimension: a number, or a symbol bound when the graph runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum Dim {
    Known(usize),
    Sym(String),
}

impl Dim {
    /// The symbol of a dim that depends on runtime values.
    pub const UNKNOWN: &'static str = "?";

    /// A dim that depends on runtime values (see the module docs).
    pub fn unknown() -> Dim {
        Dim::Sym(Dim::UNKNOWN.to_string())
    }

    /// True for [`Dim::unknown`].
    pub fn is_unknown(&self) -> bool {
        matches!(self, Dim::Sym(s) if s == Dim::UNKNOWN)
    }

    /// True for a plain `dim_param` name (not `?`, not a derived expression).
    pub fn is_named(&self) -> bool {
        matches!(self, Dim::Sym(s) if !s.is_empty() && !s.contains(['?', '+', '*', '(', ')']))
    }

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
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
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
/// symbols are assumed to match (ONNX models rely on that). A `?` yields to
/// a symbol or a number other than 1, since that is what it must be unless it is 1.
pub fn broadcast_sym(a: &[Dim], b: &[Dim]) -> anyhow::Result<SymShape> {
    let rank = a.len().max(b.len());
    let one = Dim::Known(1);
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            &a[i + a.len() - rank]
        } else {
            &one
        };
        let db = if i + b.len() >= rank {
            &b[i + b.len() - rank]
        } else {
            &one
        };
        out.push(match (da, db) {
            (x, y) if x == y => x.clone(),
            (x, y) if x.is_unknown() && !matches!(y, Dim::Known(1)) => y.clone(),
            (x, y) if y.is_unknown() && !matches!(x, Dim::Known(1)) => x.clone(),
            (Dim::Known(1), y) => y.clone(),
            (x, Dim::Known(1)) => x.clone(),
            (Dim::Known(x), Dim::Known(y)) => {
                anyhow::bail!(
                    "dims {x} and {y} do not broadcast ({} vs {})",
                    fmt_shape(a),
                    fmt_shape(b)
                )
            }
            (Dim::Known(x), Dim::Sym(_)) | (Dim::Sym(_), Dim::Known(x)) => Dim::Known(*x),
            // Keep the plain name over a derived expression: it is bindable.
            (x @ Dim::Sym(_), y @ Dim::Sym(_)) => {
                if !x.is_named() && y.is_named() {
                    y.clone()
                } else {
                    x.clone()
                }
            }
        });
    }
    Ok(out)
}

/// Unifies two dims that the op requires to be equal: a number beats a symbol,
/// a symbol beats `?`; two different numbers are an error (`what` names them).
pub fn merge_dims(a: &Dim, b: &Dim, what: &str) -> anyhow::Result<Dim> {
    Ok(match (a, b) {
        (Dim::Known(x), Dim::Known(y)) if x != y => anyhow::bail!("{what}: {x} vs {y}"),
        (Dim::Known(_), _) => a.clone(),
        (_, Dim::Known(_)) => b.clone(),
        (x, y) if x.is_unknown() => y.clone(),
        _ => a.clone(),
    })
}

/// A product of dims as `coeff × symbols` (symbols sorted, may repeat).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Monomial {
    coeff: usize,
    syms: Vec<String>,
}

/// Splits `s` at `sep` outside parentheses.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if c == sep && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

impl Monomial {
    /// `None` for a dim that is (or contains) `?`.
    fn of(d: &Dim) -> Option<Monomial> {
        match d {
            Dim::Known(n) => Some(Monomial {
                coeff: *n,
                syms: vec![],
            }),
            Dim::Sym(s) if s.contains('?') => None,
            Dim::Sym(s) => {
                let mut m = Monomial {
                    coeff: 1,
                    syms: vec![],
                };
                let parts = split_top(s, '*');
                for p in &parts {
                    match p.parse::<usize>() {
                        Ok(n) => m.coeff *= n,
                        // A lone sum is a factor too; wrap it so products stay parseable.
                        Err(_) if parts.len() == 1 && split_top(p, '+').len() > 1 => {
                            m.syms.push(format!("({p})"))
                        }
                        Err(_) => m.syms.push(p.to_string()),
                    }
                }
                m.syms.sort();
                Some(m)
            }
        }
    }

    fn mul(mut self, o: Monomial) -> Monomial {
        self.coeff *= o.coeff;
        self.syms.extend(o.syms);
        self.syms.sort();
        self
    }

    /// Exact quotient, when `o` divides `self` as a monomial.
    fn div(&self, o: &Monomial) -> Option<Monomial> {
        // (Not `is_multiple_of`: the workspace's rust-version predates it.)
        if o.coeff == 0 || self.coeff / o.coeff * o.coeff != self.coeff {
            return None;
        }
        let mut syms = self.syms.clone();
        for s in &o.syms {
            let at = syms.iter().position(|x| x == s)?;
            syms.remove(at);
        }
        Some(Monomial {
            coeff: self.coeff / o.coeff,
            syms,
        })
    }

    fn to_dim(&self) -> Dim {
        if self.coeff == 0 || self.syms.is_empty() {
            return Dim::Known(self.coeff);
        }
        if self.coeff == 1 && self.syms.len() == 1 {
            let s = &self.syms[0];
            // Unwrap a lone parenthesised sum.
            let inner = s.strip_prefix('(').and_then(|x| x.strip_suffix(')'));
            return Dim::Sym(
                inner
                    .filter(|i| split_top(i, '+').len() > 1)
                    .unwrap_or(s)
                    .to_string(),
            );
        }
        let mut parts: Vec<String> = Vec::new();
        if self.coeff != 1 {
            parts.push(self.coeff.to_string());
        }
        parts.extend(self.syms.iter().cloned());
        Dim::Sym(parts.join("*"))
    }
}

/// Product of dims, symbolic where needed; `?` when any factor is `?` (and none is 0).
pub fn dim_product(dims: &[Dim]) -> Dim {
    if dims.iter().any(|d| d == &Dim::Known(0)) {
        return Dim::Known(0);
    }
    let mut acc = Monomial {
        coeff: 1,
        syms: vec![],
    };
    for d in dims {
        match Monomial::of(d) {
            Some(m) => acc = acc.mul(m),
            None => return Dim::unknown(),
        }
    }
    acc.to_dim()
}

/// `num / den` when it divides exactly as a product of symbols; `None` when it
/// does not or cannot be known (e.g. a `?` is involved).
pub fn dim_div(num: &Dim, den: &Dim) -> Option<Dim> {
    let (n, d) = (Monomial::of(num)?, Monomial::of(den)?);
    n.div(&d).map(|q| q.to_dim())
}

/// Sum of dims: numbers add up, symbols are joined with `+`; `?` when any term is `?`.
pub fn dim_sum(dims: &[Dim]) -> Dim {
    let mut known = 0usize;
    let mut terms: Vec<String> = Vec::new();
    for d in dims {
        match d {
            Dim::Known(n) => known += n,
            d if d.is_unknown() => return Dim::unknown(),
            Dim::Sym(s) if s.contains('?') => return Dim::unknown(),
            Dim::Sym(s) => terms.push(s.clone()),
        }
    }
    if terms.is_empty() {
        return Dim::Known(known);
    }
    if known > 0 {
        terms.push(known.to_string());
    }
    Dim::Sym(terms.join("+"))
}

//! Per-op conformance: each case in `graphs/conformance/` is a single-node
//! ONNX graph with inputs and onnxruntime's outputs (made by
//! `graphs/make_conformance.py`). A case passes when `cellm_onnx::load` +
//! `cellm_cpu::run` reproduce every output within the case's tolerance.
//!
//! Tolerances, applied to the largest elementwise |actual - expected| and
//! scaled by `max(1, max|expected|)` so large-magnitude outputs are judged
//! relatively and near-zero ones absolutely:
//! - `exact` (integer and bool outputs): bit-exact.
//! - `f32`: 1e-5. Elementwise f32 math (also Erf, Pow, Exp and the other
//!   transcendentals) differs from onnxruntime by a few ulp at most; sums
//!   over the short axes used here stay well inside it.
//! - `f16`: 2e-3, two f16 ulp near 1: onnxruntime may keep an intermediate in
//!   f32 where we round it to f16, or the other way round.
//!
//! A case may widen its bound with `rel_tol` in the manifest (with a `note`).

use anyhow::{anyhow, bail, Context, Result};
use cellm_ir::{DType, Tensor};
use serde::Deserialize;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Relative bound for f32 outputs (see the crate docs).
pub const F32_REL_TOL: f64 = 1e-5;
/// Relative bound for f16 outputs (see the crate docs).
pub const F16_REL_TOL: f64 = 2e-3;

#[derive(Clone, Debug, Deserialize)]
pub struct Manifest {
    pub onnxruntime: String,
    pub cases: Vec<Case>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct Case {
    pub case: String,
    pub op: String,
    pub domain: String,
    pub opset: i64,
    pub tol_class: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    #[serde(default)]
    pub rel_tol: Option<f64>,
    #[serde(default)]
    pub note: Option<String>,
}

/// How closely an output must match.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tolerance {
    Exact,
    /// Allowed max error is `rel * max(1, max|expected|)`.
    Relative(f64),
}

impl Tolerance {
    pub fn for_case(case: &Case) -> Result<Tolerance> {
        let class = match case.tol_class.as_str() {
            "exact" => Tolerance::Exact,
            "f32" => Tolerance::Relative(F32_REL_TOL),
            "f16" => Tolerance::Relative(F16_REL_TOL),
            other => bail!("case {}: unknown tolerance class '{other}'", case.case),
        };
        Ok(match (class, case.rel_tol) {
            (Tolerance::Relative(_), Some(rel)) => Tolerance::Relative(rel),
            (class, _) => class,
        })
    }
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Tolerance::Exact => f.write_str("exact"),
            Tolerance::Relative(r) => write!(f, "{r:.0e} rel"),
        }
    }
}

/// Result of comparing one output.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Largest elementwise error (`inf` when a NaN/inf does not match).
    pub max_err: f64,
    /// Largest error allowed.
    pub allowed: f64,
    /// Why it failed, `None` when it passed.
    pub failure: Option<String>,
}

/// Compares `actual` against the golden `expected`: same dtype, same shape,
/// values within `tol`. NaN matches only NaN, infinities only themselves.
pub fn compare(expected: &Tensor, actual: &Tensor, tol: Tolerance) -> Comparison {
    if expected.dtype() != actual.dtype() {
        return Comparison {
            max_err: f64::INFINITY,
            allowed: 0.0,
            failure: Some(format!(
                "dtype {} but onnxruntime gives {}",
                actual.dtype(),
                expected.dtype()
            )),
        };
    }
    if expected.shape() != actual.shape() {
        return Comparison {
            max_err: f64::INFINITY,
            allowed: 0.0,
            failure: Some(format!(
                "shape {:?} but onnxruntime gives {:?}",
                actual.shape(),
                expected.shape()
            )),
        };
    }
    if !expected.dtype().is_float() {
        // Integers and bools: bytes must agree (bools: any non-zero byte is
        // true, so compare truth values).
        let (e, a) = (expected.bytes(), actual.bytes());
        let mismatch = if expected.dtype() == DType::Bool {
            e.iter()
                .zip(a.iter())
                .position(|(x, y)| (*x != 0) != (*y != 0))
        } else {
            let size = expected.dtype().size();
            e.chunks(size).zip(a.chunks(size)).position(|(x, y)| x != y)
        };
        let ev = expected.to_f64_vec();
        let av = actual.to_f64_vec();
        let max_err = ev
            .iter()
            .zip(&av)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max);
        let failure = mismatch.map(|i| format!("element {i}: {} vs onnxruntime {}", av[i], ev[i]));
        return Comparison {
            max_err: if failure.is_some() {
                max_err.max(1.0)
            } else {
                0.0
            },
            allowed: 0.0,
            failure,
        };
    }
    let ev = expected.to_f64_vec();
    let av = actual.to_f64_vec();
    let scale = ev
        .iter()
        .filter(|v| v.is_finite())
        .map(|v| v.abs())
        .fold(1.0, f64::max);
    let allowed = match tol {
        Tolerance::Exact => 0.0,
        Tolerance::Relative(rel) => rel * scale,
    };
    let mut max_err = 0.0f64;
    let mut worst = None;
    for (i, (&e, &a)) in ev.iter().zip(&av).enumerate() {
        let err = if e.is_nan() || a.is_nan() {
            if e.is_nan() && a.is_nan() {
                0.0
            } else {
                f64::INFINITY
            }
        } else if e.is_infinite() || a.is_infinite() {
            if e == a {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            (e - a).abs()
        };
        if err > max_err {
            max_err = err;
            worst = Some((i, a, e));
        }
    }
    let failure = match worst {
        Some((i, a, e)) if max_err > allowed => {
            Some(format!("worst element {i}: {a} vs onnxruntime {e}"))
        }
        _ => None,
    };
    Comparison {
        max_err,
        allowed,
        failure,
    }
}

/// Outcome of one case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    pub case: String,
    pub op: String,
    pub tol: Tolerance,
    /// Largest error over the outputs (`inf` when the case did not run).
    pub max_err: f64,
    /// `None` when the case passed.
    pub failure: Option<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// The suite folder in this checkout.
pub fn default_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../graphs/conformance");
    // Canonical only for shorter paths in messages; a missing folder is
    // reported when the manifest is read.
    root.canonicalize().unwrap_or(root)
}

pub fn load_manifest(root: &Path) -> Result<Manifest> {
    let path = root.join("manifest.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {} (run `python3 graphs/make_conformance.py`)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("{}: bad manifest", path.display()))
}

fn read_named(dir: &Path, names: &[String]) -> Result<HashMap<String, Tensor>> {
    names
        .iter()
        .map(|n| {
            Ok((
                n.clone(),
                cellm_ir::npy::read(&dir.join(format!("{n}.npy")))?,
            ))
        })
        .collect()
}

/// Imports and runs one case, returning its largest error or why it failed.
fn check_case(root: &Path, case: &Case, tol: Tolerance) -> Result<(f64, Option<String>)> {
    let dir = root.join(&case.case);
    let inputs = read_named(&dir.join("inputs"), &case.inputs)?;
    let expected = read_named(&dir.join("outputs"), &case.outputs)?;
    let graph = cellm_onnx::load(&dir.join("model.onnx")).context("import")?;
    let mut actual = cellm_cpu::run(&graph, &inputs).context("run")?;
    let mut max_err = 0.0f64;
    let mut failures = Vec::new();
    for name in &case.outputs {
        let want = &expected[name];
        let Some(got) = actual.remove(name) else {
            failures.push(format!("output '{name}' missing"));
            max_err = f64::INFINITY;
            continue;
        };
        let c = compare(want, &got, tol);
        max_err = max_err.max(c.max_err);
        if let Some(f) = c.failure {
            failures.push(format!("{name}: {f}"));
        }
    }
    if !actual.is_empty() {
        let mut extra: Vec<_> = actual.keys().cloned().collect();
        extra.sort();
        failures.push(format!("unexpected outputs {extra:?}"));
    }
    Ok((
        max_err,
        if failures.is_empty() {
            None
        } else {
            Some(failures.join("; "))
        },
    ))
}

/// Runs one case; errors and kernel panics become failures so that one bad
/// kernel does not hide the others.
pub fn run_case(root: &Path, case: &Case) -> CaseResult {
    let tol = match Tolerance::for_case(case) {
        Ok(t) => t,
        Err(e) => {
            return CaseResult {
                case: case.case.clone(),
                op: case.op.clone(),
                tol: Tolerance::Exact,
                max_err: f64::INFINITY,
                failure: Some(format!("{e:#}")),
            }
        }
    };
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check_case(root, case, tol)));
    let (max_err, failure) = match outcome {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => (f64::INFINITY, Some(format!("{e:#}"))),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(non-string panic)");
            (f64::INFINITY, Some(format!("panicked: {msg}")))
        }
    };
    CaseResult {
        case: case.case.clone(),
        op: case.op.clone(),
        tol,
        max_err,
        failure,
    }
}

/// Runs every case whose name contains `filter` (all when `None`).
pub fn run_all(root: &Path, filter: Option<&str>) -> Result<Vec<CaseResult>> {
    let manifest = load_manifest(root)?;
    if manifest.cases.is_empty() {
        return Err(anyhow!("{}: the manifest lists no cases", root.display()));
    }
    // Every case folder must be in the manifest, so none is silently skipped.
    let listed: std::collections::HashSet<&str> =
        manifest.cases.iter().map(|c| c.case.as_str()).collect();
    for entry in
        std::fs::read_dir(root).with_context(|| format!("cannot list {}", root.display()))?
    {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !listed.contains(name.as_str()) {
                bail!(
                    "{}: case folder '{name}' is not in manifest.json (regenerate the suite)",
                    root.display()
                );
            }
        }
    }
    Ok(manifest
        .cases
        .iter()
        .filter(|c| filter.is_none_or(|f| c.case.contains(f)))
        .map(|c| run_case(root, c))
        .collect())
}

fn fmt_err(e: f64) -> String {
    if e.is_infinite() {
        "-".to_string()
    } else {
        format!("{e:.2e}")
    }
}

/// A table of the failed cases (all cases when `all`), then a per-op summary line.
pub fn report(results: &[CaseResult], all: bool) -> String {
    let mut out = String::new();
    let failed: Vec<&CaseResult> = results.iter().filter(|r| !r.passed()).collect();
    let _ = writeln!(
        out,
        "conformance: {} of {} cases passed, {} failed",
        results.len() - failed.len(),
        results.len(),
        failed.len()
    );
    let shown: Vec<&CaseResult> = if all {
        results.iter().collect()
    } else {
        failed.clone()
    };
    if !shown.is_empty() {
        let _ = writeln!(
            out,
            "{:<40} {:<34} {:>9} {:>9}  {:<6} why",
            "case", "op", "max err", "allowed", "status"
        );
        for r in shown {
            let allowed = match r.tol {
                Tolerance::Exact => "exact".to_string(),
                Tolerance::Relative(_) => r.tol.to_string(),
            };
            let status = if r.passed() { "ok" } else { "FAIL" };
            let why = r.failure.as_deref().unwrap_or("");
            let why: String = why.chars().take(300).collect();
            let _ = writeln!(
                out,
                "{:<40} {:<34} {:>9} {:>9}  {:<6} {}",
                r.case,
                r.op,
                fmt_err(r.max_err),
                allowed,
                status,
                why.replace('\n', " ")
            );
        }
    }
    let mut by_op: std::collections::BTreeMap<&str, (usize, usize)> = Default::default();
    for r in results {
        let e = by_op.entry(r.op.as_str()).or_default();
        e.0 += usize::from(r.passed());
        e.1 += 1;
    }
    let bad: Vec<String> = by_op
        .iter()
        .filter(|(_, (p, n))| p < n)
        .map(|(op, (p, n))| format!("{op} {p}/{n}"))
        .collect();
    if !bad.is_empty() {
        let _ = writeln!(out, "ops with failures (passed/total): {}", bad.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_within_and_beyond_tolerance() {
        let e = Tensor::from_vec(vec![3], vec![1.0f32, -200.0, 0.5]);
        // 200 * 1e-5 = 2e-3 allowed: an error of 1e-3 on the large value passes...
        let ok = Tensor::from_vec(vec![3], vec![1.0f32, -200.001, 0.5]);
        assert!(compare(&e, &ok, Tolerance::Relative(1e-5))
            .failure
            .is_none());
        // ...one of 1e-2 fails.
        let bad = Tensor::from_vec(vec![3], vec![1.0f32, -200.0, 0.51]);
        let c = compare(&e, &bad, Tolerance::Relative(1e-5));
        assert!(c.failure.is_some());
        assert!((c.max_err - 0.01).abs() < 1e-6);
    }

    #[test]
    fn nan_inf_dtype_shape_mismatches_fail() {
        let e = Tensor::from_vec(vec![2], vec![f32::NAN, f32::INFINITY]);
        assert!(compare(&e, &e.clone(), Tolerance::Relative(1e-5))
            .failure
            .is_none());
        let a = Tensor::from_vec(vec![2], vec![0.0f32, f32::INFINITY]);
        assert!(compare(&e, &a, Tolerance::Relative(1e-5)).failure.is_some());
        let a = Tensor::from_vec(vec![2], vec![f32::NAN, f32::MAX]);
        assert!(compare(&e, &a, Tolerance::Relative(1e-5)).failure.is_some());
        let e = Tensor::from_vec(vec![2], vec![1i64, 2]);
        assert!(compare(
            &e,
            &Tensor::from_vec(vec![2], vec![1i32, 2]),
            Tolerance::Exact
        )
        .failure
        .is_some());
        assert!(compare(
            &e,
            &Tensor::from_vec(vec![1, 2], vec![1i64, 2]),
            Tolerance::Exact
        )
        .failure
        .is_some());
    }

    #[test]
    fn integers_and_bools_are_exact() {
        let e = Tensor::from_vec(vec![3], vec![1i64, -2, 1 << 40]);
        assert!(compare(&e, &e.clone(), Tolerance::Exact).failure.is_none());
        let a = Tensor::from_vec(vec![3], vec![1i64, -2, (1 << 40) + 1]);
        assert!(compare(&e, &a, Tolerance::Exact).failure.is_some());
        let e = Tensor::from_bools(vec![2], vec![true, false]);
        assert!(compare(
            &e,
            &Tensor::from_bools(vec![2], vec![true, true]),
            Tolerance::Exact
        )
        .failure
        .is_some());
    }

    #[test]
    fn manifest_tolerance_classes() {
        let root = default_root();
        let m = load_manifest(&root).expect("manifest");
        assert!(
            m.cases.len() > 100,
            "suspiciously few cases: {}",
            m.cases.len()
        );
        for c in &m.cases {
            let tol = Tolerance::for_case(c).expect("tolerance");
            for o in &c.outputs {
                let t = cellm_ir::npy::read(
                    &root.join(&c.case).join("outputs").join(format!("{o}.npy")),
                )
                .expect("npy");
                match t.dtype() {
                    DType::F32 | DType::F64 | DType::F16 => {
                        assert!(matches!(tol, Tolerance::Relative(_)), "{}", c.case)
                    }
                    _ => {}
                }
            }
        }
    }
}

//! Typed access to a node's attributes. Errors name the attribute; the
//! importer adds the file and node.

use crate::proto::{attribute_type as ty, AttributeProto, NodeProto, TensorProto};
use anyhow::{anyhow, bail, Result};

fn find<'a>(node: &'a NodeProto, name: &str) -> Option<&'a AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

/// Checks the attribute's declared type. Very old writers leave `type` unset;
/// then the value fields are trusted as they are.
fn expect_type(a: &AttributeProto, want: i32, want_name: &str) -> Result<()> {
    if !a.ref_attr_name.is_empty() {
        bail!("attribute '{}' refers to function attribute '{}', which is only valid inside functions", a.name, a.ref_attr_name);
    }
    if a.r#type != ty::UNDEFINED && a.r#type != want {
        bail!(
            "attribute '{}' should be {want_name} but is {}",
            a.name,
            type_name(a.r#type)
        );
    }
    Ok(())
}

fn type_name(code: i32) -> &'static str {
    match code {
        ty::FLOAT => "FLOAT",
        ty::INT => "INT",
        ty::STRING => "STRING",
        ty::TENSOR => "TENSOR",
        ty::GRAPH => "GRAPH",
        ty::FLOATS => "FLOATS",
        ty::INTS => "INTS",
        ty::STRINGS => "STRINGS",
        ty::TENSORS => "TENSORS",
        ty::GRAPHS => "GRAPHS",
        _ => "an unsupported type",
    }
}

pub fn int(node: &NodeProto, name: &str) -> Result<Option<i64>> {
    find(node, name)
        .map(|a| {
            expect_type(a, ty::INT, "INT")?;
            Ok(a.i)
        })
        .transpose()
}

pub fn int_or(node: &NodeProto, name: &str, default: i64) -> Result<i64> {
    Ok(int(node, name)?.unwrap_or(default))
}

/// A 0/1 flag stored as an INT.
pub fn flag_or(node: &NodeProto, name: &str, default: bool) -> Result<bool> {
    match int(node, name)? {
        None => Ok(default),
        Some(0) => Ok(false),
        Some(1) => Ok(true),
        Some(v) => bail!("attribute '{name}' must be 0 or 1, got {v}"),
    }
}

/// A non-negative INT as usize.
pub fn usize_or(node: &NodeProto, name: &str, default: usize) -> Result<usize> {
    match int(node, name)? {
        None => Ok(default),
        Some(v) => {
            usize::try_from(v).map_err(|_| anyhow!("attribute '{name}' must be >= 0, got {v}"))
        }
    }
}

pub fn float(node: &NodeProto, name: &str) -> Result<Option<f32>> {
    find(node, name)
        .map(|a| {
            expect_type(a, ty::FLOAT, "FLOAT")?;
            Ok(a.f)
        })
        .transpose()
}

pub fn float_or(node: &NodeProto, name: &str, default: f32) -> Result<f32> {
    Ok(float(node, name)?.unwrap_or(default))
}

pub fn ints(node: &NodeProto, name: &str) -> Result<Option<Vec<i64>>> {
    find(node, name)
        .map(|a| {
            expect_type(a, ty::INTS, "INTS")?;
            Ok(a.ints.clone())
        })
        .transpose()
}

/// An INTS attribute whose values must all be non-negative.
pub fn usizes(node: &NodeProto, name: &str) -> Result<Option<Vec<usize>>> {
    ints(node, name)?
        .map(|v| {
            v.iter()
                .map(|&x| {
                    usize::try_from(x)
                        .map_err(|_| anyhow!("attribute '{name}' must be >= 0, got {v:?}"))
                })
                .collect()
        })
        .transpose()
}

pub fn floats(node: &NodeProto, name: &str) -> Result<Option<Vec<f32>>> {
    find(node, name)
        .map(|a| {
            expect_type(a, ty::FLOATS, "FLOATS")?;
            Ok(a.floats.clone())
        })
        .transpose()
}

pub fn string(node: &NodeProto, name: &str) -> Result<Option<String>> {
    find(node, name)
        .map(|a| {
            expect_type(a, ty::STRING, "STRING")?;
            String::from_utf8(a.s.clone()).map_err(|_| anyhow!("attribute '{name}' is not UTF-8"))
        })
        .transpose()
}

pub fn tensor<'a>(node: &'a NodeProto, name: &str) -> Result<Option<&'a TensorProto>> {
    find(node, name)
        .map(|a| {
            expect_type(a, ty::TENSOR, "TENSOR")?;
            a.t.as_ref()
                .ok_or_else(|| anyhow!("attribute '{name}' has no tensor"))
        })
        .transpose()
}

/// Fails when an attribute the importer does not handle is present with a
/// value other than its harmless default (so semantics are never dropped
/// silently).
pub fn reject_int(node: &NodeProto, name: &str, allowed: i64) -> Result<()> {
    match int(node, name)? {
        Some(v) if v != allowed => {
            bail!("attribute '{name}' = {v} is not supported (only {allowed})")
        }
        _ => Ok(()),
    }
}

/// Names of attributes present on `node`.
pub fn names(node: &NodeProto) -> impl Iterator<Item = &str> {
    node.attribute.iter().map(|a| a.name.as_str())
}

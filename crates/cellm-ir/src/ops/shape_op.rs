//! Shape: The shape of input 0 as i64, sliced by `start`/`end`.

use super::{need, Fact};
use crate::{DType, Dim, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Shape {
    pub start: i64,
    pub end: Option<i64>,
}

impl Shape {
    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        let x = need(inputs, 0)?;
        let len = match &x.shape {
            Some(s) => {
                // Out-of-range start/end are clamped (ONNX Shape-15).
                let r = s.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r);
                let (a, b) = (clamp(self.start), clamp(self.end.unwrap_or(r)));
                Dim::Known((b - a).max(0) as usize)
            }
            None => Dim::unknown(),
        };
        Ok(vec![Fact {
            dtype: DType::I64,
            shape: Some(vec![len]),
        }])
    }
}

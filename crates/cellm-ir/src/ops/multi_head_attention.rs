//! MultiHeadAttention: com.microsoft MultiHeadAttention: query [B,S,H*D], key/value [B,L,H*D] (or [B,H,L,D]), optional bias, key_padding_mask, attention_bias [B|1,H|1,S,T], past_key/past_value [B,H,P,D]; outputs output [B,S,H*D], present_key/present_value [B,H,P+L,D].

use super::{need, opt, Fact};
use crate::shape::{dim_div, dim_product, dim_sum, fmt_shape, merge_dims};
use crate::{Dim, SymShape, Tensor};

#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct MultiHeadAttention {
    pub num_heads: usize,
    pub scale: Option<f32>,
    pub mask_filter_value: f32,
    pub unidirectional: bool,
    /// cellm extension (grouped-query attention): key/value carry this many
    /// heads, query head h reading key/value head h / (num_heads / kv_num_heads).
    /// Set by the `kv_cache` pass; then past inputs and present outputs are unused.
    #[cfg_attr(feature = "serde", serde(default))]
    pub kv_num_heads: Option<usize>,
}

/// What the inputs say about one of key/value: batch, length and head size.
struct Kv {
    batch: Dim,
    len: Dim,
    head: Dim,
}

impl MultiHeadAttention {
    /// Heads of key/value: `kv_num_heads`, or `num_heads` without GQA.
    pub fn kv_heads(&self) -> usize {
        self.kv_num_heads.unwrap_or(self.num_heads)
    }

    /// `hidden / num_heads`, erroring when a known hidden size does not divide.
    fn per_head(&self, hidden: &Dim, what: &str) -> anyhow::Result<Dim> {
        let heads = if what == "query" {
            self.num_heads
        } else {
            self.kv_heads()
        };
        let n = Dim::Known(heads);
        match hidden {
            Dim::Known(h) if h % heads != 0 => {
                anyhow::bail!(
                    "{what} hidden size {h} is not a multiple of num_heads ({heads} heads)"
                )
            }
            _ => Ok(dim_div(hidden, &n).unwrap_or_else(Dim::unknown)),
        }
    }

    /// Reads key or value in the [B,L,N*H], [B,N,L,H] or packed [B,L,N,2,H] layouts.
    fn kv(&self, s: &[Dim], what: &str) -> anyhow::Result<Kv> {
        let n = Dim::Known(self.kv_heads());
        Ok(match s.len() {
            3 => Kv {
                batch: s[0].clone(),
                len: s[1].clone(),
                head: self.per_head(&s[2], what)?,
            },
            4 => {
                merge_dims(
                    &s[1],
                    &n,
                    &format!("{what} {} heads vs num_heads", fmt_shape(s)),
                )?;
                Kv {
                    batch: s[0].clone(),
                    len: s[2].clone(),
                    head: s[3].clone(),
                }
            }
            5 => {
                merge_dims(
                    &s[2],
                    &n,
                    &format!("{what} {} heads vs num_heads", fmt_shape(s)),
                )?;
                Kv {
                    batch: s[0].clone(),
                    len: s[1].clone(),
                    head: s[4].clone(),
                }
            }
            _ => anyhow::bail!(
                "{what} {} must be [B,L,N*H], [B,N,L,H] or [B,L,N,2,H]",
                fmt_shape(s)
            ),
        })
    }

    pub fn infer(
        &self,
        inputs: &[Option<&Fact>],
        _consts: &[Option<&Tensor>],
    ) -> anyhow::Result<Vec<Fact>> {
        if self.num_heads == 0 {
            anyhow::bail!("num_heads must be >= 1");
        }
        let kvh = self.kv_heads();
        if kvh == 0 || !self.num_heads.is_multiple_of(kvh) {
            anyhow::bail!(
                "num_heads {} is not a multiple of kv_num_heads {kvh}",
                self.num_heads
            );
        }
        if self.kv_num_heads.is_some() && (opt(inputs, 6).is_some() || opt(inputs, 7).is_some()) {
            anyhow::bail!("kv_num_heads (grouped-query attention) takes no past_key/past_value");
        }
        let q = need(inputs, 0)?;
        let dtype = q.dtype;
        for (i, name) in [
            (1, "key"),
            (2, "value"),
            (3, "bias"),
            (6, "past_key"),
            (7, "past_value"),
        ] {
            if let Some(f) = opt(inputs, i) {
                // f16-stored keys/values under an f32 query: an f16 KV cache
                // (cellm-opt's `f16_kv_cache`), widened as it is read.
                let f16_kv = dtype == crate::DType::F32
                    && f.dtype == crate::DType::F16
                    && matches!(i, 1 | 2 | 6 | 7);
                if f.dtype != dtype && !f16_kv {
                    anyhow::bail!("query is {dtype} but {name} is {}", f.dtype);
                }
            }
        }
        let unknown = || -> anyhow::Result<Vec<Fact>> {
            Ok(vec![
                Fact::new(dtype, None),
                Fact::new(dtype, None),
                Fact::new(dtype, None),
            ])
        };
        let Some(qs) = &q.shape else { return unknown() };
        let n = Dim::Known(self.num_heads);
        let key_shape = opt(inputs, 1).map(|f| f.shape.as_deref());
        // (batch, query length, query head size, key info, value info)
        let (mut batch, seq, q_head, k, v) = match (qs.len(), key_shape) {
            (5, _) => {
                // Packed QKV: [B,S,N,3,H].
                merge_dims(
                    &qs[2],
                    &n,
                    &format!("query {} heads vs num_heads", fmt_shape(qs)),
                )?;
                let kv = Kv {
                    batch: qs[0].clone(),
                    len: qs[1].clone(),
                    head: qs[4].clone(),
                };
                let kv2 = Kv {
                    batch: qs[0].clone(),
                    len: qs[1].clone(),
                    head: qs[4].clone(),
                };
                (qs[0].clone(), qs[1].clone(), qs[4].clone(), kv, kv2)
            }
            (3, Some(Some(ks))) => {
                let k = self.kv(ks, "key")?;
                let v = match opt(inputs, 2).map(|f| f.shape.as_deref()) {
                    Some(Some(vs)) => self.kv(vs, "value")?,
                    Some(None) => return unknown(),
                    // Packed KV in key: value has key's layout.
                    None if ks.len() == 5 => self.kv(ks, "key")?,
                    None => anyhow::bail!(
                        "value (input 2) is required unless key is packed [B,L,N,2,H]"
                    ),
                };
                (
                    qs[0].clone(),
                    qs[1].clone(),
                    self.per_head(&qs[2], "query")?,
                    k,
                    v,
                )
            }
            (3, Some(None)) => return unknown(),
            (3, None) => {
                anyhow::bail!("key (input 1) is required unless query is packed [B,S,N,3,H]")
            }
            _ => anyhow::bail!(
                "query {} must be [B,S,N*H] or packed [B,S,N,3,H]",
                fmt_shape(qs)
            ),
        };
        merge_dims(&q_head, &k.head, "query and key head sizes differ")?;
        batch = merge_dims(&batch, &k.batch, "query and key batch sizes differ")?;
        batch = merge_dims(&batch, &v.batch, "query and value batch sizes differ")?;
        let kv_len = merge_dims(&k.len, &v.len, "key and value lengths differ")?;
        let present =
            |past: Option<&Fact>, head: &Dim, what: &str| -> anyhow::Result<(SymShape, Dim)> {
                let (mut b, mut h, past_len) = (batch.clone(), head.clone(), Dim::Known(0));
                let past_len = match past.map(|f| f.shape.as_deref()) {
                    None => past_len,
                    Some(None) => Dim::unknown(),
                    Some(Some(ps)) => {
                        if ps.len() != 4 {
                            anyhow::bail!("{what} {} must be [B,N,P,H]", fmt_shape(ps));
                        }
                        b = merge_dims(&b, &ps[0], &format!("{what} {} batch", fmt_shape(ps)))?;
                        merge_dims(
                            &n,
                            &ps[1],
                            &format!("{what} {} heads vs num_heads", fmt_shape(ps)),
                        )?;
                        h = merge_dims(&h, &ps[3], &format!("{what} {} head size", fmt_shape(ps)))?;
                        ps[2].clone()
                    }
                };
                Ok((
                    vec![
                        b.clone(),
                        n.clone(),
                        dim_sum(&[past_len, kv_len.clone()]),
                        h.clone(),
                    ],
                    h,
                ))
            };
        let (pk, _) = present(opt(inputs, 6), &k.head, "past_key")?;
        let (pv, v_head) = present(opt(inputs, 7), &v.head, "past_value")?;
        let out = vec![batch.clone(), seq, dim_product(&[n.clone(), v_head])];
        Ok(vec![
            Fact::new(dtype, Some(out)),
            Fact::new(dtype, Some(pk)),
            Fact::new(dtype, Some(pv)),
        ])
    }
}

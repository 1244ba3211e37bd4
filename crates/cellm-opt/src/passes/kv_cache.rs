//! KV-cache aliasing: each layer's `present = Concat(past, new)` (axis 2, the
//! [B, Hkv, T, D] layout) becomes `present = KvCacheAppend(past, new)` in the
//! token-major layout [B, T, Hkv*D], and the attention reads the present keys
//! and values where they lie, with grouped-query heads (`kv_num_heads`) instead
//! of the repeat_kv Unsqueeze/Expand/Reshape copies.
//!
//! This changes the graph's interface: `past_key_values.*` inputs and
//! `present.*` outputs become [B, T, Hkv*D]. So it is not in the default
//! pipeline; decoders driven by a runtime that owns the caches (cellm-runtime's
//! KvDecoder) opt in with [`apply`]. There the past input is a view of a
//! preallocated cache, and KvCacheAppend writes only the new rows in place.
//!
//! Guard (at a MultiHeadAttention node): key and value each come from
//! `Concat(axis 2)[past input, Transpose[0,2,1,3](Reshape(x: [B, L, Hkv*D]))]`
//! that is a graph output, directly or through the repeat_kv chain
//! `Reshape(Expand(Unsqueeze(present, axis 2)))`; every other reader of the
//! present values is on those chains, and the past inputs are read only by
//! their Concat and by `Gather(Shape(past), 2)` (the past length).

use crate::pattern::{arg, const_ints, producer, shape};
use crate::Rule;
use anyhow::{anyhow, Result};
use cellm_ir::ops::KvCacheAppend;
use cellm_ir::{Dim, Fact, Graph, Node, Op, Tensor, ValueId};
use petgraph::stable_graph::NodeIndex;

pub struct KvCache;

/// One of key/value as the guard found it.
#[derive(Clone, Debug)]
pub struct Side {
    past: ValueId,
    present: ValueId,
    concat: NodeIndex,
    /// x: the new rows, [B, L, Hkv*D].
    new: ValueId,
    /// Unsqueeze/Expand/Reshape nodes between present and the attention.
    chain: Vec<NodeIndex>,
    /// Gather(Shape(past), 2) nodes reading the past length.
    length_gathers: Vec<NodeIndex>,
    /// Shape nodes reading the repeated [B, H, T, D] keys/values, with the
    /// Gathers of their dims (node, index).
    repeated_shapes: Vec<(NodeIndex, Vec<(NodeIndex, i64)>)>,
    /// Query heads (H) of the repeated form.
    heads: usize,
    kv_heads: usize,
    head: usize,
}

pub struct Match {
    mha: NodeIndex,
    key: Side,
    value: Side,
}

/// `v` = Reshape(Expand(Unsqueeze(p, [2]))) merging the repeat axis into the
/// heads: returns (p, the three nodes).
fn repeat_chain(g: &Graph, v: ValueId) -> Option<(ValueId, Vec<NodeIndex>)> {
    let (r_ix, r) = producer(g, v)?;
    if !matches!(r.op, Op::Reshape(_)) {
        return None;
    }
    let (e_ix, e) = producer(g, arg(r, 0)?)?;
    if !matches!(e.op, Op::Expand(_)) {
        return None;
    }
    let (u_ix, u) = producer(g, arg(e, 0)?)?;
    let Op::Unsqueeze(us) = &u.op else {
        return None;
    };
    let axes = match &us.axes {
        Some(a) => a.clone(),
        None => const_ints(g, arg(u, 1)?)?,
    };
    if axes != [2] {
        return None;
    }
    let p = arg(u, 0)?;
    // [B, Hkv, rep, T, D] → [B, Hkv*rep, T, D] keeps kv head h at heads h*rep..(h+1)*rep.
    let es = shape(g, arg(r, 0)?)?;
    let rs = shape(g, v)?;
    let ps = shape(g, p)?;
    let ok = es.len() == 5
        && rs.len() == 4
        && ps.len() == 4
        && es[1] == ps[1]
        && es[2].known().is_some()
        && rs[1].known() == ps[1].known().zip(es[2].known()).map(|(a, b)| a * b)
        && rs[3] == ps[3];
    ok.then(|| (p, vec![r_ix, e_ix, u_ix]))
}

fn side(g: &Graph, mha: NodeIndex, v: ValueId) -> Option<Side> {
    let (present, chain) = match repeat_chain(g, v) {
        Some((p, chain)) => (p, chain),
        None => (v, vec![]),
    };
    if !g.outputs.contains(&present) {
        return None;
    }
    let (c_ix, c) = producer(g, present)?;
    let Op::Concat(cat) = &c.op else {
        return None;
    };
    if !(cat.axis == 2 || cat.axis == -2) || c.inputs.len() != 2 {
        return None;
    }
    let past = arg(c, 0)?;
    if !g.inputs.contains(&past) {
        return None;
    }
    let (_, t) = producer(g, arg(c, 1)?)?;
    let Op::Transpose(tr) = &t.op else {
        return None;
    };
    if tr.perm.as_deref() != Some(&[0, 2, 1, 3]) {
        return None;
    }
    let (_, rs) = producer(g, arg(t, 0)?)?;
    if !matches!(rs.op, Op::Reshape(_)) {
        return None;
    }
    let new = arg(rs, 0)?;
    let (ps, xs, split) = (shape(g, past)?, shape(g, new)?, shape(g, arg(t, 0)?)?);
    let kv_heads = ps.get(1)?.known()?;
    let head = ps.get(3)?.known()?;
    let ok = ps.len() == 4
        && xs.len() == 3
        && split.len() == 4
        && xs[2].known() == Some(kv_heads * head)
        && split[2].known() == Some(kv_heads)
        && split[3].known() == Some(head)
        && xs[0] == ps[0]
        && !xs[0].is_unknown();
    if !ok {
        return None;
    }
    // Every reader of present is on the chain or the attention; the chain's
    // result may also be measured by Shape → Gather (torchscript exports do).
    let mut allowed: Vec<NodeIndex> = chain.clone();
    allowed.push(mha);
    if g.consumers(present).iter().any(|c| !allowed.contains(c)) {
        return None;
    }
    let mut repeated_shapes = vec![];
    for (i, &n) in chain.iter().enumerate() {
        for o in g.nodes[n].outputs.iter().flatten() {
            if g.outputs.contains(o) {
                return None;
            }
            for c in g.consumers(*o) {
                if allowed.contains(&c) {
                    continue;
                }
                // chain[0] is the final Reshape (the attention's input).
                if i != 0 {
                    return None;
                }
                repeated_shapes.push((c, dim_reads(g, c, 4)?));
            }
        }
    }
    let heads = match chain.first() {
        Some(&r) => shape(g, g.nodes[r].outputs.first().copied().flatten()?)?
            .get(1)?
            .known()?,
        None => kv_heads,
    };
    let mut length_gathers = vec![];
    for r in g.consumers(past) {
        if r == c_ix {
            continue;
        }
        length_gathers.extend(past_length_reads(g, r)?);
    }
    Some(Side {
        past,
        present,
        concat: c_ix,
        new,
        chain,
        length_gathers,
        repeated_shapes,
        heads,
        kv_heads,
        head,
    })
}

/// `shape_ix` is a full Shape of a rank-`rank` value read only by Gathers
/// (axis 0) of one constant index each: returns (gather, index ≥ 0).
fn dim_reads(g: &Graph, shape_ix: NodeIndex, rank: i64) -> Option<Vec<(NodeIndex, i64)>> {
    let n = &g.nodes[shape_ix];
    let Op::Shape(s) = &n.op else {
        return None;
    };
    if s.start != 0 || s.end.is_some() {
        return None;
    }
    let out = n.outputs.first().copied().flatten()?;
    if g.outputs.contains(&out) {
        return None;
    }
    let mut reads = vec![];
    for r in g.consumers(out) {
        let gn = &g.nodes[r];
        let Op::Gather(ga) = &gn.op else {
            return None;
        };
        let idx = const_ints(g, arg(gn, 1)?)?;
        if ga.axis != 0 || arg(gn, 0) != Some(out) || idx.len() != 1 {
            return None;
        }
        let i = if idx[0] < 0 { idx[0] + rank } else { idx[0] };
        if !(0..rank).contains(&i) {
            return None;
        }
        reads.push((r, i));
    }
    Some(reads)
}

/// `shape_ix` is Shape(past) read only by Gathers of index 2 (the past length).
fn past_length_reads(g: &Graph, shape_ix: NodeIndex) -> Option<Vec<NodeIndex>> {
    let n = &g.nodes[shape_ix];
    let Op::Shape(s) = &n.op else {
        return None;
    };
    if s.start != 0 || s.end.is_some() {
        return None;
    }
    let out = n.outputs.first().copied().flatten()?;
    if g.outputs.contains(&out) {
        return None;
    }
    let mut gathers = vec![];
    for r in g.consumers(out) {
        let gn = &g.nodes[r];
        let Op::Gather(ga) = &gn.op else {
            return None;
        };
        let idx = const_ints(g, arg(gn, 1)?)?;
        if ga.axis != 0 || arg(gn, 0) != Some(out) || !(idx == [2] || idx == [-2]) {
            return None;
        }
        gathers.push(r);
    }
    Some(gathers)
}

impl Rule for KvCache {
    type Match = Match;
    fn name(&self) -> &'static str {
        "kv_cache"
    }

    fn guard(&self, g: &Graph, ix: NodeIndex) -> Option<Match> {
        let n = &g.nodes[ix];
        let Op::MultiHeadAttention(op) = &n.op else {
            return None;
        };
        if op.kv_num_heads.is_some()
            || [3, 6, 7].iter().any(|&i| arg(n, i).is_some())
            || n.outputs.iter().skip(1).any(|o| o.is_some())
        {
            return None;
        }
        let key = side(g, ix, arg(n, 1)?)?;
        let value = side(g, ix, arg(n, 2)?)?;
        let heads_ok = key.kv_heads == value.kv_heads
            && op.num_heads % key.kv_heads == 0
            && key.chain.is_empty() == value.chain.is_empty()
            && (!key.chain.is_empty() || op.num_heads == key.kv_heads)
            && key.past != value.past;
        heads_ok.then_some(Match {
            mha: ix,
            key,
            value,
        })
    }

    fn patch(&self, g: &mut Graph, m: Match) -> Result<()> {
        for s in [&m.key, &m.value] {
            for &n in &s.chain {
                g.remove_node(n);
            }
            let concat = g
                .remove_node(s.concat)
                .ok_or_else(|| anyhow!("concat node vanished"))?;
            g.add_node(Node {
                name: format!("{}/kv_cache_append", concat.name),
                op: Op::KvCacheAppend(KvCacheAppend),
                inputs: vec![Some(s.past), Some(s.new)],
                outputs: vec![Some(s.present)],
            })?;
            let old = g.values[s.past]
                .fact
                .clone()
                .ok_or_else(|| anyhow!("past has no fact"))?;
            let dims = old.shape.clone().unwrap_or_default();
            g.values[s.past].fact = Some(Fact::new(
                old.dtype,
                Some(vec![
                    dims[0].clone(),
                    dims[2].clone(),
                    Dim::Known(s.kv_heads * s.head),
                ]),
            ));
            // Dims of the repeated [B, H, T, D] now come from present [B, T, X]:
            // B and T by reading its dims 0 and 1, H and D as constants.
            for (shape_ix, reads) in &s.repeated_shapes {
                g.set_input(*shape_ix, 0, Some(s.present));
                for &(ga, i) in reads {
                    let scalar = g.nodes[ga]
                        .inputs
                        .get(1)
                        .copied()
                        .flatten()
                        .and_then(|v| g.initializers.get(&v))
                        .is_some_and(|t| t.rank() == 0);
                    let index_or_value = |v: i64| {
                        if scalar {
                            Tensor::scalar(v)
                        } else {
                            Tensor::from_vec(vec![1], vec![v])
                        }
                    };
                    match i {
                        0 | 2 => {
                            let at =
                                crate::pattern::add_const(g, "kv_cache_dim", index_or_value(i / 2));
                            g.set_input(ga, 1, Some(at));
                        }
                        _ => {
                            let value = if i == 1 { s.heads } else { s.head } as i64;
                            let c = crate::pattern::add_const(
                                g,
                                "kv_cache_dim_value",
                                index_or_value(value),
                            );
                            let out = g.nodes[ga]
                                .outputs
                                .first()
                                .copied()
                                .flatten()
                                .ok_or_else(|| anyhow!("Gather without output"))?;
                            g.replace_uses(out, c)?;
                        }
                    }
                }
            }
            // The past length moved from axis 2 to axis 1.
            for &ga in &s.length_gathers {
                let one = crate::pattern::add_const(g, "kv_cache_len_axis", Tensor::scalar(1i64));
                g.set_input(ga, 1, Some(one));
            }
        }
        let mha = &mut g.nodes[m.mha];
        if let Op::MultiHeadAttention(op) = &mut mha.op {
            op.kv_num_heads = Some(m.key.kv_heads);
        }
        g.set_input(m.mha, 1, Some(m.key.present));
        g.set_input(m.mha, 2, Some(m.value.present));
        Ok(())
    }
}

/// Applies the rewrite to every layer it matches, then removes what died.
/// Returns how many attention nodes now read caches.
pub fn apply(g: &mut Graph) -> Result<usize> {
    use crate::Pass;
    let n = crate::RulePass(KvCache).run(g)?;
    if n > 0 {
        g.infer_facts()?;
        crate::RulePass(super::dce::Dce).run(g)?;
        super::dce::prune_initializers(g);
        g.infer_facts()?;
        g.validate()?;
    }
    Ok(n)
}

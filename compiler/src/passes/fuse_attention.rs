//! Scaled-dot-product attention fusion: the decomposed chain transformer exports write
//!
//! ```text
//! MatMul(Q·s₁, Kᵀ·s₂) → ·s₃ (Mul/Div) → [Add mask | Where(cond, fill, ·)] → Softmax(last)
//!   → [Where(IsNaN(p), 0, p)] → MatMul(·, V)
//! ```
//!
//! becomes one `Attention` node (4D, explicit scale s₁·s₂·s₃), whose lowering
//! (`lower/attention.rs`) works one query row at a time: scores for the row, max,
//! exp-sum, the weighted sum of V — never more than one row of scores in memory, where
//! the chain materialises the full `[batch, heads, q, k]` score tensor (three times).
//!
//! The matcher is strict: it fires only when the fused node computes what the chain did,
//! up to float reassociation (the scale product, the softmax order):
//! - every value inside the chain is f32, read once, and not a graph output;
//! - Q is `[b, h, q, d]`, Kᵀ `[b, h', d, k]`, V `[b, h', k, dv]` with the same batch and
//!   `h'` = `h` or 1 (MatMul broadcasting), or `h'` = `h / g` once a GQA repeat
//!   (`Reshape(Expand(Unsqueeze/Reshape(K)))` along a new axis after the heads) is peeled
//!   off both K and V;
//! - scales are scalar constants, and they all come before the mask;
//! - the softmax runs over the last axis (opset < 13 too: flattening from the last axis
//!   is the same thing);
//! - a mask broadcasts to the scores without changing their shape and spans all `k`
//!   keys (ONNX `Attention` pads a shorter key axis with -inf; a chain's broadcast does
//!   not); a `Where` fill is a scalar constant — the node then *selects* (keeps the
//!   score or puts the fill), so a finite fill or a NaN score under the mask behaves
//!   exactly as in the chain;
//! - the post-softmax NaN guard must be exactly `Where(IsNaN(p), +0, p)`.
//!
//! Kᵀ is usually a Transpose: the node reads K through the composed permutation (none
//! when that is the identity, e.g. the transposed KV-cache `present`), else through a
//! new Transpose. Anything else leaves the graph alone.

use crate::error::Result;
use crate::ir::{DType, Graph, Node, NodeId, TypeInfo, ValueId};
use crate::ops::attention::{Attention, AttentionOp, FusedExtras, SelectMask};
use crate::ops::elementwise::{Binary, ElementwiseOp};
use crate::ops::linalg::LinalgOp;
use crate::ops::normalize::{NormalizeOp, SoftmaxKind};
use crate::ops::shape::ShapeOp;
use crate::ops::Op;

/// Set (to anything) to compile without the fusion: for before/after measurements.
pub const DISABLE_ENV: &str = "EDGEC_NO_ATTENTION_FUSION";

pub fn run(g: &mut Graph) -> Result<()> {
    if std::env::var_os(DISABLE_ENV).is_some() {
        return Ok(());
    }
    let Ok(order) = g.topo_order() else { return Ok(()) };
    let mut fused = 0;
    for n in order {
        if !g.nodes.contains_node(n) {
            continue;
        }
        if let Some(m) = match_at(g, n) {
            apply(g, m);
            fused += 1;
        }
    }
    if fused > 0 {
        // Removing the chain dropped the edges into its readers; rewire from the nodes.
        g.rebuild_edges();
    }
    Ok(())
}

/// A matched chain, anchored at its Softmax.
struct Chain {
    /// Nodes of the chain, all removed by the rewrite.
    nodes: Vec<NodeId>,
    q: ValueId,
    /// Kᵀ's source and the permutation that makes it `[b, kv_heads, k, d]` (`None`: as is).
    k: (ValueId, Option<Vec<i64>>),
    v: ValueId,
    mask: Option<ValueId>,
    scale: f64,
    extras: FusedExtras,
    /// The final MatMul's output, which the Attention node writes instead.
    y: ValueId,
    name: String,
}

fn ty(g: &Graph, v: ValueId) -> Option<&TypeInfo> {
    g.value(v).ty.as_ref()
}

fn op(g: &Graph, v: ValueId) -> Option<(NodeId, &Op)> {
    let p = g.value(v).producer?;
    Some((p, &g.node(p).op))
}

/// Inputs of the node producing `v`, all present, or `None`.
fn ins(g: &Graph, n: NodeId) -> Option<Vec<ValueId>> {
    g.node(n).inputs.iter().map(|i| *i).collect()
}

/// A scalar (one-element) f32 constant's value.
fn scalar(g: &Graph, v: ValueId) -> Option<f64> {
    let c = g.value(v).constant.as_ref()?;
    (c.len() == 1 && c.dtype() == DType::F32).then(|| c.to_f64_vec()[0])
}

struct Cx<'a> {
    g: &'a Graph,
    uses: Vec<usize>,
}

impl Cx<'_> {
    /// `v` is read once (by the next node of the chain) and is not a graph output.
    fn internal(&self, v: ValueId) -> bool {
        self.uses[v.0 as usize] == 1 && !self.g.outputs.contains(&v)
    }

    /// `x · c` or `x / c` with `c` a scalar constant and the output `x`'s shape: `(x, factor)`.
    fn scaled(&self, v: ValueId) -> Option<(NodeId, ValueId, f64)> {
        let g = self.g;
        let (n, Op::Elementwise(ElementwiseOp::Binary(b))) = op(g, v)? else { return None };
        let i = ins(g, n)?;
        if i.len() != 2 {
            return None;
        }
        let (x, f) = match b {
            Binary::Mul => match (scalar(g, i[0]), scalar(g, i[1])) {
                (_, Some(c)) => (i[0], c),
                (Some(c), None) => (i[1], c),
                _ => return None,
            },
            Binary::Div => (i[0], 1.0 / scalar(g, i[1])?),
            _ => return None,
        };
        (ty(g, x)? == ty(g, v)? && f.is_finite()).then_some((n, x, f))
    }

    /// Strips scalar scalings off `v` (which may be read elsewhere: the nodes stay).
    fn unscale(&self, mut v: ValueId) -> (ValueId, f64) {
        let mut s = 1.0;
        for _ in 0..2 {
            match self.scaled(v) {
                Some((_, x, f)) => {
                    v = x;
                    s *= f;
                }
                None => break,
            }
        }
        (v, s)
    }
}

fn is_f32_rank4(g: &Graph, v: ValueId) -> Option<&[usize]> {
    let t = ty(g, v)?;
    (t.dtype == DType::F32 && t.shape.len() == 4).then_some(t.shape.as_slice())
}

fn match_at(g: &Graph, sm: NodeId) -> Option<Chain> {
    let Op::Normalize(NormalizeOp::Softmax { kind: SoftmaxKind::Softmax, axis, .. }) = &g.node(sm).op else { return None };
    let cx = Cx { g, uses: g.use_counts() };
    let x = g.node(sm).inputs.first().copied()??;
    let p = g.node(sm).outputs.first().copied()??;
    let shape = is_f32_rank4(g, x)?.to_vec();
    if !(*axis == 3 || *axis == -1) || g.node(sm).outputs.len() != 1 {
        return None;
    }
    let (b, h, q, k) = (shape[0], shape[1], shape[2], shape[3]);
    let mut nodes = vec![sm];
    let mut extras = FusedExtras::default();

    // Downstream: the optional NaN guard, then MatMul(P, V).
    let readers = g.consumers(p);
    let probs = match readers.as_slice() {
        [_] => p,
        [a, c] if !g.outputs.contains(&p) && cx.uses[p.0 as usize] == 2 => {
            let (isnan, guard) = if matches!(g.node(*a).op, Op::Elementwise(ElementwiseOp::IsNaN)) { (*a, *c) } else { (*c, *a) };
            let Op::Elementwise(ElementwiseOp::IsNaN) = g.node(isnan).op else { return None };
            let Op::Elementwise(ElementwiseOp::Where) = g.node(guard).op else { return None };
            let m = g.node(isnan).outputs.first().copied()??;
            let wi = ins(g, guard)?;
            let zero = wi.get(1).and_then(|&z| scalar(g, z))?;
            if wi.len() != 3 || wi[0] != m || wi[2] != p || ins(g, isnan)? != [p] || !cx.internal(m) {
                return None;
            }
            if zero != 0.0 || zero.is_sign_negative() {
                return None;
            }
            let out = g.node(guard).outputs.first().copied()??;
            if ty(g, out)? != ty(g, p)? {
                return None;
            }
            extras.nan_to_zero = true;
            nodes.extend([isnan, guard]);
            out
        }
        _ => return None,
    };
    if !cx.internal(probs) {
        return None;
    }
    let [mm2] = g.consumers(probs)[..] else { return None };
    let Op::Linalg(LinalgOp::MatMul) = g.node(mm2).op else { return None };
    let mi = ins(g, mm2)?;
    if mi.len() != 2 || mi[0] != probs || mi[1] == probs {
        return None;
    }
    let v = mi[1];
    let y = g.node(mm2).outputs.first().copied()??;
    nodes.push(mm2);

    // Upstream: the optional mask, then the scalings, then MatMul(Q, Kᵀ).
    let mut scores = x;
    let mut mask = None;
    if let Some((n, o)) = op(g, x) {
        match o {
            Op::Elementwise(ElementwiseOp::Binary(Binary::Add)) => {
                let i = ins(g, n)?;
                if i.len() != 2 {
                    return None;
                }
                // The side that is the scaled MatMul is the scores; the other, the mask.
                let (s, m) = if score_root(&cx, i[0]).is_some() { (i[0], i[1]) } else { (i[1], i[0]) };
                let mt = ty(g, m)?;
                if mt.dtype != DType::F32 || !mask_fits(&mt.shape, &shape) || ty(g, s)?.shape != shape {
                    return None;
                }
                if !cx.internal(x) {
                    return None;
                }
                nodes.push(n);
                scores = s;
                mask = Some(m);
            }
            Op::Elementwise(ElementwiseOp::Where) => {
                let i = ins(g, n)?;
                if i.len() != 3 {
                    return None;
                }
                let (c, keep, s, fill) = match (scalar(g, i[1]), scalar(g, i[2])) {
                    (Some(f), _) if i[2] != i[1] => (i[0], false, i[2], f),
                    (None, Some(f)) => (i[0], true, i[1], f),
                    _ => return None,
                };
                let ct = ty(g, c)?;
                if ct.dtype != DType::Bool || !mask_fits(&ct.shape, &shape) || ty(g, s)?.shape != shape || fill.is_nan() {
                    return None;
                }
                if !cx.internal(x) {
                    return None;
                }
                nodes.push(n);
                scores = s;
                mask = Some(c);
                extras.select = Some(SelectMask { fill, keep });
            }
            _ => {}
        }
    }
    let (mm1, scale) = {
        let mut v = scores;
        let mut s = 1.0;
        loop {
            if !cx.internal(v) {
                return None;
            }
            match cx.scaled(v) {
                Some((n, x, f)) => {
                    nodes.push(n);
                    s *= f;
                    v = x;
                }
                None => break,
            }
        }
        let (n, Op::Linalg(LinalgOp::MatMul)) = op(g, v)? else { return None };
        (n, s)
    };
    nodes.push(mm1);
    let i = ins(g, mm1)?;
    if i.len() != 2 {
        return None;
    }
    let (qv, sq) = cx.unscale(i[0]);
    let (kt, sk) = cx.unscale(i[1]);
    let scale = scale * sq * sk;
    let qs = is_f32_rank4(g, qv)?;
    let kts = is_f32_rank4(g, kt)?;
    let vs = is_f32_rank4(g, v)?;
    let d = qs[3];
    if qs[..3] != [b, h, q] || kts[0] != b || kts[2] != d || kts[3] != k || vs[0] != b || vs[2] != k || !scale.is_finite() {
        return None;
    }
    if ty(g, y)?.shape != [b, h, q, vs[3]] || ty(g, y)?.dtype != DType::F32 {
        return None;
    }

    // K as [b, kv_heads, k, d]: through Kᵀ's own Transpose when it has one.
    let (mut ksrc, mut kperm) = match op(g, kt) {
        Some((n, Op::Shape(ShapeOp::Transpose { perm }))) => {
            let src = g.node(n).inputs.first().copied()??;
            let p = match perm {
                Some(p) => p.clone(),
                None => vec![3, 2, 1, 0],
            };
            let mut sorted = p.clone();
            sorted.sort_unstable();
            if sorted != [0, 1, 2, 3] || ty(g, src)?.shape.len() != 4 {
                return None;
            }
            let composed = vec![p[0], p[1], p[3], p[2]];
            (src, (composed != [0, 1, 2, 3]).then_some(composed))
        }
        _ => (kt, Some(vec![0, 1, 3, 2])),
    };
    let mut vsrc = v;
    let (kh, vh) = (kts[1], vs[1]);
    if kh != vh || !(kh == h || kh == 1) {
        return None;
    }
    // GQA: peel the repeat off K and V together, so they keep one head count.
    if kperm.is_none() && kh == h {
        if let (Some((k0, gk)), Some((v0, gv))) = (unrepeat(g, ksrc), unrepeat(g, vsrc)) {
            if gk == gv && ty(g, k0)?.shape[1] == ty(g, v0)?.shape[1] {
                ksrc = k0;
                vsrc = v0;
            }
        }
    }
    kperm = kperm.filter(|p| p != &[0, 1, 2, 3]);
    let name = format!("{}/fused_attention", g.node(sm).name);
    Some(Chain { nodes, q: qv, k: (ksrc, kperm), v: vsrc, mask, scale, extras, y, name })
}

/// The MatMul under `v`'s scalings, if there is one (to tell the scores side of an Add).
fn score_root(cx: &Cx, v: ValueId) -> Option<NodeId> {
    let mut v = v;
    for _ in 0..3 {
        match cx.scaled(v) {
            Some((_, x, _)) => v = x,
            None => break,
        }
    }
    match op(cx.g, v)? {
        (n, Op::Linalg(LinalgOp::MatMul)) => Some(n),
        _ => None,
    }
}

/// A mask shape that broadcasts to the scores `[b, h, q, k]` without changing them and
/// spans every key (ONNX `Attention` would pad a shorter key axis with -inf).
fn mask_fits(ms: &[usize], scores: &[usize]) -> bool {
    !ms.is_empty()
        && ms.len() <= 4
        && ms.last() == scores.last()
        && ms.iter().rev().zip(scores.iter().rev()).all(|(&m, &s)| m == 1 || m == s)
}

/// `Reshape(Expand(U))` with `U` a reshape of `X [b, kvh, s, d]` to `[b, kvh, 1, s, d]`,
/// expanded to `[b, kvh, g, s, d]` and read as `[b, kvh·g, s, d]`: head `i` is `X`'s head
/// `i / g` — the grouping ONNX `Attention` uses. Returns `(X, g)`.
fn unrepeat(g: &Graph, v: ValueId) -> Option<(ValueId, usize)> {
    let is_reshape = |o: &Op| matches!(o, Op::Shape(ShapeOp::Reshape { .. } | ShapeOp::Unsqueeze { .. }));
    let (r, o) = op(g, v)?;
    if !matches!(o, Op::Shape(ShapeOp::Reshape { .. })) {
        return None;
    }
    let e = g.node(r).inputs.first().copied()??;
    let (en, Op::Shape(ShapeOp::Expand)) = op(g, e)? else { return None };
    let u = g.node(en).inputs.first().copied()??;
    let (un, uo) = op(g, u)?;
    if !is_reshape(uo) {
        return None;
    }
    let x = g.node(un).inputs.first().copied()??;
    let (vs, es, us, xs) = (&ty(g, v)?.shape, &ty(g, e)?.shape, &ty(g, u)?.shape, &ty(g, x)?.shape);
    if xs.len() != 4 || es.len() != 5 || ty(g, x)?.dtype != ty(g, v)?.dtype {
        return None;
    }
    let (b, kvh, s, d) = (xs[0], xs[1], xs[2], xs[3]);
    let grp = es[2];
    let ok = us == &[b, kvh, 1, s, d] && es == &[b, kvh, grp, s, d] && vs == &[b, kvh * grp, s, d] && grp > 0;
    ok.then_some((x, grp))
}

fn apply(g: &mut Graph, c: Chain) {
    let opset = g.opsets.get("").copied().unwrap_or(1);
    for n in &c.nodes {
        g.remove_node(*n);
    }
    let k = match c.k {
        (src, None) => src,
        (src, Some(perm)) => {
            let st = ty(g, src).cloned().expect("typed");
            let shape: Vec<usize> = perm.iter().map(|&p| st.shape[p as usize]).collect();
            let kv = g.add_value(format!("{}/k", c.name));
            g.value_mut(kv).ty = Some(TypeInfo::new(st.dtype, shape));
            g.add_node(Node {
                name: format!("{}/k_transpose", c.name),
                op: Op::Shape(ShapeOp::Transpose { perm: Some(perm) }),
                op_type: "Transpose".into(),
                domain: String::new(),
                opset,
                inputs: vec![Some(src)],
                outputs: vec![Some(kv)],
            });
            kv
        }
    };
    let mut inputs = vec![Some(c.q), Some(k), Some(c.v)];
    if let Some(m) = c.mask {
        inputs.push(Some(m));
    }
    g.add_node(Node {
        name: c.name,
        op: Op::Attention(AttentionOp::Attention(Attention::fused(c.scale, c.extras))),
        op_type: "Attention".into(),
        domain: String::new(),
        opset: opset.max(23),
        inputs,
        outputs: vec![Some(c.y)],
    });
}

#[cfg(test)]
#[path = "fuse_attention_tests.rs"]
mod tests;

//! Lowering of `ai.onnx.preview:FlexAttention` to KIR.
//!
//! The evaluator's stages, in its types: scores `Q·Kᵀ·scale` rounded to Q's type, then
//! moved to the compute type (`softmax_precision`, f32 for 16-bit inputs); `score_mod`;
//! a row softmax (maximum ignoring NaN, exp-sum, normalise) into the compute type;
//! `prob_mod`; then `Y = P·V` in V's type.
//!
//! Without modifiers everything streams in one kernel over (batch, head, query row)
//! with one row of scratch per stage. The modifiers are whole-tensor subgraphs over
//! `[B, H, L, S]` (they may use `Shape`, `Range` ... of it), so with a modifier the
//! scores (and probabilities) are materialised: the modifier body is typed for that
//! static shape (folding its shape arithmetic), lowered like an If/Scan body with
//! `control_body::Body`, and its kernels are placed between the scores kernel, the
//! softmax kernel and the `P·V` kernel. A body that does not lower (a run-time shape
//! in it, an op without code generation) makes the node cleanly unsupported.

use super::control_body::Body;
use super::reduce::flit;
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::front::onnx::SubGraph;
use crate::ir::{DType, TypeInfo};
use crate::kir::build::{iadd, imul, linear, KernelBuilder};
use crate::kir::{e, BinOp, BufId, Expr, Ty, UnOp};
use crate::ops::attention::FlexAttention;

fn operand(ops: &[Option<Operand>], i: usize) -> Option<&Operand> {
    ops.get(i).and_then(|o| o.as_ref())
}

/// `x` of type `from` as `to`.
fn conv(x: Expr, from: Ty, to: Ty) -> Expr {
    if from == to {
        x
    } else {
        e::cast(to, x)
    }
}

/// The float storage type of computations in `t`.
fn float_dtype(t: Ty) -> DType {
    if t == Ty::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// Sizes and buffers shared by the stages.
struct Flex<'a> {
    q: &'a Operand,
    k: &'a Operand,
    v: &'a Operand,
    y: &'a Operand,
    batch: usize,
    q_heads: usize,
    kv_heads: usize,
    q_len: usize,
    kv_len: usize,
    head: usize,
    head_v: usize,
    scale: f64,
    /// Compute type (`softmax_precision`) and its load type.
    compute: DType,
    ct: Ty,
}

impl Flex<'_> {
    fn ty(&self, b: &Operand) -> Ty {
        Ty::of_storage(b.ty.dtype).unwrap_or(Ty::F32)
    }

    /// KV head of query head `h` (GQA: groups of adjacent query heads).
    fn kv_head(&self, h: &Expr) -> Expr {
        e::bin(BinOp::Div, h.clone(), e::idx((self.q_heads / self.kv_heads) as i64))
    }

    /// One row of scores, rounded through `sq` (Q's type) and moved into `sc` (the
    /// compute type) when the types differ.
    fn scores(&self, kb: &mut KernelBuilder, ix: &[Expr], base: &Expr, sq: BufId, sc: BufId) {
        let (bb, h) = (ix[0].clone(), ix[1].clone());
        let qt = self.ty(self.q);
        let kt = self.ty(self.k);
        let q_base = kb.let_(Ty::Index, linear(&[self.batch, self.q_heads, self.q_len, self.head], &[bb.clone(), h.clone(), ix[2].clone(), e::idx(0)]));
        let k_head = kb.let_(Ty::Index, self.kv_head(&h));
        kb.for_(self.kv_len, |kb, j| {
            let k_base = linear(&[self.batch, self.kv_heads, self.kv_len, self.head], &[bb.clone(), e::var(k_head), j.clone(), e::idx(0)]);
            let k_base = kb.let_(Ty::Index, k_base);
            let acc = kb.let_(qt, flit(qt, 0.0));
            kb.for_(self.head, |kb, d| {
                let qv = e::load(self.q.buf, iadd(e::var(q_base), d.clone()));
                let kv = conv(e::load(self.k.buf, iadd(e::var(k_base), d)), kt, qt);
                kb.set(acc, e::fma(qv, kv, e::var(acc)));
            });
            let at = kb.let_(Ty::Index, iadd(base.clone(), j));
            kb.store(sq, e::var(at), e::mul(e::var(acc), flit(qt, self.scale)));
            if sc != sq {
                kb.store(sc, e::var(at), conv(e::load(sq, e::var(at)), qt, self.ct));
            }
        });
    }

    /// Softmax of the row of `src` at `base` into `dst` (compute type); `ex` is a row
    /// of scratch for the exponentials.
    fn softmax(&self, kb: &mut KernelBuilder, base: &Expr, src: BufId, src_t: Ty, dst: BufId, ex: BufId) {
        let ct = self.ct;
        let at = |j: Expr| iadd(base.clone(), j);
        let m = kb.let_(ct, flit(ct, f64::NEG_INFINITY));
        kb.for_(self.kv_len, |kb, j| {
            let x = kb.let_(ct, conv(e::load(src, at(j)), src_t, ct));
            kb.set(m, e::select(e::bin(BinOp::Gt, e::var(x), e::var(m)), e::var(x), e::var(m)));
        });
        let sum = kb.let_(ct, flit(ct, 0.0));
        kb.for_(self.kv_len, |kb, j| {
            let x = conv(e::load(src, at(j.clone())), src_t, ct);
            let p = kb.let_(ct, e::un(UnOp::Exp, e::sub(x, e::var(m))));
            kb.store(ex, j, e::var(p));
            kb.set(sum, e::add(e::var(sum), e::var(p)));
        });
        kb.for_(self.kv_len, |kb, j| kb.store(dst, at(j.clone()), e::div(e::load(ex, j), e::var(sum))));
    }

    /// One row of Y: the probability-weighted sum of the V rows.
    fn weighted_sum(&self, kb: &mut KernelBuilder, ix: &[Expr], base: &Expr, p: BufId, p_t: Ty) {
        let (bb, h) = (ix[0].clone(), ix[1].clone());
        let (vt, yt) = (self.ty(self.v), self.ty(self.y));
        let acc_t = if [vt, p_t, yt].contains(&Ty::F64) { Ty::F64 } else { Ty::F32 };
        let k_head = kb.let_(Ty::Index, self.kv_head(&h));
        let v_base = linear(&[self.batch, self.kv_heads, self.kv_len, self.head_v], &[bb.clone(), e::var(k_head), e::idx(0), e::idx(0)]);
        let v_base = kb.let_(Ty::Index, v_base);
        let y_base = linear(&[self.batch, self.q_heads, self.q_len, self.head_v], &[bb, h, ix[2].clone(), e::idx(0)]);
        let y_base = kb.let_(Ty::Index, y_base);
        kb.for_(self.head_v, |kb, d| {
            let acc = kb.let_(acc_t, flit(acc_t, 0.0));
            kb.for_(self.kv_len, |kb, j| {
                let pv = conv(e::load(p, iadd(base.clone(), j.clone())), p_t, acc_t);
                let vv = conv(e::load(self.v.buf, iadd(e::var(v_base), iadd(imul(j, self.head_v as i64), d.clone()))), vt, acc_t);
                kb.set(acc, e::fma(pv, vv, e::var(acc)));
            });
            kb.store(self.y.buf, iadd(e::var(y_base), d), conv(e::var(acc), acc_t, yt));
        });
    }
}

pub(super) fn lower(fa: &FlexAttention, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let need = |i: usize| operand(ins, i).ok_or_else(|| OpError::invalid("FlexAttention: missing Q, K or V"));
    let (q, k, v) = (need(0)?, need(1)?, need(2)?);
    FlexAttention::out_shape(q.shape(), k.shape(), v.shape())?;
    let y = operand(outs, 0).ok_or_else(|| OpError::invalid("FlexAttention: missing output Y"))?;
    for o in [q, k, v, y] {
        if !o.kty()?.is_float() {
            return Err(OpError::invalid("FlexAttention: Q, K, V and Y must be floats"));
        }
    }
    let compute = fa.compute_dtype(q.ty.dtype);
    let ct = Ty::of_storage(compute).filter(|t| t.is_float()).ok_or_else(|| OpError::unsupported(format!("FlexAttention computing in {compute}")))?;
    let (qs, ks, vs) = (q.shape(), k.shape(), v.shape());
    let f = Flex {
        q,
        k,
        v,
        y,
        batch: qs[0],
        q_heads: qs[1],
        kv_heads: ks[1],
        q_len: qs[2],
        kv_len: ks[2],
        head: qs[3],
        head_v: vs[3],
        scale: fa.scale().unwrap_or(1.0 / (qs[3] as f64).sqrt()),
        compute,
        ct,
    };
    if y.is_empty() {
        return Ok(());
    }
    if f.kv_len == 0 {
        return Err(OpError::unsupported("FlexAttention over an empty key sequence"));
    }
    let rows = [f.batch, f.q_heads, f.q_len];
    let (score_mod, prob_mod) = fa.mods();
    let ex = cx.scratch("exp", float_dtype(ct), vec![f.kv_len]);
    if score_mod.is_none() && prob_mod.is_none() {
        // Streaming: one row of each stage at a time.
        let sq = cx.scratch("scores", q.ty.dtype, vec![f.kv_len]);
        let sc = if compute == q.ty.dtype { sq } else { cx.scratch("scores_c", compute, vec![f.kv_len]) };
        let p = cx.scratch("probs", compute, vec![f.kv_len]);
        let mut kb = cx.kernel("");
        let zero = e::idx(0);
        kb.for_shape(&rows, |kb, ix| {
            f.scores(kb, ix, &zero, sq, sc);
            f.softmax(kb, &zero, sc, ct, p, ex);
            f.weighted_sum(kb, ix, &zero, p, ct);
        });
        cx.emit(kb.finish());
        return Ok(());
    }

    // Materialised: [B, H, L, S] scores and probabilities, modifiers in between.
    let full = vec![f.batch, f.q_heads, f.q_len, f.kv_len];
    let row_base = |ix: &[Expr]| linear(&full, &[ix[0].clone(), ix[1].clone(), ix[2].clone(), e::idx(0)]);
    let sq = cx.scratch("scores", q.ty.dtype, full.clone());
    let sc = if compute == q.ty.dtype { sq } else { cx.scratch("scores_c", compute, full.clone()) };
    let mut kb = cx.kernel("scores");
    kb.for_shape(&rows, |kb, ix| {
        let base = kb.let_(Ty::Index, row_base(ix));
        f.scores(kb, ix, &e::var(base), sq, sc);
    });
    cx.emit(kb.finish());
    let scores = modifier(cx, "score_mod", score_mod, sc, &f, &full)?;

    let p = cx.scratch("probs", compute, full.clone());
    let mut kb = cx.kernel("softmax");
    kb.for_shape(&rows, |kb, ix| {
        let base = kb.let_(Ty::Index, row_base(ix));
        f.softmax(kb, &e::var(base), scores, ct, p, ex);
    });
    cx.emit(kb.finish());
    let probs = modifier(cx, "prob_mod", prob_mod, p, &f, &full)?;

    let mut kb = cx.kernel("");
    kb.for_shape(&rows, |kb, ix| {
        let base = kb.let_(Ty::Index, row_base(ix));
        f.weighted_sum(kb, ix, &e::var(base), probs, ct);
    });
    cx.emit(kb.finish());
    Ok(())
}

/// Runs the modifier `body` (if any) on `input` (compute type, shape `full`): its
/// kernels are lowered into the program here. Returns the buffer holding the result
/// in the compute type (converted, like the evaluator's cast, when the body's output
/// type differs).
fn modifier(cx: &mut LowerCx, what: &str, body: Option<&SubGraph>, input: BufId, f: &Flex, full: &[usize]) -> Result<BufId, OpError> {
    let Some(sub) = body else { return Ok(input) };
    let in_ty = TypeInfo::new(f.compute, full.to_vec());
    let unsupported = |m: String| OpError::unsupported(format!("FlexAttention {what}: {m}"));
    let body = Body::new(sub, &[(in_ty, None)]).map_err(|e| unsupported(e.to_string()))?;
    let out_ty = body.output_types()?.into_iter().next().ok_or_else(|| OpError::invalid(format!("FlexAttention {what} has no output")))?;
    if out_ty.shape != full {
        return Err(OpError::invalid(format!("FlexAttention {what} changes the shape {full:?} to {:?}", out_ty.shape)));
    }
    let (kernels, outs) = body.lower(cx, &[input]).map_err(|e| match e {
        OpError::Unsupported(m) => unsupported(m),
        e => e,
    })?;
    for k in kernels {
        cx.emit(k);
    }
    let out = *outs.first().ok_or_else(|| OpError::invalid(format!("FlexAttention {what} has no output")))?;
    if out_ty.dtype == f.compute {
        return Ok(out);
    }
    let from = Ty::of_storage(out_ty.dtype).ok_or_else(|| unsupported(format!("a {} output", out_ty.dtype)))?;
    let dst = cx.scratch(&format!("{what}_out"), f.compute, full.to_vec());
    let mut kb = cx.kernel(what);
    kb.for_(full.iter().product(), |kb, i| kb.store(dst, i.clone(), conv(e::load(out, i), from, f.ct)));
    cx.emit(kb.finish());
    Ok(dst)
}

#[cfg(test)]
mod tests {
    use super::super::linalg::testkit::run_op;
    use super::*;
    use crate::ir::{Graph, Node, Tensor};
    use crate::ops::attention::AttentionOp;
    use crate::ops::elementwise::{Binary, ElementwiseOp};
    use crate::ops::{Op, Semantics};
    use crate::testdata::{compare, CONTRACT};

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 41 + seed * 13) % 31) as f32 * 0.07 - 1.0).collect()
    }

    /// A modifier `x op c` (c a scalar constant).
    fn binary_mod(op: Binary, op_type: &str, c: f32) -> SubGraph {
        mod_graph(Op::Elementwise(ElementwiseOp::Binary(op)), op_type, c)
    }

    /// A modifier of one node `op(x, c)`.
    fn mod_graph(op: Op, op_type: &str, c: f32) -> SubGraph {
        let mut g = Graph::default();
        let x = g.add_value("x");
        g.inputs.push(x);
        let k = g.add_constant("c", Tensor::from_vec(&[], vec![c]));
        let y = g.add_value("y");
        let node = Node {
            name: op_type.into(),
            op,
            op_type: op_type.into(),
            domain: String::new(),
            opset: 23,
            inputs: vec![Some(x), Some(k)],
            outputs: vec![Some(y)],
        };
        g.add_node(node);
        g.outputs.push(y);
        SubGraph { graph: g, n_formal_inputs: 1, captures: vec![] }
    }

    fn check(fa: FlexAttention, inputs: Vec<Tensor>) {
        let want = AttentionOp::FlexAttention(fa.clone()).eval(&inputs.iter().map(Some).collect::<Vec<_>>()).expect("evaluates");
        let got = run_op(&inputs, &[want[0].type_info()], |cx, ins, outs| lower(&fa, cx, ins, outs));
        compare(&got[0], &want[0], CONTRACT).expect("matches the evaluator");
    }

    fn qkv(b: usize, hq: usize, hkv: usize, l: usize, s: usize, e: usize, ev: usize, dt: DType) -> Vec<Tensor> {
        vec![
            Tensor::from_vec(&[b, hq, l, e], data(b * hq * l * e, 1)).cast(dt),
            Tensor::from_vec(&[b, hkv, s, e], data(b * hkv * s * e, 2)).cast(dt),
            Tensor::from_vec(&[b, hkv, s, ev], data(b * hkv * s * ev, 3)).cast(dt),
        ]
    }

    #[test]
    fn streaming_gqa_f16_matches_the_evaluator() {
        check(FlexAttention::new(None, None, None), qkv(2, 4, 2, 3, 5, 4, 6, DType::F16));
    }

    #[test]
    fn score_and_prob_modifiers_are_lowered_between_the_stages() {
        let fa = FlexAttention::new(Some(0.3), Some(binary_mod(Binary::Add, "Add", 0.5)), Some(binary_mod(Binary::Mul, "Mul", 2.0)));
        check(fa, qkv(1, 2, 1, 3, 4, 5, 2, DType::F32));
    }

    #[test]
    fn a_modifier_without_code_generation_is_cleanly_unsupported() {
        let body = mod_graph(Op::Unsupported("no code generation".into()), "Mystery", 0.5);
        let fa = FlexAttention::new(None, Some(body), None);
        let mut prog = crate::kir::Program::default();
        let mut operand = |name: &str, shape: Vec<usize>, kind| {
            let buf = prog.add_buffer(name, DType::F32, shape.clone(), kind);
            Some(Operand { buf, ty: TypeInfo::new(DType::F32, shape), konst: None })
        };
        use crate::kir::BufKind::{Input, Output};
        let ins = vec![operand("q", vec![1, 1, 2, 2], Input(0)), operand("k", vec![1, 1, 2, 2], Input(1)), operand("v", vec![1, 1, 2, 2], Input(2))];
        let outs = vec![operand("y", vec![1, 1, 2, 2], Output(0))];
        let mut cx = LowerCx { prog: &mut prog, name: "flex".into(), aliases: Vec::new() };
        let err = lower(&fa, &mut cx, &ins, &outs).expect_err("unsupported");
        assert!(matches!(err, OpError::Unsupported(ref m) if m.contains("score_mod")), "{err:?}");
    }
}

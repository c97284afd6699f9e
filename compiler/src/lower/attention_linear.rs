//! Lowering of `LinearAttention` (opset 27) to KIR: one kernel per node.
//!
//! The recurrent state `S [batch, kv_heads, d_k, d_v]` lives in an f32 buffer — the
//! `present_state` output itself when it is f32, node scratch otherwise (copied out at
//! the end, so f16 states round once, as in the evaluator). Per batch entry and token,
//! each KV head's state is decayed (`exp(decay)`), then updated with `k ⊗ v` or, for the
//! delta rules, `k ⊗ beta·(v − Sᵀk)` (the correction row `Sᵀk` goes into a `d_v` scratch
//! row first: it must read the state before the update); then each query head reads its
//! KV head's state: `y = scale · qᵀS`. Sums run over `d_k` in ascending order, like the
//! evaluator.

use super::reduce::flit;
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::DType;
use crate::kir::build::{iadd, imul, linear};
use crate::kir::{e, BinOp, Expr, Ty, UnOp};
use crate::ops::attention::LinearAttention;

const PAST: usize = 3;
const DECAY: usize = 4;
const BETA: usize = 5;

fn operand(ops: &[Option<Operand>], i: usize) -> Option<&Operand> {
    ops.get(i).and_then(|o| o.as_ref())
}

/// `o[i]` as f32 (its load type was checked by [`lower`]).
fn ld(o: &Operand, i: Expr) -> Expr {
    let x = e::load(o.buf, i);
    if Ty::of_storage(o.ty.dtype) == Some(Ty::F32) {
        x
    } else {
        e::cast(Ty::F32, x)
    }
}

pub(super) fn lower(la: &LinearAttention, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let shapes: [Option<&[usize]>; 6] = std::array::from_fn(|i| operand(ins, i).map(|o| o.shape()));
    let g = la.geometry(shapes)?;
    let need = |i: usize| operand(ins, i).ok_or_else(|| OpError::invalid("LinearAttention: missing query, key or value"));
    let (q, k, v) = (need(0)?, need(1)?, need(2)?);
    let (past, decay, beta) = (operand(ins, PAST), operand(ins, DECAY), operand(ins, BETA));
    for o in ins.iter().flatten() {
        o.kty()?;
    }
    let (y, present) = (operand(outs, 0), operand(outs, 1));
    let ft = Ty::F32;
    let (qh, kvh, dk, dv) = (la.q_heads(), la.kv_heads(), g.d_k, g.d_v);
    let group = qh / kvh;
    let scale = la.scale(dk);
    let state_shape = [g.batch, kvh, dk, dv];
    let state_len: usize = state_shape.iter().product();
    let state = match present {
        Some(p) if p.ty.dtype == DType::F32 => p.buf,
        _ => cx.scratch("state", DType::F32, state_shape.to_vec()),
    };
    let corr = cx.scratch("update", DType::F32, vec![dv]);

    let mut kb = cx.kernel("");
    // Initial state: past_state, or zeros.
    kb.for_(state_len, |kb, i| kb.store(state, i.clone(), past.map_or(flit(ft, 0.0), |p| ld(p, i))));
    kb.for_shape(&[g.batch, g.steps], |kb, ix| {
        let b = ix[0].clone();
        let bt = kb.let_(Ty::Index, linear(&[g.batch, g.steps], ix));
        // Element (i, m) of batch b's state for KV head h.
        let s_at = |h: &Expr, i: Expr, m: Expr| linear(&state_shape, &[b.clone(), h.clone(), i, m]);
        kb.for_(kvh, |kb, h| {
            let head_row = kb.let_(Ty::Index, iadd(imul(e::var(bt), kvh as i64), h.clone()));
            let k_base = kb.let_(Ty::Index, imul(e::var(head_row), dk as i64));
            let v_base = kb.let_(Ty::Index, imul(e::var(head_row), dv as i64));
            let kv = |i: Expr| ld(k, iadd(e::var(k_base), i));
            let vv = |m: Expr| ld(v, iadd(e::var(v_base), m));
            // Decay: S[i, :] *= exp(decay) (one value per head or per key feature).
            if let Some(d) = decay {
                let per_head = g.decay_per_head.then(|| kb.let_(ft, e::un(UnOp::Exp, ld(d, e::var(head_row)))));
                kb.for_(dk, |kb, i| {
                    let gi = match per_head {
                        Some(gv) => gv,
                        None => kb.let_(ft, e::un(UnOp::Exp, ld(d, iadd(e::var(k_base), i.clone())))),
                    };
                    kb.for_(dv, |kb, m| {
                        let at = kb.let_(Ty::Index, s_at(&h, i.clone(), m));
                        kb.store(state, e::var(at), e::mul(e::load(state, e::var(at)), e::var(gi)));
                    });
                });
            }
            // Update row: beta·(v − Sᵀk) for the delta rules (read before S changes), else v.
            let upd: Box<dyn Fn(Expr) -> Expr> = match beta {
                Some(bo) => {
                    let bi = if g.beta_per_head { e::var(head_row) } else { e::var(bt) };
                    let be = kb.let_(ft, ld(bo, bi));
                    kb.for_(dv, |kb, m| {
                        let acc = kb.let_(ft, flit(ft, 0.0));
                        kb.for_(dk, |kb, i| kb.set(acc, e::fma(e::load(state, s_at(&h, i.clone(), m.clone())), kv(i), e::var(acc))));
                        kb.store(corr, m.clone(), e::mul(e::var(be), e::sub(vv(m), e::var(acc))));
                    });
                    Box::new(move |m| e::load(corr, m))
                }
                None => Box::new(vv),
            };
            kb.for_(dk, |kb, i| {
                let kx = kb.let_(ft, kv(i.clone()));
                kb.for_(dv, |kb, m| {
                    let at = kb.let_(Ty::Index, s_at(&h, i.clone(), m.clone()));
                    kb.store(state, e::var(at), e::fma(e::var(kx), upd(m), e::load(state, e::var(at))));
                });
            });
        });
        // Each query head reads its KV head's updated state.
        if let Some(yo) = y {
            kb.for_(qh, |kb, hq| {
                let hk = kb.let_(Ty::Index, e::bin(BinOp::Div, hq.clone(), e::idx(group as i64)));
                let row = kb.let_(Ty::Index, iadd(imul(e::var(bt), qh as i64), hq));
                let q_base = kb.let_(Ty::Index, imul(e::var(row), dk as i64));
                let y_base = kb.let_(Ty::Index, imul(e::var(row), dv as i64));
                kb.for_(dv, |kb, m| {
                    let acc = kb.let_(ft, flit(ft, 0.0));
                    kb.for_(dk, |kb, i| {
                        let qx = ld(q, iadd(e::var(q_base), i.clone()));
                        kb.set(acc, e::fma(qx, e::load(state, s_at(&e::var(hk), i, m.clone())), e::var(acc)));
                    });
                    kb.store(yo.buf, iadd(e::var(y_base), m), e::mul(flit(ft, scale), e::var(acc)));
                });
            });
        }
    });
    if let Some(p) = present {
        if p.buf != state {
            kb.for_(state_len, |kb, i| kb.store(p.buf, i.clone(), e::load(state, i)));
        }
    }
    cx.emit(kb.finish());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::linalg::testkit::run_op;
    use super::*;
    use crate::ir::{Tensor, TypeInfo};
    use crate::ops::attention::{AttentionOp, UpdateRule};
    use crate::ops::Semantics;
    use crate::testdata::{compare, CONTRACT};

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 37 + seed * 11) % 23) as f32 * 0.05 - 0.55).collect()
    }

    /// Lowers `la`, runs it on the KIR interpreter and compares both outputs with the
    /// evaluator (f64 there, f32 here: the contract tolerance). `inputs` are the
    /// leading inputs, all present.
    fn check(la: LinearAttention, inputs: Vec<Tensor>) {
        let want = AttentionOp::LinearAttention(la.clone()).eval(&inputs.iter().map(Some).collect::<Vec<_>>()).expect("evaluates");
        let types: Vec<TypeInfo> = want.iter().map(|t| t.type_info()).collect();
        let got = run_op(&inputs, &types, |cx, ins, outs| lower(&la, cx, ins, outs));
        for (g, w) in got.iter().zip(&want) {
            compare(g, w, CONTRACT).expect("matches the evaluator");
        }
    }

    #[test]
    fn gated_delta_gqa_with_past_matches_the_evaluator() {
        let (b, t, qh, kvh, dk, dv) = (2, 3, 4, 2, 3, 2);
        let la = LinearAttention::new(qh, kvh, None, UpdateRule::GatedDelta);
        let q = Tensor::from_vec(&[b, t, qh * dk], data(b * t * qh * dk, 1));
        let k = Tensor::from_vec(&[b, t, kvh * dk], data(b * t * kvh * dk, 2));
        let v = Tensor::from_vec(&[b, t, kvh * dv], data(b * t * kvh * dv, 3));
        let past = Tensor::from_vec(&[b, kvh, dk, dv], data(b * kvh * dk * dv, 4));
        // Per-feature decay, per-head beta.
        let decay = Tensor::from_vec(&[b, t, kvh * dk], data(b * t * kvh * dk, 5).iter().map(|x| -x.abs()).collect::<Vec<f32>>());
        let beta = Tensor::from_vec(&[b, t, kvh], data(b * t * kvh, 6).iter().map(|x| x.abs()).collect::<Vec<f32>>());
        check(la, vec![q, k, v, past, decay, beta]);
    }

    #[test]
    fn f16_linear_rule_without_past_rounds_the_state_once() {
        let (b, t, h, dk, dv) = (1, 4, 2, 2, 3);
        let la = LinearAttention::new(h, h, Some(0.5), UpdateRule::Linear);
        let f16 = |shape: &[usize], seed| Tensor::from_vec(shape, data(shape.iter().product(), seed)).cast(crate::ir::DType::F16);
        let (q, k, v) = (f16(&[b, t, h * dk], 7), f16(&[b, t, h * dk], 8), f16(&[b, t, h * dv], 9));
        check(la, vec![q, k, v]);
    }
}

//! Lowering of `CausalConvWithState` (opset 27) to KIR: one kernel per node.
//!
//! Per (batch, channel) the kernel builds the padded row `past ‖ x` (`k − 1 + length`
//! values; zeros for an absent past) in a scratch row, so every tap is an unguarded
//! load; each output is the dot product of `k` consecutive row values with the
//! channel's weights (ascending taps, like the evaluator) plus the bias, and the new
//! state is the row's last `k − 1` values. SiLU reads the convolution back from Y: the
//! evaluator rounds it to the input type before the activation, and the store is what
//! rounds it here.

use super::reduce::flit;
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::DType;
use crate::kir::build::{iadd, imul};
use crate::kir::{e, Expr, Ty, UnOp};
use crate::ops::rnn::CausalConv;

fn operand(ops: &[Option<Operand>], i: usize) -> Option<&Operand> {
    ops.get(i).and_then(|o| o.as_ref())
}

pub(super) fn lower(c: &CausalConv, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let shapes: [Option<&[usize]>; 4] = std::array::from_fn(|i| operand(ins, i).map(|o| o.shape()));
    let (batch, ch, len, k) = CausalConv::geometry(shapes)?;
    let need = |i: usize| operand(ins, i).ok_or_else(|| OpError::invalid("CausalConvWithState: missing input or weight"));
    let (x, w) = (need(0)?, need(1)?);
    let (bias, past) = (operand(ins, 2), operand(ins, 3));
    let (y, state) = (operand(outs, 0), operand(outs, 1));
    let ft = if x.ty.dtype == DType::F64 { Ty::F64 } else { Ty::F32 };
    for o in ins.iter().flatten() {
        o.kty()?;
    }
    let ld = |o: &Operand, i: Expr| {
        let v = e::load(o.buf, i);
        if Ty::of_storage(o.ty.dtype) == Some(ft) {
            v
        } else {
            e::cast(ft, v)
        }
    };
    let hist = k - 1;
    let padded = len + hist;
    let row = cx.scratch("padded", if ft == Ty::F64 { DType::F64 } else { DType::F32 }, vec![padded]);
    let mut kb = cx.kernel("");
    kb.for_(batch * ch, |kb, bc| {
        let c_ix = kb.let_(Ty::Index, e::bin(crate::kir::BinOp::Rem, bc.clone(), e::idx(ch as i64)));
        let hist_base = kb.let_(Ty::Index, imul(bc.clone(), hist as i64));
        kb.for_(hist, |kb, p| kb.store(row, p.clone(), past.map_or(flit(ft, 0.0), |ps| ld(ps, iadd(e::var(hist_base), p)))));
        let x_base = kb.let_(Ty::Index, imul(bc.clone(), len as i64));
        kb.for_(len, |kb, t| kb.store(row, iadd(t.clone(), e::idx(hist as i64)), ld(x, iadd(e::var(x_base), t))));
        if let Some(yo) = y {
            let w_base = kb.let_(Ty::Index, imul(e::var(c_ix), k as i64));
            kb.for_(len, |kb, t| {
                let acc = kb.let_(ft, flit(ft, 0.0));
                kb.for_(k, |kb, j| {
                    let xv = e::load(row, iadd(t.clone(), j.clone()));
                    kb.set(acc, e::fma(xv, ld(w, iadd(e::var(w_base), j)), e::var(acc)));
                });
                if let Some(bo) = bias {
                    kb.set(acc, e::add(e::var(acc), ld(bo, e::var(c_ix))));
                }
                let at = kb.let_(Ty::Index, iadd(e::var(x_base), t));
                kb.store(yo.buf, e::var(at), e::var(acc));
                if c.silu() {
                    // Read back: the activation sees the convolution rounded to Y's type.
                    let v = kb.let_(ft, ld(yo, e::var(at)));
                    let sig = e::add(flit(ft, 1.0), e::un(UnOp::Exp, e::un(UnOp::Neg, e::var(v))));
                    kb.store(yo.buf, e::var(at), e::div(e::var(v), sig));
                }
            });
        }
        if let Some(so) = state {
            kb.for_(hist, |kb, p| kb.store(so.buf, iadd(e::var(hist_base), p.clone()), e::load(row, iadd(p, e::idx(len as i64)))));
        }
    });
    cx.emit(kb.finish());
    Ok(())
}

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

#[cfg(test)]
mod tests {
    use super::super::linalg::testkit::run_op;
    use super::*;
    use crate::ir::{Tensor, TypeInfo};
    use crate::ops::rnn::RnnOp;
    use crate::ops::Semantics;
    use crate::testdata::{compare, CONTRACT};

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n).map(|i| ((i * 29 + seed * 7) % 19) as f32 * 0.1 - 0.9).collect()
    }

    /// KIR interpreter against the evaluator, for all inputs given (x, w, bias, past).
    fn check(silu: bool, inputs: Vec<Tensor>) {
        let op = RnnOp::CausalConvWithState(CausalConv::new(silu));
        let want = op.eval(&inputs.iter().map(Some).collect::<Vec<_>>()).expect("evaluates");
        let types: Vec<TypeInfo> = want.iter().map(|t| t.type_info()).collect();
        let got = run_op(&inputs, &types, |cx, ins, outs| lower(&CausalConv::new(silu), cx, ins, outs));
        for (g, w) in got.iter().zip(&want) {
            compare(g, w, CONTRACT).expect("matches the evaluator");
        }
    }

    #[test]
    fn silu_with_bias_and_past_matches_the_evaluator() {
        let (b, c, l, k) = (2, 3, 5, 4);
        let x = Tensor::from_vec(&[b, c, l], data(b * c * l, 1));
        let w = Tensor::from_vec(&[c, 1, k], data(c * k, 2));
        let bias = Tensor::from_vec(&[c], data(c, 3));
        let past = Tensor::from_vec(&[b, c, k - 1], data(b * c * (k - 1), 4));
        check(true, vec![x, w, bias, past]);
    }

    #[test]
    fn input_shorter_than_the_kernel_keeps_part_of_the_past() {
        let (b, c, l, k) = (1, 2, 2, 4);
        let x = Tensor::from_vec(&[b, c, l], data(b * c * l, 5)).cast(DType::F16);
        let w = Tensor::from_vec(&[c, 1, k], data(c * k, 6)).cast(DType::F16);
        let bias = Tensor::from_vec(&[c], data(c, 7)).cast(DType::F16);
        let past = Tensor::from_vec(&[b, c, k - 1], data(b * c * (k - 1), 8)).cast(DType::F16);
        check(true, vec![x, w, bias, past]);
    }
}

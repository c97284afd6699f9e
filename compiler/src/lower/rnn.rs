//! Lowering of the rnn family to KIR.
//!
//! RNN, GRU and LSTM become one kernel per node: per direction (unrolled: at most two)
//! a loop over the batch, and within it the time loop. Each step computes the gate
//! pre-activations `W·x + Wb` and `R·h + Rb` into two scratch rows (kept apart for
//! GRU's reset gate), then the cell writes the new hidden state into a third row, which
//! is copied back once every gate has read the old one.
//!
//! Runtime `sequence_lens` (checked to lie in `0..=seq`, else `Fail(6)`) guard each
//! step with `s < len`; Y is zeroed first so the skipped steps read 0 as in the
//! evaluator. `CausalConvWithState` is in `rnn_conv.rs`.

use super::reduce::flit;
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::DType;
use crate::kir::build::{iadd, imul, KernelBuilder};
use crate::kir::{e, BinOp, BufId, Expr, Ty, UnOp};
use crate::ops::rnn::{Act, Cell, Recurrent, RnnOp};

pub fn lower(op: &RnnOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    match op {
        RnnOp::Recurrent(r) => recurrent(r, cx, ins, outs),
        RnnOp::CausalConvWithState(c) => super::rnn_conv::lower(c, cx, ins, outs),
    }
}

const IN_B: usize = 3;
const IN_SEQ_LENS: usize = 4;
const IN_H0: usize = 5;
const IN_C0: usize = 6;
const IN_P: usize = 7;

/// Error code of a runtime index out of range (`NAME_run` returns it).
const ERR_INDEX_OUT_OF_RANGE: i32 = 6;

fn operand(ops: &[Option<Operand>], i: usize) -> Option<&Operand> {
    ops.get(i).and_then(|o| o.as_ref())
}

/// An activation applied to `x` (of float type `ft`).
fn act(a: Act, ft: Ty, x: Expr) -> Expr {
    let l = |v: f64| flit(ft, v);
    let ge0 = |x: &Expr| e::bin(BinOp::Ge, x.clone(), l(0.0));
    match a {
        Act::Relu => e::select(e::bin(BinOp::Gt, x.clone(), l(0.0)), x, l(0.0)),
        Act::Tanh => e::un(UnOp::Tanh, x),
        Act::Sigmoid => e::div(l(1.0), e::add(l(1.0), e::un(UnOp::Exp, e::un(UnOp::Neg, x)))),
        Act::Affine(a, b) => e::add(e::mul(l(a), x), l(b)),
        Act::LeakyRelu(a) => e::select(ge0(&x), x.clone(), e::mul(l(a), x)),
        Act::ThresholdedRelu(a) => e::select(e::bin(BinOp::Gt, x.clone(), l(a)), x, l(0.0)),
        Act::ScaledTanh(a, b) => e::mul(l(a), e::un(UnOp::Tanh, e::mul(l(b), x))),
        Act::HardSigmoid(a, b) => e::bin(BinOp::Min, e::bin(BinOp::Max, e::add(e::mul(l(a), x), l(b)), l(0.0)), l(1.0)),
        Act::Elu(a) => e::select(ge0(&x), x.clone(), e::mul(l(a), e::sub(e::un(UnOp::Exp, x), l(1.0)))),
        Act::Softsign => e::div(x.clone(), e::add(l(1.0), e::un(UnOp::Abs, x))),
        Act::Softplus => e::un(UnOp::Log, e::add(l(1.0), e::un(UnOp::Exp, x))),
    }
}

fn recurrent(r: &Recurrent, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let shapes: Vec<Option<&[usize]>> = (0..8).map(|i| operand(ins, i).map(|o| o.shape())).collect();
    let g = r.geometry(&shapes)?;
    let seq_lens = operand(ins, IN_SEQ_LENS);
    let need = |i: usize| operand(ins, i).ok_or_else(|| OpError::invalid("recurrent op: missing X, W or R"));
    let (x, w, rr) = (need(0)?, need(1)?, need(2)?);
    let ft = if x.ty.dtype == DType::F64 { Ty::F64 } else { Ty::F32 };
    let sdt = if ft == Ty::F64 { DType::F64 } else { DType::F32 };
    let ld = |o: &Operand, i: Expr| -> Result<Expr, OpError> {
        let t = o.kty()?;
        let v = e::load(o.buf, i);
        Ok(if t == ft { v } else { e::cast(ft, v) })
    };
    let (hid, inp, gates) = (g.hidden, g.input, r.cell().gates());
    let (bias, h0, c0, peep) = (operand(ins, IN_B), operand(ins, IN_H0), operand(ins, IN_C0), operand(ins, IN_P));
    let (y, yh, yc) = (operand(outs, 0), operand(outs, 1), operand(outs, 2));
    if g.seq == 0 || g.batch == 0 || hid == 0 {
        return Err(OpError::unsupported("recurrent op with an empty dimension"));
    }
    let h = cx.scratch("h", sdt, vec![hid]);
    let c = cx.scratch("c", sdt, vec![hid]);
    let hn = cx.scratch("h_next", sdt, vec![hid]);
    let wx = cx.scratch("wx", sdt, vec![gates * hid]);
    let rh = cx.scratch("rh", sdt, vec![gates * hid]);
    let gate_rows = cx.scratch("gates", sdt, vec![2 * hid]);
    let clip = |v: Expr| match r.clip() {
        Some(cl) => e::bin(BinOp::Min, e::bin(BinOp::Max, v, flit(ft, -cl)), flit(ft, cl)),
        None => v,
    };
    let bm = r.batch_major();
    let mut kb = cx.kernel("");
    if let (Some(yo), Some(_)) = (y, seq_lens) {
        // Steps past a batch entry's length are never written: they stay zero.
        kb.for_(yo.len(), |kb, i| kb.store(yo.buf, i, flit(ft, 0.0)));
    }
    for d in 0..g.dirs {
        let acts = &r.activations()[d];
        kb.for_(g.batch, |kb, b| {
            let state_at = |j: Expr| -> Expr {
                let row = if bm { iadd(imul(b.clone(), g.dirs as i64), e::idx(d as i64)) } else { iadd(e::idx((d * g.batch) as i64), b.clone()) };
                iadd(imul(row, hid as i64), j)
            };
            let init = |kb: &mut KernelBuilder, dst: BufId, src: Option<&Operand>| {
                kb.for_(hid, |kb, j| {
                    let v = match src {
                        Some(s) => ld(s, state_at(j.clone())).unwrap_or(flit(ft, 0.0)),
                        None => flit(ft, 0.0),
                    };
                    kb.store(dst, j, v);
                });
            };
            init(kb, h, h0);
            init(kb, c, c0);
            let len = match seq_lens {
                Some(sl) => {
                    let len = kb.let_(Ty::Index, e::cast(Ty::Index, e::load(sl.buf, b.clone())));
                    let bad = e::bin(BinOp::Or, e::bin(BinOp::Lt, e::var(len), e::idx(0)), e::bin(BinOp::Gt, e::var(len), e::idx(g.seq as i64)));
                    kb.if_(bad, |kb| kb.fail(ERR_INDEX_OUT_OF_RANGE), |_| {});
                    e::var(len)
                }
                None => e::idx(g.seq as i64),
            };
            kb.for_(g.seq, |kb, s| {
                // Runtime lengths: steps `s >= len` are skipped; a reversed walk starts at `len - 1`.
                let step = |kb: &mut KernelBuilder| {
                    let t = if r.reversed(d) { e::sub(e::sub(len.clone(), e::idx(1)), s.clone()) } else { s.clone() };
                    let t = kb.let_(Ty::Index, t);
                    let xrow = if bm { iadd(imul(b.clone(), g.seq as i64), e::var(t)) } else { iadd(imul(e::var(t), g.batch as i64), b.clone()) };
                    let xbase = kb.let_(Ty::Index, imul(xrow, inp as i64));
                    // Gate pre-activations, biases included.
                    kb.for_(gates * hid, |kb, k| {
                        let acc = kb.let_(ft, flit(ft, 0.0));
                        let wbase = kb.let_(Ty::Index, iadd(e::idx((d * gates * hid * inp) as i64), imul(k.clone(), inp as i64)));
                        kb.for_(inp, |kb, i| {
                            let wv = ld(w, iadd(e::var(wbase), i.clone())).unwrap_or(flit(ft, 0.0));
                            let xv = ld(x, iadd(e::var(xbase), i)).unwrap_or(flit(ft, 0.0));
                            kb.set(acc, e::fma(wv, xv, e::var(acc)));
                        });
                        if let Some(bo) = bias {
                            let bv = ld(bo, iadd(e::idx((d * 2 * gates * hid) as i64), k.clone())).unwrap_or(flit(ft, 0.0));
                            kb.set(acc, e::add(e::var(acc), bv));
                        }
                        kb.store(wx, k.clone(), e::var(acc));
                        let acc = kb.let_(ft, flit(ft, 0.0));
                        let rbase = kb.let_(Ty::Index, iadd(e::idx((d * gates * hid * hid) as i64), imul(k.clone(), hid as i64)));
                        kb.for_(hid, |kb, i| {
                            let rv = ld(rr, iadd(e::var(rbase), i.clone())).unwrap_or(flit(ft, 0.0));
                            kb.set(acc, e::fma(rv, e::load(h, i), e::var(acc)));
                        });
                        if let Some(bo) = bias {
                            let bv = ld(bo, iadd(e::idx((d * 2 * gates * hid + gates * hid) as i64), k.clone())).unwrap_or(flit(ft, 0.0));
                            kb.set(acc, e::add(e::var(acc), bv));
                        }
                        kb.store(rh, k, e::var(acc));
                    });
                    let pre = |gate: usize, j: &Expr| {
                        let at = iadd(e::idx((gate * hid) as i64), j.clone());
                        e::add(e::load(wx, at.clone()), e::load(rh, at))
                };
                match r.cell() {
                    Cell::Rnn => kb.for_(hid, |kb, j| kb.store(hn, j.clone(), act(acts[0], ft, clip(pre(0, &j))))),
                    Cell::Gru { linear_before_reset } => {
                        // gate_rows = [z | r].
                        kb.for_(2 * hid, |kb, j| kb.store(gate_rows, j.clone(), act(acts[0], ft, clip(pre(0, &j)))));
                        kb.for_(hid, |kb, j| {
                            let z = e::load(gate_rows, j.clone());
                            let cand_pre = if linear_before_reset {
                                let at = iadd(e::idx((2 * hid) as i64), j.clone());
                                e::add(e::load(wx, at.clone()), e::mul(e::load(gate_rows, iadd(j.clone(), e::idx(hid as i64))), e::load(rh, at)))
                            } else {
                                let acc = kb.let_(ft, flit(ft, 0.0));
                                let rbase = iadd(e::idx((d * gates * hid * hid + 2 * hid * hid) as i64), imul(j.clone(), hid as i64));
                                let rbase = kb.let_(Ty::Index, rbase);
                                kb.for_(hid, |kb, k| {
                                    let rv = ld(rr, iadd(e::var(rbase), k.clone())).unwrap_or(flit(ft, 0.0));
                                    let rs = e::load(gate_rows, iadd(k.clone(), e::idx(hid as i64)));
                                    kb.set(acc, e::add(e::var(acc), e::mul(e::mul(rv, rs), e::load(h, k))));
                                });
                                let mut v = e::add(e::load(wx, iadd(e::idx((2 * hid) as i64), j.clone())), e::var(acc));
                                if let Some(bo) = bias {
                                    let rb = ld(bo, iadd(e::idx((d * 2 * gates * hid + gates * hid + 2 * hid) as i64), j.clone())).unwrap_or(flit(ft, 0.0));
                                    v = e::add(v, rb);
                                }
                                v
                            };
                            let cand = kb.let_(ft, act(acts[1], ft, clip(cand_pre)));
                            let zv = kb.let_(ft, z);
                            let v = e::add(e::mul(e::sub(flit(ft, 1.0), e::var(zv)), e::var(cand)), e::mul(e::var(zv), e::load(h, j.clone())));
                            kb.store(hn, j, v);
                        });
                    }
                    Cell::Lstm => kb.for_(hid, |kb, j| {
                        let p = |k: usize| match peep {
                            Some(po) => ld(po, iadd(e::idx((d * 3 * hid + k * hid) as i64), j.clone())).unwrap_or(flit(ft, 0.0)),
                            None => flit(ft, 0.0),
                        };
                        let cj = kb.let_(ft, e::load(c, j.clone()));
                        let ig = kb.let_(ft, act(acts[0], ft, clip(e::add(pre(0, &j), e::mul(p(0), e::var(cj))))));
                        let fg = kb.let_(ft, act(acts[0], ft, clip(e::add(pre(2, &j), e::mul(p(2), e::var(cj))))));
                        let cand = kb.let_(ft, act(acts[1], ft, clip(pre(3, &j))));
                        kb.set(cj, e::add(e::mul(e::var(fg), e::var(cj)), e::mul(e::var(ig), e::var(cand))));
                        kb.store(c, j.clone(), e::var(cj));
                        let og = kb.let_(ft, act(acts[0], ft, clip(e::add(pre(1, &j), e::mul(p(1), e::var(cj))))));
                        kb.store(hn, j, e::mul(e::var(og), act(acts[2], ft, e::var(cj))));
                    }),
                }
                let yrow = if bm {
                    iadd(imul(iadd(imul(b.clone(), g.seq as i64), e::var(t)), g.dirs as i64), e::idx(d as i64))
                } else {
                    iadd(imul(iadd(imul(e::var(t), g.dirs as i64), e::idx(d as i64)), g.batch as i64), b.clone())
                };
                let ybase = kb.let_(Ty::Index, imul(yrow, hid as i64));
                kb.for_(hid, |kb, j| {
                    let v = e::load(hn, j.clone());
                    kb.store(h, j.clone(), v.clone());
                    if let Some(yo) = y {
                        kb.store(yo.buf, iadd(e::var(ybase), j), v);
                    }
                });
                };
                if seq_lens.is_some() {
                    kb.if_(e::bin(BinOp::Lt, s.clone(), len.clone()), |kb| step(kb), |_| {});
                } else {
                    step(kb);
                }
            });
            for (out, src) in [(yh, h), (yc, c)] {
                if let Some(o) = out {
                    kb.for_(hid, |kb, j| kb.store(o.buf, state_at(j.clone()), e::load(src, j)));
                }
            }
        });
    }
    cx.emit(kb.finish());
    Ok(())
}

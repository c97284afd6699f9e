//! Lowering of the attention family to KIR.
//!
//! `Attention` is one fused kernel per node, iterating over (batch, kv head, query head
//! of its group, query row). Each row's scores go into a scratch row of `total_seq`
//! floats: max, exp-sum, then the probability-weighted sum of V — only one row of scores
//! is ever materialised (plus the optional `qk_matmul_output`, written as it is made).
//! The past and new K/V are first concatenated into `present_key` / `present_value` (the
//! outputs when requested, scratch otherwise), so the fused kernel reads one
//! `[batch, kv_heads, total_seq, head]` tensor and never needs a conditional load; with
//! no past, no present output and the 4D layout, K and V are read where they are.
//!
//! The same kernel serves the chains `passes::fuse_attention` recognises (MatMul →
//! scale → mask → Softmax → MatMul), with its two extras: a selecting bool mask (the
//! chain's `Where`) and the NaN-to-zero guard after the softmax.
//!
//! `RotaryEmbedding` is one kernel: a copy of X (the features past `rotary_embedding_dim`
//! pass through), then per token the cache row (from `position_ids`, bounds-checked) and
//! the rotation of each pair.
//!
//! `LinearAttention` (`attention_linear.rs`) and `FlexAttention` (`attention_flex.rs`)
//! have modules of their own.

use super::reduce::flit;
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::DType;
use crate::kir::build::{iadd, imul, linear, strided, strides, KernelBuilder};
use crate::kir::{e, BinOp, BufId, Expr, Ty, UnOp};
use crate::ops::attention::{AttGeom, Attention, AttentionOp, QkOutput, Rotary};

pub fn lower(op: &AttentionOp, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    match op {
        AttentionOp::Attention(a) => attention(a, cx, ins, outs),
        AttentionOp::RotaryEmbedding(r) => rotary(r, cx, ins, outs),
        AttentionOp::LinearAttention(l) => super::attention_linear::lower(l, cx, ins, outs),
        AttentionOp::FlexAttention(f) => super::attention_flex::lower(f, cx, ins, outs),
    }
}

/// Input indices of `Attention`.
const MASK: usize = 3;
const PAST_K: usize = 4;
const PAST_V: usize = 5;
const NONPAD: usize = 6;

fn operand(ops: &[Option<Operand>], i: usize) -> Option<&Operand> {
    ops.get(i).and_then(|o| o.as_ref())
}

/// `x` loaded as `from`, converted to the compute type `ft`.
fn to_ft(x: Expr, from: Ty, ft: Ty) -> Expr {
    if from == ft {
        x
    } else {
        e::cast(ft, x)
    }
}

fn attention(a: &Attention, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let need = |i: usize| operand(ins, i).ok_or_else(|| OpError::invalid("Attention: missing Q, K or V"));
    let (q, k, v) = (need(0)?, need(1)?, need(2)?);
    let (past_k, past_v) = (operand(ins, PAST_K), operand(ins, PAST_V));
    let g = a.geometry(q.shape(), k.shape(), v.shape(), past_k.map(|t| t.shape()), past_v.map(|t| t.shape()))?;
    let y = operand(outs, 0).ok_or_else(|| OpError::invalid("Attention: missing output Y"))?;
    let ft = if q.ty.dtype == DType::F64 { Ty::F64 } else { Ty::F32 };
    let total = g.total_seq();
    if y.is_empty() {
        return Ok(());
    }
    if total == 0 {
        return Err(OpError::unsupported("Attention over an empty key sequence"));
    }

    let pk = present(cx, &g, "present_key", k, past_k, operand(outs, 1), g.head_qk)?;
    let pv = present(cx, &g, "present_value", v, past_v, operand(outs, 2), g.head_v)?;
    let mask = operand(ins, MASK);
    let nonpad = operand(ins, NONPAD);
    let qk = operand(outs, 3);
    let row = cx.scratch("scores", if ft == Ty::F64 { DType::F64 } else { DType::F32 }, vec![total]);
    let scale = a.scale().unwrap_or(1.0 / (g.head_qk as f64).sqrt());
    let softcap = a.softcap();
    let extras = a.extras();
    let group = g.q_heads / g.kv_heads;
    let (qt, pkt, pvt) = (q.kty()?, Ty::of_storage(cx.prog.buffer(pk).dtype).unwrap_or(ft), Ty::of_storage(cx.prog.buffer(pv).dtype).unwrap_or(ft));

    // Mask geometry: right-aligned over [batch, q_heads, q_seq, total], dims of 1
    // broadcast; keys past the mask's last dim are masked out.
    let mask_info = match mask {
        Some(m) => {
            let ms = m.shape();
            let mut mdims = [1usize; 4];
            mdims[4 - ms.len()..].copy_from_slice(ms);
            let st = strides(&mdims);
            let eff: Vec<usize> = mdims.iter().zip(&st).map(|(&d, &s)| if d == 1 { 0 } else { s }).collect();
            Some((m.buf, m.ty.dtype == DType::Bool, m.kty()?, eff, mdims[3].min(total)))
        }
        None => None,
    };
    let mlen = mask_info.as_ref().map_or(total, |m| m.4);

    let mut kb = cx.kernel("");
    kb.for_shape(&[g.batch, g.kv_heads, group, g.q_seq], |kb, ix| {
        let (b, kvh, gi, i) = (ix[0].clone(), ix[1].clone(), ix[2].clone(), ix[3].clone());
        let h = iadd(imul(kvh.clone(), group as i64), gi);
        let q_base = if g.packed {
            strided(&[g.q_seq * g.q_heads * g.head_qk, g.head_qk, g.q_heads * g.head_qk], &[b.clone(), h.clone(), i.clone()])
        } else {
            linear(&[g.batch, g.q_heads, g.q_seq, g.head_qk], &[b.clone(), h.clone(), i.clone(), e::idx(0)])
        };
        let q_base = kb.let_(Ty::Index, q_base);
        let kv_row = |j: Expr, head: usize| linear(&[g.batch, g.kv_heads, total, head], &[b.clone(), kvh.clone(), j, e::idx(0)]);
        let qk_base = linear(&[g.batch, g.q_heads, g.q_seq, total], &[b.clone(), h.clone(), i.clone(), e::idx(0)]);
        let qk_base = kb.let_(Ty::Index, qk_base);
        let nonpad_len = nonpad.map(|n| kb.let_(Ty::I64, e::load(n.buf, b.clone())));

        // One score: Q·K·scale, softcapped, plus the bias; `in_mask` says whether key
        // `j` lies within the mask's last dim.
        let score = |kb: &mut KernelBuilder, j: Expr, in_mask: bool| {
            let kr = kb.let_(Ty::Index, kv_row(j.clone(), g.head_qk));
            let s = kb.let_(ft, flit(ft, 0.0));
            kb.for_(g.head_qk, |kb, d| {
                let qv = to_ft(e::load(q.buf, iadd(e::var(q_base), d.clone())), qt, ft);
                let kv = to_ft(e::load(pk, iadd(e::var(kr), d)), pkt, ft);
                kb.set(s, e::fma(qv, kv, e::var(s)));
            });
            kb.set(s, e::mul(e::var(s), flit(ft, scale)));
            if softcap > 0.0 {
                let t = e::un(UnOp::Tanh, e::div(e::var(s), flit(ft, softcap)));
                kb.set(s, e::mul(flit(ft, softcap), t));
            }
            if let (Some(qk), QkOutput::Scores) = (qk, a.qk_output()) {
                kb.store(qk.buf, iadd(e::var(qk_base), j.clone()), e::var(s));
            }
            let bias = kb.let_(ft, flit(ft, 0.0));
            if let Some((mbuf, is_bool, mt, eff, _)) = &mask_info {
                if in_mask {
                    let mi = strided(eff, &[b.clone(), h.clone(), i.clone(), j.clone()]);
                    let mv = e::load(*mbuf, mi);
                    if let (Some(sel), true) = (extras.select, *is_bool) {
                        // Selecting mask (a fused `Where`): the score or the fill, no bias.
                        let (on, off) = (e::var(s), flit(ft, sel.fill));
                        let picked = if sel.keep { e::select(mv, on, off) } else { e::select(mv, off, on) };
                        kb.set(s, picked);
                        kb.store(row, j, e::var(s));
                        return;
                    }
                    let term = if *is_bool {
                        e::select(mv, flit(ft, 0.0), flit(ft, f64::NEG_INFINITY))
                    } else {
                        to_ft(mv, *mt, ft)
                    };
                    kb.set(bias, term);
                } else {
                    kb.set(bias, flit(ft, f64::NEG_INFINITY));
                }
            }
            let neg_inf_if = |c: Expr| e::select(c, flit(ft, f64::NEG_INFINITY), flit(ft, 0.0));
            if a.is_causal() {
                let c = e::bin(BinOp::Gt, j.clone(), iadd(i.clone(), e::idx(g.past_seq as i64)));
                kb.set(bias, e::add(e::var(bias), neg_inf_if(c)));
            }
            if let Some(len) = nonpad_len {
                let c = e::bin(BinOp::Ge, e::cast(Ty::I64, j.clone()), e::var(len));
                kb.set(bias, e::add(e::var(bias), neg_inf_if(c)));
            }
            let biased = e::add(e::var(s), e::var(bias));
            if let (Some(qk), QkOutput::Biased) = (qk, a.qk_output()) {
                kb.store(qk.buf, iadd(e::var(qk_base), j.clone()), biased.clone());
            }
            kb.store(row, j, biased);
        };
        kb.for_(mlen, |kb, j| score(kb, j, true));
        kb.for_(total - mlen, |kb, j| score(kb, iadd(j, e::idx(mlen as i64)), false));

        // Softmax: the maximum ignores NaN (like the evaluator's f64::max); a fully
        // masked row gives NaN, as in the evaluator.
        let m = kb.let_(ft, flit(ft, f64::NEG_INFINITY));
        kb.for_(total, |kb, j| {
            let x = e::load(row, j);
            kb.set(m, e::select(e::bin(BinOp::Gt, x.clone(), e::var(m)), x, e::var(m)));
        });
        let sum = kb.let_(ft, flit(ft, 0.0));
        kb.for_(total, |kb, j| {
            let p = e::un(UnOp::Exp, e::sub(e::load(row, j.clone()), e::var(m)));
            let p = kb.let_(ft, p);
            kb.store(row, j, e::var(p));
            kb.set(sum, e::add(e::var(sum), e::var(p)));
        });
        kb.for_(total, |kb, j| {
            let mut p = e::div(e::load(row, j.clone()), e::var(sum));
            if extras.nan_to_zero {
                let p0 = kb.let_(ft, p);
                // Only NaN compares unequal to itself.
                p = e::select(e::bin(BinOp::Ne, e::var(p0), e::var(p0)), flit(ft, 0.0), e::var(p0));
            }
            let p = kb.let_(ft, p);
            kb.store(row, j.clone(), e::var(p));
            if let (Some(qk), QkOutput::Softmax) = (qk, a.qk_output()) {
                kb.store(qk.buf, iadd(e::var(qk_base), j), e::var(p));
            }
        });

        // Y row: the probability-weighted sum of the V rows.
        let v_base = kb.let_(Ty::Index, kv_row(e::idx(0), g.head_v));
        let y_base = if g.packed {
            strided(&[g.q_seq * g.q_heads * g.head_v, g.head_v, g.q_heads * g.head_v], &[b.clone(), h.clone(), i.clone()])
        } else {
            linear(&[g.batch, g.q_heads, g.q_seq, g.head_v], &[b.clone(), h.clone(), i.clone(), e::idx(0)])
        };
        let y_base = kb.let_(Ty::Index, y_base);
        kb.for_(g.head_v, |kb, d| {
            let acc = kb.let_(ft, flit(ft, 0.0));
            kb.for_(total, |kb, j| {
                let vi = iadd(iadd(e::var(v_base), imul(j.clone(), g.head_v as i64)), d.clone());
                let vv = to_ft(e::load(pv, vi), pvt, ft);
                kb.set(acc, e::fma(e::load(row, j), vv, e::var(acc)));
            });
            kb.store(y.buf, iadd(e::var(y_base), d), e::var(acc));
        });
    });
    cx.emit(kb.finish());
    Ok(())
}

/// `present = concat(past, new)` along the sequence, as `[batch, kv_heads, total, head]`:
/// into the requested output, else into scratch. Returns the buffer.
fn present(cx: &mut LowerCx, g: &AttGeom, what: &str, new: &Operand, past: Option<&Operand>, out: Option<&Operand>, head: usize) -> Result<BufId, OpError> {
    let total = g.total_seq();
    let shape = [g.batch, g.kv_heads, total, head];
    if past.is_none() && out.is_none() && !g.packed {
        // Already `[batch, kv_heads, seq, head]` and not wanted as an output: read it
        // in place rather than copy it (every fused decomposed chain is this case).
        return Ok(new.buf);
    }
    let dst = match out {
        Some(o) => o.buf,
        None => cx.scratch(what, new.ty.dtype, shape.to_vec()),
    };
    let (dst_t, new_t) = (Ty::of_storage(cx.prog.buffer(dst).dtype).unwrap_or(new.kty()?), new.kty()?);
    let mut kb = cx.kernel(what);
    if let Some(p) = past {
        let pt = p.kty()?;
        kb.for_shape(&[g.batch, g.kv_heads, g.past_seq, head], |kb, ix| {
            let v = to_ft(e::load(p.buf, linear(&[g.batch, g.kv_heads, g.past_seq, head], ix)), pt, dst_t);
            let di = linear(&shape, &[ix[0].clone(), ix[1].clone(), ix[2].clone(), ix[3].clone()]);
            kb.store(dst, di, v);
        });
    }
    kb.for_shape(&[g.batch, g.kv_heads, g.kv_seq, head], |kb, ix| {
        let si = if g.packed {
            linear(&[g.batch, g.kv_seq, g.kv_heads, head], &[ix[0].clone(), ix[2].clone(), ix[1].clone(), ix[3].clone()])
        } else {
            linear(&[g.batch, g.kv_heads, g.kv_seq, head], ix)
        };
        let v = to_ft(e::load(new.buf, si), new_t, dst_t);
        let di = linear(&shape, &[ix[0].clone(), ix[1].clone(), iadd(ix[2].clone(), e::idx(g.past_seq as i64)), ix[3].clone()]);
        kb.store(dst, di, v);
    });
    cx.emit(kb.finish());
    Ok(dst)
}

/// Error code of a runtime index out of range (`NAME_run` returns it).
const ERR_INDEX_OUT_OF_RANGE: i32 = 6;

fn rotary(r: &Rotary, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let need = |i: usize| operand(ins, i).ok_or_else(|| OpError::invalid("RotaryEmbedding: missing X, cos_cache or sin_cache"));
    let (x, cos, sin) = (need(0)?, need(1)?, need(2)?);
    let pos = operand(ins, 3);
    let g = r.geometry(x.shape(), cos.shape(), sin.shape(), pos.map(|p| p.shape()))?;
    let y = operand(outs, 0).ok_or_else(|| OpError::invalid("RotaryEmbedding: missing output"))?;
    let ft = if x.ty.dtype == DType::F64 { Ty::F64 } else { Ty::F32 };
    let (xt, ct, st) = (x.kty()?, cos.kty()?, sin.kty()?);
    let half = g.rot / 2;
    let max_pos = cos.shape().first().copied().unwrap_or(0);
    let mut kb = cx.kernel("");
    kb.for_(x.len(), |kb, i| kb.store(y.buf, i.clone(), e::load(x.buf, i)));
    kb.for_shape(&[g.batch, g.seq], |kb, ix| {
        let (b, s) = (ix[0].clone(), ix[1].clone());
        let cache_row = match pos {
            Some(p) => {
                let id = kb.let_(Ty::Index, e::cast(Ty::Index, e::load(p.buf, linear(&[g.batch, g.seq], ix))));
                let bad = e::bin(BinOp::Or, e::bin(BinOp::Lt, e::var(id), e::idx(0)), e::bin(BinOp::Ge, e::var(id), e::idx(max_pos as i64)));
                kb.if_(bad, |kb| kb.fail(ERR_INDEX_OUT_OF_RANGE), |_| {});
                e::var(id)
            }
            None => linear(&[g.batch, g.seq], ix),
        };
        let cbase = kb.let_(Ty::Index, imul(cache_row, half as i64));
        kb.for_(g.heads, |kb, h| {
            let base = if g.heads_first {
                linear(&[g.batch, g.heads, g.seq, g.head], &[b.clone(), h, s.clone(), e::idx(0)])
            } else {
                linear(&[g.batch, g.seq, g.heads, g.head], &[b.clone(), s.clone(), h, e::idx(0)])
            };
            let base = kb.let_(Ty::Index, base);
            kb.for_(half, |kb, i| {
                let c = kb.let_(ft, to_ft(e::load(cos.buf, iadd(e::var(cbase), i.clone())), ct, ft));
                let sn = kb.let_(ft, to_ft(e::load(sin.buf, iadd(e::var(cbase), i.clone())), st, ft));
                let (i1, i2) = if r.interleaved() {
                    (iadd(e::var(base), imul(i.clone(), 2)), iadd(e::var(base), iadd(imul(i, 2), e::idx(1))))
                } else {
                    (iadd(e::var(base), i.clone()), iadd(e::var(base), iadd(i, e::idx(half as i64))))
                };
                let x1 = kb.let_(ft, to_ft(e::load(x.buf, i1.clone()), xt, ft));
                let x2 = kb.let_(ft, to_ft(e::load(x.buf, i2.clone()), xt, ft));
                kb.store(y.buf, i1, e::sub(e::mul(e::var(c), e::var(x1)), e::mul(e::var(sn), e::var(x2))));
                kb.store(y.buf, i2, e::add(e::mul(e::var(sn), e::var(x1)), e::mul(e::var(c), e::var(x2))));
            });
        });
    });
    cx.emit(kb.finish());
    Ok(())
}

//! The int8 kernel's dual-MAC form, used when the weights, multipliers and shifts are
//! constants (always, for what `passes::quantize_int8` and `passes::qdq_fold` produce):
//!
//! 1. `pack`: the centred activations `x - x_zp` (int16) of two adjacent input channels
//!    packed into one int32 word (`lo | hi << 16`), into a scratch whose spatial axes
//!    carry the zero padding the taps need (a padded tap multiplies a centred zero), so
//!    the MAC loops carry no bounds tests;
//! 2. the accumulation, in gather form: each block of `R` output channels by `P`
//!    output positions (last axis) keeps its `R x P` int32 accumulators in variables
//!    (registers) over the whole reduction — input channel pairs (a loop) by kernel taps
//!    (unrolled) — and each term is `acc + Dot2(x pair, w pair)`, one `SMLAD` (two MACs)
//!    on Arm cores with the DSP extension. The weight pairs are read from the int8
//!    weights (one byte each in the blob) and packed in registers. ConvTranspose is split by output phase
//!    (`o mod stride` per axis): each phase is a stride-1 gather over the taps that reach it, so no multiply is wasted on the
//!    zeros a strided transpose would insert;
//! 3. the requantisation, fused into the accumulation's epilogue (the accumulators
//!    never reach memory): TFLite's `MultiplyByQuantizedMultiplier` with its two
//!    roundings folded into one 32x32+64 multiply-add and a shift of the high word (see
//!    [`Requant`]), bit-exact with `ops::qint8::mbqm`.
//!
//! The accumulation order differs from the float kernels' but int32 sums are exact
//! (and wrap identically), so the results equal the reference evaluator's bits.

use std::sync::Arc;

use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::{DType, Tensor};
use crate::kir::build::{iadd, imul, linear, KernelBuilder};
use crate::kir::{e, BinOp, BufId, BufKind, Expr, Ty, UnOp, Var};
use crate::ops::conv::{conv_geometry, AutoPad, ConvTranspose, WindowAttrs};
use crate::ops::qint8::{Int8Core, Int8Kernel};

/// One axis of an output phase: output positions `u * ostride + phase` for `u` in
/// `0..count`, whose taps `(k, off)` read the input at `u * xstride + off`.
#[derive(Clone, Debug)]
struct AxisPhase {
    phase: usize,
    ostride: usize,
    count: usize,
    xstride: usize,
    taps: Vec<(usize, i64)>,
}

/// The int8 kernel as a gather over packed channel pairs.
struct Plan {
    n: usize,
    c: usize,
    m: usize,
    group: usize,
    in_sp: Vec<usize>,
    out_sp: Vec<usize>,
    kernel: Vec<usize>,
    /// Per axis, its phases (one for Conv and dense layers).
    phases: Vec<Vec<AxisPhase>>,
    /// Zero padding materialised in the packed input, per axis.
    head: Vec<usize>,
    padded: Vec<usize>,
}

impl Plan {
    fn cg(&self) -> usize {
        self.c / self.group
    }
    fn mg(&self) -> usize {
        self.m / self.group
    }
    /// Channel pairs per group.
    fn cp(&self) -> usize {
        self.cg().div_ceil(2)
    }
    fn kn(&self) -> usize {
        self.kernel.iter().product()
    }

    fn new(op: &Int8Kernel, x: &[usize], w: &[usize], y: &[usize]) -> Result<Option<Self>, OpError> {
        let (phases, n, c, m, group, in_sp, out_sp, kernel) = match &op.core {
            Int8Core::Conv(a) => {
                let (Some((&[n, c], input)), Some((&[m, _], wk))) = (x.split_first_chunk(), w.split_first_chunk()) else {
                    return Ok(None);
                };
                let kernel = a.kernel(input.len(), Some(wk))?;
                if kernel != wk || w.len() != x.len() {
                    return Ok(None);
                }
                let g = conv_geometry(a, input, kernel.clone())?;
                let phases = (0..input.len())
                    .map(|ax| {
                        let taps = (0..kernel[ax])
                            .map(|k| (k, (k * g.dilations[ax]) as i64 - g.pad_head[ax] as i64))
                            .collect();
                        vec![AxisPhase { phase: 0, ostride: 1, count: g.grid[ax], xstride: g.strides[ax], taps }]
                    })
                    .collect();
                (phases, n, c, m, a.group, input.to_vec(), g.grid.clone(), kernel)
            }
            Int8Core::ConvTranspose(t) => {
                let (Some((&[n, c], input)), Some((&[_, m], out_sp))) = (x.split_first_chunk(), y.split_first_chunk())
                else {
                    return Ok(None);
                };
                let wk = w.get(2..).unwrap_or(&[]);
                // W is [C, M / group, k...].
                if w.len() != x.len() || w[0] != c || w[1].checked_mul(t.window.group) != Some(m) {
                    return Ok(None);
                }
                let Some(phases) = transpose_phases(t, input, wk, out_sp)? else { return Ok(None) };
                (phases, n, c, m, t.window.group, input.to_vec(), out_sp.to_vec(), wk.to_vec())
            }
            Int8Core::Dense { .. } => {
                let k = *x.last().unwrap_or(&1);
                let m = *y.last().unwrap_or(&1);
                let rows = x.iter().product::<usize>() / k.max(1);
                let phases = vec![vec![AxisPhase { phase: 0, ostride: 1, count: 1, xstride: 1, taps: vec![(0, 0)] }]];
                (phases, rows, k, m, 1, vec![1], vec![1], vec![1])
            }
        };
        if group == 0 || c % group != 0 || m % group != 0 || c == 0 || in_sp.is_empty() || in_sp.len() != kernel.len() {
            return Ok(None);
        }
        let mut head = vec![0usize; in_sp.len()];
        let mut padded = in_sp.clone();
        for ax in 0..in_sp.len() {
            let (mut lo, mut hi) = (0i64, in_sp[ax] as i64 - 1);
            for ph in phases[ax].iter().filter(|p| p.count > 0) {
                for &(_, off) in &ph.taps {
                    lo = lo.min(off);
                    hi = hi.max((ph.count as i64 - 1) * ph.xstride as i64 + off);
                }
            }
            head[ax] = (-lo) as usize;
            padded[ax] = (hi - lo + 1) as usize;
        }
        Ok(Some(Plan { n, c, m, group, in_sp, out_sp, kernel, phases, head, padded }))
    }
}

/// ConvTranspose by output phase: output `o = u * s + phase` takes tap `k` from input
/// `i = (o + pad_head - k * d) / s` when that division is exact, i.e. `i = u + off`.
fn transpose_phases(
    t: &ConvTranspose,
    input: &[usize],
    wk: &[usize],
    out_sp: &[usize],
) -> Result<Option<Vec<Vec<AxisPhase>>>, OpError> {
    let a: &WindowAttrs = &t.window;
    let ns = input.len();
    if ns == 0 || wk.len() != ns || out_sp.len() != ns {
        return Ok(None);
    }
    let kernel = a.kernel(ns, Some(wk))?;
    let mut g = a.geometry(kernel.clone())?;
    let op_pad: Vec<usize> = match t.output_padding.len() {
        0 => vec![0; ns],
        l if l == ns || l == 2 * ns => t.output_padding[..ns].to_vec(),
        _ => return Ok(None),
    };
    if matches!(a.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) {
        // As lower::conv: the total pad that gives the output its size.
        for i in 0..ns {
            let eff = (kernel[i] - 1) * g.dilations[i] + 1;
            let full = g.strides[i] * (input[i].max(1) - 1) + op_pad[i] + eff;
            let total = full.saturating_sub(out_sp[i]);
            g.pad_head[i] = if a.auto_pad == AutoPad::SameUpper { total / 2 } else { total - total / 2 };
        }
    }
    Ok(Some(
        (0..ns)
            .map(|ax| {
                let (s, d, ph) = (g.strides[ax], g.dilations[ax] as i64, g.pad_head[ax] as i64);
                (0..s.min(out_sp[ax]))
                    .map(|phase| {
                        let count = (out_sp[ax] - phase).div_ceil(s);
                        let taps = (0..kernel[ax])
                            .filter_map(|k| {
                                let num = phase as i64 + ph - k as i64 * d;
                                (num.rem_euclid(s as i64) == 0).then(|| (k, num.div_euclid(s as i64)))
                            })
                            .collect();
                        AxisPhase { phase, ostride: s, count, xstride: 1, taps }
                    })
                    .collect()
            })
            .collect(),
    ))
}

/// Per-channel constants of the fused requantisation, valid when every channel's right
/// shift `e = -shift` is at least 1 and its multiplier `q` is 0 or in `[2^30, 2^31)`:
///
/// `mbqm(a, q, shift) = floor((a * q + K) / 2^(31 + e))` with `K = 2^30 + 2^(30 + e)`,
/// less `2^31` when `a < 0`: gemmlowp's high multiply is `floor((a*q + 2^30) / 2^31)`
/// (its nudge and truncation, for either sign), the rounding shift adds `2^(e-1)` (less 1
/// for a negative value) before flooring, and nested floors by powers of two compose.
/// (`a < 0` stands for "the high product is negative": they differ only when it is 0,
/// whose result either K gives.) As `31 + e >= 32`, the shift is the high word of one
/// `SMLAL`, shifted right by `e - 1`.
struct Requant;

impl Requant {
    /// Whether every channel's constants allow the fused form (`shift <= -1`, so no
    /// left shift, and a multiplier `q` of 0 or in `[2^30, 2^31)`).
    fn applies(mult: &[i64], shift: &[i64]) -> bool {
        mult.iter().zip(shift).all(|(&q, &s)| (q == 0 || (1i64 << 30..1i64 << 31).contains(&q)) && (-31..=-1).contains(&s))
    }
}

/// Lowers `op` in the dual-MAC form; `Ok(false)` when it does not apply (weights or
/// requantisation parameters not constant, a shape it does not handle), leaving the
/// caller to use the general form.
#[allow(clippy::too_many_arguments)]
pub fn lower(
    op: &Int8Kernel,
    cx: &mut LowerCx,
    x: &Operand,
    w: &Operand,
    bias: Option<&Operand>,
    (mult, shift): (&Operand, &Operand),
    neg: Option<(&Operand, &Operand)>,
    y: &Operand,
) -> Result<bool, OpError> {
    let (Some(wk), Some(qk), Some(sk)) = (&w.konst, &mult.konst, &shift.konst) else { return Ok(false) };
    let (Some(wv), Some(qv), Some(sv)) = (wk.to_i64_vec(), qk.to_i64_vec(), sk.to_i64_vec()) else { return Ok(false) };
    if wv.iter().any(|&v| i8::try_from(v).is_err()) {
        return Ok(false);
    }
    let Some(plan) = Plan::new(op, x.shape(), w.shape(), y.shape())? else { return Ok(false) };
    if qv.len() != plan.m || sv.len() != plan.m || bias.is_some_and(|b| b.len() != plan.m) {
        return Ok(false);
    }
    if !Requant::applies(&qv, &sv) {
        return Ok(false);
    }
    // An absorbed LeakyRelu's side, under the same conditions.
    let negv = match neg {
        None => None,
        Some((nq, ns)) => {
            let (Some(nqk), Some(nsk)) = (&nq.konst, &ns.konst) else { return Ok(false) };
            let (Some(nqv), Some(nsv)) = (nqk.to_i64_vec(), nsk.to_i64_vec()) else { return Ok(false) };
            if nqv.len() != plan.m || nsv.len() != plan.m || !Requant::applies(&nqv, &nsv) {
                return Ok(false);
            }
            Some((nq.buf, nsv))
        }
    };
    if !weights_fit(op, &plan, w.shape()) {
        return Ok(false);
    }
    let xp = pack_input(op, cx, x, &plan);
    let wp = pack_weights(op, cx, &plan, &wv, w.buf);
    let rq = RqBufs {
        pos: requant_tables(cx, w.buf, "", mult.buf, &sv),
        neg: negv.map(|(nq, nsv)| requant_tables(cx, w.buf, "_neg", nq, &nsv)),
        bias: bias.map(|b| b.buf),
    };
    let mut kb = cx.kernel("");
    emit_gather(op, &mut kb, &plan, xp, &wp, &rq, y.buf);
    cx.emit(kb.finish());
    Ok(true)
}

/// W's shape is the one [`Plan::w_index`] reads.
fn weights_fit(op: &Int8Kernel, plan: &Plan, w: &[usize]) -> bool {
    let (cg, mg) = (plan.cg(), plan.mg());
    let want: Vec<usize> = match op.core {
        Int8Core::Conv(_) => [vec![plan.m, cg], plan.kernel.clone()].concat(),
        Int8Core::ConvTranspose(_) => [vec![plan.c, mg], plan.kernel.clone()].concat(),
        Int8Core::Dense { trans_b: true } => vec![plan.m, plan.c],
        Int8Core::Dense { trans_b: false } => vec![plan.c, plan.m],
    };
    w == want.as_slice()
}

/// The `pack` kernel: `x - x_zp` of channels `2p, 2p + 1` of each group as one word,
/// inside the zero padding of [`Plan::padded`]. Returns the scratch `[N, G * Cp, padded...]`.
fn pack_input(op: &Int8Kernel, cx: &mut LowerCx, x: &Operand, plan: &Plan) -> BufId {
    let (cg, cp, g) = (plan.cg(), plan.cp(), plan.group);
    let sp_in: usize = plan.in_sp.iter().product();
    let plane: usize = plan.padded.iter().product();
    let buf = cx.scratch("x_pairs", DType::I32, [vec![plan.n, g * cp], plan.padded.clone()].concat());
    let mut kb = cx.kernel("pack");
    if plane != sp_in {
        kb.for_(plan.n * g * cp * plane, |kb, i| kb.store(buf, i, e::i32(0)));
    }
    let centred = |i: Expr| e::sub(e::load(x.buf, i), e::i32(op.x_zp));
    let word = |lo: Expr, hi: Expr| {
        e::bin(BinOp::Or, e::bin(BinOp::And, lo, e::i32(0xFFFF)), e::bin(BinOp::Shl, hi, e::i32(16)))
    };
    // Full pairs, then the odd channel of each group (high half zero).
    let pairs = |kb: &mut KernelBuilder, count: usize, p0: usize, full: bool| {
        kb.for_shape(&[plan.n, g, count], |kb, ix| {
            let (b, gi, pl) = (&ix[0], &ix[1], iadd(ix[2].clone(), e::idx(p0 as i64)));
            let ic = iadd(imul(gi.clone(), cg as i64), imul(pl.clone(), 2));
            let x0 = imul(iadd(imul(b.clone(), plan.c as i64), ic), sp_in as i64);
            let p0 = imul(iadd(imul(iadd(imul(b.clone(), g as i64), gi.clone()), cp as i64), pl), plane as i64);
            kb.for_shape(&plan.in_sp, |kb, pos| {
                let at = iadd(x0.clone(), linear(&plan.in_sp, pos));
                let lo = centred(at.clone());
                let hi = if full { centred(iadd(at, e::idx(sp_in as i64))) } else { e::i32(0) };
                let ppos: Vec<Expr> = pos.iter().zip(&plan.head).map(|(p, &h)| iadd(p.clone(), e::idx(h as i64))).collect();
                kb.store(buf, iadd(p0.clone(), linear(&plan.padded, &ppos)), word(lo, hi));
            });
        });
    };
    pairs(&mut kb, cg / 2, 0, true);
    if cg % 2 == 1 {
        pairs(&mut kb, 1, cg / 2, false);
    }
    cx.emit(kb.finish());
    buf
}

/// Per-channel constants of the epilogue: the multiplier `q` as given, and from the
/// shift (known at compile time) `sh = e - 1` and `K = 2^30 + 2^(30 + e)` of
/// [`Requant`], so the kernel does no 64-bit shifting.
struct RqBufs {
    pos: RqSide,
    /// An absorbed LeakyRelu's side, for negative accumulators.
    neg: Option<RqSide>,
    bias: Option<BufId>,
}

#[derive(Clone, Copy)]
struct RqSide {
    mult: BufId,
    sh: BufId,
    kpos: BufId,
}

fn requant_tables(cx: &mut LowerCx, w: BufId, tag: &str, mult: BufId, shift: &[i64]) -> RqSide {
    let name = format!("{}{tag}", cx.prog.buffer(w).name);
    let m = shift.len();
    // e = -shift in 1..=31 (checked by `Requant::applies`).
    let sh: Vec<i32> = shift.iter().map(|&s| (-s - 1) as i32).collect();
    let kpos: Vec<i64> = shift.iter().map(|&s| (1i64 << 30) + (1i64 << (31 - s - 1))).collect();
    let sh = cx.prog.add_buffer(format!("{name}.rq_sh"), DType::I32, vec![m], BufKind::Weight(Arc::new(Tensor::from_vec(&[m], sh))));
    let kpos =
        cx.prog.add_buffer(format!("{name}.rq_k"), DType::I64, vec![m], BufKind::Weight(Arc::new(Tensor::from_vec(&[m], kpos))));
    RqSide { mult, sh, kpos }
}

/// A kernel tap: (flat kernel index, input offset per axis).
type Tap = (usize, Vec<i64>);

/// Every combination of per-axis phases (one for Conv and dense layers), with its taps.
fn combos(plan: &Plan) -> Vec<(Vec<&AxisPhase>, Vec<Tap>)> {
    let ns = plan.in_sp.len();
    let mut combos: Vec<Vec<&AxisPhase>> = vec![vec![]];
    for ax in 0..ns {
        combos = combos
            .into_iter()
            .flat_map(|c| plan.phases[ax].iter().map(move |p| [c.clone(), vec![p]].concat()))
            .collect();
    }
    combos
        .into_iter()
        .filter(|c| c.iter().all(|p| p.count > 0))
        .map(|combo| {
            let mut taps: Vec<(usize, Vec<i64>)> = vec![(0, vec![])];
            for (ax, p) in combo.iter().enumerate() {
                taps = taps
                    .into_iter()
                    .flat_map(|(k, offs)| {
                        p.taps.iter().map(move |&(kk, off)| (k * plan.kernel[ax] + kk, [offs.clone(), vec![off]].concat()))
                    })
                    .collect();
            }
            (combo, taps)
        })
        .collect()
}

/// The weights as the gather reads them, still one byte per weight: per group, per
/// phase combination, per block of `R` output channels, per input channel pair, per
/// tap, `R / 2` words, word `j` holding `w[r0, c0] | w[r1, c0] << 8 | w[r0, c1] << 16 |
/// w[r1, c1] << 24` (rows `r0 = 2j`, `r1 = 2j + 1` of the block, channels `c0 = 2p`,
/// `c1 = 2p + 1`; a missing row or channel is a zero weight). `Sxtb16(word)` is then row
/// `r0`'s weight pair for the pair's X word and `Sxtb16(word >>> 8)` row `r1`'s: one
/// 32-bit load and two `SXTB16` per two weight pairs (CMSIS-NN's trick, with the
/// interleave done at compile time), one running base index per block.
struct PackedW {
    buf: BufId,
    /// Words per group.
    group_words: usize,
    /// Per combination of [`combos`], the first word of its blocks within a group.
    combo_off: Vec<usize>,
}

/// Words of one block of `rows` channels over `ntaps` taps.
fn block_words(plan: &Plan, ntaps: usize, rows: usize) -> usize {
    plan.cp() * ntaps * rows.div_ceil(2)
}

fn pack_weights(op: &Int8Kernel, cx: &mut LowerCx, plan: &Plan, wv: &[i64], w: BufId) -> PackedW {
    let (cg, mg, kn, g) = (plan.cg(), plan.mg(), plan.kn(), plan.group);
    let last = plan.in_sp.len() - 1;
    // W's element for group `gi`, output channel `oc` within the group, input channel
    // `ic` within the group, flat kernel position `k` (the layouts `weights_fit` checked).
    let at = |gi: usize, oc: usize, ic: usize, k: usize| -> i64 {
        if ic >= cg || oc >= mg {
            return 0;
        }
        let ocg = gi * mg + oc;
        match op.core {
            Int8Core::Conv(_) => wv[(ocg * cg + ic) * kn + k],
            Int8Core::ConvTranspose(_) => wv[((gi * cg + ic) * mg + oc) * kn + k],
            Int8Core::Dense { trans_b: true } => wv[ocg * plan.c + ic],
            Int8Core::Dense { trans_b: false } => wv[ic * plan.m + ocg],
        }
    };
    let combos = combos(plan);
    let mut words: Vec<i32> = Vec::new();
    let mut combo_off = Vec::with_capacity(combos.len());
    for gi in 0..g {
        for (combo, taps) in &combos {
            if gi == 0 {
                combo_off.push(words.len());
            }
            let (_, rn) = block_shape(combo[last].count);
            let blocks = (0..mg / rn).map(|b| (b * rn, rn)).chain((mg % rn != 0).then_some((mg / rn * rn, mg % rn)));
            for (om0, rows) in blocks {
                for icp in 0..plan.cp() {
                    for (k, _) in taps {
                        for j in 0..rows.div_ceil(2) {
                            let (r0, r1) = (om0 + 2 * j, if 2 * j + 1 < rows { om0 + 2 * j + 1 } else { usize::MAX });
                            let b = |oc: usize, ic: usize| (at(gi, oc, ic, *k) as u8) as u32;
                            let word = b(r0, 2 * icp) | b(r1, 2 * icp) << 8 | b(r0, 2 * icp + 1) << 16 | b(r1, 2 * icp + 1) << 24;
                            words.push(word as i32);
                        }
                    }
                }
            }
        }
    }
    let group_words = words.len() / g.max(1);
    let n = words.len();
    let name = format!("{}.packed", cx.prog.buffer(w).name);
    let buf = cx.prog.add_buffer(name, DType::I32, vec![n], BufKind::Weight(Arc::new(Tensor::from_vec(&[n], words))));
    PackedW { buf, group_words, combo_off }
}

/// Output positions (last axis) and channels per register block: `R x P` accumulators,
/// each X pair load feeding `R` dual MACs and each weight pair `P`; about 14 registers
/// with the loads in flight (Cortex-M has 13 general ones plus lr).
fn block_shape(count_last: usize) -> (usize, usize) {
    match count_last {
        0..=1 => (1, 8),
        2..=3 => (2, 4),
        _ => (4, 2),
    }
}

fn emit_gather(op: &Int8Kernel, kb: &mut KernelBuilder, plan: &Plan, xp: BufId, wp: &PackedW, rq: &RqBufs, y: BufId) {
    let (mg, cp, g) = (plan.mg(), plan.cp(), plan.group);
    let plane: usize = plan.padded.iter().product();
    let sp_out: usize = plan.out_sp.iter().product();
    let last = plan.in_sp.len() - 1;
    let combos = combos(plan);
    kb.for_shape(&[plan.n, g], |kb, ix| {
        let (b, gi) = (ix[0].clone(), ix[1].clone());
        for ((combo, taps), &coff) in combos.iter().zip(&wp.combo_off) {
            let (pn, rn) = block_shape(combo[last].count);
            let cx = GatherCx { op, plan, combo, taps, xp, w: wp.buf, rq, y, b: b.clone(), gi: gi.clone(), cp, plane, sp_out };
            let seg0 = iadd(imul(gi.clone(), wp.group_words as i64), e::idx(coff as i64));
            let bw = block_words(plan, taps.len(), rn) as i64;
            let chan = |kb: &mut KernelBuilder, om0: Expr, seg: Expr, rows: usize| cx.channels(kb, om0, seg, rows, pn);
            kb.for_(mg / rn, |kb, mb| chan(kb, imul(mb.clone(), rn as i64), iadd(seg0.clone(), imul(mb, bw)), rn));
            if mg % rn != 0 {
                let om0 = mg / rn * rn;
                chan(kb, e::idx(om0 as i64), iadd(seg0.clone(), e::idx((mg / rn) as i64 * bw)), mg % rn);
            }
        }
    });
}

struct GatherCx<'a> {
    op: &'a Int8Kernel,
    plan: &'a Plan,
    combo: &'a [&'a AxisPhase],
    taps: &'a [(usize, Vec<i64>)],
    xp: BufId,
    /// The packed weights ([`PackedW`]).
    w: BufId,
    rq: &'a RqBufs,
    y: BufId,
    b: Expr,
    gi: Expr,
    cp: usize,
    plane: usize,
    sp_out: usize,
}

impl GatherCx<'_> {
    fn oc(&self, om0: &Expr, r: usize) -> Expr {
        iadd(imul(self.gi.clone(), self.plan.mg() as i64), iadd(om0.clone(), e::idx(r as i64)))
    }

    /// Channels `om0..om0 + rows` of the group over every output position of the phase;
    /// `seg` is the block's first word in the packed weights.
    fn channels(&self, kb: &mut KernelBuilder, om0: Expr, seg: Expr, rows: usize, pn: usize) {
        let last = self.combo.len() - 1;
        let outer: Vec<usize> = self.combo[..last].iter().map(|p| p.count).collect();
        let count = self.combo[last].count;
        kb.for_shape(&outer, |kb, uo| {
            let uo = uo.to_vec();
            kb.for_(count / pn, |kb, ub| self.block(kb, &om0, &seg, rows, &uo, imul(ub, pn as i64), pn));
            if count % pn != 0 {
                self.block(kb, &om0, &seg, rows, &uo, e::idx((count / pn * pn) as i64), count % pn);
            }
        });
    }

    /// One `rows x pn` register block at outer positions `uo`, last-axis positions `u0..u0 + pn`.
    #[allow(clippy::too_many_arguments)]
    fn block(&self, kb: &mut KernelBuilder, om0: &Expr, seg: &Expr, rows: usize, uo: &[Expr], u0: Expr, pn: usize) {
        let plan = self.plan;
        let last = self.combo.len() - 1;
        let acc: Vec<Vec<Var>> = (0..rows)
            .map(|r| {
                let bias = self.rq.bias.map_or(e::i32(0), |bb| e::load(bb, self.oc(om0, r)));
                let b0 = kb.let_(Ty::I32, bias);
                let mut v = vec![b0];
                v.extend((1..pn).map(|_| kb.let_(Ty::I32, e::var(b0))));
                v
            })
            .collect();
        let rw = rows.div_ceil(2);
        let nt = self.taps.len();
        // One input channel pair (a group's odd last channel has a zero high half in X
        // and zero weights): every tap's weight words at constant offsets from one base,
        // X at constant offsets from another, so C compilers address with immediates
        // instead of keeping one pointer per tap or row live (which spills on
        // Cortex-M's 13 registers).
        let pair = |kb: &mut KernelBuilder, icp: Expr| {
            let ch = iadd(imul(iadd(imul(self.b.clone(), plan.group as i64), self.gi.clone()), self.cp as i64), icp.clone());
            let base: Vec<Expr> = (0..=last)
                .map(|ax| {
                    let ph = self.combo[ax];
                    let u = if ax == last { u0.clone() } else { uo[ax].clone() };
                    iadd(imul(u, ph.xstride as i64), e::idx(plan.head[ax] as i64))
                })
                .collect();
            let xb = kb.let_(Ty::Index, iadd(imul(ch, self.plane as i64), linear(&plan.padded, &base)));
            let wb = kb.let_(Ty::Index, iadd(seg.clone(), imul(icp, (nt * rw) as i64)));
            let mut pstride = vec![1i64; last + 1];
            for ax in (0..last).rev() {
                pstride[ax] = pstride[ax + 1] * plan.padded[ax + 1] as i64;
            }
            for (t, (_, offs)) in self.taps.iter().enumerate() {
                let x_at = |p: usize| {
                    let off: i64 =
                        (0..=last).map(|ax| offs[ax] * pstride[ax]).sum::<i64>() + (p * self.combo[last].xstride) as i64;
                    e::load(self.xp, iadd(e::var(xb), e::idx(off)))
                };
                // Weight pairs of rows 2j and 2j + 1 from word j.
                let wpairs = |kb: &mut KernelBuilder, j: usize| {
                    let word = kb.let_(Ty::I32, e::load(self.w, iadd(e::var(wb), e::idx((t * rw + j) as i64))));
                    let lo = kb.let_(Ty::I32, e::un(UnOp::Sxtb16, e::var(word)));
                    let hi = (2 * j + 1 < rows)
                        .then(|| kb.let_(Ty::I32, e::un(UnOp::Sxtb16, e::bin(BinOp::UShr, e::var(word), e::i32(8)))));
                    (lo, hi)
                };
                let mac = |kb: &mut KernelBuilder, a: Var, x: Var, w: Var| {
                    kb.set(a, e::add(e::var(a), e::bin(BinOp::Dot2, e::var(x), e::var(w))));
                };
                // Keep the smaller operand set live: the weight pairs while each X word
                // feeds its `rows` MACs, or the X words while each weight word feeds `pn`.
                if rows <= pn {
                    let ws: Vec<Var> = (0..rw)
                        .flat_map(|j| {
                            let (lo, hi) = wpairs(kb, j);
                            std::iter::once(lo).chain(hi)
                        })
                        .collect();
                    for p in 0..pn {
                        let x = kb.let_(Ty::I32, x_at(p));
                        for (r, &w) in ws.iter().enumerate() {
                            mac(kb, acc[r][p], x, w);
                        }
                    }
                } else {
                    let xs: Vec<Var> = (0..pn).map(|p| kb.let_(Ty::I32, x_at(p))).collect();
                    for j in 0..rw {
                        let (lo, hi) = wpairs(kb, j);
                        for (p, &x) in xs.iter().enumerate() {
                            mac(kb, acc[2 * j][p], x, lo);
                            if let Some(hi) = hi {
                                mac(kb, acc[2 * j + 1][p], x, hi);
                            }
                        }
                    }
                }
            }
        };
        if !self.taps.is_empty() {
            kb.for_(self.cp, pair);
        }
        for r in 0..rows {
            let oc = self.oc(om0, r);
            let chan = |kb: &mut KernelBuilder, side: &RqSide| ChanVars {
                q: kb.let_(Ty::I32, e::load(side.mult, oc.clone())),
                kpos: kb.let_(Ty::I64, e::load(side.kpos, oc.clone())),
                sh: kb.let_(Ty::I32, e::load(side.sh, oc.clone())),
            };
            let c = chan(kb, &self.rq.pos);
            let cn = self.rq.neg.as_ref().map(|side| chan(kb, side));
            let y0 = imul(iadd(imul(self.b.clone(), plan.m as i64), oc), self.sp_out as i64);
            for p in 0..pn {
                let o: Vec<Expr> = (0..=last)
                    .map(|ax| {
                        let ph = self.combo[ax];
                        let u = if ax == last { iadd(u0.clone(), e::idx(p as i64)) } else { uo[ax].clone() };
                        iadd(imul(u, ph.ostride as i64), e::idx(ph.phase as i64))
                    })
                    .collect();
                let v = requant(kb, self.op, e::var(acc[r][p]), &c, cn.as_ref());
                kb.store(self.y, iadd(y0.clone(), linear(&plan.out_sp, &o)), v);
            }
        }
    }
}

/// A channel's requantisation constants (see [`RqBufs`]).
struct ChanVars {
    q: Var,
    kpos: Var,
    sh: Var,
}

/// `clamp(y_zp + mbqm(acc), lo, hi)` with the constants of [`Requant`].
fn requant(kb: &mut KernelBuilder, op: &Int8Kernel, acc: Expr, pos: &ChanVars, neg_side: Option<&ChanVars>) -> Expr {
    let a = kb.let_(Ty::I32, acc);
    let neg = e::bin(BinOp::Lt, e::var(a), e::i32(0));
    // With an absorbed LeakyRelu, a negative accumulator takes the other side's constants.
    let c = match neg_side {
        None => ChanVars { q: pos.q, kpos: pos.kpos, sh: pos.sh },
        Some(n) => {
            let pick = |kb: &mut KernelBuilder, ty: Ty, p: Var, q: Var| kb.let_(ty, e::select(neg.clone(), e::var(q), e::var(p)));
            ChanVars {
                q: pick(kb, Ty::I32, pos.q, n.q),
                kpos: pick(kb, Ty::I64, pos.kpos, n.kpos),
                sh: pick(kb, Ty::I32, pos.sh, n.sh),
            }
        }
    };
    let k = e::select(neg, e::add(e::var(c.kpos), e::i64(-(1i64 << 31))), e::var(c.kpos));
    let t = e::add(e::mul(e::cast(Ty::I64, e::var(a)), e::cast(Ty::I64, e::var(c.q))), k);
    // The high word: a logical shift gives the same 32 bits as an arithmetic one, and C
    // compilers take it as the register without a sign test.
    let hi = e::cast(Ty::I32, e::bin(BinOp::UShr, t, e::i64(32)));
    // `sh` is in 0..=30 (see `requant_tables`): the mask changes nothing but lets C
    // compilers drop the out-of-range case of a variable shift.
    let v = e::add(e::bin(BinOp::Shr, hi, e::bin(BinOp::And, e::var(c.sh), e::i32(31))), e::i32(op.y_zp));
    e::bin(BinOp::Min, e::bin(BinOp::Max, v, e::i32(op.lo)), e::i32(op.hi))
}

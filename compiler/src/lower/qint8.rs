//! Lowering of the int8 integer kernel (`ops::qint8::Int8Kernel`). With constant
//! weights and requantisation parameters (what the quantisation passes produce) it is
//! `lower::qint8_dot2`'s dual-MAC form; otherwise, the general form below, in three kernels:
//!
//! 1. `center`: `x - x_zp` into an int16 scratch, once per input element, so the MAC
//!    loops carry no zero-point subtraction (and padding taps, which are skipped, stay
//!    exact: a skipped tap is a centred zero);
//! 2. the accumulation: the float op's own lowering (`lower::conv` for Conv and
//!    ConvTranspose, `lower::linalg` Gemm for dense layers) run on integer operands into
//!    an int32 scratch, so the integer kernel has the same loop nests (per-kernel-position
//!    spans, scatter-form ConvTranspose) as the float one, with `acc + x * w` in I32;
//! 3. `requant`: TFLite's `MultiplyByQuantizedMultiplier` per element, in I32/I64 only
//!    (one 32×32→64 multiply), plus the output zero point, clamped.

use super::linalg::{input, output};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::{DType, TypeInfo};
use crate::kir::build::{iadd, imul, KernelBuilder};
use crate::kir::{e, BinOp, BufId, Expr, Ty};
use crate::ops::conv::ConvOp;
use crate::ops::linalg::{Gemm, LinalgOp};
use crate::ops::qint8::{Int8Core, Int8Kernel};

pub fn lower(op: &Int8Kernel, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let y = output(outs, 0)?;
    let (x, w, mult, shift) = (input(ins, 0)?, input(ins, 1)?, input(ins, 3)?, input(ins, 4)?);
    let bias = ins.get(2).cloned().flatten();
    let axis = op.channel_axis(y.shape().len());
    let m = y.shape()[axis];
    if mult.len() != m || shift.len() != m {
        return Err(OpError::invalid(format!("Int8Kernel needs {m} multipliers and shifts")));
    }
    // An absorbed LeakyRelu: the factor of negative accumulators.
    let neg = match (ins.get(5).cloned().flatten(), ins.get(6).cloned().flatten()) {
        (Some(q), Some(s)) if q.len() == m && s.len() == m => Some((q, s)),
        (None, None) => None,
        _ => return Err(OpError::invalid(format!("Int8Kernel needs {m} negative-side multipliers and shifts, or none"))),
    };
    let neg = neg.as_ref().map(|(q, s)| (q, s));

    if super::qint8_dot2::lower(op, cx, x, w, bias.as_ref(), (mult, shift), neg, y)? {
        return Ok(());
    }
    let acc_buf = cx.scratch("acc", DType::I32, y.shape().to_vec());
    lower_accumulate(op, cx, x, w, bias, acc_buf, y)?;
    requant(op, cx, acc_buf, (mult, shift), neg, y, axis, m);
    Ok(())
}

/// `x - x_zp` into an int16 scratch, then the float op's lowering on integers.
fn lower_accumulate(
    op: &Int8Kernel,
    cx: &mut LowerCx,
    x: &Operand,
    w: &Operand,
    bias: Option<Operand>,
    acc_buf: BufId,
    y: &Operand,
) -> Result<(), OpError> {
    let m = y.shape()[op.channel_axis(y.shape().len())];
    let xc = if op.x_zp == 0 {
        x.clone()
    } else {
        let buf = cx.scratch("xc", DType::I16, x.shape().to_vec());
        let mut kb = cx.kernel("center");
        kb.for_(x.len(), |kb, i| kb.store(buf, i.clone(), e::sub(e::load(x.buf, i), e::i32(op.x_zp))));
        cx.emit(kb.finish());
        Operand { buf, ty: TypeInfo::new(DType::I16, x.shape().to_vec()), konst: None }
    };
    let acc = Operand { buf: acc_buf, ty: TypeInfo::new(DType::I32, y.shape().to_vec()), konst: None };
    match &op.core {
        Int8Core::Conv(a) => {
            super::conv::lower(&ConvOp::Conv(a.clone()), cx, &[Some(xc), Some(w.clone()), bias], &[Some(acc)])?
        }
        Int8Core::ConvTranspose(t) => {
            super::conv::lower(&ConvOp::ConvTranspose(t.clone()), cx, &[Some(xc), Some(w.clone()), bias], &[Some(acc)])?
        }
        Int8Core::Dense { trans_b } => {
            // Leading axes of x are rows: the 2-D Gemm on the same buffers.
            let k = *x.shape().last().unwrap_or(&1);
            let rows = x.len() / k.max(1);
            let as2 = |o: &Operand, shape: Vec<usize>| Operand { ty: TypeInfo::new(o.ty.dtype, shape), ..o.clone() };
            let gemm = LinalgOp::Gemm(Gemm { alpha: 1.0, beta: 1.0, trans_a: false, trans_b: *trans_b });
            let ins = [Some(as2(&xc, vec![rows, k])), Some(w.clone()), bias];
            super::linalg::lower(&gemm, cx, &ins, &[Some(as2(&acc, vec![rows, m]))])?
        }
    }
    Ok(())
}

/// The `requant` kernel: accumulators to the output type.
#[allow(clippy::too_many_arguments)]
fn requant(
    op: &Int8Kernel,
    cx: &mut LowerCx,
    acc_buf: BufId,
    (mult, shift): (&Operand, &Operand),
    neg: Option<(&Operand, &Operand)>,
    y: &Operand,
    axis: usize,
    m: usize,
) {

    let outer: usize = y.shape()[..axis].iter().product();
    let inner: usize = y.shape()[axis + 1..].iter().product();
    let mut kb = cx.kernel("requant");
    kb.for_shape(&[outer, m], |kb, ix| {
        let (o, c) = (&ix[0], &ix[1]);
        // (multiplier, left shift, right shift) of a side.
        let side = |kb: &mut KernelBuilder, mult: BufId, shift: BufId| {
            let q = kb.let_(Ty::I32, e::load(mult, c.clone()));
            let s = kb.let_(Ty::I32, e::load(shift, c.clone()));
            let left = kb.let_(Ty::I32, e::bin(BinOp::Max, e::var(s), e::i32(0)));
            let right = kb.let_(Ty::I32, e::bin(BinOp::Max, e::sub(e::i32(0), e::var(s)), e::i32(0)));
            (q, left, right)
        };
        let pos = side(kb, mult.buf, shift.buf);
        let negs = neg.map(|(nq, ns)| side(kb, nq.buf, ns.buf));
        let base = imul(
            iadd(imul(o.clone(), m as i64), c.clone()),
            inner as i64,
        );
        kb.for_(inner, |kb, i| {
            let at = iadd(base.clone(), i);
            let a = kb.let_(Ty::I32, e::load(acc_buf, at.clone()));
            let pick = |p: crate::kir::Var, n: Option<crate::kir::Var>| match n {
                Some(n) => e::select(e::bin(BinOp::Lt, e::var(a), e::i32(0)), e::var(n), e::var(p)),
                None => e::var(p),
            };
            let (q, left, right) = (
                pick(pos.0, negs.map(|n| n.0)),
                pick(pos.1, negs.map(|n| n.1)),
                pick(pos.2, negs.map(|n| n.2)),
            );
            let v = requantize(kb, e::var(a), q, left, right);
            let v = e::add(v, e::i32(op.y_zp));
            let v = e::bin(BinOp::Min, e::bin(BinOp::Max, v, e::i32(op.lo)), e::i32(op.hi));
            kb.store(y.buf, at, v);
        });
    });
    cx.emit(kb.finish());
}

/// `MultiplyByQuantizedMultiplier(a, q, shift)` with `left = max(shift, 0)`, `right =
/// max(-shift, 0)`, as I32 (the result) from I32 operands; mirrors `ops::qint8::mbqm`.
fn requantize(kb: &mut KernelBuilder, a: Expr, q: Expr, left: Expr, right: Expr) -> Expr {
    let a = e::bin(BinOp::Shl, a, left);
    // SaturatingRoundingDoublingHighMul; q is in [2^30, 2^31), so no saturating case.
    let ab = kb.let_(Ty::I64, e::mul(e::cast(Ty::I64, a), e::cast(Ty::I64, q)));
    let neg = |v: Expr| e::bin(BinOp::Lt, v, e::i64(0));
    let nudge = e::select(neg(e::var(ab)), e::i64(1 - (1 << 30)), e::i64(1 << 30));
    let t = kb.let_(Ty::I64, e::add(e::var(ab), nudge));
    // C's truncating `t / 2^31` as a shift: bias negative values by 2^31 - 1 first.
    let biased = e::add(e::var(t), e::select(neg(e::var(t)), e::i64((1 << 31) - 1), e::i64(0)));
    let hi = kb.let_(Ty::I32, e::cast(Ty::I32, e::bin(BinOp::Shr, biased, e::i64(31))));
    // RoundingDivideByPOT(hi, right): round to nearest, ties away from zero.
    let mask = kb.let_(
        Ty::I32,
        e::cast(Ty::I32, e::sub(e::bin(BinOp::Shl, e::i64(1), e::cast(Ty::I64, right.clone())), e::i64(1))),
    );
    let rem = e::bin(BinOp::And, e::var(hi), e::var(mask));
    let neg_hi = e::select(e::bin(BinOp::Lt, e::var(hi), e::i32(0)), e::i32(1), e::i32(0));
    let threshold = e::add(e::bin(BinOp::Shr, e::var(mask), e::i32(1)), neg_hi);
    let up = e::select(e::bin(BinOp::Gt, rem, threshold), e::i32(1), e::i32(0));
    e::add(e::bin(BinOp::Shr, e::var(hi), right), up)
}


#[cfg(test)]
mod tests {
    use super::super::linalg::testkit::run_op;
    use super::*;
    use crate::ir::Tensor;
    use crate::ops::conv::{AutoPad, ConvTranspose, WindowAttrs};
    use crate::ops::qint8::quantize_multiplier;
    use crate::ops::Semantics;

    fn ramp_i8(n: usize, seed: usize) -> Vec<i8> {
        (0..n).map(|i| (((i * 37 + seed * 11) % 251) as i32 - 125) as i8).collect()
    }

    /// The KIR of each core (Conv padded and strided, ConvTranspose strided, dense)
    /// gives the reference evaluator's bits, including the fixed-point requantisation.
    #[test]
    fn int8_kernel_matches_the_reference() {
        let window = |strides: Vec<usize>, pads: Vec<usize>| WindowAttrs {
            auto_pad: AutoPad::NotSet,
            kernel_shape: None,
            strides,
            dilations: vec![],
            pads,
            group: 1,
        };
        // (core, x shape, w shape, channels)
        let cases = vec![
            (Int8Core::Conv(window(vec![2, 1], vec![1, 1, 0, 1])), vec![1, 3, 5, 4], vec![4, 3, 3, 2], 4),
            (
                Int8Core::ConvTranspose(ConvTranspose {
                    window: window(vec![2, 2], vec![1, 1, 1, 1]),
                    output_padding: vec![],
                    output_shape: None,
                }),
                vec![1, 3, 3, 3],
                vec![3, 2, 4, 4],
                2,
            ),
            (
                Int8Core::ConvTranspose(ConvTranspose {
                    window: WindowAttrs { dilations: vec![2], ..window(vec![4], vec![2, 1]) },
                    output_padding: vec![1],
                    output_shape: None,
                }),
                vec![2, 5, 7],
                vec![5, 3, 8],
                3,
            ),
            (Int8Core::Conv(WindowAttrs { dilations: vec![3], ..window(vec![1], vec![3, 3]) }), vec![1, 5, 9], vec![6, 5, 3], 6),
            (Int8Core::Conv(WindowAttrs { group: 2, ..window(vec![1, 1], vec![1, 1, 1, 1]) }), vec![1, 6, 4, 5], vec![4, 3, 3, 3], 4),
            (Int8Core::Dense { trans_b: true }, vec![2, 3, 6], vec![5, 6], 5),
            (Int8Core::Dense { trans_b: true }, vec![1, 7], vec![11, 7], 11),
            (Int8Core::Dense { trans_b: false }, vec![3, 6], vec![6, 5], 5),
        ];
        // Each case plain, then with an absorbed LeakyRelu (slope 0.1: negative-side inputs).
        let cases = cases.into_iter().flat_map(|c| [(c.clone(), false), (c, true)]);
        for ((core, xs, ws, m), leaky) in cases {
            let op = Int8Kernel { core, x_zp: -7, y_zp: 3, lo: -128, hi: 100, out: DType::I8 };
            let (q, s): (Vec<i32>, Vec<i32>) = (0..m).map(|c| quantize_multiplier(0.0005 * (c + 1) as f64)).unzip();
            let mut ins = vec![
                Tensor::from_vec(&xs, ramp_i8(xs.iter().product(), 1)),
                Tensor::from_vec(&ws, ramp_i8(ws.iter().product(), 2)),
                Tensor::from_vec(&[m], (0..m as i32).map(|c| c * 1000 - 1500).collect::<Vec<i32>>()),
                Tensor::from_vec(&[m], q),
                Tensor::from_vec(&[m], s),
            ];
            if leaky {
                let (nq, ns): (Vec<i32>, Vec<i32>) = (0..m).map(|c| quantize_multiplier(0.00005 * (c + 1) as f64)).unzip();
                ins.push(Tensor::from_vec(&[m], nq));
                ins.push(Tensor::from_vec(&[m], ns));
            }
            let refs: Vec<Option<&Tensor>> = ins.iter().map(Some).collect();
            let want = op.eval(&refs).expect("reference");
            let got = run_op(&ins, &[want[0].type_info()], |cx, i, o| lower(&op, cx, i, o));
            assert_eq!(got[0], want[0], "{:?} leaky {leaky}", op.core);
            if leaky {
                let plain = op.eval(&refs[..5]).expect("reference");
                assert_ne!(plain[0], want[0], "the negative side changes something");
            }
            // Constant weights and requantisation: the dual-MAC form (qint8_dot2).
            let konst = |i: &[Option<Operand>]| -> Vec<Option<Operand>> {
                i.iter()
                    .enumerate()
                    .map(|(k, o)| {
                        o.clone().map(|o| Operand { konst: (k != 0).then(|| std::sync::Arc::new(ins[k].clone())), ..o })
                    })
                    .collect()
            };
            let got = run_op(&ins, &[want[0].type_info()], |cx, i, o| lower(&op, cx, &konst(i), o));
            assert_eq!(got[0], want[0], "dual-MAC form of {:?} leaky {leaky}", op.core);
        }
    }
}

//! Lowering of `Einsum`: one loop nest over every label of the equation, output labels
//! outside (one output element per iteration) and summed labels inside, accumulating
//! in a variable so that narrow output types round once.
//!
//! Each operand's index is `Σ label_index × stride`, where a label's stride sums the
//! strides of every axis carrying it (repeated labels walk the diagonal) and is 0 on
//! size-1 axes (broadcast). This is exactly the walk `ops::linalg_einsum::contract`
//! does, so the results match the reference evaluator term for term.

use super::linalg::{mac, output, zero};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::kir::build::{iadd, imul, linear};
use crate::kir::{e, Expr};
use crate::ops::linalg::Einsum;

pub(super) fn lower(op: &Einsum, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> Result<(), OpError> {
    let y = output(outs, 0)?;
    let operands = ins
        .iter()
        .enumerate()
        .map(|(i, o)| o.as_ref().ok_or_else(|| OpError::invalid(format!("input {i} is missing"))))
        .collect::<Result<Vec<_>, _>>()?;
    let ty = y.kty()?;
    if operands.iter().any(|o| o.kty().ok() != Some(ty)) {
        return Err(OpError::invalid("Einsum operands must share the output's type"));
    }
    let shapes: Vec<&[usize]> = operands.iter().map(|o| o.shape()).collect();
    let plan = op.labels(&shapes)?;
    let dims: Vec<usize> = plan.sizes.iter().map(|s| s.1).collect();
    let strides: Vec<Vec<usize>> = plan
        .axes
        .iter()
        .zip(&shapes)
        .map(|(labels, shape)| {
            let st = row_major_strides(shape);
            plan.sizes
                .iter()
                .map(|(l, _)| labels.iter().enumerate().filter(|&(i, x)| x == l && shape[i] != 1).map(|(i, _)| st[i]).sum())
                .collect()
        })
        .collect();
    let (out_dims, red_dims) = dims.split_at(plan.n_out);
    let mut k = cx.kernel("");
    k.for_shape(out_dims, |k, oi| {
        let acc = k.let_(ty, zero(ty));
        k.for_shape(red_dims, |k, ri| {
            let ix: Vec<Expr> = oi.iter().chain(ri).cloned().collect();
            let mut loads = operands.iter().zip(&strides).map(|(o, st)| {
                let at = ix.iter().zip(st).fold(e::idx(0), |a, (i, &s)| iadd(a, imul(i.clone(), s as i64)));
                e::load(o.buf, at)
            });
            let first = loads.next().unwrap_or_else(|| zero(ty));
            let (rest, last) = {
                let mut all: Vec<Expr> = std::iter::once(first).chain(loads).collect();
                let last = all.pop().expect("at least one factor");
                (all.into_iter().reduce(e::mul), last)
            };
            let term = match rest {
                Some(r) => mac(ty, e::var(acc), r, last),
                None => e::add(e::var(acc), last),
            };
            k.set(acc, term);
        });
        k.store(y.buf, linear(out_dims, oi), e::var(acc));
    });
    cx.emit(k.finish());
    Ok(())
}

fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        st[i] = st[i + 1] * shape[i + 1];
    }
    st
}

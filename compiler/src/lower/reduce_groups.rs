//! Groups of elements and the small kernel-building helpers shared by the reduce,
//! normalize and signal lowerings.
//!
//! Most ops of these families are "for each group of elements, compute statistics,
//! then write": a reduction's reduced axes, a softmax lane, a layer-norm row, a
//! group-norm block. [`Groups`] loops over the groups and, as many times as the op
//! needs passes, over one group's elements; statistics accumulate in kernel variables.

use super::super::Operand;
use crate::error::OpError;
use crate::kir::build::{iadd, linear, strided, strides, KernelBuilder};
use crate::kir::{e, BinOp, Expr, Ty, Var};

/// Required operand `i`.
pub(in crate::lower) fn operand(v: &[Option<Operand>], i: usize) -> Result<&Operand, OpError> {
    opt_operand(v, i).ok_or_else(|| OpError::invalid(format!("operand {i} is required but missing")))
}

/// Optional operand `i`.
pub(in crate::lower) fn opt_operand(v: &[Option<Operand>], i: usize) -> Option<&Operand> {
    v.get(i).and_then(|o| o.as_ref())
}

/// The values of an integer operand that must be a compile-time constant (axes, k ...):
/// a runtime value would make the output shape data-dependent.
pub(in crate::lower) fn konst_ints(o: &Operand, what: &str) -> Result<Vec<i64>, OpError> {
    let t = o.konst.as_ref().ok_or_else(|| OpError::unsupported(format!("{what} given at run time")))?;
    t.to_i64_vec().ok_or_else(|| OpError::invalid(format!("{what} must be an integer tensor")))
}

/// The single value of a one-element integer list.
pub(in crate::lower) fn single(v: &[i64], what: &str) -> Result<i64, OpError> {
    match v {
        [k] => Ok(*k),
        _ => Err(OpError::invalid(format!("{what} must hold exactly one integer"))),
    }
}

/// A float literal of type `ty` (F32 or F64).
pub(in crate::lower) fn flit(ty: Ty, v: f64) -> Expr {
    match ty {
        Ty::F64 => e::f64(v),
        _ => e::f32(v as f32),
    }
}

/// An integer literal of type `ty`.
pub(in crate::lower) fn ilit(ty: Ty, v: i64) -> Expr {
    match ty {
        Ty::I32 => e::i32(v as i32),
        Ty::Index => e::idx(v),
        _ => e::i64(v),
    }
}

/// A loader of `o`'s elements as `ty` (converting when `o` loads as another type).
pub(in crate::lower) fn loader(o: &Operand, ty: Ty) -> Result<impl Fn(Expr) -> Expr, OpError> {
    let (buf, convert) = (o.buf, o.kty()? != ty);
    Ok(move |i| {
        let l = e::load(buf, i);
        if convert { e::cast(ty, l) } else { l }
    })
}

/// `v != v`: true for NaN.
pub(in crate::lower) fn is_nan(v: Expr) -> Expr {
    e::bin(BinOp::Ne, v.clone(), v)
}

pub(in crate::lower) fn and(a: Expr, b: Expr) -> Expr {
    e::bin(BinOp::And, a, b)
}

pub(in crate::lower) fn or(a: Expr, b: Expr) -> Expr {
    e::bin(BinOp::Or, a, b)
}

/// `acc = acc + v`.
pub(in crate::lower) fn accumulate(k: &mut KernelBuilder, acc: Var, v: Expr) {
    k.set(acc, e::add(e::var(acc), v));
}

/// A tensor's elements split into groups: `mask[d]` marks the dims a group spans (the
/// reduced dims); each setting of the other (kept) dims is one group.
pub(in crate::lower) struct Groups {
    pub shape: Vec<usize>,
    /// `mask[d]`: dim `d` is reduced (spanned by each group).
    pub mask: Vec<bool>,
}

/// One group inside a [`Groups::for_groups`] loop.
pub(in crate::lower) struct Group {
    /// The multi-index of the group's first element (0 in the reduced dims).
    pub ix: Vec<Expr>,
    /// Its linear index in the input.
    pub base: Expr,
    /// The group's linear index among all groups (row-major over the kept dims): the
    /// output index of a reduction, with or without keepdims.
    pub out: Expr,
}

impl Groups {
    pub fn new(shape: &[usize], mask: Vec<bool>) -> Self {
        Groups { shape: shape.to_vec(), mask }
    }

    /// Lanes along one axis.
    pub fn along(shape: &[usize], axis: usize) -> Self {
        Groups::new(shape, (0..shape.len()).map(|d| d == axis).collect())
    }

    fn dims(&self, reduced: bool) -> Vec<usize> {
        (0..self.shape.len()).filter(|&d| self.mask[d] == reduced).collect()
    }

    /// Elements per group.
    pub fn size(&self) -> usize {
        self.dims(true).iter().map(|&d| self.shape[d]).product()
    }

    /// Loops over the groups.
    pub fn for_groups(&self, k: &mut KernelBuilder, f: impl FnOnce(&mut KernelBuilder, &Group)) {
        let kept = self.dims(false);
        let extents: Vec<usize> = kept.iter().map(|&d| self.shape[d]).collect();
        let st = strides(&self.shape);
        k.for_shape(&extents, |k, kix| {
            let mut ix = vec![e::idx(0); self.shape.len()];
            for (&d, i) in kept.iter().zip(kix) {
                ix[d] = i.clone();
            }
            let g = Group { base: strided(&st, &ix), out: linear(&extents, kix), ix };
            f(k, &g)
        });
    }

    /// Loops over a group's elements in row-major order; `f` gets the element's
    /// multi-index and linear index.
    pub fn for_elems(&self, k: &mut KernelBuilder, g: &Group, f: impl FnOnce(&mut KernelBuilder, &[Expr], Expr)) {
        let red = self.dims(true);
        let extents: Vec<usize> = red.iter().map(|&d| self.shape[d]).collect();
        let st = strides(&self.shape);
        let rst: Vec<usize> = red.iter().map(|&d| st[d]).collect();
        k.for_shape(&extents, |k, rix| {
            let mut ix = g.ix.clone();
            for (&d, i) in red.iter().zip(rix) {
                ix[d] = i.clone();
            }
            let lin = iadd(g.base.clone(), strided(&rst, rix));
            f(k, &ix, lin)
        });
    }

    /// `sum of f(element)` over the group, in a new variable of type `ty`.
    pub fn sum(&self, k: &mut KernelBuilder, g: &Group, ty: Ty, zero: Expr, f: impl Fn(Expr) -> Expr) -> Var {
        let acc = k.let_(ty, zero);
        self.for_elems(k, g, |k, _, i| accumulate(k, acc, f(i)));
        acc
    }
}

//! Building kernels: nested loops over shapes, row-major and broadcast indexing.
//!
//! Index arithmetic is simplified as it is built (extent-1 loops vanish, `x * 1` and
//! `x + 0` disappear), so the backends see the plain affine forms they vectorise.

use super::e;
use super::{BinOp, BufId, Expr, Kernel, Lit, Stmt, Ty, Var};

pub struct KernelBuilder {
    kernel: Kernel,
    /// Statement lists being filled: the innermost open block is last.
    blocks: Vec<Vec<Stmt>>,
}

impl KernelBuilder {
    pub fn new(name: impl Into<String>) -> Self {
        KernelBuilder { kernel: Kernel { name: name.into(), vars: Vec::new(), body: Vec::new() }, blocks: vec![Vec::new()] }
    }

    pub fn var(&mut self, ty: Ty) -> Var {
        self.kernel.vars.push(ty);
        Var(self.kernel.vars.len() as u32 - 1)
    }

    /// A new variable initialised to `value`.
    pub fn let_(&mut self, ty: Ty, value: Expr) -> Var {
        let v = self.var(ty);
        self.set(v, value);
        v
    }

    pub fn push(&mut self, s: Stmt) {
        self.blocks.last_mut().expect("a block is open").push(s);
    }

    pub fn set(&mut self, var: Var, value: Expr) {
        self.push(Stmt::Set { var, value });
    }

    pub fn store(&mut self, buf: BufId, index: Expr, value: Expr) {
        self.push(Stmt::Store { buf, index, value });
    }

    pub fn fail(&mut self, code: i32) {
        self.push(Stmt::Fail(code));
    }

    /// `for i in 0..extent`; the closure gets the loop index. An extent of 1 emits the
    /// body once with index 0, an extent of 0 emits nothing.
    pub fn for_(&mut self, extent: usize, f: impl FnOnce(&mut Self, Expr)) {
        match extent {
            0 => {}
            1 => f(self, e::idx(0)),
            _ => {
                let var = self.var(Ty::Index);
                self.blocks.push(Vec::new());
                f(self, e::var(var));
                let body = self.blocks.pop().expect("opened above");
                self.push(Stmt::Loop { var, extent, body });
            }
        }
    }

    /// Nested loops over `shape` (outermost first); the closure gets one index per dim.
    pub fn for_shape(&mut self, shape: &[usize], f: impl FnOnce(&mut Self, &[Expr])) {
        fn rec(b: &mut KernelBuilder, shape: &[usize], ix: &mut Vec<Expr>, f: &mut Option<Box<dyn FnOnce(&mut KernelBuilder, &[Expr]) + '_>>) {
            match shape.split_first() {
                None => (f.take().expect("body emitted once"))(b, ix),
                Some((&d, rest)) => b.for_(d, |b, i| {
                    ix.push(i);
                    rec(b, rest, ix, f);
                    ix.pop();
                }),
            }
        }
        if shape.contains(&0) {
            return;
        }
        let mut f: Option<Box<dyn FnOnce(&mut KernelBuilder, &[Expr])>> = Some(Box::new(f));
        rec(self, shape, &mut Vec::with_capacity(shape.len()), &mut f);
    }

    pub fn if_(&mut self, cond: Expr, then: impl FnOnce(&mut Self), els: impl FnOnce(&mut Self)) {
        self.blocks.push(Vec::new());
        then(self);
        let then = self.blocks.pop().expect("opened above");
        self.blocks.push(Vec::new());
        els(self);
        let els = self.blocks.pop().expect("opened above");
        self.push(Stmt::If { cond, then, els });
    }

    pub fn finish(mut self) -> Kernel {
        self.kernel.body = self.blocks.pop().expect("the root block");
        self.kernel
    }
}

/// `a + b` on Index expressions, folding literals.
pub fn iadd(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (Expr::Lit(Lit::Index(0)), _) => b,
        (_, Expr::Lit(Lit::Index(0))) => a,
        (Expr::Lit(Lit::Index(x)), Expr::Lit(Lit::Index(y))) => e::idx(x + y),
        _ => e::add(a, b),
    }
}

/// `a * k` on an Index expression and a constant, folding literals.
pub fn imul(a: Expr, k: i64) -> Expr {
    match (&a, k) {
        (_, 0) => e::idx(0),
        (_, 1) => a,
        (Expr::Lit(Lit::Index(x)), _) => e::idx(x * k),
        _ => e::mul(a, e::idx(k)),
    }
}

pub use crate::ops::util::strides;

/// The linear index of `ix` in a row-major tensor of `shape`.
pub fn linear(shape: &[usize], ix: &[Expr]) -> Expr {
    strided(&strides(shape), ix)
}

/// `sum(ix[d] * strides[d])`.
pub fn strided(strides: &[usize], ix: &[Expr]) -> Expr {
    ix.iter().zip(strides).fold(e::idx(0), |acc, (i, &s)| iadd(acc, imul(i.clone(), s as i64)))
}

/// The linear index into a tensor of `shape` broadcast (numpy rules) to the iteration
/// space indexed by `ix` (whose rank is at least `shape`'s): leading dims are dropped,
/// dims of size 1 contribute nothing.
pub fn broadcast(shape: &[usize], ix: &[Expr]) -> Expr {
    let lead = ix.len() - shape.len();
    let st = strides(shape);
    let eff: Vec<usize> = shape.iter().zip(&st).map(|(&d, &s)| if d == 1 { 0 } else { s }).collect();
    strided(&eff, &ix[lead..])
}

/// Comparison helper on Index values.
pub fn ilt(a: Expr, b: Expr) -> Expr {
    e::bin(BinOp::Lt, a, b)
}

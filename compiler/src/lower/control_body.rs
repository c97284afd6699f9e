//! Bodies of control-flow ops as KIR: typing a body for its operands, lowering it into
//! the current program, and nesting its kernels inside one enclosing kernel.
//!
//! A body lowers like any graph ([`super::lower_body`]) into kernels of its own; KIR
//! kernels are flat statement lists, so the control op takes those kernels back out
//! of the program and inlines their statements into the one kernel that holds the
//! `If` or the loop, renumbering their variables into that kernel's variable space.

use super::{copy, lower_body, LowerCx, Operand};
use crate::error::{Error, OpError};
use crate::front::onnx::SubGraph;
use crate::ir::{Graph, TypeInfo};
use crate::kir::build::KernelBuilder;
use crate::kir::{BufId, Expr, Kernel, Stmt, Var};

/// A body ready to lower: typed for the operands it will read.
pub(super) struct Body {
    graph: Graph,
}

impl Body {
    /// Binds the body's inputs to `inputs` (formal inputs, then captures): constant
    /// operands become constants of the body, so its lowering can specialise on them.
    pub fn new(body: &SubGraph, inputs: &[(TypeInfo, Option<&Operand>)]) -> Result<Body, OpError> {
        let mut g = body.graph.clone();
        if g.inputs.len() != inputs.len() {
            return Err(OpError::invalid(format!("a body takes {} inputs, {} given", g.inputs.len(), inputs.len())));
        }
        for (&id, (ty, op)) in g.inputs.clone().iter().zip(inputs) {
            match op.and_then(|o| o.konst.clone()) {
                Some(t) => g.set_constant(id, t),
                None => g.value_mut(id).ty = Some(ty.clone()),
            }
        }
        crate::passes::propagate::propagate(&mut g).map_err(op_error)?;
        Ok(Body { graph: g })
    }

    /// The output types of the typed body.
    pub fn output_types(&self) -> Result<Vec<TypeInfo>, OpError> {
        let g = &self.graph;
        g.outputs.iter().map(|&o| g.value(o).ty.clone().ok_or_else(|| OpError::unsupported("a body output without a static type"))).collect()
    }

    /// True when output `k` is the constant `true` (a Loop body that never exits early).
    pub fn output_is_true(&self, k: usize) -> bool {
        let g = &self.graph;
        g.outputs.get(k).and_then(|&o| g.value(o).constant.as_ref()).and_then(|t| t.to_i64_vec()).is_some_and(|v| v == [1])
    }

    /// Lowers the body reading `inputs`; returns its kernels (removed from the
    /// program) and the buffers holding its outputs.
    pub fn lower(&self, cx: &mut LowerCx, inputs: &[BufId]) -> Result<(Vec<Kernel>, Vec<BufId>), OpError> {
        let start = cx.prog.kernels.len();
        let outs = lower_body(&self.graph, cx.prog, inputs).map_err(op_error)?;
        Ok((cx.prog.kernels.drain(start..).collect(), outs))
    }
}

/// Appends `kernels`' statements to `k`, with their variables renumbered as new
/// variables of `k`.
pub(super) fn inline(k: &mut KernelBuilder, kernels: Vec<Kernel>) {
    for kernel in kernels {
        let vars: Vec<Var> = kernel.vars.iter().map(|&ty| k.var(ty)).collect();
        for s in kernel.body {
            k.push(rename_stmt(s, &vars));
        }
    }
}

/// Appends a copy of `len` elements from `src` to `dst` (nothing when they are the
/// same buffer).
pub(super) fn copy_into(k: &mut KernelBuilder, src: BufId, dst: BufId, len: usize) {
    if src != dst {
        inline(k, vec![copy::copy_kernel("", src, dst, len)]);
    }
}

fn rename_stmt(s: Stmt, vars: &[Var]) -> Stmt {
    let v = |x: Var| vars[x.0 as usize];
    let block = |b: Vec<Stmt>| b.into_iter().map(|s| rename_stmt(s, vars)).collect();
    match s {
        Stmt::Loop { var, extent, body } => Stmt::Loop { var: v(var), extent, body: block(body) },
        Stmt::Set { var, value } => Stmt::Set { var: v(var), value: rename_expr(value, vars) },
        Stmt::Store { buf, index, value } => Stmt::Store { buf, index: rename_expr(index, vars), value: rename_expr(value, vars) },
        Stmt::If { cond, then, els } => Stmt::If { cond: rename_expr(cond, vars), then: block(then), els: block(els) },
        Stmt::Fail(c) => Stmt::Fail(c),
    }
}

fn rename_expr(x: Expr, vars: &[Var]) -> Expr {
    let r = |b: Box<Expr>| Box::new(rename_expr(*b, vars));
    match x {
        Expr::Lit(l) => Expr::Lit(l),
        Expr::Var(var) => Expr::Var(vars[var.0 as usize]),
        Expr::Load { buf, index } => Expr::Load { buf, index: r(index) },
        Expr::Unary(op, a) => Expr::Unary(op, r(a)),
        Expr::Binary(op, a, b) => Expr::Binary(op, r(a), r(b)),
        Expr::Select(c, a, b) => Expr::Select(r(c), r(a), r(b)),
        Expr::Cast(t, a) => Expr::Cast(t, r(a)),
        Expr::Bitcast(t, a) => Expr::Bitcast(t, r(a)),
        Expr::Fma(a, b, c) => Expr::Fma(r(a), r(b), r(c)),
    }
}

/// A body's error as the control node's: unsupported stays unsupported.
fn op_error(e: Error) -> OpError {
    match e {
        Error::Node { source, node, .. } => match source {
            OpError::Unsupported(m) => OpError::Unsupported(format!("in node '{node}' of a body: {m}")),
            OpError::DataDependent(m) => OpError::DataDependent(m),
            OpError::Invalid(m) => OpError::Invalid(format!("in node '{node}' of a body: {m}")),
        },
        e if e.is_unsupported() => OpError::Unsupported(e.to_string()),
        e => OpError::Invalid(e.to_string()),
    }
}

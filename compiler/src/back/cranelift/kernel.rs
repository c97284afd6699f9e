//! One KIR kernel → one local function with `NAME_run`'s signature, returning 0 or a
//! `Stmt::Fail` code.
//!
//! Buffer base addresses are computed once at entry (for the buffers the kernel
//! touches), KIR variables become Cranelift `Variable`s (the frontend builds SSA), and
//! loops are bottom-tested with a hidden counter: the interpreter reassigns the loop
//! variable at the start of every iteration, so a body that writes it cannot change the
//! trip count.

use cranelift_codegen::ir::{condcodes::IntCC, types, BlockArg, InstBuilder, MemFlagsData, Signature, Type, Value};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_module::{FuncId, Module};
use cranelift_object::ObjectModule;

use super::isa::Caps;
use super::{failed, unsupported};
use crate::back::{BackendError, Input};
use crate::kir::{BinOp, BufId, Expr, Kernel, Lit, Program, Stmt, Ty};
use crate::plan::layout::Place;

/// The Cranelift type of a KIR scalar type (`Bool` is a byte holding 0 or 1).
pub fn clif(ty: Ty) -> Type {
    match ty {
        Ty::F32 => types::F32,
        Ty::F64 => types::F64,
        Ty::I32 => types::I32,
        Ty::I64 | Ty::Index => types::I64,
        Ty::Bool => types::I8,
    }
}

/// State while translating one kernel.
pub struct KernelCx<'a, 'f> {
    pub b: FunctionBuilder<'f>,
    pub prog: &'a Program,
    pub caps: Caps,
    vars: Vec<(Variable, Type)>,
    /// Base address of each buffer the kernel touches, indexed by `BufId`.
    bases: Vec<Option<Value>>,
    /// Occurrences of each KIR variable in the whole kernel (see `vector::count_uses`).
    pub uses: Vec<u32>,
    /// Whether the kernel stores to each buffer: the others are read-only for the whole
    /// function, so their loads may be moved (see `block::KernelCx::block_loop`).
    pub written: Vec<bool>,
}

pub fn define(module: &mut ObjectModule, id: FuncId, sig: &Signature, input: &Input, k: &Kernel, caps: Caps) -> Result<(), BackendError> {
    let mut ctx = Context::new();
    ctx.func.signature = sig.clone();
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();

    let mut touched = vec![false; input.program.buffers.len()];
    mark_touched(&k.body, &mut touched);
    let mut bases = vec![None; touched.len()];
    for (i, _) in touched.iter().enumerate().filter(|(_, &t)| t) {
        bases[i] = Some(base_address(&mut b, input.layout.places[i], &params, &input.program.buffers[i].name)?);
    }
    let mut vars = Vec::with_capacity(k.vars.len());
    for &ty in &k.vars {
        let v = b.declare_var(clif(ty));
        let zero = zero(&mut b, ty);
        b.def_var(v, zero);
        vars.push((v, clif(ty)));
    }

    let mut uses = vec![0; k.vars.len()];
    super::vector::count_uses(&k.body, &mut uses);
    let mut written = vec![false; input.program.buffers.len()];
    mark_written(&k.body, &mut written);
    let mut cx = KernelCx { b, prog: input.program, caps, vars, bases, uses, written };
    cx.stmts(&k.body)?;
    let ok = cx.b.ins().iconst(types::I32, 0);
    cx.b.ins().return_(&[ok]);
    cx.b.seal_all_blocks();
    cx.b.finalize(module.target_config());
    module.define_function(id, &mut ctx).map_err(|e| failed(format!("{e:?}")))
}

fn zero(b: &mut FunctionBuilder, ty: Ty) -> Value {
    match ty {
        Ty::F32 => b.ins().f32const(0.0),
        Ty::F64 => b.ins().f64const(0.0),
        t => b.ins().iconst(clif(t), 0),
    }
}

/// `inputs[k]`, `outputs[k]`, `weights + offset` or `arena + offset`.
fn base_address(b: &mut FunctionBuilder, place: Place, params: &[Value], name: &str) -> Result<Value, BackendError> {
    let flags = MemFlagsData::new().with_notrap().with_readonly();
    Ok(match place {
        Place::Input(k) => b.ins().load(types::I64, flags, params[2], slot(k)?),
        Place::Output(k) => b.ins().load(types::I64, flags, params[3], slot(k)?),
        Place::Weight(off) => b.ins().iadd_imm_u(params[0], off as i64),
        Place::Arena(off) => b.ins().iadd_imm_u(params[1], off as i64),
        Place::Unused => return Err(failed(format!("buffer '{name}' is used but has no place in the layout"))),
    })
}

fn slot(k: usize) -> Result<i32, BackendError> {
    i32::try_from(k * 8).map_err(|_| unsupported(format!("argument index {k}")))
}

fn mark_touched(stmts: &[Stmt], out: &mut [bool]) {
    for s in stmts {
        match s {
            Stmt::Loop { body, .. } => mark_touched(body, out),
            Stmt::Set { value, .. } => mark_expr(value, out),
            Stmt::Store { buf, index, value } => {
                mark_buf(*buf, out);
                mark_expr(index, out);
                mark_expr(value, out);
            }
            Stmt::If { cond, then, els } => {
                mark_expr(cond, out);
                mark_touched(then, out);
                mark_touched(els, out);
            }
            Stmt::Fail(_) => {}
        }
    }
}

fn mark_written(stmts: &[Stmt], out: &mut [bool]) {
    for s in stmts {
        match s {
            Stmt::Loop { body, .. } => mark_written(body, out),
            Stmt::Store { buf, .. } => mark_buf(*buf, out),
            Stmt::If { then, els, .. } => {
                mark_written(then, out);
                mark_written(els, out);
            }
            Stmt::Set { .. } | Stmt::Fail(_) => {}
        }
    }
}

fn mark_buf(b: BufId, out: &mut [bool]) {
    if let Some(t) = out.get_mut(b.0 as usize) {
        *t = true;
    }
}

fn mark_expr(e: &Expr, out: &mut [bool]) {
    match e {
        Expr::Lit(_) | Expr::Var(_) => {}
        Expr::Load { buf, index } => {
            mark_buf(*buf, out);
            mark_expr(index, out);
        }
        Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Bitcast(_, a) => mark_expr(a, out),
        Expr::Binary(_, a, b) => {
            mark_expr(a, out);
            mark_expr(b, out);
        }
        Expr::Select(a, b, c) | Expr::Fma(a, b, c) => {
            mark_expr(a, out);
            mark_expr(b, out);
            mark_expr(c, out);
        }
    }
}

/// The body of the single loop `body` holds (a register block's inner loop).
fn body_of(body: &[Stmt]) -> &[Stmt] {
    match body {
        [Stmt::Loop { body, .. }] => body,
        _ => body,
    }
}

impl KernelCx<'_, '_> {
    fn stmts(&mut self, stmts: &[Stmt]) -> Result<(), BackendError> {
        for s in stmts {
            self.stmt(s)?;
        }
        Ok(())
    }

    fn stmt(&mut self, s: &Stmt) -> Result<(), BackendError> {
        match s {
            Stmt::Loop { var, extent, body } => {
                let (v, ty) = self.typed_var(*var)?;
                if ty != types::I64 {
                    return Err(failed(format!("loop variable v{} of type {ty}", var.0)));
                }
                if let Some((kinner, width)) = self.promotable(*var, body) {
                    let inner = self.var(kinner)?;
                    self.block_loop(v, *extent, inner, kinner, width, body_of(body))
                } else if let Some(plan) = self.vector_plan(*var, *extent, body) {
                    self.vector_loop(v, *var, *extent, body, &plan)
                } else {
                    self.scalar_loop(v, 0, *extent, body)
                }
            }
            Stmt::Set { var, value } => {
                let (v, ty) = self.typed_var(*var)?;
                let x = self.expr(value)?;
                self.expect_type(x, ty, "assignment")?;
                self.b.def_var(v, x);
                Ok(())
            }
            Stmt::Store { buf, index, value } => {
                let addr = self.address(*buf, index)?;
                let x = self.expr(value)?;
                self.store(*buf, addr, x)
            }
            Stmt::If { cond, then, els } => {
                let c = self.expr(cond)?;
                self.expect_type(c, types::I8, "condition")?;
                let (t, e, join) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
                self.b.ins().brif(c, t, &[], e, &[]);
                self.b.switch_to_block(t);
                self.stmts(then)?;
                self.b.ins().jump(join, &[]);
                self.b.switch_to_block(e);
                self.stmts(els)?;
                self.b.ins().jump(join, &[]);
                self.b.switch_to_block(join);
                Ok(())
            }
            Stmt::Fail(code) => {
                let c = self.b.ins().iconst(types::I32, *code as i64);
                self.b.ins().return_(&[c]);
                // Whatever follows is unreachable but must still be well-formed.
                let dead = self.b.create_block();
                self.b.switch_to_block(dead);
                Ok(())
            }
        }
    }

    /// `for var in start..end`, bottom-tested (nothing is emitted for an empty range).
    pub fn scalar_loop(&mut self, var: Variable, start: usize, end: usize, body: &[Stmt]) -> Result<(), BackendError> {
        if start >= end {
            return Ok(());
        }
        let (head, exit) = (self.b.create_block(), self.b.create_block());
        let i = self.b.append_block_param(head, types::I64);
        let first = self.b.ins().iconst(types::I64, start as i64);
        self.b.ins().jump(head, &[BlockArg::Value(first)]);
        self.b.switch_to_block(head);
        self.b.def_var(var, i);
        self.stmts(body)?;
        let next = self.b.ins().iadd_imm_s(i, 1);
        let more = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, next, end as i64);
        self.b.ins().brif(more, head, &[BlockArg::Value(next)], exit, &[]);
        self.b.switch_to_block(exit);
        Ok(())
    }

    pub fn var(&self, v: crate::kir::Var) -> Result<Variable, BackendError> {
        Ok(self.typed_var(v)?.0)
    }

    /// The Cranelift type of a KIR variable.
    pub fn var_type(&self, v: crate::kir::Var) -> Option<Type> {
        self.vars.get(v.0 as usize).map(|&(_, t)| t)
    }

    /// A variable of the backend's own, beyond the kernel's (a serial statement's lane).
    pub fn fresh_var(&mut self, ty: Type) -> crate::kir::Var {
        let v = self.b.declare_var(ty);
        self.vars.push((v, ty));
        crate::kir::Var(self.vars.len() as u32 - 1)
    }

    fn typed_var(&self, v: crate::kir::Var) -> Result<(Variable, Type), BackendError> {
        self.vars.get(v.0 as usize).copied().ok_or_else(|| failed(format!("undeclared variable v{}", v.0)))
    }

    pub fn base(&self, buf: BufId) -> Result<Value, BackendError> {
        self.bases.get(buf.0 as usize).copied().flatten().ok_or_else(|| failed(format!("unknown buffer b{}", buf.0)))
    }

    /// The address of element `index` of `buf`: `base + index * element size`, in
    /// pointer-sized arithmetic.
    pub fn address(&mut self, buf: BufId, index: &Expr) -> Result<Value, BackendError> {
        let base = self.base(buf)?;
        // A constant term of the index goes to the end of the address, where the x86_64
        // and aarch64 addressing modes fold it into the displacement, instead of an add on
        // the index per access (the rows of a register block differ by constants).
        let (rest, c) = match index {
            Expr::Binary(BinOp::Add, a, b) => match (&**a, &**b) {
                (r, Expr::Lit(Lit::Index(c))) | (Expr::Lit(Lit::Index(c)), r) => (r, *c),
                _ => (index, 0),
            },
            _ => (index, 0),
        };
        let i = self.index(rest)?;
        let size = self.prog.buffer(buf).dtype.size() as i64;
        let off = if size == 1 { i } else { self.b.ins().imul_imm_u(i, size) };
        let addr = self.b.ins().iadd(base, off);
        Ok(if c == 0 { addr } else { self.b.ins().iadd_imm_s(addr, c * size) })
    }

    /// An index expression as a pointer-sized integer (the interpreter also accepts I32).
    pub fn index(&mut self, index: &Expr) -> Result<Value, BackendError> {
        let i = self.expr(index)?;
        match self.b.func.dfg.value_type(i) {
            types::I64 => Ok(i),
            types::I32 => Ok(self.b.ins().sextend(types::I64, i)),
            t => Err(failed(format!("index of type {t}"))),
        }
    }

    pub fn expect_type(&self, v: Value, ty: Type, what: &str) -> Result<(), BackendError> {
        let got = self.b.func.dfg.value_type(v);
        if got == ty {
            Ok(())
        } else {
            Err(failed(format!("{what}: expected {ty}, got {got}")))
        }
    }
}

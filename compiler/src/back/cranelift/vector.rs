//! Vectorising innermost loops four iterations at a time (`f32x4`, `i32x4` and `i32x4`
//! lane masks; x86_64 and aarch64), plus a scalar tail.
//!
//! A loop qualifies when its body is straight-line `Set`s and `Store`s whose every
//! operation has a lane-wise form computing exactly what the scalar code computes (see
//! [`KernelCx::lane`]: float arithmetic, comparisons as masks, selects, I32 bit work with
//! literal shifts, F32↔I32 casts and bitcasts), so the vector loop is bit-identical to
//! the interpreter. That covers `kir::math`'s expansions of exp, erf, tanh ... whole.
//! Stores write F32 buffers contiguously (index coefficient 1 in the loop variable);
//! loads read F32 buffers contiguously or at an invariant index (splatted).
//!
//! Variables the body sets are either *locals* (used nowhere outside the body, set before
//! read: one vector per `Set`) or *serial* (accumulators: set once, read by no other
//! statement). A serial `Set` computes its value's accumulator-free subexpressions as
//! vectors and then runs the scalar statement for lanes 0..4 in order, so a running sum
//! adds in the scalar loop's order and is not reassociated.
//!
//! To keep the order of memory accesses irrelevant, a buffer the body stores to may only
//! be accessed at that store's index expression, or at indices whose ranges over the
//! whole loop cannot overlap it (same affine form, constant offset at least the trip
//! count apart: the rows of a register-blocked GEMM tile). A load under a select arm must
//! also be one the body performs unconditionally (vector code evaluates both arms).
//!
//! Within one vector iteration each distinct load of a buffer the body does not store to
//! is emitted once (the rows of a GEMM tile share their B vector), and the splats of
//! loop-invariant variables and literals are computed once before the loop.

use std::collections::BTreeMap;

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, BlockArg, Endianness, InstBuilder, MemFlagsData, Type, Value};
use cranelift_frontend::Variable;

use super::kernel::KernelCx;
use crate::back::BackendError;
use crate::ir::DType;
use crate::kir::{BinOp, BufId, Expr, Lit, Stmt, Ty, UnOp, Var};

pub(super) const LANES: usize = 4;

/// The coefficient of `var` in an affine index expression, `None` when the expression
/// is not affine in it (or reads memory).
pub(super) fn coefficient(e: &Expr, var: Var) -> Option<i64> {
    match e {
        Expr::Lit(_) => Some(0),
        Expr::Var(v) => Some((*v == var) as i64),
        Expr::Binary(BinOp::Add, a, b) => coefficient(a, var)?.checked_add(coefficient(b, var)?),
        Expr::Binary(BinOp::Sub, a, b) => coefficient(a, var)?.checked_sub(coefficient(b, var)?),
        Expr::Binary(BinOp::Mul, a, b) => match (&**a, &**b) {
            (Expr::Lit(Lit::Index(k)), x) | (x, Expr::Lit(Lit::Index(k))) => coefficient(x, var)?.checked_mul(*k),
            _ => (coefficient(a, var)? == 0 && coefficient(b, var)? == 0).then_some(0),
        },
        Expr::Load { .. } => None,
        Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Bitcast(_, a) => (coefficient(a, var)? == 0).then_some(0),
        Expr::Binary(_, a, b) => (coefficient(a, var)? == 0 && coefficient(b, var)? == 0).then_some(0),
        Expr::Select(a, b, c) | Expr::Fma(a, b, c) => (coefficient(a, var)? == 0 && coefficient(b, var)? == 0 && coefficient(c, var)? == 0).then_some(0),
    }
}

/// `e` as `sum(coef * var) + constant` over Index variables, `None` when it is not
/// affine (or reads memory).
pub(super) fn affine(e: &Expr) -> Option<(BTreeMap<Var, i64>, i64)> {
    let scale = |(m, c): (BTreeMap<Var, i64>, i64), k: i64| -> Option<(BTreeMap<Var, i64>, i64)> {
        let m = m.into_iter().map(|(v, x)| Some((v, x.checked_mul(k)?))).collect::<Option<_>>()?;
        Some((m, c.checked_mul(k)?))
    };
    let sum = |(mut m, c): (BTreeMap<Var, i64>, i64), (n, d): (BTreeMap<Var, i64>, i64)| -> Option<(BTreeMap<Var, i64>, i64)> {
        for (v, x) in n {
            let t = m.entry(v).or_insert(0);
            *t = t.checked_add(x)?;
        }
        m.retain(|_, x| *x != 0);
        Some((m, c.checked_add(d)?))
    };
    match e {
        Expr::Lit(Lit::Index(k)) => Some((BTreeMap::new(), *k)),
        Expr::Var(v) => Some((BTreeMap::from([(*v, 1)]), 0)),
        Expr::Binary(BinOp::Add, a, b) => sum(affine(a)?, affine(b)?),
        Expr::Binary(BinOp::Sub, a, b) => sum(affine(a)?, scale(affine(b)?, -1)?),
        Expr::Binary(BinOp::Mul, a, b) => match (&**a, &**b) {
            (Expr::Lit(Lit::Index(k)), x) | (x, Expr::Lit(Lit::Index(k))) => scale(affine(x)?, *k),
            _ => None,
        },
        _ => None,
    }
}

/// True when the elements `a` and `b` touch over `0..extent` of a coefficient-1 loop
/// are disjoint: the same affine form up to a constant at least `extent` apart.
pub(super) fn disjoint(a: &Expr, b: &Expr, extent: usize) -> bool {
    match (affine(a), affine(b)) {
        (Some((ma, ca)), Some((mb, cb))) => ma == mb && ca.abs_diff(cb) >= extent as u64,
        _ => false,
    }
}

/// What a vector lane holds. `Bool` is a lane mask (all ones or all zeros, in an `i32x4`
/// like the comparisons produce), not the scalar code's 0/1 byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lane {
    F32,
    I32,
    Bool,
}

/// How a vectorisable loop runs, from [`KernelCx::vector_plan`].
pub struct Plan {
    /// Variables the body sets and nothing outside it uses, each first set before it is
    /// read: one vector value per statement that sets it, lane `j` being iteration `i + j`.
    locals: BTreeMap<Var, Lane>,
    /// Variables the body sets that live on (accumulators): each is set once and read by
    /// no other statement; its `Set` runs lane by lane, in iteration order, on the lanes
    /// of its vectorised operands.
    serial: Vec<Var>,
}

/// Counts every occurrence of each variable (reads, `Set` targets, loop variables) in
/// `stmts`, so the vectoriser can tell a loop's temporaries from values that outlive it.
pub fn count_uses(stmts: &[Stmt], uses: &mut [u32]) {
    let mut bump = |v: Var| {
        if let Some(n) = uses.get_mut(v.0 as usize) {
            *n += 1;
        }
    };
    visit_stmts(stmts, &mut bump);
}

fn visit_stmts(stmts: &[Stmt], f: &mut dyn FnMut(Var)) {
    for s in stmts {
        match s {
            Stmt::Loop { var, body, .. } => {
                f(*var);
                visit_stmts(body, f);
            }
            Stmt::Set { var, value } => {
                visit_vars(value, f);
                f(*var);
            }
            Stmt::Store { index, value, .. } => {
                visit_vars(index, f);
                visit_vars(value, f);
            }
            Stmt::If { cond, then, els } => {
                visit_vars(cond, f);
                visit_stmts(then, f);
                visit_stmts(els, f);
            }
            Stmt::Fail(_) => {}
        }
    }
}

fn visit_vars(e: &Expr, f: &mut dyn FnMut(Var)) {
    match e {
        Expr::Lit(_) => {}
        Expr::Var(v) => f(*v),
        Expr::Load { index, .. } => visit_vars(index, f),
        Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Bitcast(_, a) => visit_vars(a, f),
        Expr::Binary(_, a, b) => {
            visit_vars(a, f);
            visit_vars(b, f);
        }
        Expr::Select(a, b, c) | Expr::Fma(a, b, c) => {
            visit_vars(a, f);
            visit_vars(b, f);
            visit_vars(c, f);
        }
    }
}

fn mentions(e: &Expr, pred: &dyn Fn(Var) -> bool) -> bool {
    let mut hit = false;
    visit_vars(e, &mut |v| hit |= pred(v));
    hit
}

/// Loads outside select arms (`uncond`, always executed by the scalar code) and inside
/// them (`cond`, executed only when chosen).
fn split_loads<'e>(e: &'e Expr, in_arm: bool, uncond: &mut Vec<(BufId, &'e Expr)>, cond: &mut Vec<(BufId, &'e Expr)>) {
    match e {
        Expr::Lit(_) | Expr::Var(_) => {}
        Expr::Load { buf, index } => {
            if in_arm { &mut *cond } else { &mut *uncond }.push((*buf, index));
            split_loads(index, in_arm, uncond, cond);
        }
        Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Bitcast(_, a) => split_loads(a, in_arm, uncond, cond),
        Expr::Binary(_, a, b) => {
            split_loads(a, in_arm, uncond, cond);
            split_loads(b, in_arm, uncond, cond);
        }
        Expr::Select(c, a, b) => {
            split_loads(c, in_arm, uncond, cond);
            split_loads(a, true, uncond, cond);
            split_loads(b, true, uncond, cond);
        }
        Expr::Fma(a, b, c) => {
            split_loads(a, in_arm, uncond, cond);
            split_loads(b, in_arm, uncond, cond);
            split_loads(c, in_arm, uncond, cond);
        }
    }
}

/// Operation nodes (not leaves or loads) in `e`: the work a vector loop divides by four.
fn ops(e: &Expr) -> usize {
    match e {
        Expr::Lit(_) | Expr::Var(_) | Expr::Load { .. } => 0,
        Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Bitcast(_, a) => 1 + ops(a),
        Expr::Binary(_, a, b) => 1 + ops(a) + ops(b),
        Expr::Select(a, b, c) | Expr::Fma(a, b, c) => 1 + ops(a) + ops(b) + ops(c),
    }
}

/// Per serial operand, the work that must be vectorised to pay for extracting its four
/// lanes (below that the scalar loop is as fast).
const OPS_PER_EXTRACT: usize = 8;

/// What classifying a loop body needs besides the kernel.
struct Scope<'p> {
    var: Var,
    plan: &'p Plan,
    /// Variables the body sets (locals and serial ones).
    set: &'p [Var],
}

impl Scope<'_> {
    /// Loop-invariant: no loads, no loop variable, no variable the body sets (so the
    /// scalar expression means the same in every iteration).
    fn invariant(&self, e: &Expr) -> bool {
        let mut any_load = false;
        visit_loads(e, &mut |_, _| any_load = true);
        !any_load && !mentions(e, &|v| v == self.var || self.set.contains(&v))
    }
}

/// The vector values of one loop iteration being emitted.
struct Emit {
    var: Var,
    locals: BTreeMap<Var, Value>,
    /// Variables the body sets: never splatted.
    set: Vec<Var>,
    splats: Vec<(Expr, Value)>,
    loads: Vec<(BufId, Expr, Value)>,
    /// Buffers the body stores to: their loads are never reused.
    stored: Vec<BufId>,
}

fn lane_of(t: Type) -> Option<Lane> {
    match t {
        types::F32 => Some(Lane::F32),
        types::I32 => Some(Lane::I32),
        types::I8 => Some(Lane::Bool),
        _ => None,
    }
}

/// A shift amount the vector shift gives the scalar code's result for: a literal in
/// `0..32` (the scalar code special-cases the others).
fn shift_amount(e: &Expr) -> Option<i64> {
    match e {
        Expr::Lit(Lit::I32(k)) if (0..32).contains(k) => Some(*k as i64),
        _ => None,
    }
}

impl KernelCx<'_, '_> {
    /// How `for var in 0..extent { body }` can run four iterations at a time, `None`
    /// when it cannot (see the module doc).
    pub fn vector_plan(&self, var: Var, extent: usize, body: &[Stmt]) -> Option<Plan> {
        if !self.caps.simd128 || extent < LANES || body.is_empty() {
            return None;
        }
        // Classify the variables the body sets.
        let mut sets: BTreeMap<Var, usize> = BTreeMap::new();
        for s in body {
            match s {
                Stmt::Set { var, .. } => *sets.entry(*var).or_insert(0) += 1,
                Stmt::Store { .. } => {}
                _ => return None,
            }
        }
        if sets.contains_key(&var) {
            return None;
        }
        let mut in_body: BTreeMap<Var, u32> = BTreeMap::new();
        let mut carried: Vec<Var> = Vec::new();
        let mut defined: Vec<Var> = Vec::new();
        for s in body {
            let mut read = |v: Var| {
                *in_body.entry(v).or_insert(0) += 1;
                if sets.contains_key(&v) && !defined.contains(&v) && !carried.contains(&v) {
                    carried.push(v);
                }
            };
            match s {
                Stmt::Set { var, value } => {
                    visit_vars(value, &mut read);
                    *in_body.entry(*var).or_insert(0) += 1;
                    defined.push(*var);
                }
                Stmt::Store { index, value, .. } => {
                    visit_vars(index, &mut read);
                    visit_vars(value, &mut read);
                }
                _ => unreachable!("checked above"),
            }
        }
        let mut plan = Plan { locals: BTreeMap::new(), serial: Vec::new() };
        for (&v, &n) in &sets {
            let total = self.uses.get(v.0 as usize).copied();
            if !carried.contains(&v) && total == in_body.get(&v).copied() {
                plan.locals.insert(v, lane_of(self.var_type(v)?)?);
            } else if n == 1 {
                plan.serial.push(v);
            } else {
                return None;
            }
        }
        let set: Vec<Var> = sets.keys().copied().collect();
        let scope = Scope { var, plan: &plan, set: &set };
        // Indices: affine in the loop variable, no variable the body sets.
        let mut loads_ok = true;
        for s in body {
            let (index, value) = match s {
                Stmt::Set { value, .. } => (None, value),
                Stmt::Store { index, value, .. } => (Some(index), value),
                _ => unreachable!("checked above"),
            };
            if index.is_some_and(|i| mentions(i, &|v| set.contains(&v))) {
                return None;
            }
            visit_loads(value, &mut |_, i| loads_ok &= !mentions(i, &|v| set.contains(&v)));
        }
        if !loads_ok {
            return None;
        }
        // Statements.
        let (mut work, mut extracts, mut stores) = (0, 0, 0);
        for s in body {
            match s {
                Stmt::Store { buf, index, value } => {
                    if !self.is_f32(*buf) || coefficient(index, var) != Some(1) || self.lane(value, &scope)? != Lane::F32 {
                        return None;
                    }
                    work += ops(value);
                    stores += 1;
                }
                Stmt::Set { var: v, value } if plan.locals.contains_key(v) => {
                    if mentions(value, &|u| plan.serial.contains(&u)) || self.lane(value, &scope)? != plan.locals[v] {
                        return None;
                    }
                    work += ops(value);
                }
                Stmt::Set { var: v, value } => {
                    if mentions(value, &|u| u != *v && plan.serial.contains(&u)) {
                        return None;
                    }
                    let mut parts = Vec::new();
                    self.serial_parts(value, *v, &scope, &mut parts)?;
                    work += parts.iter().map(|p| ops(p)).sum::<usize>();
                    extracts += parts.len();
                }
                _ => unreachable!("checked above"),
            }
        }
        if stores + extracts == 0 || work < OPS_PER_EXTRACT * extracts {
            return None;
        }
        // A load under a select arm runs only when chosen in the scalar code; vectorised it
        // always runs, so it must be one the body performs unconditionally anyway.
        let (mut uncond, mut cond) = (Vec::new(), Vec::new());
        for s in body {
            if let Stmt::Set { value, .. } | Stmt::Store { value, .. } = s {
                split_loads(value, false, &mut uncond, &mut cond);
            }
        }
        if !cond.iter().all(|c| uncond.contains(c)) {
            return None;
        }
        // A stored buffer is accessed only at its store's index or disjoint from it.
        let mut stored: Vec<(BufId, &Expr)> = Vec::new();
        for s in body {
            if let Stmt::Store { buf, index, .. } = s {
                stored.push((*buf, index));
            }
        }
        let mut ok = true;
        let apart = |i: &Expr, j: &Expr| i == j || disjoint(i, j, extent);
        for s in body {
            if let Stmt::Store { buf, index, .. } = s {
                for (b, i) in &stored {
                    ok &= b != buf || apart(i, index);
                }
            }
            if let Stmt::Set { value, .. } | Stmt::Store { value, .. } = s {
                visit_loads(value, &mut |b, i| {
                    for (sb, si) in &stored {
                        ok &= *sb != b || apart(si, i);
                    }
                });
            }
        }
        ok.then_some(plan)
    }

    pub(super) fn is_f32(&self, buf: BufId) -> bool {
        self.prog.buffers.get(buf.0 as usize).is_some_and(|b| b.dtype == DType::F32)
    }

    /// The lane type of `e` computed four iterations at a time, `None` when some part of
    /// it has no lane-wise equivalent of the scalar code.
    fn lane(&self, e: &Expr, sc: &Scope) -> Option<Lane> {
        use Lane::*;
        let rec = |x: &Expr| self.lane(x, sc);
        Some(match e {
            Expr::Lit(Lit::F32(_)) => F32,
            Expr::Lit(Lit::I32(_)) => I32,
            Expr::Lit(Lit::Bool(_)) => Bool,
            Expr::Lit(_) => return None,
            Expr::Var(v) if *v == sc.var || sc.plan.serial.contains(v) => return None,
            Expr::Var(v) => match sc.plan.locals.get(v) {
                Some(l) => *l,
                None => lane_of(self.var_type(*v)?)?,
            },
            Expr::Load { buf, index } => {
                if !self.is_f32(*buf) || !matches!(coefficient(index, sc.var), Some(0 | 1)) {
                    return None;
                }
                F32
            }
            Expr::Unary(op, a) => match (op, rec(a)?) {
                (UnOp::Neg | UnOp::Abs, t @ (F32 | I32)) => t,
                (UnOp::Not, t @ (I32 | Bool)) => t,
                (UnOp::Sqrt, F32) => F32,
                (UnOp::Floor | UnOp::Ceil | UnOp::Round | UnOp::Trunc, F32) if self.caps.rounding => F32,
                _ => return None,
            },
            Expr::Binary(op, a, b) => {
                let t = rec(a)?;
                let shift = matches!(op, BinOp::Shl | BinOp::Shr | BinOp::UShr);
                if shift {
                    return (t == I32 && shift_amount(b).is_some()).then_some(I32);
                }
                if rec(b)? != t {
                    return None;
                }
                match (op, t) {
                    (BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Min | BinOp::Max, F32) => F32,
                    (BinOp::Add | BinOp::Sub | BinOp::And | BinOp::Or | BinOp::Xor, I32) => I32,
                    // x86_64 has these on i32x4 from SSE4.1 (which `rounding` stands for).
                    (BinOp::Mul | BinOp::Min | BinOp::Max, I32) if self.caps.rounding => I32,
                    (BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Eq | BinOp::Ne, Bool) => Bool,
                    (op, F32 | I32) if op.is_comparison() => Bool,
                    _ => return None,
                }
            }
            Expr::Select(c, a, b) => {
                let t = rec(a)?;
                (rec(c)? == Bool && rec(b)? == t).then_some(t)?
            }
            Expr::Cast(to, a) => match (to, rec(a)?) {
                (Ty::F32, F32 | I32) => F32,
                (Ty::I32, F32 | I32) => I32,
                _ => return None,
            },
            Expr::Bitcast(to, a) => match (to, rec(a)?) {
                (Ty::I32, F32) => I32,
                (Ty::F32, I32) => F32,
                _ => return None,
            },
            Expr::Fma(a, b, c) => {
                (self.caps.fma && rec(a)? == F32 && rec(b)? == F32 && rec(c)? == F32).then_some(F32)?
            }
        })
    }

    /// The maximal subexpressions of a serial `Set`'s value that do not read `acc` and
    /// vary with the loop: they are computed as vectors and their lanes fed to the scalar
    /// rest. `None` when one cannot be vectorised or `acc` reaches a load.
    fn serial_parts<'e>(&self, e: &'e Expr, acc: Var, sc: &Scope, out: &mut Vec<&'e Expr>) -> Option<()> {
        if !mentions(e, &|v| v == acc) {
            if !sc.invariant(e) {
                self.lane(e, sc)?;
                out.push(e);
            }
            return Some(());
        }
        match e {
            Expr::Lit(_) | Expr::Var(_) => Some(()),
            Expr::Load { .. } => None,
            Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Bitcast(_, a) => self.serial_parts(a, acc, sc, out),
            Expr::Binary(_, a, b) => {
                self.serial_parts(a, acc, sc, out)?;
                self.serial_parts(b, acc, sc, out)
            }
            Expr::Select(a, b, c) | Expr::Fma(a, b, c) => {
                self.serial_parts(a, acc, sc, out)?;
                self.serial_parts(b, acc, sc, out)?;
                self.serial_parts(c, acc, sc, out)
            }
        }
    }

    /// The vector loop over the first `extent / 4 * 4` iterations, then the scalar tail.
    pub fn vector_loop(&mut self, var: Variable, kvar: Var, extent: usize, body: &[Stmt], plan: &Plan) -> Result<(), BackendError> {
        let vector_end = extent / LANES * LANES;
        let set: Vec<Var> = plan.locals.keys().chain(&plan.serial).copied().collect();
        let mut em = Emit { var: kvar, locals: BTreeMap::new(), set: set.clone(), splats: Vec::new(), loads: Vec::new(), stored: Vec::new() };
        let scope = Scope { var: kvar, plan, set: &set };
        // Serial statements' vector operands, found once (the same for every iteration).
        let mut parts: Vec<Vec<(&Expr, Lane)>> = Vec::new();
        for s in body {
            match s {
                Stmt::Store { buf, value, .. } => {
                    em.stored.push(*buf);
                    self.hoist_splats(value, &mut em)?;
                }
                Stmt::Set { var: v, value } if plan.serial.contains(v) => {
                    let mut p = Vec::new();
                    self.serial_parts(value, *v, &scope, &mut p).ok_or_else(|| super::failed("serial statement changed"))?;
                    let mut typed = Vec::with_capacity(p.len());
                    for x in p {
                        self.hoist_splats(x, &mut em)?;
                        typed.push((x, self.lane(x, &scope).ok_or_else(|| super::failed("serial operand changed"))?));
                    }
                    parts.push(typed);
                }
                Stmt::Set { value, .. } => self.hoist_splats(value, &mut em)?,
                _ => {}
            }
        }
        let (head, exit) = (self.b.create_block(), self.b.create_block());
        let i = self.b.append_block_param(head, types::I64);
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.ins().jump(head, &[BlockArg::Value(zero)]);
        self.b.switch_to_block(head);
        self.b.def_var(var, i);
        em.loads.clear();
        let mut parts = parts.into_iter();
        for s in body {
            match s {
                Stmt::Store { buf, index, value } => {
                    let v = self.vector_expr(value, &mut em)?;
                    let addr = self.address(*buf, index)?;
                    self.b.ins().store(MemFlagsData::new().with_notrap(), v, addr, 0);
                }
                Stmt::Set { var: v, value } if plan.locals.contains_key(v) => {
                    let x = self.vector_expr(value, &mut em)?;
                    em.locals.insert(*v, x);
                }
                Stmt::Set { var: v, value } => {
                    let p = parts.next().expect("one list per serial statement");
                    self.serial_set(*v, value, &p, &mut em)?;
                }
                _ => return Err(super::failed("statement the vector plan excludes")),
            }
        }
        let next = self.b.ins().iadd_imm_s(i, LANES as i64);
        let more = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, next, vector_end as i64);
        self.b.ins().brif(more, head, &[BlockArg::Value(next)], exit, &[]);
        self.b.switch_to_block(exit);
        self.scalar_loop(var, vector_end, extent, body)
    }

    /// `acc = value` for lanes 0..4 in order: the vector operands `parts` are computed
    /// once, and each lane's scalar statement reads their lane through a fresh variable.
    fn serial_set(&mut self, acc: Var, value: &Expr, parts: &[(&Expr, Lane)], em: &mut Emit) -> Result<(), BackendError> {
        let mut vecs = Vec::with_capacity(parts.len());
        let mut subst = Vec::with_capacity(parts.len());
        for &(p, lane) in parts {
            let v = self.vector_expr(p, em)?;
            let scalar = match lane {
                Lane::F32 => types::F32,
                Lane::I32 => types::I32,
                Lane::Bool => types::I8,
            };
            vecs.push((v, scalar));
            subst.push((p as *const Expr, self.fresh_var(scalar)));
        }
        let rewritten = substitute(value, &subst);
        let target = self.var(acc)?;
        let want = self.var_type(acc).ok_or_else(|| super::failed("untyped accumulator"))?;
        for lane in 0..LANES as u8 {
            for (&(v, scalar), &(_, fresh)) in vecs.iter().zip(&subst) {
                let x = self.b.ins().extractlane(v, lane);
                let x = if scalar == types::I8 { self.b.ins().icmp_imm_u(IntCC::NotEqual, x, 0) } else { x };
                let fv = self.var(fresh)?;
                self.b.def_var(fv, x);
            }
            let x = self.expr(&rewritten)?;
            self.expect_type(x, want, "assignment")?;
            self.b.def_var(target, x);
        }
        Ok(())
    }

    /// Splats of the literals and invariant variables in `e`, emitted before the loop.
    fn hoist_splats(&mut self, e: &Expr, em: &mut Emit) -> Result<(), BackendError> {
        match e {
            Expr::Lit(_) | Expr::Var(_) => {
                let local = matches!(e, Expr::Var(v) if em.set.contains(v) || *v == em.var);
                if !local && !em.splats.iter().any(|(x, _)| x == e) {
                    if let Some(v) = self.splat(e)? {
                        em.splats.push((e.clone(), v));
                    }
                }
                Ok(())
            }
            Expr::Load { .. } => Ok(()),
            Expr::Binary(BinOp::Shl | BinOp::Shr | BinOp::UShr, a, _) => self.hoist_splats(a, em),
            Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Bitcast(_, a) => self.hoist_splats(a, em),
            Expr::Binary(_, a, b) => {
                self.hoist_splats(a, em)?;
                self.hoist_splats(b, em)
            }
            Expr::Select(a, b, c) | Expr::Fma(a, b, c) => {
                self.hoist_splats(a, em)?;
                self.hoist_splats(b, em)?;
                self.hoist_splats(c, em)
            }
        }
    }

    /// A literal or loop-invariant variable in all four lanes (`None` for one the vector
    /// code never reads as a vector: the locals, set in the body, are not known yet).
    fn splat(&mut self, e: &Expr) -> Result<Option<Value>, BackendError> {
        let x = match e {
            Expr::Lit(Lit::Bool(b)) => {
                let m = self.b.ins().iconst(types::I32, if *b { -1 } else { 0 });
                return Ok(Some(self.b.ins().splat(types::I32X4, m)));
            }
            Expr::Lit(Lit::F32(_) | Lit::I32(_)) | Expr::Var(_) => self.expr(e)?,
            _ => return Ok(None),
        };
        Ok(match self.ty(x) {
            types::F32 => Some(self.b.ins().splat(types::F32X4, x)),
            types::I32 => Some(self.b.ins().splat(types::I32X4, x)),
            types::I8 => {
                // 0/1 → 0/-1 in every lane.
                let w = self.b.ins().uextend(types::I32, x);
                let m = self.b.ins().ineg(w);
                Some(self.b.ins().splat(types::I32X4, m))
            }
            _ => None,
        })
    }

    fn vector_expr(&mut self, e: &Expr, em: &mut Emit) -> Result<Value, BackendError> {
        let var = em.var;
        Ok(match e {
            Expr::Var(v) if em.locals.contains_key(v) => em.locals[v],
            Expr::Lit(_) | Expr::Var(_) => match em.splats.iter().find(|(x, _)| x == e) {
                Some((_, v)) => *v,
                None => self.splat(e)?.ok_or_else(|| super::failed(format!("no vector form of {e:?}")))?,
            },
            Expr::Load { buf, index } if coefficient(index, var) == Some(1) => {
                let reusable = !em.stored.contains(buf);
                if let Some((_, _, v)) = em.loads.iter().find(|(b, i, _)| reusable && b == buf && i == &**index) {
                    return Ok(*v);
                }
                let addr = self.address(*buf, index)?;
                let v = self.b.ins().load(types::F32X4, MemFlagsData::new().with_notrap(), addr, 0);
                if reusable {
                    em.loads.push((*buf, (**index).clone(), v));
                }
                v
            }
            Expr::Load { .. } => {
                // Invariant: one scalar load, splatted.
                let x = self.expr(e)?;
                self.b.ins().splat(types::F32X4, x)
            }
            Expr::Unary(op, a) => {
                let a = self.vector_expr(a, em)?;
                let float = self.ty(a) == types::F32X4;
                let ins = self.b.ins();
                match (op, float) {
                    (UnOp::Neg, true) => ins.fneg(a),
                    (UnOp::Neg, false) => ins.ineg(a),
                    (UnOp::Abs, true) => ins.fabs(a),
                    (UnOp::Abs, false) => ins.iabs(a),
                    (UnOp::Not, _) => ins.bnot(a),
                    (UnOp::Sqrt, _) => ins.sqrt(a),
                    (UnOp::Floor, _) => ins.floor(a),
                    (UnOp::Ceil, _) => ins.ceil(a),
                    (UnOp::Round, _) => ins.nearest(a),
                    (UnOp::Trunc, _) => ins.trunc(a),
                    (op, _) => return Err(super::failed(format!("vector {op:?}"))),
                }
            }
            Expr::Binary(op @ (BinOp::Shl | BinOp::Shr | BinOp::UShr), a, b) => {
                let a = self.vector_expr(a, em)?;
                let k = shift_amount(b).ok_or_else(|| super::failed("vector shift by a non-literal"))?;
                let k = self.b.ins().iconst(types::I32, k);
                match op {
                    BinOp::Shl => self.b.ins().ishl(a, k),
                    BinOp::Shr => self.b.ins().sshr(a, k),
                    _ => self.b.ins().ushr(a, k),
                }
            }
            Expr::Binary(op, a, b) => {
                let (a, b) = (self.vector_expr(a, em)?, self.vector_expr(b, em)?);
                let float = self.ty(a) == types::F32X4;
                let ins = self.b.ins();
                match (op, float) {
                    (BinOp::Add, true) => ins.fadd(a, b),
                    (BinOp::Sub, true) => ins.fsub(a, b),
                    (BinOp::Mul, true) => ins.fmul(a, b),
                    (BinOp::Div, true) => ins.fdiv(a, b),
                    (BinOp::Min, true) => ins.fmin(a, b),
                    (BinOp::Max, true) => ins.fmax(a, b),
                    (BinOp::Eq, true) => ins.fcmp(FloatCC::Equal, a, b),
                    (BinOp::Ne, true) => ins.fcmp(FloatCC::NotEqual, a, b),
                    (BinOp::Lt, true) => ins.fcmp(FloatCC::LessThan, a, b),
                    (BinOp::Le, true) => ins.fcmp(FloatCC::LessThanOrEqual, a, b),
                    (BinOp::Gt, true) => ins.fcmp(FloatCC::GreaterThan, a, b),
                    (BinOp::Ge, true) => ins.fcmp(FloatCC::GreaterThanOrEqual, a, b),
                    (BinOp::Add, false) => ins.iadd(a, b),
                    (BinOp::Sub, false) => ins.isub(a, b),
                    (BinOp::Mul, false) => ins.imul(a, b),
                    (BinOp::Min, false) => ins.smin(a, b),
                    (BinOp::Max, false) => ins.smax(a, b),
                    (BinOp::And, false) => ins.band(a, b),
                    (BinOp::Or, false) => ins.bor(a, b),
                    (BinOp::Xor, false) => ins.bxor(a, b),
                    (BinOp::Eq, false) => ins.icmp(IntCC::Equal, a, b),
                    (BinOp::Ne, false) => ins.icmp(IntCC::NotEqual, a, b),
                    (BinOp::Lt, false) => ins.icmp(IntCC::SignedLessThan, a, b),
                    (BinOp::Le, false) => ins.icmp(IntCC::SignedLessThanOrEqual, a, b),
                    (BinOp::Gt, false) => ins.icmp(IntCC::SignedGreaterThan, a, b),
                    (BinOp::Ge, false) => ins.icmp(IntCC::SignedGreaterThanOrEqual, a, b),
                    (op, _) => return Err(super::failed(format!("vector {op:?}"))),
                }
            }
            Expr::Select(c, a, b) => {
                let c = self.vector_expr(c, em)?;
                let (a, b) = (self.vector_expr(a, em)?, self.vector_expr(b, em)?);
                let t = self.ty(a);
                let c = if t == types::I32X4 { c } else { self.b.ins().bitcast(t, lanes_flags(), c) };
                self.b.ins().bitselect(c, a, b)
            }
            Expr::Cast(to, a) => {
                let a = self.vector_expr(a, em)?;
                match (to, self.ty(a)) {
                    (Ty::I32, types::F32X4) => self.b.ins().fcvt_to_sint_sat(types::I32X4, a),
                    (Ty::F32, types::I32X4) => self.b.ins().fcvt_from_sint(types::F32X4, a),
                    _ => a,
                }
            }
            Expr::Bitcast(to, a) => {
                let a = self.vector_expr(a, em)?;
                let t = if *to == Ty::F32 { types::F32X4 } else { types::I32X4 };
                self.b.ins().bitcast(t, lanes_flags(), a)
            }
            Expr::Fma(a, b, c) => {
                let (a, b, c) = (self.vector_expr(a, em)?, self.vector_expr(b, em)?, self.vector_expr(c, em)?);
                self.b.ins().fma(a, b, c)
            }
        })
    }
}

/// Vector bitcasts keep the lane layout (little-endian on every target we generate).
fn lanes_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(Endianness::Little)
}

/// `e` with the subexpressions at the addresses in `subst` replaced by their variables.
fn substitute(e: &Expr, subst: &[(*const Expr, Var)]) -> Expr {
    if let Some((_, v)) = subst.iter().find(|(p, _)| std::ptr::eq(*p, e)) {
        return Expr::Var(*v);
    }
    match e {
        Expr::Lit(_) | Expr::Var(_) => e.clone(),
        Expr::Load { buf, index } => Expr::Load { buf: *buf, index: Box::new(substitute(index, subst)) },
        Expr::Unary(op, a) => Expr::Unary(*op, Box::new(substitute(a, subst))),
        Expr::Binary(op, a, b) => Expr::Binary(*op, Box::new(substitute(a, subst)), Box::new(substitute(b, subst))),
        Expr::Select(a, b, c) => Expr::Select(Box::new(substitute(a, subst)), Box::new(substitute(b, subst)), Box::new(substitute(c, subst))),
        Expr::Cast(t, a) => Expr::Cast(*t, Box::new(substitute(a, subst))),
        Expr::Bitcast(t, a) => Expr::Bitcast(*t, Box::new(substitute(a, subst))),
        Expr::Fma(a, b, c) => Expr::Fma(Box::new(substitute(a, subst)), Box::new(substitute(b, subst)), Box::new(substitute(c, subst))),
    }
}

pub(super) fn visit_loads<'e>(e: &'e Expr, f: &mut dyn FnMut(BufId, &'e Expr)) {
    match e {
        Expr::Lit(_) | Expr::Var(_) => {}
        Expr::Load { buf, index } => {
            f(*buf, index);
            visit_loads(index, f);
        }
        Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Bitcast(_, a) => visit_loads(a, f),
        Expr::Binary(_, a, b) => {
            visit_loads(a, f);
            visit_loads(b, f);
        }
        Expr::Select(a, b, c) | Expr::Fma(a, b, c) => {
            visit_loads(a, f);
            visit_loads(b, f);
            visit_loads(c, f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kir::e;

    /// `base + r * n + j`, as the GEMM tile builds its output indices.
    fn row(base: Var, r: i64, n: i64, j: Var) -> Expr {
        e::add(e::add(e::mul(e::var(base), e::idx(4 * n)), e::idx(r * n)), e::var(j))
    }

    #[test]
    fn rows_of_a_tile_are_disjoint_only_when_a_row_apart() {
        let (ib, j) = (Var(0), Var(1));
        // Rows 0 and 1 of a 16-wide output: 16 elements apart, a 16-iteration loop.
        assert!(disjoint(&row(ib, 0, 16, j), &row(ib, 1, 16, j), 16));
        // The same rows in a longer loop would overlap.
        assert!(!disjoint(&row(ib, 0, 16, j), &row(ib, 1, 16, j), 17));
        // Different variables (or a non-affine index) are never assumed apart.
        assert!(!disjoint(&row(ib, 0, 16, j), &row(Var(2), 1, 16, j), 4));
        let loaded = e::add(e::load(BufId(0), e::idx(0)), e::var(j));
        assert!(!disjoint(&loaded, &row(ib, 1, 16, j), 4));
        // (ib * 4 + 1) * 16 + j is ib * 64 + 16 + j.
        let nested = e::add(e::mul(e::add(e::mul(e::var(ib), e::idx(4)), e::idx(1)), e::idx(16)), e::var(j));
        assert_eq!(affine(&nested), affine(&row(ib, 1, 16, j)));
    }
}

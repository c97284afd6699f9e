//! Register blocks for GEMM tiles with `f32x4` (x86_64 and aarch64).
//!
//! A loop whose whole body is one inner loop of at most [`MAX_BLOCK_LANES`] iterations (a
//! multiple of 4) that is vectorisable in the simple sense below, and whose store indices
//! do not involve the outer variable, stores to the same elements on every outer
//! iteration: a GEMM output block over the `k` loop ([`KernelCx::promotable`]). Those
//! elements then live in f32x4 variables: loaded once before the outer loop, updated in
//! registers by the fully unrolled inner loop, stored once after it. Each element still
//! sees the same operations in the same order, so this is bit-identical to the
//! interpreter. Loops that are not register blocks go to the general vectoriser
//! ([`super::vector`]).
//!
//! The inner loop qualifies when its body is only `Store`s of F32 values to F32 buffers
//! whose values are built from F32 loads, F32 literals and loop-invariant F32 variables
//! with `+ - * /`, Min, Max, Neg, Abs, Sqrt and (where the ISA has it) Fma, and every index
//! is affine in the loop variable with coefficient 1 (contiguous: one vector load or
//! store) or 0 (invariant: a scalar load splatted to all lanes). A buffer the body stores
//! to may only be accessed at that store's index expression, or at indices whose ranges
//! over the whole loop cannot overlap it (the rows of the tile).
//!
//! Within one iteration each distinct load of a buffer the body does not store to is
//! emitted once (the rows of a GEMM tile share their B vector, and its splatted A
//! factors), and the splats of loop-invariant variables and literals are computed once
//! before the loop. This module keeps its own expression emitter (`block_expr`) because
//! it tracks the accumulators, unrolled parts, pure loads and aarch64 lane groups that the
//! general vectoriser's emitter has no need for.
//!
//! Inside the loop, an affine load index is split on the loop variable
//! ([`KernelCx::block_address`]): a loop-invariant row or panel pointer plus `k * stride`,
//! one addressing mode per load instead of an index recomputed per row. On x86_64, whose
//! vector fma overwrites a factor ([`super::isa::Caps::fma_overwrites_factor`]), each fma
//! gets its own `vbroadcastss` of its A factor ([`KernelCx::fresh_splat`]) and the loop
//! tests at the top, so that nothing computed in an iteration is used twice and the
//! broadcast's load folds into it (both measured in docs/performance.md).

use std::collections::BTreeMap;

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, BlockArg, ConstantData, Endianness, InstBuilder, MemFlagsData, Value};
use cranelift_frontend::Variable;

use super::kernel::KernelCx;
use super::vector::{affine, coefficient, disjoint, visit_loads, LANES};
use crate::back::BackendError;
use crate::kir::{BinOp, BufId, Expr, Lit, Stmt, UnOp, Var};

/// The widest inner loop kept in registers as a block (in elements): 8 f32x4 per store.
const MAX_BLOCK_LANES: usize = 32;

/// Values computed once per vector loop or iteration (see the module doc).
#[derive(Default)]
struct Reuse {
    splats: Vec<(Expr, Value)>,
    /// Vector loads by buffer, index and `part` (the index means another vector in each
    /// unrolled part of a register block).
    loads: Vec<(BufId, Expr, usize, Value)>,
    /// Splatted loads that do not depend on the loop variable (the same in every part).
    invariant: Vec<(Expr, Value)>,
    /// Buffers the body stores to: their loads are never reused.
    stored: Vec<BufId>,
    /// In a register block: the f32x4 variable of each stored (buffer, index, part).
    accs: Vec<(BufId, Expr, usize, Variable)>,
    /// The unrolled part being emitted (0 in a plain vector loop).
    part: usize,
    /// In a register block: loads of buffers the kernel never writes are marked pure
    /// (read-only, movable), so Cranelift computes them next to their first use instead of
    /// in program order, which keeps one row's A splat and the B vectors live at a time
    /// rather than every load of the iteration at once.
    pure_loads: bool,
    /// In a register block on a `lane_fma` ISA: runs of four invariant loads at
    /// consecutive indices (A factors of four terms) read as one vector (see
    /// [`KernelCx::lane_groups`]).
    lanes: Vec<LaneGroup>,
    /// In a register block on an ISA whose fma overwrites a factor: the A factors
    /// broadcast so far (each use gets its own broadcast, see [`KernelCx::fresh_splat`])
    /// with how many times each, and the broadcast values (the factor an fma overwrites).
    fresh: Vec<(Expr, i32)>,
    fresh_values: Vec<Value>,
    /// In a register block: the loop variable of the `k` loop, which loads are split on
    /// (see [`KernelCx::block_address`]).
    outer: Option<Variable>,
}

/// Four loads `buf[base + 0..4]` of one affine form: one f32x4 load, each a lane of it.
struct LaneGroup {
    buf: BufId,
    form: BTreeMap<Var, i64>,
    base: i64,
    /// The index expression of the first element.
    index: Expr,
    vector: Option<Value>,
}

impl KernelCx<'_, '_> {
    /// Whether `for var in 0..extent { body }` can run as f32x4 (see the module doc).
    fn block_vectorizable(&self, var: Var, extent: usize, body: &[Stmt]) -> bool {
        if !self.caps.simd128 || extent < LANES || body.is_empty() {
            return false;
        }
        let mut stored: Vec<(BufId, &Expr)> = Vec::new();
        for s in body {
            let Stmt::Store { buf, index, value } = s else { return false };
            if !self.is_f32(*buf) || coefficient(index, var) != Some(1) {
                return false;
            }
            stored.push((*buf, index));
            if !self.block_value(value, var) {
                return false;
            }
        }
        // A stored buffer is accessed only at its store's index or disjoint from it.
        let mut ok = true;
        let apart = |i: &Expr, j: &Expr| i == j || disjoint(i, j, extent);
        for s in body {
            let Stmt::Store { buf, index, value } = s else { continue };
            for (b, i) in &stored {
                ok &= b != buf || apart(i, index);
            }
            visit_loads(value, &mut |b, i| {
                for (sb, si) in &stored {
                    ok &= *sb != b || apart(si, i);
                }
            });
        }
        ok
    }

    fn block_value(&self, e: &Expr, var: Var) -> bool {
        let rec = |x: &Expr| self.block_value(x, var);
        match e {
            Expr::Lit(Lit::F32(_)) => true,
            Expr::Var(v) => *v != var && self.var_type(*v) == Some(types::F32),
            Expr::Load { buf, index } => self.is_f32(*buf) && matches!(coefficient(index, var), Some(0 | 1)),
            Expr::Unary(UnOp::Neg | UnOp::Abs | UnOp::Sqrt, a) => rec(a),
            Expr::Binary(BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Min | BinOp::Max, a, b) => rec(a) && rec(b),
            Expr::Fma(a, b, c) => self.caps.fma && rec(a) && rec(b) && rec(c),
            _ => false,
        }
    }

    /// The inner loop variable and extent when `for var in 0..extent { body }` is a
    /// register block (see the module doc).
    pub fn promotable(&self, var: Var, body: &[Stmt]) -> Option<(Var, usize)> {
        let [Stmt::Loop { var: inner, extent, body: inner_body }] = body else { return None };
        if *extent % LANES != 0 || *extent > MAX_BLOCK_LANES || !self.block_vectorizable(*inner, *extent, inner_body) {
            return None;
        }
        let fixed = |s: &Stmt| matches!(s, Stmt::Store { index, .. } if coefficient(index, var) == Some(0));
        inner_body.iter().all(fixed).then_some((*inner, *extent))
    }

    /// A register block: `for outer in 0..extent { for inner in 0..width { body } }`
    /// with the stored elements in f32x4 variables across the outer loop.
    #[allow(clippy::too_many_arguments)]
    pub fn block_loop(
        &mut self,
        outer: Variable,
        extent: usize,
        inner: Variable,
        kinner: Var,
        width: usize,
        body: &[Stmt],
    ) -> Result<(), BackendError> {
        if extent == 0 {
            return Ok(());
        }
        let parts = width / LANES;
        let mut reuse = Reuse { pure_loads: true, outer: Some(outer), ..Reuse::default() };
        for s in body {
            if let Stmt::Store { buf, value, .. } = s {
                reuse.stored.push(*buf);
                self.block_splats(value, &mut reuse)?;
            }
        }
        if self.caps.lane_fma {
            reuse.lanes = self.lane_groups(body, kinner, &reuse.stored);
        }
        // The store indices do not involve `outer`; it is defined for them all the same.
        let zero = self.b.ins().iconst(types::I64, 0);
        self.b.def_var(outer, zero);
        for part in 0..parts {
            self.set_part(inner, part);
            for s in body {
                let Stmt::Store { buf, index, .. } = s else { continue };
                if reuse.accs.iter().any(|(b, i, p, _)| b == buf && i == index && *p == part) {
                    continue;
                }
                let addr = self.address(*buf, index)?;
                let v = self.b.ins().load(types::F32X4, MemFlagsData::new().with_notrap(), addr, 0);
                let acc = self.b.declare_var(types::F32X4);
                self.b.def_var(acc, v);
                reuse.accs.push((*buf, index.clone(), part, acc));
            }
        }
        let (head, exit) = (self.b.create_block(), self.b.create_block());
        let i = self.b.append_block_param(head, types::I64);
        self.b.ins().jump(head, &[BlockArg::Value(zero)]);
        self.b.switch_to_block(head);
        self.b.def_var(outer, i);
        // Where the fma overwrites a factor, test at the top: the exit then reads the
        // accumulators from the loop header's parameters, and each value of an iteration
        // has a single use (the back edge), which lets x86_64 fold a broadcast's load into
        // `vbroadcastss` (a value also read after the loop would be "used twice", and so
        // would everything it is computed from).
        let top = self.caps.fma_overwrites_factor;
        if top {
            let body_block = self.b.create_block();
            let more = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, i, extent as i64);
            self.b.ins().brif(more, body_block, &[], exit, &[]);
            // Its only predecessor is known: sealed now, the body reads the values from
            // before the loop directly (not through block parameters, which would keep
            // Cranelift from hoisting what is computed from them).
            self.b.seal_block(body_block);
            self.b.switch_to_block(body_block);
        }
        // Store by store (a GEMM block's row), part by part: one splat of A live at a time.
        for s in body {
            let Stmt::Store { buf, index, value } = s else { continue };
            for part in 0..parts {
                self.set_part(inner, part);
                reuse.part = part;
                let v = self.block_expr(value, kinner, &mut reuse)?;
                let acc = reuse.accs.iter().find(|(b, i, p, _)| b == buf && i == index && *p == part).map(|a| a.3);
                self.b.def_var(acc.ok_or_else(|| super::failed("register block without its accumulator"))?, v);
            }
        }
        let next = self.b.ins().iadd_imm_s(i, 1);
        if top {
            self.b.ins().jump(head, &[BlockArg::Value(next)]);
        } else {
            let more = self.b.ins().icmp_imm_s(IntCC::SignedLessThan, next, extent as i64);
            self.b.ins().brif(more, head, &[BlockArg::Value(next)], exit, &[]);
        }
        self.b.switch_to_block(exit);
        for (buf, index, part, acc) in std::mem::take(&mut reuse.accs) {
            self.set_part(inner, part);
            let addr = self.address(buf, &index)?;
            let v = self.b.use_var(acc);
            self.b.ins().store(MemFlagsData::new().with_notrap(), v, addr, 0);
        }
        Ok(())
    }

    /// The invariant f32 loads of read-only buffers in `body` that come in runs of four
    /// consecutive indices (same buffer and affine form, constant offsets `c .. c + 4`):
    /// all four are read anyway, so one vector load covering them stays in bounds.
    fn lane_groups(&self, body: &[Stmt], inner: Var, stored: &[BufId]) -> Vec<LaneGroup> {
        let mut found: Vec<(BufId, BTreeMap<Var, i64>, i64, &Expr)> = Vec::new();
        for s in body {
            let Stmt::Store { value, .. } = s else { continue };
            visit_loads(value, &mut |buf, index| {
                let read_only = !self.written.get(buf.0 as usize).copied().unwrap_or(true);
                if read_only && !stored.contains(&buf) && self.is_f32(buf) && coefficient(index, inner) == Some(0) {
                    if let Some((form, c)) = affine(index) {
                        found.push((buf, form, c, index));
                    }
                }
            });
        }
        found.sort_by(|x, y| (x.0, &x.1, x.2).cmp(&(y.0, &y.1, y.2)));
        found.dedup_by(|x, y| x.0 == y.0 && x.1 == y.1 && x.2 == y.2);
        let mut groups = Vec::new();
        let mut i = 0;
        while i < found.len() {
            let (buf, form, c, index) = &found[i];
            let run = (1..LANES).all(|d| found.get(i + d).is_some_and(|x| x.0 == *buf && x.1 == *form && x.2 == c + d as i64));
            if run {
                groups.push(LaneGroup { buf: *buf, form: form.clone(), base: *c, index: (*index).clone(), vector: None });
                i += LANES;
            } else {
                i += 1;
            }
        }
        groups
    }

    /// Lane `c - base` of the lane group holding `buf[index]`, splatted (a shuffle that
    /// aarch64 folds into `fmla` by element), `None` when no group holds it.
    fn block_lane(&mut self, buf: BufId, index: &Expr, reuse: &mut Reuse) -> Result<Option<Value>, BackendError> {
        let Some((form, c)) = affine(index) else { return Ok(None) };
        let Some(g) = reuse.lanes.iter().position(|g| g.buf == buf && g.form == form && (g.base..g.base + LANES as i64).contains(&c)) else {
            return Ok(None);
        };
        let vector = match reuse.lanes[g].vector {
            Some(v) => v,
            None => {
                let addr = self.address(buf, &reuse.lanes[g].index.clone())?;
                let flags = self.load_flags(buf, reuse);
                let v = self.b.ins().load(types::F32X4, flags, addr, 0);
                reuse.lanes[g].vector = Some(v);
                v
            }
        };
        let lane = (c - reuse.lanes[g].base) as u8;
        let le = MemFlagsData::new().with_endianness(Endianness::Little);
        let bytes = self.b.ins().bitcast(types::I8X16, le, vector);
        let mask: Vec<u8> = (0..16).map(|i| lane * 4 + i % 4).collect();
        let mask = self.b.func.dfg.immediates.push(ConstantData::from(mask));
        let shuffled = self.b.ins().shuffle(bytes, bytes, mask);
        Ok(Some(self.b.ins().bitcast(types::F32X4, le, shuffled)))
    }

    /// `buf[index]` broadcast to all lanes for one use only (`vbroadcastss` from memory
    /// on x86_64). An fma there overwrites one factor: a broadcast shared by the parts of
    /// a row (or B, shared by the rows) stays live, so Cranelift would copy it before every
    /// fma, while a broadcast made for this fma dies in it. Each repeat of the same
    /// element is addressed as `(address - 4n) + 4n` so that neither GVN nor redundant-load
    /// elimination merges it with the earlier ones (the addressing mode folds the two
    /// constants back: the same instruction, one load-port micro-op, no shuffle).
    fn fresh_splat(&mut self, e: &Expr, buf: BufId, index: &Expr, var: Var, reuse: &mut Reuse) -> Result<Value, BackendError> {
        let n = match reuse.fresh.iter_mut().find(|(x, _)| x == e) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                reuse.fresh.push((e.clone(), 0));
                0
            }
        };
        let (mut addr, mut offset) = self.block_address(buf, index, var, reuse)?;
        let mut flags = self.load_flags(buf, reuse);
        if n == 1 {
            flags = flags.with_endianness(Endianness::Little);
        } else if n != 0 {
            addr = self.b.ins().iadd_imm_s(addr, -(n as i64 * 4));
            offset += n * 4;
        }
        let x = self.b.ins().load(types::F32, flags, addr, offset);
        let v = self.b.ins().splat(types::F32X4, x);
        reuse.fresh_values.push(v);
        Ok(v)
    }

    /// The address of `buf[index]` in a register block's loop, as `(address, offset)`:
    /// an affine index is split into the terms of the `k` loop variable and the rest, so
    /// that `base + rest * size` is loop-invariant (Cranelift hoists it) and the address
    /// in the loop is that pointer plus `k * stride` (one addressing mode for unit
    /// strides), the unrolled part's and the constant terms folded into the offset.
    /// Anything else takes [`KernelCx::address`].
    fn block_address(&mut self, buf: BufId, index: &Expr, inner: Var, reuse: &Reuse) -> Result<(Value, i32), BackendError> {
        let size = self.prog.buffer(buf).dtype.size() as i64;
        let split = match (reuse.outer, affine(index)) {
            (Some(outer), Some((form, c))) => {
                let c = form.get(&inner).copied().unwrap_or(0).checked_mul((reuse.part * LANES) as i64).and_then(|x| x.checked_add(c));
                let bytes = c.and_then(|c| c.checked_mul(size)).and_then(|x| i32::try_from(x).ok());
                let typed = form.keys().all(|v| *v == inner || self.var_type(*v) == Some(types::I64));
                bytes.filter(|_| typed).map(|bytes| (outer, form, bytes))
            }
            _ => None,
        };
        let Some((outer, form, bytes)) = split else { return Ok((self.address(buf, index)?, 0)) };
        let mut fixed = self.base(buf)?;
        let mut moving = None;
        for (v, coef) in form {
            if v == inner {
                continue;
            }
            let Some(stride) = coef.checked_mul(size) else { return Ok((self.address(buf, index)?, 0)) };
            let cv = self.var(v)?;
            let x = self.b.use_var(cv);
            let scaled = if stride == 1 { x } else { self.b.ins().imul_imm_s(x, stride) };
            if cv == outer {
                moving = Some(scaled);
            } else {
                fixed = self.b.ins().iadd(fixed, scaled);
            }
        }
        let addr = match moving {
            Some(m) => self.b.ins().iadd(fixed, m),
            None => fixed,
        };
        Ok((addr, bytes))
    }

    /// The flags of a load of `buf` (see [`Reuse::pure_loads`]).
    fn load_flags(&self, buf: BufId, reuse: &Reuse) -> MemFlagsData {
        let flags = MemFlagsData::new().with_notrap();
        let read_only = !self.written.get(buf.0 as usize).copied().unwrap_or(true);
        if reuse.pure_loads && read_only {
            flags.with_readonly().with_can_move()
        } else {
            flags
        }
    }

    /// The inner variable at the first element of unrolled part `part`.
    fn set_part(&mut self, inner: Variable, part: usize) {
        let at = self.b.ins().iconst(types::I64, (part * LANES) as i64);
        self.b.def_var(inner, at);
    }

    /// Splats of the variables and literals in `e` (invariant by `block_vectorizable`), emitted
    /// before the loop.
    fn block_splats(&mut self, e: &Expr, reuse: &mut Reuse) -> Result<(), BackendError> {
        match e {
            Expr::Lit(_) | Expr::Var(_) => {
                if !reuse.splats.iter().any(|(x, _)| x == e) {
                    let x = self.expr(e)?;
                    let v = self.b.ins().splat(types::F32X4, x);
                    reuse.splats.push((e.clone(), v));
                }
                Ok(())
            }
            Expr::Load { .. } => Ok(()),
            Expr::Unary(_, a) => self.block_splats(a, reuse),
            Expr::Binary(_, a, b) => {
                self.block_splats(a, reuse)?;
                self.block_splats(b, reuse)
            }
            Expr::Fma(a, b, c) => {
                self.block_splats(a, reuse)?;
                self.block_splats(b, reuse)?;
                self.block_splats(c, reuse)
            }
            _ => Ok(()),
        }
    }

    fn block_expr(&mut self, e: &Expr, var: Var, reuse: &mut Reuse) -> Result<Value, BackendError> {
        let v4 = types::F32X4;
        Ok(match e {
            Expr::Load { buf, index } if coefficient(index, var) == Some(1) => {
                let part = reuse.part;
                if let Some(&(.., acc)) = reuse.accs.iter().find(|(b, i, p, _)| b == buf && i == &**index && *p == part) {
                    return Ok(self.b.use_var(acc));
                }
                let reusable = !reuse.stored.contains(buf);
                let hit = reuse.loads.iter().find(|(b, i, p, _)| reusable && b == buf && i == &**index && *p == part);
                if let Some(&(.., v)) = hit {
                    return Ok(v);
                }
                let (addr, offset) = self.block_address(*buf, index, var, reuse)?;
                let flags = self.load_flags(*buf, reuse);
                let v = self.b.ins().load(v4, flags, addr, offset);
                if reusable {
                    reuse.loads.push((*buf, (**index).clone(), part, v));
                }
                v
            }
            Expr::Load { buf, .. } if !reuse.stored.contains(buf) => {
                if let Some((_, v)) = reuse.invariant.iter().find(|(x, _)| x == e) {
                    return Ok(*v);
                }
                if let Expr::Load { buf, index } = e {
                    if self.caps.fma_overwrites_factor && reuse.pure_loads && self.is_f32(*buf) {
                        return self.fresh_splat(e, *buf, index, var, reuse);
                    }
                    if let Some(v) = self.block_lane(*buf, index, reuse)? {
                        reuse.invariant.push((e.clone(), v));
                        return Ok(v);
                    }
                }
                let x = match e {
                    Expr::Load { buf, index } if reuse.pure_loads && self.is_f32(*buf) => {
                        let (addr, offset) = self.block_address(*buf, index, var, reuse)?;
                        let flags = self.load_flags(*buf, reuse);
                        self.b.ins().load(types::F32, flags, addr, offset)
                    }
                    _ => self.expr(e)?,
                };
                let v = self.b.ins().splat(v4, x);
                reuse.invariant.push((e.clone(), v));
                v
            }
            Expr::Lit(_) | Expr::Var(_) if reuse.splats.iter().any(|(x, _)| x == e) => {
                reuse.splats.iter().find(|(x, _)| x == e).map(|(_, v)| *v).expect("checked")
            }
            Expr::Unary(op, a) => {
                let a = self.block_expr(a, var, reuse)?;
                match op {
                    UnOp::Neg => self.b.ins().fneg(a),
                    UnOp::Abs => self.b.ins().fabs(a),
                    _ => self.b.ins().sqrt(a),
                }
            }
            Expr::Binary(op, a, b) => {
                let (a, b) = (self.block_expr(a, var, reuse)?, self.block_expr(b, var, reuse)?);
                let ins = self.b.ins();
                match op {
                    BinOp::Add => ins.fadd(a, b),
                    BinOp::Sub => ins.fsub(a, b),
                    BinOp::Mul => ins.fmul(a, b),
                    BinOp::Div => ins.fdiv(a, b),
                    BinOp::Min => ins.fmin(a, b),
                    _ => ins.fmax(a, b),
                }
            }
            Expr::Fma(a, b, c) => {
                let (a, b, c) = (self.block_expr(a, var, reuse)?, self.block_expr(b, var, reuse)?, self.block_expr(c, var, reuse)?);
                // x86_64 overwrites the first factor unless the second is a load it can
                // fold: put a fresh broadcast first (the product is the same either way).
                let (a, b) = if reuse.fresh_values.contains(&b) && !reuse.fresh_values.contains(&a) { (b, a) } else { (a, b) };
                self.b.ins().fma(a, b, c)
            }
            // Invariant: literals, variables and coefficient-0 loads, splatted.
            scalar => {
                let x = self.expr(scalar)?;
                self.b.ins().splat(v4, x)
            }
        })
    }
}

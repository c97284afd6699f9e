//! KIR expressions → Cranelift values, with the interpreter's semantics: integers wrap,
//! division and remainder by zero give 0 (and `MIN / -1` wraps instead of trapping),
//! out-of-range shifts give 0 or the sign fill, float Min/Max propagate NaN, float →
//! int casts saturate with NaN → 0, and `Bool` is a byte holding 0 or 1.

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, BlockArg, InstBuilder, MemFlagsData, Type, Value};

use super::kernel::{clif, KernelCx};
use super::{failed, unsupported};
use crate::back::BackendError;
use crate::kir::{BinOp, Expr, Lit, Ty, UnOp};

impl KernelCx<'_, '_> {
    pub fn expr(&mut self, e: &Expr) -> Result<Value, BackendError> {
        Ok(match e {
            Expr::Lit(l) => self.lit(*l),
            Expr::Var(v) => {
                let v = self.var(*v)?;
                self.b.use_var(v)
            }
            Expr::Load { buf, index } => {
                let addr = self.address(*buf, index)?;
                self.load(*buf, addr)
            }
            Expr::Unary(op, a) => {
                let a = self.expr(a)?;
                self.unary(*op, a)?
            }
            Expr::Binary(op, a, b) => {
                let a = self.expr(a)?;
                let b = self.expr(b)?;
                self.binary(*op, a, b)?
            }
            Expr::Select(c, a, b) => self.select(c, a, b)?,
            Expr::Cast(t, a) => {
                let a = self.expr(a)?;
                self.cast(*t, a)?
            }
            Expr::Bitcast(t, a) => {
                let a = self.expr(a)?;
                let from = self.ty(a);
                let to = clif(*t);
                let ok = matches!((from, to), (types::F32, types::I32) | (types::I32, types::F32) | (types::F64, types::I64) | (types::I64, types::F64));
                if !ok || *t == Ty::Index {
                    return Err(failed(format!("bitcast of {from} to {t:?}")));
                }
                self.b.ins().bitcast(to, MemFlagsData::new(), a)
            }
            Expr::Fma(a, b, c) => {
                let (a, b, c) = (self.expr(a)?, self.expr(b)?, self.expr(c)?);
                let t = self.ty(a);
                if !t.is_float() || self.ty(b) != t || self.ty(c) != t {
                    return Err(failed(format!("fma of {t}, {}, {}", self.ty(b), self.ty(c))));
                }
                self.fma(a, b, c)?
            }
        })
    }

    pub fn ty(&self, v: Value) -> Type {
        self.b.func.dfg.value_type(v)
    }

    fn lit(&mut self, l: Lit) -> Value {
        match l {
            Lit::F32(x) => self.b.ins().f32const(x),
            Lit::F64(x) => self.b.ins().f64const(x),
            Lit::I32(x) => self.b.ins().iconst(types::I32, x as i64),
            Lit::I64(x) | Lit::Index(x) => self.b.ins().iconst(types::I64, x),
            Lit::Bool(x) => self.b.ins().iconst(types::I8, x as i64),
        }
    }

    /// `cond ? a : b`. The interpreter evaluates only the chosen operand, so when an
    /// operand loads (its index may be out of bounds exactly when it is not chosen) the
    /// select becomes a branch; otherwise both are computed and a `select` picks one.
    fn select(&mut self, c: &Expr, a: &Expr, b: &Expr) -> Result<Value, BackendError> {
        let c = self.expr(c)?;
        self.expect_type(c, types::I8, "select condition")?;
        if !has_load(a) && !has_load(b) {
            let (a, b) = (self.expr(a)?, self.expr(b)?);
            self.same_type(a, b, "select")?;
            return Ok(self.b.ins().select(c, a, b));
        }
        let (ta, tb, join) = (self.b.create_block(), self.b.create_block(), self.b.create_block());
        self.b.ins().brif(c, ta, &[], tb, &[]);
        self.b.switch_to_block(ta);
        let a = self.expr(a)?;
        let ty = self.ty(a);
        let out = self.b.append_block_param(join, ty);
        self.b.ins().jump(join, &[BlockArg::Value(a)]);
        self.b.switch_to_block(tb);
        let b = self.expr(b)?;
        self.expect_type(b, ty, "select")?;
        self.b.ins().jump(join, &[BlockArg::Value(b)]);
        self.b.switch_to_block(join);
        Ok(out)
    }

    fn same_type(&self, a: Value, b: Value, what: &str) -> Result<Type, BackendError> {
        let t = self.ty(a);
        self.expect_type(b, t, what)?;
        Ok(t)
    }

    fn unary(&mut self, op: UnOp, a: Value) -> Result<Value, BackendError> {
        let t = self.ty(a);
        let ins = self.b.ins();
        Ok(match (op, t.is_float()) {
            (UnOp::Neg, true) => ins.fneg(a),
            (UnOp::Neg, false) if t != types::I8 => ins.ineg(a),
            (UnOp::Abs, true) => ins.fabs(a),
            (UnOp::Abs, false) if t != types::I8 => ins.iabs(a),
            (UnOp::Not, false) if t == types::I8 => ins.bxor_imm_u(a, 1),
            (UnOp::Not, false) => ins.bnot(a),
            (UnOp::Sqrt, true) => ins.sqrt(a),
            (UnOp::Sxtb16, false) if t == types::I32 => {
                // Bytes 0 and 2 sign-extended into the int16 halves: (a << 24) >> 24 masked
                // to the low half, or'd with ((a << 8) >> 24) << 16.
                let lo = ins.ishl_imm_u(a, 24);
                let lo = self.b.ins().sshr_imm_u(lo, 24);
                let lo = self.b.ins().band_imm_u(lo, 0xFFFF);
                let hi = self.b.ins().ishl_imm_u(a, 8);
                let hi = self.b.ins().sshr_imm_u(hi, 24);
                let hi = self.b.ins().ishl_imm_u(hi, 16);
                self.b.ins().bor(lo, hi)
            }
            (UnOp::Floor | UnOp::Ceil | UnOp::Round | UnOp::Trunc, true) => self.round(op, a),
            (op, _) if !op.is_primitive() => return Err(unsupported(format!("{op:?} (not expanded by kir::math::expand)"))),
            (op, _) => return Err(failed(format!("{op:?} of {t}"))),
        })
    }

    fn binary(&mut self, op: BinOp, a: Value, b: Value) -> Result<Value, BackendError> {
        let t = self.same_type(a, b, &format!("{op:?}"))?;
        if op == BinOp::Pow {
            return Err(unsupported("Pow (not expanded by kir::math::expand)"));
        }
        if t.is_float() {
            self.float_binary(op, a, b)
        } else if t == types::I8 {
            self.bool_binary(op, a, b)
        } else {
            Ok(self.int_binary(op, a, b))
        }
    }

    fn float_binary(&mut self, op: BinOp, a: Value, b: Value) -> Result<Value, BackendError> {
        let ins = self.b.ins();
        Ok(match op {
            BinOp::Add => ins.fadd(a, b),
            BinOp::Sub => ins.fsub(a, b),
            BinOp::Mul => ins.fmul(a, b),
            BinOp::Div => ins.fdiv(a, b),
            BinOp::Rem => self.fmod(a, b),
            BinOp::Min | BinOp::Max => self.min_max(op == BinOp::Max, a, b),
            BinOp::Eq => ins.fcmp(FloatCC::Equal, a, b),
            // `!=` is true when either side is NaN, as in Rust and C.
            BinOp::Ne => ins.fcmp(FloatCC::NotEqual, a, b),
            BinOp::Lt => ins.fcmp(FloatCC::LessThan, a, b),
            BinOp::Le => ins.fcmp(FloatCC::LessThanOrEqual, a, b),
            BinOp::Gt => ins.fcmp(FloatCC::GreaterThan, a, b),
            BinOp::Ge => ins.fcmp(FloatCC::GreaterThanOrEqual, a, b),
            op => return Err(failed(format!("{op:?} on floats"))),
        })
    }

    fn bool_binary(&mut self, op: BinOp, a: Value, b: Value) -> Result<Value, BackendError> {
        let ins = self.b.ins();
        Ok(match op {
            BinOp::And => ins.band(a, b),
            BinOp::Or => ins.bor(a, b),
            BinOp::Xor => ins.bxor(a, b),
            BinOp::Eq => ins.icmp(IntCC::Equal, a, b),
            BinOp::Ne => ins.icmp(IntCC::NotEqual, a, b),
            op => return Err(failed(format!("{op:?} on bools"))),
        })
    }

    fn int_binary(&mut self, op: BinOp, a: Value, b: Value) -> Value {
        let t = self.ty(a);
        let bits = t.bits() as i64;
        match op {
            BinOp::Add => self.b.ins().iadd(a, b),
            BinOp::Sub => self.b.ins().isub(a, b),
            BinOp::Mul => self.b.ins().imul(a, b),
            BinOp::Div | BinOp::Rem => self.guarded_div(op == BinOp::Rem, a, b),
            BinOp::Min => self.b.ins().smin(a, b),
            BinOp::Max => self.b.ins().smax(a, b),
            BinOp::And => self.b.ins().band(a, b),
            BinOp::Or => self.b.ins().bor(a, b),
            BinOp::Xor => self.b.ins().bxor(a, b),
            BinOp::Shl | BinOp::UShr => {
                // Cranelift masks the amount; KIR gives 0 for amounts outside 0..bits
                // (negative ones included, hence the unsigned comparison).
                let in_range = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, b, bits);
                let shifted = if op == BinOp::Shl { self.b.ins().ishl(a, b) } else { self.b.ins().ushr(a, b) };
                let zero = self.b.ins().iconst(t, 0);
                self.b.ins().select(in_range, shifted, zero)
            }
            BinOp::Shr => {
                // Out of range: the sign fill, i.e. a shift by bits - 1.
                let in_range = self.b.ins().icmp_imm_u(IntCC::UnsignedLessThan, b, bits);
                let max = self.b.ins().iconst(t, bits - 1);
                let amount = self.b.ins().select(in_range, b, max);
                self.b.ins().sshr(a, amount)
            }
            BinOp::Dot2 => {
                // Scalar: the two sign-extended int16 halves of each operand (KIR makes
                // Dot2 I32-only; the validator and the interpreter reject other types).
                let halves = |fb: &mut Self, v: Value| {
                    let sixteen = fb.b.ins().iconst(types::I32, 16);
                    let lo = fb.b.ins().ishl(v, sixteen);
                    let lo = fb.b.ins().sshr(lo, sixteen);
                    let hi = fb.b.ins().sshr(v, sixteen);
                    (lo, hi)
                };
                let ((al, ah), (bl, bh)) = (halves(self, a), halves(self, b));
                let lo = self.b.ins().imul(al, bl);
                let hi = self.b.ins().imul(ah, bh);
                self.b.ins().iadd(lo, hi)
            }
            BinOp::Eq => self.b.ins().icmp(IntCC::Equal, a, b),
            BinOp::Ne => self.b.ins().icmp(IntCC::NotEqual, a, b),
            BinOp::Lt => self.b.ins().icmp(IntCC::SignedLessThan, a, b),
            BinOp::Le => self.b.ins().icmp(IntCC::SignedLessThanOrEqual, a, b),
            BinOp::Gt => self.b.ins().icmp(IntCC::SignedGreaterThan, a, b),
            BinOp::Ge => self.b.ins().icmp(IntCC::SignedGreaterThanOrEqual, a, b),
            BinOp::Pow => unreachable!("rejected by binary()"),
        }
    }

    /// `a / b` or `a % b` without traps: the divisor is replaced by 1 when it is 0 or
    /// when `a / b` would overflow (`MIN / -1`, whose wrapped quotient is `a / 1` and
    /// remainder `a % 1 = 0`), and a zero divisor gives 0.
    fn guarded_div(&mut self, rem: bool, a: Value, b: Value) -> Value {
        let t = self.ty(a);
        let min = if t == types::I32 { i32::MIN as i64 } else { i64::MIN };
        let ins = &mut self.b;
        let b_zero = ins.ins().icmp_imm_u(IntCC::Equal, b, 0);
        let a_min = ins.ins().icmp_imm_s(IntCC::Equal, a, min);
        let b_m1 = ins.ins().icmp_imm_s(IntCC::Equal, b, -1);
        let overflow = ins.ins().band(a_min, b_m1);
        let unsafe_b = ins.ins().bor(b_zero, overflow);
        let one = ins.ins().iconst(t, 1);
        let safe_b = ins.ins().select(unsafe_b, one, b);
        let q = if rem { ins.ins().srem(a, safe_b) } else { ins.ins().sdiv(a, safe_b) };
        let zero = ins.ins().iconst(t, 0);
        ins.ins().select(b_zero, zero, q)
    }

    /// Min/Max propagating NaN (Cranelift's `fmin`/`fmax` do, on every ISA).
    fn min_max(&mut self, max: bool, a: Value, b: Value) -> Value {
        if max {
            self.b.ins().fmax(a, b)
        } else {
            self.b.ins().fmin(a, b)
        }
    }

    /// C-style numeric conversion, as `kir::interp::cast`.
    fn cast(&mut self, to: Ty, a: Value) -> Result<Value, BackendError> {
        let from = self.ty(a);
        let to_t = clif(to);
        if from == to_t {
            return Ok(a);
        }
        let ins = self.b.ins();
        Ok(match (from, to_t) {
            (types::I8, t) if t.is_float() => {
                let w = ins.uextend(types::I32, a);
                self.b.ins().fcvt_from_sint(t, w)
            }
            (types::I8, t) => ins.uextend(t, a),
            (f, types::I8) if f.is_float() => {
                let zero = if f == types::F32 { ins.f32const(0.0) } else { ins.f64const(0.0) };
                self.b.ins().fcmp(FloatCC::NotEqual, a, zero)
            }
            (_, types::I8) => ins.icmp_imm_u(IntCC::NotEqual, a, 0),
            (types::F32, types::F64) => ins.fpromote(types::F64, a),
            (types::F64, types::F32) => ins.fdemote(types::F32, a),
            (f, t) if f.is_float() => ins.fcvt_to_sint_sat(t, a),
            (_, t) if t.is_float() => ins.fcvt_from_sint(t, a),
            (types::I32, types::I64) => ins.sextend(types::I64, a),
            (types::I64, types::I32) => ins.ireduce(types::I32, a),
            (f, t) => return Err(failed(format!("cast of {f} to {t}"))),
        })
    }
}

fn has_load(e: &Expr) -> bool {
    match e {
        Expr::Lit(_) | Expr::Var(_) => false,
        Expr::Load { .. } => true,
        Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Bitcast(_, a) => has_load(a),
        Expr::Binary(_, a, b) => has_load(a) || has_load(b),
        Expr::Select(a, b, c) | Expr::Fma(a, b, c) => has_load(a) || has_load(b) || has_load(c),
    }
}

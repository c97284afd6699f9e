//! Float operations Cranelift lacks or would turn into libcalls: rounding without
//! SSE4.1, fused multiply-add without FMA, and `fmod` (no ISA has it).

use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{types, BlockArg, InstBuilder, MemFlagsData, Type, Value};

use super::kernel::KernelCx;
use super::unsupported;
use crate::back::BackendError;
use crate::kir::UnOp;

/// The integer type with a float type's width, and its mantissa width.
fn int_of(t: Type) -> (Type, u32) {
    if t == types::F32 {
        (types::I32, 23)
    } else {
        (types::I64, 52)
    }
}

impl KernelCx<'_, '_> {
    fn fconst(&mut self, t: Type, x: f64) -> Value {
        if t == types::F32 {
            self.b.ins().f32const(x as f32)
        } else {
            self.b.ins().f64const(x)
        }
    }

    /// Floor, Ceil, Round (ties to even) or Trunc: one instruction where the ISA has it,
    /// otherwise through a saturating integer conversion (exact below 2^mantissa, where
    /// every float is integral anyway).
    pub fn round(&mut self, op: UnOp, x: Value) -> Value {
        if self.caps.rounding {
            let ins = self.b.ins();
            return match op {
                UnOp::Floor => ins.floor(x),
                UnOp::Ceil => ins.ceil(x),
                UnOp::Round => ins.nearest(x),
                _ => ins.trunc(x),
            };
        }
        let t = self.ty(x);
        let (it, mant) = int_of(t);
        let limit = self.fconst(t, (1u64 << mant) as f64);
        let abs = self.b.ins().fabs(x);
        let integral = self.b.ins().fcmp(FloatCC::UnorderedOrGreaterThanOrEqual, abs, limit);
        let i = self.b.ins().fcvt_to_sint_sat(it, x);
        let tr = self.b.ins().fcvt_from_sint(t, i);
        let one = self.fconst(t, 1.0);
        let zero = self.fconst(t, 0.0);
        let r = match op {
            UnOp::Floor => {
                let above = self.b.ins().fcmp(FloatCC::GreaterThan, tr, x);
                let d = self.b.ins().select(above, one, zero);
                self.b.ins().fsub(tr, d)
            }
            UnOp::Ceil => {
                let below = self.b.ins().fcmp(FloatCC::LessThan, tr, x);
                let d = self.b.ins().select(below, one, zero);
                self.b.ins().fadd(tr, d)
            }
            UnOp::Round => {
                let frac = self.b.ins().fsub(x, tr);
                let frac = self.b.ins().fabs(frac);
                let half = self.fconst(t, 0.5);
                let more = self.b.ins().fcmp(FloatCC::GreaterThan, frac, half);
                let tie = self.b.ins().fcmp(FloatCC::Equal, frac, half);
                let odd = self.b.ins().band_imm_u(i, 1);
                let odd = self.b.ins().icmp_imm_u(IntCC::NotEqual, odd, 0);
                let tie_up = self.b.ins().band(tie, odd);
                let up = self.b.ins().bor(more, tie_up);
                let step = self.b.ins().fcopysign(one, x);
                let d = self.b.ins().select(up, step, zero);
                self.b.ins().fadd(tr, d)
            }
            _ => tr,
        };
        // Keep the sign of zero results (-0.3 → -0.0).
        let r = self.b.ins().fcopysign(r, x);
        self.b.ins().select(integral, x, r)
    }

    /// `a * b + c` with one rounding. Without an FMA instruction, f32 is computed in f64
    /// (the product is exact there; the sum is rounded twice, which differs from a true
    /// fma only in rare halfway cases) and f64 is unsupported.
    pub fn fma(&mut self, a: Value, b: Value, c: Value) -> Result<Value, BackendError> {
        if self.caps.fma {
            return Ok(self.b.ins().fma(a, b, c));
        }
        if self.ty(a) != types::F32 {
            return Err(unsupported("f64 fma on an x86_64 without FMA"));
        }
        let ins = &mut self.b;
        let [a, b, c] = [a, b, c].map(|v| ins.ins().fpromote(types::F64, v));
        let p = ins.ins().fmul(a, b);
        let s = ins.ins().fadd(p, c);
        Ok(ins.ins().fdemote(types::F32, s))
    }

    /// `fmod(x, y)`: the exact remainder with the sign of `x`, by binary long division
    /// on the mantissas (musl's algorithm): one loop iteration per bit of exponent
    /// difference.
    pub fn fmod(&mut self, x: Value, y: Value) -> Value {
        let t = self.ty(x);
        let (it, mant) = int_of(t);
        let bits = it.bits() as i64;
        let exp_mask = (1i64 << (bits - 1 - mant as i64)) - 1;
        let implicit = 1i64 << mant;
        let flags = MemFlagsData::new();

        let b = &mut self.b;
        let ux = b.ins().bitcast(it, flags, x);
        let uy = b.ins().bitcast(it, flags, y);
        let ax = b.ins().ishl_imm_u(ux, 1);
        let ay = b.ins().ishl_imm_u(uy, 1);

        let nan_case = b.create_block();
        let small_case = b.create_block();
        let divide = b.create_block();
        let done = b.create_block();
        let result = b.append_block_param(done, t);

        // NaN when y is ±0 or NaN, or x is infinite or NaN.
        let y_zero = b.ins().icmp_imm_u(IntCC::Equal, ay, 0);
        let y_nan = b.ins().fcmp(FloatCC::Unordered, y, y);
        let ex = b.ins().ushr_imm_u(ux, mant as i64);
        let ex = b.ins().band_imm_u(ex, exp_mask);
        let x_special = b.ins().icmp_imm_u(IntCC::Equal, ex, exp_mask);
        let bad = b.ins().bor(y_zero, y_nan);
        let bad = b.ins().bor(bad, x_special);
        let check_small = b.create_block();
        b.ins().brif(bad, nan_case, &[], check_small, &[]);

        b.switch_to_block(nan_case);
        // (x * y) / (x * y): 0/0, inf/inf or NaN.
        let q = b.ins().fmul(x, y);
        let nan = b.ins().fdiv(q, q);
        b.ins().jump(done, &[BlockArg::Value(nan)]);

        // |x| <= |y|: x, or a signed zero when equal.
        b.switch_to_block(check_small);
        let small = b.ins().icmp(IntCC::UnsignedLessThanOrEqual, ax, ay);
        b.ins().brif(small, small_case, &[], divide, &[]);
        b.switch_to_block(small_case);
        let equal = b.ins().icmp(IntCC::Equal, ax, ay);
        let zero = if t == types::F32 { b.ins().f32const(0.0) } else { b.ins().f64const(0.0) };
        let signed_zero = b.ins().fcopysign(zero, x);
        let r = b.ins().select(equal, signed_zero, x);
        b.ins().jump(done, &[BlockArg::Value(r)]);

        // Normalised mantissas with their exponents (subnormals shifted up).
        b.switch_to_block(divide);
        let (mx, ex) = normalise(b, it, mant, ux, exp_mask, implicit);
        let (my, ey) = normalise(b, it, mant, uy, exp_mask, implicit);
        let lp = b.create_block();
        let m = b.append_block_param(lp, it);
        let e = b.append_block_param(lp, it);
        let tail = b.create_block();
        let tm = b.append_block_param(tail, it);
        let te = b.append_block_param(tail, it);
        let zero_block = b.create_block();
        let enter = b.ins().icmp(IntCC::SignedGreaterThan, ex, ey);
        b.ins().brif(enter, lp, &[BlockArg::Value(mx), BlockArg::Value(ex)], tail, &[BlockArg::Value(mx), BlockArg::Value(ex)]);

        // while e > ey { if m >= my { m -= my; if m == 0 { return ±0 } } m <<= 1; e -= 1 }
        b.switch_to_block(lp);
        let d = b.ins().isub(m, my);
        let ge = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, d, 0);
        let m1 = b.ins().select(ge, d, m);
        let exact = b.ins().icmp_imm_u(IntCC::Equal, d, 0);
        let cont = b.create_block();
        b.ins().brif(exact, zero_block, &[], cont, &[]);
        b.switch_to_block(cont);
        let m2 = b.ins().ishl_imm_u(m1, 1);
        let e2 = b.ins().iadd_imm_s(e, -1);
        let again = b.ins().icmp(IntCC::SignedGreaterThan, e2, ey);
        b.ins().brif(again, lp, &[BlockArg::Value(m2), BlockArg::Value(e2)], tail, &[BlockArg::Value(m2), BlockArg::Value(e2)]);

        // Last subtraction, renormalise, rebuild the float with x's sign.
        b.switch_to_block(tail);
        let d = b.ins().isub(tm, my);
        let ge = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, d, 0);
        let exact = b.ins().icmp_imm_u(IntCC::Equal, d, 0);
        let finish = b.create_block();
        b.ins().brif(exact, zero_block, &[], finish, &[]);
        b.switch_to_block(finish);
        let m = b.ins().select(ge, d, tm);
        // Shift left until the implicit bit is set.
        let lz = b.ins().clz(m);
        let shift = b.ins().iadd_imm_s(lz, -(bits - 1 - mant as i64));
        let m = b.ins().ishl(m, shift);
        let e = b.ins().isub(te, shift);
        // e > 0: normal; else subnormal, shifted right by 1 - e.
        let normal_m = b.ins().band_imm_u(m, implicit - 1);
        let e_bits = b.ins().ishl_imm_u(e, mant as i64);
        let normal = b.ins().bor(normal_m, e_bits);
        let one = b.ins().iconst(it, 1);
        let sub_shift = b.ins().isub(one, e);
        let subnormal = b.ins().ushr(m, sub_shift);
        let is_normal = b.ins().icmp_imm_s(IntCC::SignedGreaterThan, e, 0);
        let mag = b.ins().select(is_normal, normal, subnormal);
        let sign = b.ins().band_imm_u(ux, 1i64 << (bits - 1));
        let r = b.ins().bor(mag, sign);
        let r = b.ins().bitcast(t, flags, r);
        b.ins().jump(done, &[BlockArg::Value(r)]);

        b.switch_to_block(zero_block);
        let zero = if t == types::F32 { b.ins().f32const(0.0) } else { b.ins().f64const(0.0) };
        let signed_zero = b.ins().fcopysign(zero, x);
        b.ins().jump(done, &[BlockArg::Value(signed_zero)]);

        b.switch_to_block(done);
        result
    }
}

/// The mantissa with its implicit bit, and the biased exponent, of a finite nonzero
/// float's bits; a subnormal's mantissa is shifted up to the implicit bit and its
/// exponent lowered accordingly (below 1, as musl's).
fn normalise(b: &mut cranelift_frontend::FunctionBuilder, it: Type, mant: u32, u: Value, exp_mask: i64, implicit: i64) -> (Value, Value) {
    let bits = it.bits() as i64;
    let e = b.ins().ushr_imm_u(u, mant as i64);
    let e = b.ins().band_imm_u(e, exp_mask);
    let m = b.ins().band_imm_u(u, implicit - 1);
    let normal_m = b.ins().bor_imm_u(m, implicit);
    // Subnormal: shift so the top set bit lands on the implicit bit.
    let lz = b.ins().clz(m);
    let shift = b.ins().iadd_imm_s(lz, -(bits - 1 - mant as i64));
    let sub_m = b.ins().ishl(m, shift);
    let one = b.ins().iconst(it, 1);
    let sub_e = b.ins().isub(one, shift);
    let is_sub = b.ins().icmp_imm_u(IntCC::Equal, e, 0);
    (b.ins().select(is_sub, sub_m, normal_m), b.ins().select(is_sub, sub_e, e))
}

//! Loads widen a buffer's element type to its KIR type and stores narrow it back
//! (`Ty::of_storage`): small integers sign- or zero-extend and wrap, `bool` is one byte
//! normalised to 0/1, and f16/bf16 convert to and from f32 by integer bit manipulation
//! (no half-precision instructions, no libcalls), rounding to nearest even exactly as
//! the `half` crate the interpreter uses.

use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{types, InstBuilder, MemFlagsData, Value};

use super::failed;
use super::kernel::{clif, KernelCx};
use crate::back::BackendError;
use crate::ir::DType;
use crate::kir::{BufId, Ty};

fn flags() -> MemFlagsData {
    MemFlagsData::new().with_notrap()
}

impl KernelCx<'_, '_> {
    /// The element at `addr` of `buf`, widened.
    pub fn load(&mut self, buf: BufId, addr: Value) -> Value {
        let ins = self.b.ins();
        match self.prog.buffer(buf).dtype {
            DType::F32 => ins.load(types::F32, flags(), addr, 0),
            DType::F64 => ins.load(types::F64, flags(), addr, 0),
            DType::I8 => ins.sload8(types::I32, flags(), addr, 0),
            DType::U8 => ins.uload8(types::I32, flags(), addr, 0),
            DType::I16 => ins.sload16(types::I32, flags(), addr, 0),
            DType::U16 => ins.uload16(types::I32, flags(), addr, 0),
            DType::I32 => ins.load(types::I32, flags(), addr, 0),
            DType::U32 => ins.uload32(flags(), addr, 0),
            DType::Bool => {
                let byte = ins.load(types::I8, flags(), addr, 0);
                self.b.ins().icmp_imm_u(IntCC::NotEqual, byte, 0)
            }
            DType::BF16 => {
                let h = ins.uload16(types::I32, flags(), addr, 0);
                let bits = self.b.ins().ishl_imm_u(h, 16);
                self.b.ins().bitcast(types::F32, MemFlagsData::new(), bits)
            }
            DType::F16 => {
                let h = ins.uload16(types::I32, flags(), addr, 0);
                self.f16_to_f32(h)
            }
            // I64, U64 (and the packed types, rejected before code generation).
            _ => ins.load(types::I64, flags(), addr, 0),
        }
    }

    /// Stores `x`, narrowed to `buf`'s element type, at `addr`.
    pub fn store(&mut self, buf: BufId, addr: Value, x: Value) -> Result<(), BackendError> {
        let dtype = self.prog.buffer(buf).dtype;
        let ty = Ty::of_storage(dtype).ok_or_else(|| failed(format!("store to a {dtype} buffer")))?;
        self.expect_type(x, clif(ty), &format!("store to a {dtype} buffer"))?;
        let x = match dtype {
            DType::F16 => self.f32_to_f16(x),
            DType::BF16 => self.f32_to_bf16(x),
            _ => x,
        };
        let ins = self.b.ins();
        match dtype {
            DType::I8 | DType::U8 => ins.istore8(flags(), x, addr, 0),
            DType::I16 | DType::U16 | DType::F16 | DType::BF16 => ins.istore16(flags(), x, addr, 0),
            DType::U32 => ins.istore32(flags(), x, addr, 0),
            _ => ins.store(flags(), x, addr, 0),
        };
        Ok(())
    }

    /// f16 bits (low 16 bits of an I32) → f32. The magnitude bits shifted into an f32's
    /// exponent/mantissa position, times 2^112, rebias the exponent exactly (subnormal
    /// halves become normal floats); infinities and NaNs get the all-ones exponent, NaNs
    /// also the quiet bit, as `half::f16::to_f32`.
    fn f16_to_f32(&mut self, h: Value) -> Value {
        let b = &mut self.b;
        let mag = b.ins().band_imm_u(h, 0x7fff);
        let shifted = b.ins().ishl_imm_u(mag, 13);
        let f = b.ins().bitcast(types::F32, MemFlagsData::new(), shifted);
        let scale = b.ins().f32const(f32::from_bits(0x7780_0000)); // 2^112
        let scaled = b.ins().fmul(f, scale);
        let finite_bits = b.ins().bitcast(types::I32, MemFlagsData::new(), scaled);
        let man = b.ins().band_imm_u(h, 0x03ff);
        let man = b.ins().ishl_imm_u(man, 13);
        let inf_bits = b.ins().bor_imm_u(man, 0x7f80_0000);
        let nan_bits = b.ins().bor_imm_u(man, 0x7fc0_0000);
        let is_nan_man = b.ins().icmp_imm_u(IntCC::NotEqual, man, 0);
        let special_bits = b.ins().select(is_nan_man, nan_bits, inf_bits);
        let exp = b.ins().band_imm_u(h, 0x7c00);
        let special = b.ins().icmp_imm_u(IntCC::Equal, exp, 0x7c00);
        let bits = b.ins().select(special, special_bits, finite_bits);
        let sign = b.ins().band_imm_u(h, 0x8000);
        let sign = b.ins().ishl_imm_u(sign, 16);
        let bits = b.ins().bor(bits, sign);
        b.ins().bitcast(types::F32, MemFlagsData::new(), bits)
    }

    /// f32 → bf16 bits (in an I32), round to nearest even; NaNs keep their top bits and
    /// become quiet (`half::bf16::from_f32`).
    fn f32_to_bf16(&mut self, x: Value) -> Value {
        let b = &mut self.b;
        let bits = b.ins().bitcast(types::I32, MemFlagsData::new(), x);
        let hi = b.ins().ushr_imm_u(bits, 16);
        // Round up when the round bit is set and (sticky bits or the lowest kept bit) are.
        let round = b.ins().band_imm_u(bits, 0x8000);
        let rest = b.ins().band_imm_u(bits, 3 * 0x8000 - 1);
        let up = Self::round_up(b, round, rest);
        let rounded = b.ins().iadd(hi, up);
        let mag = b.ins().band_imm_u(bits, 0x7fff_ffff);
        let is_nan = b.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, mag, 0x7f80_0000);
        let nan = b.ins().bor_imm_u(hi, 0x0040);
        b.ins().select(is_nan, nan, rounded)
    }

    /// 1 when `round != 0 && rest != 0`, else 0 (as I32).
    fn round_up(b: &mut cranelift_frontend::FunctionBuilder, round: Value, rest: Value) -> Value {
        let r = b.ins().icmp_imm_u(IntCC::NotEqual, round, 0);
        let s = b.ins().icmp_imm_u(IntCC::NotEqual, rest, 0);
        let both = b.ins().band(r, s);
        b.ins().uextend(types::I32, both)
    }

    /// f32 → f16 bits (in an I32), round to nearest even, as `half::f16::from_f32`:
    /// the normal, subnormal, overflow, underflow and NaN/infinity cases are all
    /// computed and the right one selected (no branches in the hot loop).
    fn f32_to_f16(&mut self, x: Value) -> Value {
        let b = &mut self.b;
        let bits = b.ins().bitcast(types::I32, MemFlagsData::new(), x);
        let sign = b.ins().band_imm_u(bits, 0x8000_0000);
        let half_sign = b.ins().ushr_imm_u(sign, 16);
        let exp = b.ins().band_imm_u(bits, 0x7f80_0000);
        let man = b.ins().band_imm_u(bits, 0x007f_ffff);

        // NaN / infinity.
        let man_nonzero = b.ins().icmp_imm_u(IntCC::NotEqual, man, 0);
        let nan_bit = b.ins().iconst(types::I32, 0x0200);
        let zero = b.ins().iconst(types::I32, 0);
        let nan_bit = b.ins().select(man_nonzero, nan_bit, zero);
        let man_hi = b.ins().ushr_imm_u(man, 13);
        let special = b.ins().bor_imm_u(half_sign, 0x7c00);
        let special = b.ins().bor(special, nan_bit);
        let special = b.ins().bor(special, man_hi);

        // half_exp = (exp >> 23) - 127 + 15, signed.
        let e = b.ins().ushr_imm_u(exp, 23);
        let half_exp = b.ins().iadd_imm_s(e, -112);

        // Overflow → signed infinity.
        let overflow = b.ins().bor_imm_u(half_sign, 0x7c00);

        // Subnormal half (half_exp <= 0): shift the mantissa with its implicit bit right
        // by 14 - half_exp (>= 14; beyond 24 the result is a signed zero).
        let full_man = b.ins().bor_imm_u(man, 0x0080_0000);
        let fourteen = b.ins().iconst(types::I32, 14);
        let shift = b.ins().isub(fourteen, half_exp);
        let sub_man = b.ins().ushr(full_man, shift);
        let round_shift = b.ins().iadd_imm_s(shift, -1);
        let one = b.ins().iconst(types::I32, 1);
        let round_bit = b.ins().ishl(one, round_shift);
        let round = b.ins().band(full_man, round_bit);
        let three = b.ins().imul_imm_u(round_bit, 3);
        let mask = b.ins().iadd_imm_s(three, -1);
        let rest = b.ins().band(full_man, mask);
        let up = Self::round_up(b, round, rest);
        let sub = b.ins().bor(half_sign, sub_man);
        let sub = b.ins().iadd(sub, up);
        let too_small = b.ins().icmp_imm_u(IntCC::UnsignedGreaterThan, shift, 24);
        let sub = b.ins().select(too_small, half_sign, sub);

        // Normal half.
        let e10 = b.ins().ishl_imm_u(half_exp, 10);
        let norm = b.ins().bor(half_sign, e10);
        let norm = b.ins().bor(norm, man_hi);
        let round = b.ins().band_imm_u(man, 0x1000);
        let rest = b.ins().band_imm_u(man, 3 * 0x1000 - 1);
        let up = Self::round_up(b, round, rest);
        let norm = b.ins().iadd(norm, up);

        let is_sub = b.ins().icmp_imm_s(IntCC::SignedLessThanOrEqual, half_exp, 0);
        let r = b.ins().select(is_sub, sub, norm);
        let is_over = b.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, half_exp, 0x1f);
        let r = b.ins().select(is_over, overflow, r);
        let is_special = b.ins().icmp_imm_u(IntCC::Equal, exp, 0x7f80_0000);
        b.ins().select(is_special, special, r)
    }
}

//! Packed element types as bytes: the 8-bit floats (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ),
//! float4 E2M1 and the 4- and 2-bit integers.
//!
//! Lowering treats a buffer of these types like any other: loads give `F32` (floats) or
//! `I32` (integers, sign-extended for int4/int2), stores narrow the value. [`expand`]
//! then makes them ordinary KIR, so no backend needs a new primitive:
//! - each such buffer becomes the `U8` bytes of ONNX's packed layout (8-bit types one
//!   per byte; 4-bit two and 2-bit four per byte, low bits first) — the weight blob and
//!   the caller's buffers hold exactly that; `Buffer::packed` keeps the caller's type;
//! - a load becomes a byte load, a shift and mask for sub-byte types, then the decoding
//!   ([`codec::decode`]: f32 bit assembly, or sign extension);
//! - a store becomes the encoding (round to nearest even, [`codec::encode`]; integers
//!   keep their low bits, like every integer narrowing) and a byte store, a
//!   read-modify-write of the byte for sub-byte types;
//! - a store of a load from a buffer of the same type (copies, transposes, gathers)
//!   moves the code itself, so NaN payloads and signs survive bit for bit.
//!
//! A store is non-saturating (out of range: infinity or NaN, as `Cast(saturate=0)`);
//! saturation is a clamp the lowering applies before the store. E8M0 is not handled
//! (its rounding depends on the op's `round_mode`): its buffers stay as they are, and
//! code generation reports them unsupported.

#[path = "packed_codec.rs"]
mod codec;
#[cfg(test)]
#[path = "packed_tests.rs"]
mod tests;

use std::sync::Arc;

use codec::Cx;

use super::{e, BinOp, BufId, BufKind, Buffer, Expr, Program, Stmt, Ty};
use crate::ir::{packed, DType, Tensor, TypeInfo};

/// True for the element types [`expand`] turns into bytes.
pub fn is_expanded(dtype: DType) -> bool {
    dtype.is_packed() && dtype != DType::F8E8M0
}

/// Rewrites every buffer of a packed type into bytes and its loads and stores into
/// integer and bit expressions (see the module documentation).
pub fn expand(program: &mut Program) {
    let formats: Vec<Option<DType>> =
        program.buffers.iter().map(|b| if is_expanded(b.dtype) { Some(b.dtype) } else { None }).collect();
    if formats.iter().all(Option::is_none) {
        return;
    }
    for b in &mut program.buffers {
        if is_expanded(b.dtype) {
            to_bytes(b);
        }
    }
    let buffers = &program.buffers;
    for k in &mut program.kernels {
        let body = std::mem::take(&mut k.body);
        k.body = Rewriter { formats: &formats, buffers, vars: &mut k.vars }.block(body);
    }
}

/// A packed buffer as its bytes; a weight's elements packed as ONNX files hold them.
fn to_bytes(b: &mut Buffer) {
    let bytes = b.dtype.storage_bytes(b.len());
    if let BufKind::Weight(t) = &b.kind {
        let codes: Vec<u8> = match t.as_ref() {
            Tensor::Packed(_, a) => a.iter().copied().collect(),
            // A weight always has the buffer's type; keep the program well formed anyway.
            _ => vec![0; b.len()],
        };
        b.kind = BufKind::Weight(Arc::new(Tensor::from_vec(&[bytes], packed::pack(b.dtype, &codes))));
    }
    b.packed = Some(TypeInfo::new(b.dtype, b.shape.clone()));
    b.dtype = DType::U8;
    b.shape = vec![bytes];
}

struct Rewriter<'a> {
    /// The packed type each buffer had, by buffer index.
    formats: &'a [Option<DType>],
    buffers: &'a [Buffer],
    vars: &'a mut Vec<Ty>,
}

impl Rewriter<'_> {
    fn format(&self, b: BufId) -> Option<DType> {
        self.formats.get(b.0 as usize).copied().flatten()
    }

    fn block(&mut self, stmts: Vec<Stmt>) -> Vec<Stmt> {
        let mut out = Vec::with_capacity(stmts.len());
        for s in stmts {
            let s = match s {
                Stmt::Loop { var, extent, body } => Stmt::Loop { var, extent, body: self.block(body) },
                Stmt::Set { var, value } => Stmt::Set { var, value: self.expr(value, &mut out) },
                Stmt::Store { buf, index, value } => match self.format(buf) {
                    Some(d) => {
                        self.store(d, buf, index, value, &mut out);
                        continue;
                    }
                    None => {
                        let index = self.expr(index, &mut out);
                        Stmt::Store { buf, index, value: self.expr(value, &mut out) }
                    }
                },
                Stmt::If { cond, then, els } => {
                    let cond = self.expr(cond, &mut out);
                    Stmt::If { cond, then: self.block(then), els: self.block(els) }
                }
                Stmt::Fail(code) => Stmt::Fail(code),
            };
            out.push(s);
        }
        out
    }

    /// A store to packed buffer `buf` of type `d`, as statements appended to `out`.
    fn store(&mut self, d: DType, buf: BufId, index: Expr, value: Expr, out: &mut Vec<Stmt>) {
        let index = self.expr(index, out);
        let code = match value {
            // Same type: move the code, not the value.
            Expr::Load { buf: src, index: si } if self.format(src) == Some(d) => {
                let si = self.expr(*si, out);
                self.code_at(d, src, si, out)
            }
            value => {
                let value = self.expr(value, out);
                let ty = self.ty_of(&value).unwrap_or(Ty::I32);
                let mut cx = Cx { vars: self.vars, pre: out };
                match packed::minifloat(d) {
                    Some(f) => {
                        let (ty, value) = match ty {
                            Ty::F32 | Ty::F64 => (ty, value),
                            Ty::Bool => (Ty::F32, e::select(value, e::f32(1.0), e::f32(0.0))),
                            _ => (Ty::F32, e::cast(Ty::F32, value)),
                        };
                        codec::encode(&mut cx, f, ty, value)
                    }
                    None => match ty {
                        Ty::I32 => value,
                        Ty::Bool => e::select(value, e::i32(1), e::i32(0)),
                        // Lowering converts first; a cast keeps the program well formed.
                        _ => e::cast(Ty::I32, value),
                    },
                }
            }
        };
        self.put_code(d, buf, index, code, out);
    }

    /// Writes `code` (an `I32`; only its low `bits` count) at element `index` of `buf`.
    fn put_code(&mut self, d: DType, buf: BufId, index: Expr, code: Expr, out: &mut Vec<Stmt>) {
        let bits = d.bits() as i64;
        if bits >= 8 {
            out.push(Stmt::Store { buf, index, value: code });
            return;
        }
        let mut cx = Cx { vars: self.vars, pre: out };
        let index = cx.let_(Ty::Index, index);
        let (byte, shift) = byte_and_shift(bits, index);
        let byte = cx.let_(Ty::Index, byte);
        let shift = cx.let_(Ty::I32, shift);
        let mask = (1 << bits) - 1;
        let code = e::bin(BinOp::Shl, e::bin(BinOp::And, code, e::i32(mask)), shift.clone());
        let keep = e::un(super::UnOp::Not, e::bin(BinOp::Shl, e::i32(mask), shift));
        let old = e::load(buf, byte.clone());
        let value = e::bin(BinOp::Or, e::bin(BinOp::And, old, keep), code);
        out.push(Stmt::Store { buf, index: byte, value });
    }

    /// The code (an `I32`, zero-extended) of element `index` of packed buffer `buf`.
    fn code_at(&mut self, d: DType, buf: BufId, index: Expr, out: &mut Vec<Stmt>) -> Expr {
        let bits = d.bits() as i64;
        if bits >= 8 {
            return e::load(buf, index);
        }
        let mut cx = Cx { vars: self.vars, pre: out };
        let index = cx.let_(Ty::Index, index);
        let (byte, shift) = byte_and_shift(bits, index);
        e::bin(BinOp::And, e::bin(BinOp::UShr, e::load(buf, byte), shift), e::i32((1 << bits) - 1))
    }

    /// Rewrites `e` bottom-up; bindings go to `pre`.
    fn expr(&mut self, x: Expr, pre: &mut Vec<Stmt>) -> Expr {
        match x {
            Expr::Load { buf, index } => {
                let index = self.expr(*index, pre);
                match self.format(buf) {
                    Some(d) => {
                        let code = self.code_at(d, buf, index, pre);
                        let mut cx = Cx { vars: self.vars, pre };
                        match packed::minifloat(d) {
                            Some(f) => codec::decode(&mut cx, f, code),
                            None if d.is_signed_int() => {
                                let s = e::i32(32 - d.bits() as i32);
                                e::bin(BinOp::Shr, e::bin(BinOp::Shl, code, s.clone()), s)
                            }
                            None => code,
                        }
                    }
                    None => Expr::Load { buf, index: Box::new(index) },
                }
            }
            other => other.map_operands(|x| self.expr(x, pre)),
        }
    }

    /// The type of a rewritten expression (packed buffers are bytes by now), `None`
    /// where the program is malformed.
    fn ty_of(&self, x: &Expr) -> Option<Ty> {
        x.ty(self.vars, self.buffers)
    }
}

/// The byte holding element `index` (an `Index` variable) of a `bits`-bit type, and the
/// element's bit offset in it (an `I32`).
fn byte_and_shift(bits: i64, index: Expr) -> (Expr, Expr) {
    let per = 8 / bits;
    let byte = e::bin(BinOp::Shr, index.clone(), e::idx(per.trailing_zeros() as i64));
    let slot = e::bin(BinOp::And, index, e::idx(per - 1));
    (byte, e::mul(e::cast(Ty::I32, slot), e::i32(bits as i32)))
}

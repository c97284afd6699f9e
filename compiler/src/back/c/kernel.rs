//! One KIR kernel → one `static int` C function.
//!
//! Expressions become C expressions of a fixed C type per KIR type (F32 `float`, F64
//! `double`, I32 `int32_t`, I64 `int64_t`, Bool `int` holding 0/1, and Index the
//! target's pointer width: `int64_t`, or `int32_t` on 32-bit targets, where 64-bit
//! address arithmetic costs 2–4 instructions per add or multiply and twice the
//! registers). Wherever a C operator's semantics differ from the KIR interpreter's
//! (overflow, division by zero, shifts, float → int, min/max, rounding), the expression
//! calls a helper from [`super::helpers`] instead, and the helper's group is recorded
//! in `used`.
//!
//! With a 32-bit Index, KIR (whose interpreter computes Index in 64 bits and lets I64
//! and Index mix) needs care at the seams:
//! - an operation mixing I64 and Index is done in `int64_t` and is I64 (the interpreter's
//!   result, exactly);
//! - I64 → Index (a cast, or an I64 value set into an Index variable) saturates to the
//!   int32 range (`ec_sat_ix`): an index read from runtime data (Gather, ScatterND,
//!   Slice ...) that does not fit stays out of range, so the lowering's bounds checks
//!   still reject it, where truncation could alias it to a valid index;
//! - Index literals outside int32 (clamping sentinels) are emitted as I64, so the
//!   operations they take part in are done in 64 bits;
//! - Index → I64 sign-extends; float → Index saturates like float → I32;
//! - a buffer or loop too large for a 32-bit index is a compile error.

use std::collections::BTreeSet;
use std::fmt::Write;

use super::super::BackendError;
use crate::ir::DType;
use crate::kir::{BinOp, BufId, BufKind, Expr, Kernel, Lit, Program, Stmt, Ty, UnOp};
use crate::plan::layout::{Layout, Place};

type Result<T> = std::result::Result<T, BackendError>;

fn unsupported(what: impl Into<String>) -> BackendError {
    BackendError::Unsupported { backend: "c", what: what.into() }
}

fn malformed(what: impl Into<String>) -> BackendError {
    BackendError::Failed { backend: "c", what: format!("malformed KIR: {}", what.into()) }
}

/// The C type of an expression type; `index32`: Index is `int32_t` (32-bit targets).
pub fn c_type(t: Ty, index32: bool) -> &'static str {
    match t {
        Ty::F32 => "float",
        Ty::F64 => "double",
        Ty::I32 => "int32_t",
        Ty::Index if index32 => "int32_t",
        Ty::I64 | Ty::Index => "int64_t",
        Ty::Bool => "int",
    }
}

/// The C element type of a buffer of `dtype` (its storage, not its expression type).
/// Aliasing typedefs (`ec_*`, see `super::PRELUDE`) so that arena bytes reused with
/// another type between kernels do not break GCC's type-based alias analysis.
pub fn storage_type(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "ec_f32",
        DType::F64 => "ec_f64",
        DType::F16 | DType::BF16 | DType::U16 => "ec_u16",
        DType::I8 => "ec_i8",
        DType::U8 | DType::Bool => "ec_u8",
        DType::I16 => "ec_i16",
        DType::I32 => "ec_i32",
        DType::U32 => "ec_u32",
        DType::I64 => "ec_i64",
        DType::U64 => "ec_u64",
        d => return Err(unsupported(format!("buffers of type {d}"))),
    })
}

pub struct KernelGen<'a> {
    pub program: &'a Program,
    pub layout: &'a Layout,
    pub used: &'a mut BTreeSet<&'static str>,
    /// Index is `int32_t` (the target's pointers are 32-bit), see the module doc.
    pub index32: bool,
}

impl KernelGen<'_> {
    /// Emits `static int FN(const unsigned char *w, unsigned char *a, const void *const *in, void *const *out)`.
    pub fn kernel(&mut self, k: &Kernel, fn_name: &str, out: &mut String) -> Result<()> {
        let mut bufs = BTreeSet::new();
        let mut stored = BTreeSet::new();
        collect_bufs(&k.body, &mut bufs, &mut stored);
        let mut body = String::new();
        self.block(k, &k.body, 1, &mut body)?;

        let _ = writeln!(out, "/* {} */", k.name.replace("*/", "* /"));
        let _ = writeln!(
            out,
            "static int {fn_name}(const unsigned char *w, unsigned char *a, const void *const *in, void *const *out)\n{{"
        );
        for &b in &bufs {
            self.buffer_decl(b, stored.contains(&b), out)?;
        }
        for (i, &t) in k.vars.iter().enumerate() {
            let zero = match t {
                Ty::F32 => "0.0f",
                Ty::F64 => "0.0",
                _ => "0",
            };
            let _ = writeln!(out, "    {} v{i} = {zero};", c_type(t, self.index32));
        }
        // Not every kernel reads every pointer or variable; silence -Wunused.
        out.push_str("    (void)w; (void)a; (void)in; (void)out;\n");
        for i in 0..k.vars.len() {
            let _ = writeln!(out, "    (void)v{i};");
        }
        out.push_str(&body);
        out.push_str("    return 0;\n}\n\n");
        Ok(())
    }

    fn buffer_decl(&self, b: BufId, stored: bool, out: &mut String) -> Result<()> {
        let buf = self.program.buffers.get(b.0 as usize).ok_or_else(|| malformed(format!("buffer {} does not exist", b.0)))?;
        let t = storage_type(buf.dtype)?;
        if self.index32 && buf.len().checked_mul(buf.dtype.size()).is_none_or(|n| n > i32::MAX as usize) {
            return Err(unsupported(format!(
                "buffer '{}' ({} elements of {}): too large for the 32-bit indices of this target",
                buf.name,
                buf.len(),
                buf.dtype
            )));
        }
        let place = self.layout.places.get(b.0 as usize).copied().unwrap_or(Place::Unused);
        // restrict only where it holds whatever the caller passes: weights are never
        // written, and arena buffers used by one kernel never overlap (plan::memory).
        // Inputs and outputs are the caller's and may alias each other.
        let (konst, addr, restrict) = match place {
            Place::Input(k) => ("const ", format!("in[{k}]"), ""),
            Place::Output(k) => ("", format!("out[{k}]"), ""),
            Place::Weight(off) => ("const ", format!("(w + {off})"), "EC_RESTRICT "),
            Place::Arena(off) => ("", format!("(a + {off})"), "EC_RESTRICT "),
            Place::Unused => return Err(malformed(format!("buffer '{}' is used but has no place", buf.name))),
        };
        if stored && !konst.is_empty() {
            let what = if matches!(buf.kind, BufKind::Input(_)) { "an input" } else { "a weight" };
            return Err(malformed(format!("a kernel stores into {what} ('{}')", buf.name)));
        }
        let _ = writeln!(out, "    {konst}{t} *const {restrict}b{} = ({konst}{t} *){addr}; /* {} */", b.0, buf.name.replace("*/", "* /"));
        Ok(())
    }

    fn block(&mut self, k: &Kernel, stmts: &[Stmt], depth: usize, out: &mut String) -> Result<()> {
        let pad = "    ".repeat(depth);
        for s in stmts {
            match s {
                Stmt::Loop { var, extent, body } => {
                    self.var_ty(k, var.0, Some(Ty::Index))?;
                    let v = var.0;
                    let vt = self.var_ty(k, v, None)?;
                    let bound = if self.index32 && vt == Ty::Index {
                        if *extent > i32::MAX as usize {
                            return Err(unsupported(format!("a loop of {extent} iterations with 32-bit indices")));
                        }
                        extent.to_string()
                    } else {
                        format!("INT64_C({extent})")
                    };
                    let _ = writeln!(out, "{pad}for (v{v} = 0; v{v} < {bound}; ++v{v}) {{");
                    self.block(k, body, depth + 1, out)?;
                    let _ = writeln!(out, "{pad}}}");
                }
                Stmt::Set { var, value } => {
                    let t = self.var_ty(k, var.0, None)?;
                    let (c, vt) = self.expr(k, value)?;
                    if vt != t && !(is_index_like(vt) && is_index_like(t)) {
                        return Err(malformed(format!("v{} of type {t:?} set to a {vt:?}", var.0)));
                    }
                    let c = self.cast(t, c, vt);
                    let _ = writeln!(out, "{pad}v{} = {c};", var.0);
                }
                Stmt::Store { buf, index, value } => {
                    let dtype = self.program.buffers.get(buf.0 as usize).map(|b| b.dtype).ok_or_else(|| malformed("store to no buffer"))?;
                    let want = Ty::of_storage(dtype).ok_or_else(|| unsupported(format!("buffers of type {dtype}")))?;
                    let (i, it) = self.expr(k, index)?;
                    if !is_index_like(it) {
                        return Err(malformed(format!("index of type {it:?}")));
                    }
                    let (v, vt) = self.expr(k, value)?;
                    if vt != want && !(is_index_like(vt) && is_index_like(want)) {
                        return Err(malformed(format!("a {vt:?} stored into a buffer of {dtype}")));
                    }
                    let v = self.narrow(dtype, v);
                    let _ = writeln!(out, "{pad}b{}[{i}] = {v};", buf.0);
                }
                Stmt::If { cond, then, els } => {
                    let (c, ct) = self.expr(k, cond)?;
                    if ct != Ty::Bool {
                        return Err(malformed(format!("condition of type {ct:?}")));
                    }
                    let _ = writeln!(out, "{pad}if ({}) {{", strip(&c));
                    self.block(k, then, depth + 1, out)?;
                    if !els.is_empty() {
                        let _ = writeln!(out, "{pad}}} else {{");
                        self.block(k, els, depth + 1, out)?;
                    }
                    let _ = writeln!(out, "{pad}}}");
                }
                Stmt::Fail(code) => {
                    let _ = writeln!(out, "{pad}return {code};");
                }
            }
        }
        Ok(())
    }

    fn var_ty(&self, k: &Kernel, v: u32, want: Option<Ty>) -> Result<Ty> {
        let t = *k.vars.get(v as usize).ok_or_else(|| malformed(format!("variable v{v} is not declared")))?;
        if let Some(w) = want {
            if !(is_index_like(t) && is_index_like(w)) && t != w {
                return Err(malformed(format!("loop variable v{v} of type {t:?}")));
            }
        }
        Ok(t)
    }

    /// A value of the buffer's expression type, converted to its storage.
    fn narrow(&mut self, dtype: DType, v: String) -> String {
        match dtype {
            DType::F16 => {
                self.used.insert("ec_half");
                format!("ec_f32_to_f16({})", strip(&v))
            }
            DType::BF16 => {
                self.used.insert("ec_bf16");
                format!("ec_f32_to_bf16({})", strip(&v))
            }
            DType::Bool => format!("(ec_u8)({v} != 0)"),
            DType::I8 => format!("(int8_t){v}"),
            DType::U8 => format!("(uint8_t){v}"),
            DType::I16 => format!("(int16_t){v}"),
            DType::U16 => format!("(uint16_t){v}"),
            DType::U32 => format!("(uint32_t){v}"),
            DType::U64 => format!("(uint64_t){v}"),
            _ => strip(&v).to_string(),
        }
    }

    /// A C expression (fully parenthesised) and its KIR type.
    fn expr(&mut self, k: &Kernel, e: &Expr) -> Result<(String, Ty)> {
        Ok(match e {
            Expr::Lit(l) => {
                if matches!(l, Lit::F32(v) if !v.is_finite()) || matches!(l, Lit::F64(v) if !v.is_finite()) {
                    self.used.insert("ec_bits");
                }
                match *l {
                    Lit::Index(v) if self.index32 => match i32::try_from(v) {
                        Ok(i32::MIN) => ("(-2147483647 - 1)".into(), Ty::Index),
                        Ok(v) if v < 0 => (format!("({v})"), Ty::Index),
                        Ok(v) => (v.to_string(), Ty::Index),
                        // A sentinel beyond int32: an I64, so whatever it meets is done
                        // in 64 bits, and saturates if it becomes an Index.
                        Err(_) => (literal(Lit::I64(v)), Ty::I64),
                    },
                    l => (literal(l), l.ty()),
                }
            }
            Expr::Var(v) => (format!("v{}", v.0), self.var_ty(k, v.0, None)?),
            Expr::Load { buf, index } => {
                let b = self.program.buffers.get(buf.0 as usize).ok_or_else(|| malformed("load from no buffer"))?;
                let t = Ty::of_storage(b.dtype).ok_or_else(|| unsupported(format!("buffers of type {}", b.dtype)))?;
                let (i, it) = self.expr(k, index)?;
                if !is_index_like(it) {
                    return Err(malformed(format!("index of type {it:?}")));
                }
                let el = format!("b{}[{}]", buf.0, strip(&i));
                let c = match b.dtype {
                    DType::F16 => {
                        self.used.insert("ec_half");
                        format!("ec_f16_to_f32({el})")
                    }
                    DType::BF16 => {
                        self.used.insert("ec_bf16");
                        format!("ec_bf16_to_f32({el})")
                    }
                    DType::Bool => format!("({el} != 0)"),
                    DType::I8 | DType::U8 | DType::I16 | DType::U16 => format!("((int32_t){el})"),
                    DType::U32 | DType::U64 => format!("((int64_t){el})"),
                    _ => el,
                };
                (c, t)
            }
            // `Sxtb16(a >>> 8)`: SXTB16's rotated form, one instruction.
            Expr::Unary(UnOp::Sxtb16, a) if matches!(&**a, Expr::Binary(BinOp::UShr, _, s) if **s == Expr::Lit(Lit::I32(8))) => {
                let Expr::Binary(_, a, _) = &**a else { unreachable!() };
                let (a, t) = self.expr(k, a)?;
                if t != Ty::I32 {
                    return Err(malformed(format!("sxtb16 of {t:?}")));
                }
                (self.call("ec_sxtb16", "ec_sxtb16_ror8", &[&a]), Ty::I32)
            }
            Expr::Unary(op, a) => {
                let (a, t) = self.expr(k, a)?;
                (self.unary(*op, a, t)?, t)
            }
            // `acc + Dot2(x, w)`: one SMLAD with Arm's DSP extension.
            Expr::Binary(BinOp::Add, acc, d) if matches!(&**d, Expr::Binary(BinOp::Dot2, _, _)) => {
                let Expr::Binary(_, x, w) = &**d else { unreachable!() };
                let (acc, at) = self.expr(k, acc)?;
                let (x, xt) = self.expr(k, x)?;
                let (w, wt) = self.expr(k, w)?;
                if (at, xt, wt) != (Ty::I32, Ty::I32, Ty::I32) {
                    return Err(malformed(format!("dot2 of {xt:?} and {wt:?} into {at:?}")));
                }
                (self.call("ec_dot2", "ec_smlad", &[&x, &w, &acc]), Ty::I32)
            }
            Expr::Binary(op, a, b) => {
                let (a, at) = self.expr(k, a)?;
                let (b, bt) = self.expr(k, b)?;
                if at != bt && !(is_index_like(at) && is_index_like(bt)) {
                    return Err(malformed(format!("{op:?} of {at:?} and {bt:?}")));
                }
                let at = self.join(at, bt);
                let t = if op.is_comparison() { Ty::Bool } else { at };
                (self.binary(*op, a, b, at)?, t)
            }
            Expr::Select(c, a, b) => {
                let (c, ct) = self.expr(k, c)?;
                let (a, at) = self.expr(k, a)?;
                let (b, bt) = self.expr(k, b)?;
                if ct != Ty::Bool || (at != bt && !(is_index_like(at) && is_index_like(bt))) {
                    return Err(malformed(format!("select on {ct:?} of {at:?} and {bt:?}")));
                }
                (format!("({c} ? {a} : {b})"), self.join(at, bt))
            }
            Expr::Cast(t, a) => {
                let (a, at) = self.expr(k, a)?;
                (self.cast(*t, a, at), *t)
            }
            Expr::Bitcast(t, a) => {
                let (a, at) = self.expr(k, a)?;
                self.used.insert("ec_bits");
                let a = strip(&a);
                let c = match (t, at) {
                    (Ty::I32, Ty::F32) => format!("((int32_t)ec_f32_to_bits({a}))"),
                    (Ty::F32, Ty::I32) => format!("ec_f32_from_bits((uint32_t){a})"),
                    (Ty::I64, Ty::F64) => format!("((int64_t)ec_f64_to_bits({a}))"),
                    (Ty::F64, Ty::I64) => format!("ec_f64_from_bits((uint64_t){a})"),
                    _ => return Err(malformed(format!("bitcast of {at:?} to {t:?}"))),
                };
                (c, *t)
            }
            Expr::Fma(a, b, c) => {
                let (a, at) = self.expr(k, a)?;
                let (b, _) = self.expr(k, b)?;
                let (c, _) = self.expr(k, c)?;
                let s = match at {
                    Ty::F32 => self.call("ec_fma", "ec_fma_f32", &[&a, &b, &c]),
                    Ty::F64 => self.call("ec_fma", "ec_fma_f64", &[&a, &b, &c]),
                    t => return Err(malformed(format!("fma of {t:?}"))),
                };
                (s, at)
            }
        })
    }

    fn unary(&mut self, op: UnOp, a: String, t: Ty) -> Result<String> {
        Ok(match (op, t) {
            (UnOp::Neg, Ty::F32 | Ty::F64) => format!("(-{a})"),
            (UnOp::Neg, Ty::I32) => self.call("ec_i32", "ec_neg_i32", &[&a]),
            (UnOp::Neg, Ty::Index) if self.index32 => self.call("ec_i32", "ec_neg_i32", &[&a]),
            (UnOp::Neg, Ty::I64 | Ty::Index) => self.call("ec_i64", "ec_neg_i64", &[&a]),
            (UnOp::Abs, Ty::F32) => self.call("ec_abs_f", "ec_abs_f32", &[&a]),
            (UnOp::Abs, Ty::F64) => self.call("ec_abs_f", "ec_abs_f64", &[&a]),
            (UnOp::Abs, Ty::I32) => self.call("ec_i32", "ec_abs_i32", &[&a]),
            (UnOp::Abs, Ty::Index) if self.index32 => self.call("ec_i32", "ec_abs_i32", &[&a]),
            (UnOp::Abs, Ty::I64 | Ty::Index) => self.call("ec_i64", "ec_abs_i64", &[&a]),
            (UnOp::Not, Ty::Bool) => format!("(!{a})"),
            (UnOp::Not, Ty::I32 | Ty::I64 | Ty::Index) => format!("(~{a})"),
            (UnOp::Sxtb16, Ty::I32) => self.call("ec_sxtb16", "ec_sxtb16", &[&a]),
            // f32 stays in f32: single-precision FPUs (Cortex-M4) have no double hardware.
            (UnOp::Sqrt, Ty::F32) => self.call("ec_sqrtf", "ec_sqrtf", &[&a]),
            (UnOp::Sqrt, Ty::F64) => self.call("ec_sqrt", "ec_sqrt", &[&a]),
            (UnOp::Floor | UnOp::Ceil | UnOp::Round | UnOp::Trunc, Ty::F32 | Ty::F64) => {
                let f = match op {
                    UnOp::Floor => "ec_floor",
                    UnOp::Ceil => "ec_ceil",
                    UnOp::Round => "ec_round_even",
                    _ => "ec_trunc",
                };
                if t == Ty::F32 {
                    self.call("ec_roundf", &format!("{f}f"), &[&a])
                } else {
                    self.call("ec_round", f, &[&a])
                }
            }
            (op, _) if !op.is_primitive() => {
                return Err(unsupported(format!("{op:?} (transcendentals must be expanded by kir::math::expand first)")))
            }
            (op, t) => return Err(malformed(format!("{op:?} of {t:?}"))),
        })
    }

    fn binary(&mut self, op: BinOp, a: String, b: String, t: Ty) -> Result<String> {
        use BinOp::*;
        if op.is_comparison() {
            let c = match op {
                Eq => "==",
                Ne => "!=",
                Lt => "<",
                Le => "<=",
                Gt => ">",
                _ => ">=",
            };
            if t == Ty::Bool && !matches!(op, Eq | Ne) {
                return Err(malformed(format!("{op:?} on bool")));
            }
            return Ok(format!("({a} {c} {b})"));
        }
        let (a, b) = (a.as_str(), b.as_str());
        Ok(match (t, op) {
            (Ty::F32 | Ty::F64, Add) => format!("({a} + {b})"),
            (Ty::F32 | Ty::F64, Sub) => format!("({a} - {b})"),
            (Ty::F32 | Ty::F64, Mul) => format!("({a} * {b})"),
            (Ty::F32 | Ty::F64, Div) => format!("({a} / {b})"),
            (Ty::F32, Rem) => self.call("ec_fmodf", "ec_fmodf", &[a, b]),
            (Ty::F64, Rem) => self.call("ec_fmod", "ec_fmod", &[a, b]),
            (Ty::F32, Min) => self.call("ec_fcmp", "ec_min_f32", &[a, b]),
            (Ty::F32, Max) => self.call("ec_fcmp", "ec_max_f32", &[a, b]),
            (Ty::F64, Min) => self.call("ec_fcmp", "ec_min_f64", &[a, b]),
            (Ty::F64, Max) => self.call("ec_fcmp", "ec_max_f64", &[a, b]),
            (Ty::F32 | Ty::F64, Pow) => return Err(unsupported("Pow (must be expanded by kir::math::expand first)")),
            (Ty::I32 | Ty::I64 | Ty::Index | Ty::Bool, And) => format!("({a} & {b})"),
            (Ty::I32 | Ty::I64 | Ty::Index | Ty::Bool, Or) => format!("({a} | {b})"),
            (Ty::I32 | Ty::I64 | Ty::Index | Ty::Bool, Xor) => format!("({a} ^ {b})"),
            (Ty::I32 | Ty::I64 | Ty::Index, _) => {
                let name = match op {
                    Add => "add",
                    Sub => "sub",
                    Mul => "mul",
                    Div => "div",
                    Rem => "rem",
                    Min => "min",
                    Max => "max",
                    Shl => "shl",
                    Shr => "shr",
                    UShr => "ushr",
                    Dot2 if t == Ty::I32 => return Ok(self.call("ec_dot2", "ec_smuad", &[a, b])),
                    _ => return Err(malformed(format!("{op:?} on {t:?}"))),
                };
                let (group, suffix) = match t {
                    Ty::I32 => ("ec_i32", "i32"),
                    // 32-bit Index is int32_t: the address ops inline, the rest are i32's.
                    Ty::Index if self.index32 && matches!(op, Add | Sub | Mul) => ("ec_ix32", "ix"),
                    Ty::Index if self.index32 => ("ec_i32", "i32"),
                    _ => ("ec_i64", "i64"),
                };
                let f = format!("ec_{name}_{suffix}");
                self.used.insert(group);
                format!("{f}({}, {})", strip(a), strip(b))
            }
            _ => return Err(malformed(format!("{op:?} on {t:?}"))),
        })
    }

    /// C-style conversion with the interpreter's edge cases (see `kir::interp::cast`).
    fn cast(&mut self, to: Ty, a: String, from: Ty) -> String {
        let same = from == to || (is_index_like(from) && is_index_like(to) && !self.index32);
        if same {
            return a;
        }
        if self.index32 {
            match (to, from) {
                // Saturates: see the module doc.
                (Ty::Index, Ty::I64) => return self.call("ec_ix32", "ec_sat_ix", &[&a]),
                (Ty::I64, Ty::Index) => return format!("((int64_t){a})"),
                (Ty::I32, Ty::Index) | (Ty::Index, Ty::I32) => return a,
                (Ty::Index, Ty::F32) => return self.call("ec_f2if", "ec_f2i32f", &[&a]),
                (Ty::Index, Ty::F64) => return self.call("ec_f2i", "ec_f2i32", &[&a]),
                _ => {}
            }
        }
        match (to, from) {
            (Ty::Bool, Ty::F32) => format!("({a} != 0.0f)"),
            (Ty::Bool, Ty::F64) => format!("({a} != 0.0)"),
            (Ty::Bool, _) => format!("({a} != 0)"),
            (Ty::F32, Ty::Bool) => format!("({a} ? 1.0f : 0.0f)"),
            (Ty::F64, Ty::Bool) => format!("({a} ? 1.0 : 0.0)"),
            (Ty::F32 | Ty::F64, _) => format!("(({}){a})", c_type(to, self.index32)),
            (Ty::I32, Ty::F32) => self.call("ec_f2if", "ec_f2i32f", &[&a]),
            (Ty::I32, Ty::F64) => self.call("ec_f2i", "ec_f2i32", &[&a]),
            (Ty::I32, Ty::I64 | Ty::Index) => self.call("ec_i64", "ec_wrap_i32", &[&a]),
            (Ty::I64 | Ty::Index, Ty::F32) => self.call("ec_f2if", "ec_f2i64f", &[&a]),
            (Ty::I64 | Ty::Index, Ty::F64) => self.call("ec_f2i", "ec_f2i64", &[&a]),
            (_, _) => format!("(({}){a})", c_type(to, self.index32)),
        }
    }

    /// The type of an operation on `a` and `b` (equal, or I64 and Index): with a 32-bit
    /// Index, mixing them is done in 64 bits (the interpreter's result).
    fn join(&self, a: Ty, b: Ty) -> Ty {
        if self.index32 && a != b && is_index_like(a) && is_index_like(b) {
            Ty::I64
        } else {
            a
        }
    }

    fn call(&mut self, group: &'static str, f: &str, args: &[&str]) -> String {
        self.used.insert(group);
        let args: Vec<&str> = args.iter().map(|a| strip(a)).collect();
        format!("{f}({})", args.join(", "))
    }
}

fn is_index_like(t: Ty) -> bool {
    matches!(t, Ty::I64 | Ty::Index)
}

/// Drops one pair of enclosing parentheses where they are redundant (a call argument,
/// a statement's right-hand side), to keep the output readable.
fn strip(s: &str) -> &str {
    if s.starts_with('(') && s.ends_with(')') {
        let inner = &s[1..s.len() - 1];
        let mut depth = 0i32;
        for c in inner.chars() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth < 0 {
                        return s;
                    }
                }
                _ => {}
            }
        }
        if depth == 0 {
            return inner;
        }
    }
    s
}

/// A C literal that denotes exactly the KIR literal's value.
fn literal(l: Lit) -> String {
    match l {
        Lit::F32(v) if v.is_finite() => format!("({v:?}f)"),
        Lit::F32(v) => format!("ec_f32_from_bits(0x{:08x}u)", v.to_bits()),
        Lit::F64(v) if v.is_finite() => format!("({v:?})"),
        Lit::F64(v) => format!("ec_f64_from_bits(UINT64_C(0x{:016x}))", v.to_bits()),
        Lit::I32(i32::MIN) => "(-2147483647 - 1)".into(),
        Lit::I32(v) => format!("((int32_t){v})"),
        Lit::I64(i64::MIN) | Lit::Index(i64::MIN) => "(-INT64_C(9223372036854775807) - 1)".into(),
        Lit::I64(v) | Lit::Index(v) => format!("INT64_C({v})"),
        Lit::Bool(b) => (if b { "1" } else { "0" }).into(),
    }
}

/// Every buffer a statement list touches, and those it stores into.
fn collect_bufs(stmts: &[Stmt], all: &mut BTreeSet<BufId>, stored: &mut BTreeSet<BufId>) {
    fn expr(e: &Expr, all: &mut BTreeSet<BufId>) {
        match e {
            Expr::Lit(_) | Expr::Var(_) => {}
            Expr::Load { buf, index } => {
                all.insert(*buf);
                expr(index, all);
            }
            Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Bitcast(_, a) => expr(a, all),
            Expr::Binary(_, a, b) => {
                expr(a, all);
                expr(b, all);
            }
            Expr::Select(a, b, c) | Expr::Fma(a, b, c) => {
                expr(a, all);
                expr(b, all);
                expr(c, all);
            }
        }
    }
    for s in stmts {
        match s {
            Stmt::Loop { body, .. } => collect_bufs(body, all, stored),
            Stmt::Set { value, .. } => expr(value, all),
            Stmt::Store { buf, index, value } => {
                all.insert(*buf);
                stored.insert(*buf);
                expr(index, all);
                expr(value, all);
            }
            Stmt::If { cond, then, els } => {
                expr(cond, all);
                collect_bufs(then, all, stored);
                collect_bufs(els, all, stored);
            }
            Stmt::Fail(_) => {}
        }
    }
}

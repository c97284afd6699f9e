//! A KIR interpreter: runs a [`Program`] on the host with the same arithmetic the
//! backends generate (f32 ops round to f32, integers wrap at their width, stores narrow
//! to the buffer's type). It tests lowering against the reference evaluator and is the
//! oracle backends are compared with.

use half::{bf16, f16};

use super::{BinOp, BufId, BufKind, Expr, Kernel, Lit, Program, Stmt, Ty, UnOp, Var};
use crate::ir::{packed, DType, Tensor};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Val {
    F32(f32),
    F64(f64),
    I32(i32),
    I64(i64),
    Bool(bool),
}

impl Val {
    fn as_index(self) -> Result<i64, String> {
        match self {
            Val::I64(v) => Ok(v),
            Val::I32(v) => Ok(v as i64),
            v => Err(format!("index expression of type {v:?}")),
        }
    }
    fn as_bool(self) -> Result<bool, String> {
        match self {
            Val::Bool(b) => Ok(b),
            v => Err(format!("condition of type {v:?}")),
        }
    }
    fn as_f64(self) -> f64 {
        match self {
            Val::F32(v) => v as f64,
            Val::F64(v) => v,
            Val::I32(v) => v as f64,
            Val::I64(v) => v as f64,
            Val::Bool(b) => b as u8 as f64,
        }
    }
}

fn lit(l: Lit) -> Val {
    match l {
        Lit::F32(v) => Val::F32(v),
        Lit::F64(v) => Val::F64(v),
        Lit::I32(v) => Val::I32(v),
        Lit::I64(v) | Lit::Index(v) => Val::I64(v),
        Lit::Bool(v) => Val::Bool(v),
    }
}

/// Why a program stopped: a `Fail` code, or a malformed program (a bug in lowering).
#[derive(Debug, PartialEq)]
pub enum Stop {
    Fail(i32),
    Bug(String),
}

struct Machine<'p> {
    prog: &'p Program,
    mem: Vec<Vec<Val>>,
}

/// Runs `prog` on `inputs` (in the caller's order); returns the outputs.
pub fn run(prog: &Program, inputs: &[Tensor]) -> Result<Vec<Tensor>, Stop> {
    let mut mem: Vec<Vec<Val>> = Vec::with_capacity(prog.buffers.len());
    for b in &prog.buffers {
        let ty = Ty::of_storage(b.dtype).ok_or_else(|| Stop::Bug(format!("buffer '{}' of type {}", b.name, b.dtype)))?;
        if super::packed::is_expanded(b.dtype) {
            return Err(Stop::Bug(format!("buffer '{}' of type {} (kir::packed::expand not run)", b.name, b.dtype)));
        }
        let data = match &b.kind {
            BufKind::Input(k) => {
                let t = inputs.get(*k).ok_or_else(|| Stop::Bug(format!("input {k} not given")))?;
                let (dtype, shape) = b.packed.as_ref().map_or((b.dtype, &b.shape), |p| (p.dtype, &p.shape));
                if t.shape() != shape.as_slice() || t.dtype() != dtype {
                    return Err(Stop::Bug(format!("input {k} is {}, expected {}{:?}", t.type_info(), dtype, shape)));
                }
                match t {
                    // The caller's bytes, in ONNX's packed layout.
                    Tensor::Packed(d, a) => {
                        let codes: Vec<u8> = a.iter().copied().collect();
                        packed::pack(*d, &codes).into_iter().map(|v| Val::I32(v as i32)).collect()
                    }
                    _ => tensor_vals(t, ty),
                }
            }
            BufKind::Weight(t) => tensor_vals(t, ty),
            BufKind::Output(_) | BufKind::Temp => vec![zero(ty); b.len()],
        };
        mem.push(data);
    }
    let mut m = Machine { prog, mem };
    for k in &prog.kernels {
        m.kernel(k)?;
    }
    Ok(prog.outputs().into_iter().map(|b| m.output(b)).collect())
}

fn zero(ty: Ty) -> Val {
    match ty {
        Ty::F32 => Val::F32(0.0),
        Ty::F64 => Val::F64(0.0),
        Ty::I32 => Val::I32(0),
        Ty::I64 | Ty::Index => Val::I64(0),
        Ty::Bool => Val::Bool(false),
    }
}

fn tensor_vals(t: &Tensor, ty: Ty) -> Vec<Val> {
    match ty {
        Ty::F32 => t.to_f32_array().iter().map(|&v| Val::F32(v)).collect(),
        Ty::F64 => t.to_f64_vec().into_iter().map(Val::F64).collect(),
        Ty::I32 => t.cast(DType::I32).to_i64_vec().unwrap_or_default().into_iter().map(|v| Val::I32(v as i32)).collect(),
        Ty::I64 | Ty::Index => match t {
            Tensor::U64(a) => a.iter().map(|&v| Val::I64(v as i64)).collect(),
            _ => t.to_i64_vec().unwrap_or_default().into_iter().map(Val::I64).collect(),
        },
        Ty::Bool => t.to_f64_vec().into_iter().map(|v| Val::Bool(v != 0.0)).collect(),
    }
}

/// Narrows a value to what a buffer of `dtype` holds, as a store does.
fn narrow(dtype: DType, v: Val) -> Val {
    match (dtype, v) {
        (DType::F16, Val::F32(x)) => Val::F32(f16::from_f32(x).to_f32()),
        (DType::BF16, Val::F32(x)) => Val::F32(bf16::from_f32(x).to_f32()),
        (DType::I8, Val::I32(x)) => Val::I32(x as i8 as i32),
        (DType::U8, Val::I32(x)) => Val::I32(x as u8 as i32),
        (DType::I16, Val::I32(x)) => Val::I32(x as i16 as i32),
        (DType::U16, Val::I32(x)) => Val::I32(x as u16 as i32),
        (DType::U32, Val::I64(x)) => Val::I64(x as u32 as i64),
        _ => v,
    }
}

impl Machine<'_> {
    /// An output buffer as the caller's tensor (packed types unpacked from their bytes).
    fn output(&self, b: BufId) -> Tensor {
        let buf = self.prog.buffer(b);
        match &buf.packed {
            Some(p) => {
                let bytes: Vec<u8> = self.mem[b.0 as usize].iter().map(|v| v.as_f64() as u8).collect();
                let codes = packed::unpack(p.dtype, &bytes, p.shape.iter().product());
                Tensor::Packed(p.dtype, ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&p.shape), codes).expect("unpacked length"))
            }
            None => self.tensor(b, &buf.shape),
        }
    }

    fn tensor(&self, b: BufId, shape: &[usize]) -> Tensor {
        let buf = self.prog.buffer(b);
        let vals = &self.mem[b.0 as usize];
        let f64s: Vec<f64> = vals.iter().map(|v| v.as_f64()).collect();
        match buf.dtype {
            DType::I64 => Tensor::from_vec(shape, vals.iter().map(|v| if let Val::I64(x) = v { *x } else { 0 }).collect()),
            DType::U64 => Tensor::from_vec(shape, vals.iter().map(|v| if let Val::I64(x) = v { *x as u64 } else { 0 }).collect()),
            DType::F32 => Tensor::from_vec(shape, vals.iter().map(|v| if let Val::F32(x) = v { *x } else { 0.0 }).collect()),
            d => Tensor::from_vec(shape, f64s).cast(d),
        }
    }

    fn kernel(&mut self, k: &Kernel) -> Result<(), Stop> {
        let mut vars: Vec<Val> = k.vars.iter().map(|&t| zero(t)).collect();
        self.block(&k.body, &mut vars)
    }

    fn block(&mut self, stmts: &[Stmt], vars: &mut [Val]) -> Result<(), Stop> {
        for s in stmts {
            match s {
                Stmt::Loop { var, extent, body } => {
                    for i in 0..*extent {
                        vars[var.0 as usize] = Val::I64(i as i64);
                        self.block(body, vars)?;
                    }
                }
                Stmt::Set { var, value } => {
                    let v = self.expr(value, vars)?;
                    vars[var.0 as usize] = v;
                }
                Stmt::Store { buf, index, value } => {
                    let i = self.expr(index, vars)?.as_index().map_err(Stop::Bug)?;
                    let v = self.expr(value, vars)?;
                    let b = self.prog.buffer(*buf);
                    if i < 0 || i as usize >= b.len() {
                        return Err(Stop::Bug(format!("store to '{}'[{i}] out of bounds ({})", b.name, b.len())));
                    }
                    self.mem[buf.0 as usize][i as usize] = narrow(b.dtype, v);
                }
                Stmt::If { cond, then, els } => {
                    let c = self.expr(cond, vars)?.as_bool().map_err(Stop::Bug)?;
                    self.block(if c { then } else { els }, vars)?;
                }
                Stmt::Fail(code) => return Err(Stop::Fail(*code)),
            }
        }
        Ok(())
    }

    fn expr(&self, e: &Expr, vars: &[Val]) -> Result<Val, Stop> {
        Ok(match e {
            Expr::Lit(l) => lit(*l),
            Expr::Var(Var(v)) => vars[*v as usize],
            Expr::Load { buf, index } => {
                let i = self.expr(index, vars)?.as_index().map_err(Stop::Bug)?;
                let b = self.prog.buffer(*buf);
                if i < 0 || i as usize >= b.len() {
                    return Err(Stop::Bug(format!("load from '{}'[{i}] out of bounds ({})", b.name, b.len())));
                }
                self.mem[buf.0 as usize][i as usize]
            }
            Expr::Unary(op, a) => unary(*op, self.expr(a, vars)?).map_err(Stop::Bug)?,
            Expr::Binary(op, a, b) => binary(*op, self.expr(a, vars)?, self.expr(b, vars)?).map_err(Stop::Bug)?,
            // Both sides are evaluated, as the backends' branch-free selects do: a load
            // that is only in bounds when the condition holds belongs under an `If`.
            Expr::Select(c, a, b) => {
                let (c, a, b) = (self.expr(c, vars)?.as_bool().map_err(Stop::Bug)?, self.expr(a, vars)?, self.expr(b, vars)?);
                if c {
                    a
                } else {
                    b
                }
            }
            Expr::Cast(t, a) => cast(*t, self.expr(a, vars)?),
            Expr::Bitcast(t, a) => match (t, self.expr(a, vars)?) {
                (Ty::I32, Val::F32(x)) => Val::I32(x.to_bits() as i32),
                (Ty::F32, Val::I32(x)) => Val::F32(f32::from_bits(x as u32)),
                (Ty::I64, Val::F64(x)) => Val::I64(x.to_bits() as i64),
                (Ty::F64, Val::I64(x)) => Val::F64(f64::from_bits(x as u64)),
                (t, v) => return Err(Stop::Bug(format!("bitcast of {v:?} to {t:?}"))),
            },
            Expr::Fma(a, b, c) => match (self.expr(a, vars)?, self.expr(b, vars)?, self.expr(c, vars)?) {
                (Val::F32(a), Val::F32(b), Val::F32(c)) => Val::F32(a.mul_add(b, c)),
                (Val::F64(a), Val::F64(b), Val::F64(c)) => Val::F64(a.mul_add(b, c)),
                v => return Err(Stop::Bug(format!("fma of {v:?}"))),
            },
        })
    }
}

/// C-style numeric conversion.
pub fn cast(t: Ty, v: Val) -> Val {
    let f = v.as_f64();
    match (t, v) {
        (Ty::F32, Val::F32(_)) | (Ty::F64, Val::F64(_)) | (Ty::I32, Val::I32(_)) | (Ty::Bool, Val::Bool(_)) => v,
        (Ty::I64 | Ty::Index, Val::I64(_)) => v,
        (Ty::F32, Val::I64(x)) => Val::F32(x as f32),
        (Ty::F32, _) => Val::F32(f as f32),
        (Ty::F64, Val::I64(x)) => Val::F64(x as f64),
        (Ty::F64, _) => Val::F64(f),
        (Ty::I32, Val::I64(x)) => Val::I32(x as i32),
        (Ty::I32, _) => Val::I32(f as i32),
        (Ty::I64 | Ty::Index, Val::I32(x)) => Val::I64(x as i64),
        (Ty::I64 | Ty::Index, _) => Val::I64(f as i64),
        (Ty::Bool, _) => Val::Bool(f != 0.0),
    }
}

fn unary(op: UnOp, v: Val) -> Result<Val, String> {
    Ok(match (op, v) {
        (UnOp::Neg, Val::F32(x)) => Val::F32(-x),
        (UnOp::Neg, Val::F64(x)) => Val::F64(-x),
        (UnOp::Neg, Val::I32(x)) => Val::I32(x.wrapping_neg()),
        (UnOp::Neg, Val::I64(x)) => Val::I64(x.wrapping_neg()),
        (UnOp::Abs, Val::F32(x)) => Val::F32(x.abs()),
        (UnOp::Abs, Val::F64(x)) => Val::F64(x.abs()),
        (UnOp::Abs, Val::I32(x)) => Val::I32(x.wrapping_abs()),
        (UnOp::Abs, Val::I64(x)) => Val::I64(x.wrapping_abs()),
        (UnOp::Not, Val::Bool(x)) => Val::Bool(!x),
        (UnOp::Not, Val::I32(x)) => Val::I32(!x),
        (UnOp::Not, Val::I64(x)) => Val::I64(!x),
        (UnOp::Sxtb16, Val::I32(x)) => Val::I32(sxtb16(x)),
        (UnOp::Sxtb16, v) => return Err(format!("Sxtb16 of {v:?}")),
        (op, Val::F32(x)) => Val::F32(float_unary(op, x as f64) as f32),
        (op, Val::F64(x)) => Val::F64(float_unary(op, x)),
        (op, v) => return Err(format!("{op:?} of {v:?}")),
    })
}

/// Reference values for the float unary ops (the interpreter computes transcendentals
/// exactly; the backends' expansions are tested against these within tolerance).
fn float_unary(op: UnOp, x: f64) -> f64 {
    match op {
        UnOp::Sqrt => x.sqrt(),
        UnOp::Floor => x.floor(),
        UnOp::Ceil => x.ceil(),
        UnOp::Round => x.round_ties_even(),
        UnOp::Trunc => x.trunc(),
        UnOp::Exp => x.exp(),
        UnOp::Log => x.ln(),
        UnOp::Tanh => x.tanh(),
        UnOp::Erf => erf(x),
        UnOp::Sin => x.sin(),
        UnOp::Cos => x.cos(),
        UnOp::Tan => x.tan(),
        UnOp::Atan => x.atan(),
        UnOp::Asin => x.asin(),
        UnOp::Acos => x.acos(),
        UnOp::Sinh => x.sinh(),
        UnOp::Cosh => x.cosh(),
        UnOp::Asinh => x.asinh(),
        UnOp::Acosh => x.acosh(),
        UnOp::Atanh => x.atanh(),
        UnOp::Neg => -x,
        UnOp::Abs => x.abs(),
        UnOp::Not | UnOp::Sxtb16 => f64::NAN,
    }
}

/// erf to ~1e-15: its Taylor series below 2.5, the continued fraction of erfc above
/// (Rust's std has no erf).
fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        let mut sum = x;
        let mut term = x;
        let x2 = x * x;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs().max(1e-300) {
            n += 1.0;
            term *= -x2 / n;
            sum += term / (2.0 * n + 1.0);
            if n > 200.0 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(x) ~ exp(-x^2)/(x sqrt(pi)) * continued fraction (Lentz).
        let ax = x.abs();
        let mut f = ax;
        let mut c = ax;
        let mut d = 0.0;
        for k in 1..200 {
            let a = k as f64 / 2.0;
            d = ax + a * d;
            d = 1.0 / d;
            c = ax + a / c;
            let delta = c * d;
            f *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        let erfc = (-ax * ax).exp() / (f * std::f64::consts::PI.sqrt());
        (1.0 - erfc) * x.signum()
    }
}

fn binary(op: BinOp, a: Val, b: Val) -> Result<Val, String> {
    use BinOp::*;
    Ok(match (a, b) {
        (Val::F32(x), Val::F32(y)) => match op {
            Eq | Ne | Lt | Le | Gt | Ge => Val::Bool(cmp(op, x, y)),
            Pow => Val::F32((x as f64).powf(y as f64) as f32),
            _ => Val::F32(fbin(op, x as f64, y as f64).ok_or(format!("{op:?} on f32"))? as f32),
        },
        (Val::F64(x), Val::F64(y)) => match op {
            Eq | Ne | Lt | Le | Gt | Ge => Val::Bool(cmp(op, x, y)),
            Pow => Val::F64(x.powf(y)),
            _ => Val::F64(fbin(op, x, y).ok_or(format!("{op:?} on f64"))?),
        },
        (Val::I32(x), Val::I32(y)) => match op {
            Eq | Ne | Lt | Le | Gt | Ge => Val::Bool(cmp(op, x, y)),
            _ => Val::I32(ibin(op, x as i64, y as i64, 32).ok_or(format!("{op:?} on i32"))? as i32),
        },
        (Val::I64(x), Val::I64(y)) => match op {
            Eq | Ne | Lt | Le | Gt | Ge => Val::Bool(cmp(op, x, y)),
            _ => Val::I64(ibin(op, x, y, 64).ok_or(format!("{op:?} on i64"))?),
        },
        (Val::Bool(x), Val::Bool(y)) => Val::Bool(match op {
            And => x & y,
            Or => x | y,
            Xor => x ^ y,
            Eq => x == y,
            Ne => x != y,
            _ => return Err(format!("{op:?} on bool")),
        }),
        (a, b) => return Err(format!("{op:?} of {a:?} and {b:?}")),
    })
}

fn cmp<T: PartialOrd>(op: BinOp, x: T, y: T) -> bool {
    match op {
        BinOp::Eq => x == y,
        BinOp::Ne => x != y,
        BinOp::Lt => x < y,
        BinOp::Le => x <= y,
        BinOp::Gt => x > y,
        _ => x >= y,
    }
}

/// f32 arithmetic is done in f64 and rounded once: exact for + - * / (double rounding
/// cannot occur for these with f64's 53 bits) and for sqrt.
fn fbin(op: BinOp, x: f64, y: f64) -> Option<f64> {
    Some(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
        BinOp::Rem => x % y,
        // IEEE minNum/maxNum would drop NaN; ONNX Min/Max propagate it.
        BinOp::Min => if x.is_nan() || y.is_nan() { f64::NAN } else { x.min(y) },
        BinOp::Max => if x.is_nan() || y.is_nan() { f64::NAN } else { x.max(y) },
        _ => return None,
    })
}

fn ibin(op: BinOp, x: i64, y: i64, bits: u32) -> Option<i64> {
    let wrap = |v: i64| if bits == 32 { v as i32 as i64 } else { v };
    Some(match op {
        BinOp::Add => wrap(x.wrapping_add(y)),
        BinOp::Sub => wrap(x.wrapping_sub(y)),
        BinOp::Mul => wrap(x.wrapping_mul(y)),
        BinOp::Div => if y == 0 { 0 } else { wrap(x.wrapping_div(y)) },
        BinOp::Rem => if y == 0 { 0 } else { wrap(x.wrapping_rem(y)) },
        BinOp::Min => x.min(y),
        BinOp::Max => x.max(y),
        BinOp::And => x & y,
        BinOp::Or => x | y,
        BinOp::Xor => x ^ y,
        BinOp::Shl => wrap(if (0..bits as i64).contains(&y) { x.wrapping_shl(y as u32) } else { 0 }),
        BinOp::Shr => if (0..bits as i64).contains(&y) { x >> y } else if x < 0 { -1 } else { 0 },
        BinOp::UShr => {
            let ux = if bits == 32 { x as u32 as u64 } else { x as u64 };
            if (0..bits as i64).contains(&y) { wrap((ux >> y) as i64) } else { 0 }
        }
        BinOp::Dot2 if bits == 32 => wrap(dot2(x as i32, y as i32) as i64),
        _ => return None,
    })
}

/// `UnOp::Sxtb16`: bytes 0 and 2, sign-extended into the low and high int16 halves.
pub fn sxtb16(a: i32) -> i32 {
    let lo = (a as i8 as i32) & 0xFFFF;
    let hi = ((a >> 16) as i8 as i32) << 16;
    lo | hi
}

/// `BinOp::Dot2`: `lo(a) * lo(b) + hi(a) * hi(b)` over the sign-extended int16 halves,
/// wrapping (the products themselves cannot overflow).
pub fn dot2(a: i32, b: i32) -> i32 {
    let (al, ah, bl, bh) = (a as i16 as i32, a >> 16, b as i16 as i32, b >> 16);
    (al * bl).wrapping_add(ah * bh)
}

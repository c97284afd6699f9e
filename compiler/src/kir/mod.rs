//! KIR, the kernel IR: what both backends compile.
//!
//! The graph IR says *what* each op computes; KIR says *how*, as small imperative
//! kernels — loop nests over buffers with scalar expressions — that the Cranelift and
//! C backends translate almost line by line. Each ONNX op is lowered to KIR once
//! (`crate::lower`), so a backend implements only KIR's primitives: loops, loads,
//! stores, scalar arithmetic, comparisons, selects and casts. Transcendental functions
//! are KIR unary ops that `math::expand` rewrites into those primitives (polynomials
//! and bit manipulation), so every backend computes them identically.
//!
//! A [`Program`] is a list of buffers (graph inputs/outputs in the caller's memory,
//! weights, temporaries placed in the arena by the memory planner) and a list of kernels
//! run in order. [`interp`] executes a program on the host: lowering is tested against
//! the reference evaluator through it, and backends are tested against it.

pub mod build;
pub mod interp;
pub mod math;
pub mod packed;
pub mod print;

use std::sync::Arc;

use crate::ir::{DType, Tensor, TypeInfo};

/// Handle of a buffer in [`Program::buffers`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BufId(pub u32);

/// Handle of a scalar variable in [`Kernel::vars`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Var(pub u32);

#[derive(Clone, Debug)]
pub enum BufKind {
    /// The caller's `inputs[k]`.
    Input(usize),
    /// The caller's `outputs[k]`.
    Output(usize),
    /// A constant, stored in the weight blob (or embedded).
    Weight(Arc<Tensor>),
    /// An intermediate, placed in the arena by the memory planner.
    Temp,
}

#[derive(Clone, Debug)]
pub struct Buffer {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub kind: BufKind,
    /// Set by [`packed::expand`] on a buffer of a packed type (8-bit floats, 4/2-bit
    /// types) it turned into the `U8` bytes of ONNX's packed layout: the element type and
    /// shape the caller sees (the header, the manifest, the interpreter's tensors).
    pub packed: Option<TypeInfo>,
}

impl Buffer {
    /// Elements (not bytes).
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Types of scalar expressions. Buffers of narrower types widen on load and narrow on
/// store (see [`Ty::of_storage`]); `Index` is the target's pointer-sized signed integer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    F32,
    F64,
    I32,
    I64,
    Index,
    Bool,
}

impl Ty {
    /// The expression type a buffer element of `dtype` is loaded as, `None` for types
    /// code generation does not handle (E8M0). The packed types (8-bit and 4-bit floats
    /// load as `F32`, 4/2-bit integers as `I32`) exist only until [`packed::expand`]
    /// rewrites their loads and stores into byte accesses; backends never see them.
    pub fn of_storage(dtype: DType) -> Option<Ty> {
        Some(match dtype {
            DType::F32 | DType::F16 | DType::BF16 => Ty::F32,
            DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F4E2M1 => Ty::F32,
            DType::F64 => Ty::F64,
            DType::I8 | DType::U8 | DType::I16 | DType::U16 | DType::I32 => Ty::I32,
            DType::U4 | DType::I4 | DType::U2 | DType::I2 => Ty::I32,
            DType::I64 | DType::U32 | DType::U64 => Ty::I64,
            DType::Bool => Ty::Bool,
            DType::F8E8M0 => return None,
        })
    }

    pub fn is_float(self) -> bool {
        matches!(self, Ty::F32 | Ty::F64)
    }

    pub fn is_int(self) -> bool {
        matches!(self, Ty::I32 | Ty::I64 | Ty::Index)
    }
}

/// A literal.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lit {
    F32(f32),
    F64(f64),
    I32(i32),
    I64(i64),
    Index(i64),
    Bool(bool),
}

impl Lit {
    pub fn ty(self) -> Ty {
        match self {
            Lit::F32(_) => Ty::F32,
            Lit::F64(_) => Ty::F64,
            Lit::I32(_) => Ty::I32,
            Lit::I64(_) => Ty::I64,
            Lit::Index(_) => Ty::Index,
            Lit::Bool(_) => Ty::Bool,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    Neg,
    Abs,
    /// Logical not on Bool, bitwise not on integers.
    Not,
    Sqrt,
    Floor,
    Ceil,
    /// Round half to even.
    Round,
    Trunc,
    /// I32 only: bytes 0 and 2 of the operand, each sign-extended into the int16 half
    /// it sits in (`sext8(a) & 0xFFFF | sext8(a >> 16) << 16`): Arm's `SXTB16`, which
    /// turns a word of four int8 weights into two int16 pairs for [`BinOp::Dot2`]
    /// (`Sxtb16(a)` and `Sxtb16(a >>> 8)`).
    Sxtb16,
    // Transcendentals: rewritten into primitives by `math::expand` before code generation.
    Exp,
    Log,
    Tanh,
    Erf,
    Sin,
    Cos,
    Tan,
    Atan,
    Asin,
    Acos,
    Sinh,
    Cosh,
    Asinh,
    Acosh,
    Atanh,
}

impl UnOp {
    /// True for ops a backend must implement itself (everything else is expanded).
    pub fn is_primitive(self) -> bool {
        matches!(
            self,
            UnOp::Neg | UnOp::Abs | UnOp::Not | UnOp::Sqrt | UnOp::Floor | UnOp::Ceil | UnOp::Round | UnOp::Trunc | UnOp::Sxtb16
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    /// Floats: IEEE division. Integers: truncating division (C semantics); the lowering
    /// guards against division by zero.
    Div,
    /// Integers: remainder with the sign of the dividend (C `%`). Floats: `fmod`.
    Rem,
    Min,
    Max,
    /// Logical on Bool, bitwise on integers.
    And,
    Or,
    Xor,
    Shl,
    /// Arithmetic shift right for signed values.
    Shr,
    /// Logical shift right.
    UShr,
    /// I32 only: the dot product of two pairs of int16 packed in each operand (bits
    /// 0..16 and 16..32, sign-extended), `lo(a) * lo(b) + hi(a) * hi(b)`, wrapping. The
    /// dual 16-bit multiply of Arm's DSP extension (`SMUAD`; `acc + Dot2(a, b)` is one
    /// `SMLAD`): the int8 kernels' multiply-accumulate, two taps per instruction.
    Dot2,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// Floats only; expanded by `math::expand`.
    Pow,
}

impl BinOp {
    pub fn is_comparison(self) -> bool {
        matches!(self, BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Lit(Lit),
    Var(Var),
    /// Element `index` (an `Index` expression) of `buf`, widened to `Ty::of_storage`.
    Load { buf: BufId, index: Box<Expr> },
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `cond ? a : b`; `cond` is Bool. Both sides are evaluated (backends emit
    /// branch-free selects), so each must be safe on its own: a load that is only in
    /// bounds when `cond` holds belongs under a `Stmt::If`, or needs a clamped index.
    Select(Box<Expr>, Box<Expr>, Box<Expr>),
    /// Numeric conversion (C semantics; float → int truncates, NaN → 0 by the lowering's care).
    Cast(Ty, Box<Expr>),
    /// Reinterprets bits between F32/I32 or F64/I64.
    Bitcast(Ty, Box<Expr>),
    /// `a * b + c` with one rounding.
    Fma(Box<Expr>, Box<Expr>, Box<Expr>),
}

impl Expr {
    /// The type of the expression given the kernel's variable types and the program's
    /// buffers; `None` where it is malformed (the validator's business, not this one's).
    pub fn ty(&self, vars: &[Ty], buffers: &[Buffer]) -> Option<Ty> {
        match self {
            Expr::Lit(l) => Some(l.ty()),
            Expr::Var(v) => vars.get(v.0 as usize).copied(),
            Expr::Load { buf, .. } => Ty::of_storage(buffers.get(buf.0 as usize)?.dtype),
            Expr::Unary(_, a) | Expr::Fma(a, _, _) | Expr::Select(_, a, _) => a.ty(vars, buffers),
            Expr::Binary(op, a, _) if op.is_comparison() => Some(Ty::Bool),
            Expr::Binary(_, a, _) => a.ty(vars, buffers),
            Expr::Cast(t, _) | Expr::Bitcast(t, _) => Some(*t),
        }
    }

    /// The same node with each operand replaced by `f(operand)`, operands visited in
    /// evaluation order: the step of every bottom-up rewrite (`math::expand`,
    /// `packed::expand`) for the nodes it does not change itself.
    pub fn map_operands(self, mut f: impl FnMut(Expr) -> Expr) -> Expr {
        let mut g = |x: Box<Expr>| Box::new(f(*x));
        match self {
            Expr::Lit(_) | Expr::Var(_) => self,
            Expr::Load { buf, index } => Expr::Load { buf, index: g(index) },
            Expr::Unary(op, a) => Expr::Unary(op, g(a)),
            Expr::Binary(op, a, b) => {
                let a = g(a);
                Expr::Binary(op, a, g(b))
            }
            Expr::Select(c, a, b) => {
                let c = g(c);
                let a = g(a);
                Expr::Select(c, a, g(b))
            }
            Expr::Cast(t, a) => Expr::Cast(t, g(a)),
            Expr::Bitcast(t, a) => Expr::Bitcast(t, g(a)),
            Expr::Fma(a, b, c) => {
                let a = g(a);
                let b = g(b);
                Expr::Fma(a, b, g(c))
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `for var in 0..extent { body }`; `var` is an `Index` variable.
    Loop { var: Var, extent: usize, body: Vec<Stmt> },
    /// Assigns a variable (variables are mutable; backends build SSA).
    Set { var: Var, value: Expr },
    /// Writes `value`, narrowed to the buffer's dtype, at element `index`.
    Store { buf: BufId, index: Expr, value: Expr },
    If { cond: Expr, then: Vec<Stmt>, els: Vec<Stmt> },
    /// Returns the error code from `NAME_run` (e.g. an index input out of range).
    Fail(i32),
}

#[derive(Clone, Debug, Default)]
pub struct Kernel {
    /// For reports and profiling: the graph node(s) it computes.
    pub name: String,
    pub vars: Vec<Ty>,
    pub body: Vec<Stmt>,
}

#[derive(Clone, Debug, Default)]
pub struct Program {
    pub buffers: Vec<Buffer>,
    pub kernels: Vec<Kernel>,
    /// How lowering lays out the register tiles of float products (set before lowering,
    /// for the backend the program is meant for; every layout computes the same values).
    pub gemm_tiles: GemmTiles,
}

/// The KIR shape of the float GEMM micro-kernels (`lower::linalg::Tile`). Both sum each
/// output element in the same order (one fused multiply-add per term, in increasing `k`),
/// so results are bit for bit the same; they differ in which loop is innermost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GemmTiles {
    /// Passes over output rows, a few terms of the sum at a time, the factors of A in
    /// variables: good for scalar code (C, riscv64), where the C compiler keeps a tile of
    /// factors in registers and the output row is loaded and stored once per pass.
    #[default]
    RowPasses,
    /// Small output blocks accumulated over the whole sum (the `k` loop outside a short
    /// column loop whose stores do not move with `k`), constant B packed into panels:
    /// for the 128-bit SIMD Cranelift targets, which keep each block in vector registers
    /// across the `k` loop (`back::cranelift::vector`). `depth` terms of the sum per
    /// iteration of that loop (4 on aarch64, whose `fmla` by element takes four A factors
    /// from one vector register; 2 on x86_64: Cranelift computes each accumulator's
    /// chain of `depth` fmas in one go, so `2 * depth` B vectors are live with the twelve
    /// accumulators, and depth 4 spills while depth 1 pays the loop's register moves,
    /// which the fma's overwritten factor rotates, on every term).
    Panels { depth: usize },
}

impl Program {
    pub fn buffer(&self, b: BufId) -> &Buffer {
        &self.buffers[b.0 as usize]
    }

    pub fn add_buffer(&mut self, name: impl Into<String>, dtype: DType, shape: Vec<usize>, kind: BufKind) -> BufId {
        self.buffers.push(Buffer { name: name.into(), dtype, shape, kind, packed: None });
        BufId(self.buffers.len() as u32 - 1)
    }

    /// Inputs in the caller's order.
    pub fn inputs(&self) -> Vec<BufId> {
        self.by_kind(|k| matches!(k, BufKind::Input(_)), |k| if let BufKind::Input(i) = k { *i } else { 0 })
    }

    /// Outputs in the caller's order.
    pub fn outputs(&self) -> Vec<BufId> {
        self.by_kind(|k| matches!(k, BufKind::Output(_)), |k| if let BufKind::Output(i) = k { *i } else { 0 })
    }

    fn by_kind(&self, pick: impl Fn(&BufKind) -> bool, pos: impl Fn(&BufKind) -> usize) -> Vec<BufId> {
        let mut v: Vec<(usize, BufId)> = self
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| pick(&b.kind))
            .map(|(i, b)| (pos(&b.kind), BufId(i as u32)))
            .collect();
        v.sort();
        v.into_iter().map(|(_, b)| b).collect()
    }
}

/// Expression constructors, so lowering code reads like the math it builds.
pub mod e {
    use super::*;

    pub fn f32(v: f32) -> Expr {
        Expr::Lit(Lit::F32(v))
    }
    pub fn f64(v: f64) -> Expr {
        Expr::Lit(Lit::F64(v))
    }
    pub fn i32(v: i32) -> Expr {
        Expr::Lit(Lit::I32(v))
    }
    pub fn i64(v: i64) -> Expr {
        Expr::Lit(Lit::I64(v))
    }
    pub fn idx(v: i64) -> Expr {
        Expr::Lit(Lit::Index(v))
    }
    pub fn bool(v: bool) -> Expr {
        Expr::Lit(Lit::Bool(v))
    }
    pub fn var(v: Var) -> Expr {
        Expr::Var(v)
    }
    pub fn load(buf: BufId, index: Expr) -> Expr {
        Expr::Load { buf, index: Box::new(index) }
    }
    pub fn un(op: UnOp, a: Expr) -> Expr {
        Expr::Unary(op, Box::new(a))
    }
    pub fn bin(op: BinOp, a: Expr, b: Expr) -> Expr {
        Expr::Binary(op, Box::new(a), Box::new(b))
    }
    pub fn add(a: Expr, b: Expr) -> Expr {
        bin(BinOp::Add, a, b)
    }
    pub fn sub(a: Expr, b: Expr) -> Expr {
        bin(BinOp::Sub, a, b)
    }
    pub fn mul(a: Expr, b: Expr) -> Expr {
        bin(BinOp::Mul, a, b)
    }
    pub fn div(a: Expr, b: Expr) -> Expr {
        bin(BinOp::Div, a, b)
    }
    pub fn select(c: Expr, a: Expr, b: Expr) -> Expr {
        Expr::Select(Box::new(c), Box::new(a), Box::new(b))
    }
    pub fn cast(t: Ty, a: Expr) -> Expr {
        Expr::Cast(t, Box::new(a))
    }
    pub fn fma(a: Expr, b: Expr, c: Expr) -> Expr {
        Expr::Fma(Box::new(a), Box::new(b), Box::new(c))
    }
}

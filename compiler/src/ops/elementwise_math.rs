//! The arithmetic of the elementwise family: unary math and activations, binary
//! arithmetic and bitwise ops, comparisons, variadic reductions across inputs, `Where`
//! and `Clip`. Each op's parse, type check and scalar kernel sit together.

use ndarray::ArrayD;

use super::elementwise_num::{erf, from_f64, from_i128, rounder, scalar_rounder, zip_with, Nums};
use super::{INTS, NUMERIC, UNSIGNED};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};
use crate::ops::util::{broadcast_all, broadcast_shapes, broadcast_to, expect_dtype, FLOATS};

// ---------------------------------------------------------------------------------
// Unary ops

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    Neg,
    Abs,
    Sign,
    Relu,
    Ceil,
    Floor,
    /// Half to even, like `np.round`.
    Round,
    Not,
    BitwiseNot,
    Sqrt,
    Reciprocal,
    Exp,
    Log,
    Tanh,
    Sigmoid,
    Cos,
    Sin,
    Tan,
    Acos,
    Asin,
    Atan,
    Acosh,
    Asinh,
    Atanh,
    Cosh,
    Sinh,
    Erf,
    Softplus,
    Softsign,
    Mish,
    HardSwish,
    LeakyRelu { alpha: f64 },
    Elu { alpha: f64 },
    Selu { alpha: f64, gamma: f64 },
    Celu { alpha: f64 },
    ThresholdedRelu { alpha: f64 },
    HardSigmoid { alpha: f64, beta: f64 },
    Shrink { bias: f64, lambd: f64 },
    /// `approximate="tanh"` when `tanh`.
    Gelu { tanh: bool },
    Swish { alpha: f64 },
}

impl Unary {
    pub fn parse(ctx: &NodeCtx, name: &str) -> Option<Result<Unary, OpError>> {
        use Unary::*;
        let attr = |n: &str, d: f32| ctx.float_or(n, d).map(f64::from);
        let simple = match name {
            "Neg" => Neg,
            "Abs" => Abs,
            "Sign" => Sign,
            "Relu" => Relu,
            "Ceil" => Ceil,
            "Floor" => Floor,
            "Round" => Round,
            "Not" => Not,
            "BitwiseNot" => BitwiseNot,
            "Sqrt" => Sqrt,
            "Reciprocal" => Reciprocal,
            "Exp" => Exp,
            "Log" => Log,
            "Tanh" => Tanh,
            "Sigmoid" => Sigmoid,
            "Cos" => Cos,
            "Sin" => Sin,
            "Tan" => Tan,
            "Acos" => Acos,
            "Asin" => Asin,
            "Atan" => Atan,
            "Acosh" => Acosh,
            "Asinh" => Asinh,
            "Atanh" => Atanh,
            "Cosh" => Cosh,
            "Sinh" => Sinh,
            "Erf" => Erf,
            "Softplus" => Softplus,
            "Softsign" => Softsign,
            "Mish" => Mish,
            "HardSwish" => HardSwish,
            _ => {
                let r = match name {
                    "LeakyRelu" => attr("alpha", 0.01).map(|alpha| LeakyRelu { alpha }),
                    "Elu" => attr("alpha", 1.0).map(|alpha| Elu { alpha }),
                    "Selu" => (|| {
                        Ok(Selu { alpha: attr("alpha", 1.673_263_2)?, gamma: attr("gamma", 1.050_701)? })
                    })(),
                    "Celu" => attr("alpha", 1.0).map(|alpha| Celu { alpha }),
                    "ThresholdedRelu" => attr("alpha", 1.0).map(|alpha| ThresholdedRelu { alpha }),
                    "HardSigmoid" => (|| Ok(HardSigmoid { alpha: attr("alpha", 0.2)?, beta: attr("beta", 0.5)? }))(),
                    "Shrink" => (|| Ok(Shrink { bias: attr("bias", 0.0)?, lambd: attr("lambd", 0.5)? }))(),
                    "Swish" => attr("alpha", 1.0).map(|alpha| Swish { alpha }),
                    "Gelu" => match ctx.string_or("approximate", "none") {
                        Ok(s) if s == "none" => Ok(Gelu { tanh: false }),
                        Ok(s) if s == "tanh" => Ok(Gelu { tanh: true }),
                        Ok(s) => Err(OpError::invalid(format!("Gelu approximate '{s}' is not none or tanh"))),
                        Err(e) => Err(e),
                    },
                    _ => return None,
                };
                return Some(r);
            }
        };
        Some(Ok(simple))
    }

    /// The element types the op accepts.
    fn types(self) -> &'static [DType] {
        use Unary::*;
        match self {
            Not => &[DType::Bool],
            BitwiseNot => INTS,
            Neg | Abs | Sign | Relu | Shrink { .. } => NUMERIC,
            _ => FLOATS,
        }
    }

    pub fn check(self, x: &TypeInfo) -> Result<(), OpError> {
        expect_dtype(&format!("{self:?} input"), x, self.types())
    }

    pub fn eval(self, x: &Tensor) -> Result<Tensor, OpError> {
        let dtype = x.dtype();
        match Nums::of(x) {
            Nums::I(a) if self.is_exact_on_ints() => Ok(from_i128(dtype, a.mapv(|v| self.int(v)))),
            n => {
                let (q, qs) = (rounder(dtype), scalar_rounder(dtype));
                Ok(from_f64(dtype, n.into_f64().mapv(|v| self.float(v, q, qs))))
            }
        }
    }

    fn is_exact_on_ints(self) -> bool {
        use Unary::*;
        matches!(self, Neg | Abs | Sign | Relu | Not | BitwiseNot)
    }

    fn int(self, x: i128) -> i128 {
        use Unary::*;
        match self {
            Neg => -x,
            Abs => x.abs(),
            Sign => x.signum(),
            Relu => x.max(0),
            Not => (x == 0) as i128,
            // Two's complement, truncated to the type's width on output.
            _ => !x,
        }
    }

    /// The op on one float, rounding after each step as the reference's numpy
    /// expression (or ONNX function body) does: `q` rounds to the input's type, `qs`
    /// rounds steps involving a Python float scalar (attributes) — see
    /// [`scalar_rounder`].
    fn float(self, x: f64, q: fn(f64) -> f64, qs: fn(f64) -> f64) -> f64 {
        use Unary::*;
        let exp = |v: f64| q(v.exp());
        let softplus = |v: f64| q(q(1.0 + exp(v)).ln());
        match self {
            Neg => -x,
            Abs => x.abs(),
            Sign => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x
                }
            }
            Relu => {
                if x > 0.0 || x.is_nan() {
                    x
                } else {
                    0.0
                }
            }
            Ceil => x.ceil(),
            Floor => x.floor(),
            Round => x.round_ties_even(),
            Not | BitwiseNot => f64::NAN,
            Sqrt => x.sqrt(),
            Reciprocal => 1.0 / x,
            Exp => x.exp(),
            Log => x.ln(),
            Tanh => x.tanh(),
            Sigmoid => sigmoid(x, q, qs),
            Cos => x.cos(),
            Sin => x.sin(),
            Tan => x.tan(),
            Acos => x.acos(),
            Asin => x.asin(),
            Atan => x.atan(),
            Acosh => x.acosh(),
            Asinh => x.asinh(),
            Atanh => x.atanh(),
            Cosh => x.cosh(),
            Sinh => x.sinh(),
            Erf => erf(x),
            Softplus => softplus(x),
            Softsign => x / q(1.0 + x.abs()),
            Mish => x * q(softplus(x).tanh()),
            // The function body: HardSigmoid(alpha = 1/6 as f32, beta = 0.5), then Mul.
            HardSwish => x * q(hard_sigmoid(x, (1.0f32 / 6.0) as f64, 0.5, qs)),
            LeakyRelu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    x * q(alpha)
                }
            }
            Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    qs(alpha) * q(exp(x) - 1.0)
                }
            }
            Selu { alpha, gamma } => {
                let (a, g) = (qs(alpha), qs(gamma));
                g * if x > 0.0 { x } else { qs(qs(exp(x) * a) - a) }
            }
            Celu { alpha } => {
                let a = qs(alpha);
                x.max(0.0) + qs(a * qs(qs(qs(x / a).exp()) - 1.0)).min(0.0)
            }
            ThresholdedRelu { alpha } => {
                if x > alpha {
                    x
                } else {
                    0.0
                }
            }
            HardSigmoid { alpha, beta } => hard_sigmoid(x, alpha, beta, qs),
            Shrink { bias, lambd } => {
                if x < -lambd {
                    x + qs(bias)
                } else if x > lambd {
                    x - qs(bias)
                } else {
                    0.0
                }
            }
            // The function body of opset 20, constants cast to the input type.
            Gelu { tanh: false } => {
                let phi = q(1.0 + q(erf(q(x / q(std::f64::consts::SQRT_2)))));
                q(0.5 * x) * phi
            }
            Gelu { tanh: true } => {
                let k = q(q((2.0 / std::f64::consts::PI) as f32 as f64).sqrt());
                let c0 = q(0.044715f32 as f64);
                let inner = q(x + q(c0 * q(x.powi(3))));
                let phi = q(1.0 + q(q(k * inner).tanh()));
                q(0.5 * x) * phi
            }
            // `x * (1 / (1 + exp(-alpha * x))).astype(x.dtype)`
            Swish { alpha } => x * q(sigmoid_plain(qs(qs(-alpha) * x), qs)),
        }
    }
}

/// `max(0, min(1, alpha * x + beta))`, rounded per step with `qs` (scalar steps).
fn hard_sigmoid(x: f64, alpha: f64, beta: f64, qs: fn(f64) -> f64) -> f64 {
    qs(qs(x * qs(alpha)) + qs(beta)).clamp(0.0, 1.0)
}

/// `1 / (1 + exp(v))`, `v` already negated, rounded per step (Swish's form).
fn sigmoid_plain(v: f64, q: fn(f64) -> f64) -> f64 {
    q(1.0 / q(1.0 + q(v.exp())))
}

/// The logistic function without overflow for large `|x|`, rounded per step (`exp`
/// in the input's type, the steps with the float `1.0` with `qs`).
fn sigmoid(x: f64, q: fn(f64) -> f64, qs: fn(f64) -> f64) -> f64 {
    if x > 0.0 {
        qs(1.0 / qs(1.0 + q((-x).exp())))
    } else {
        let e = q(x.exp());
        e / qs(1.0 + e)
    }
}

// ---------------------------------------------------------------------------------
// Binary ops

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Binary {
    Add,
    Sub,
    Mul,
    /// Integer division truncates toward zero; by zero it gives 0.
    Div,
    /// Mixed base and exponent types; the output has the base's type.
    Pow,
    /// `fmod`: C `fmod` (sign of the dividend); else Python `%` (sign of the divisor).
    Mod { fmod: bool },
    BitShift { left: bool },
    BitwiseAnd,
    BitwiseOr,
    BitwiseXor,
    And,
    Or,
    Xor,
    /// `slope` broadcasts to `X`'s shape (numpy rules, or a 1-D slope matching exactly
    /// one axis, as the reference does).
    PRelu,
}

impl Binary {
    pub fn parse(ctx: &NodeCtx, name: &str) -> Option<Result<Binary, OpError>> {
        use Binary::*;
        let op = match name {
            "Add" => Add,
            "Sub" => Sub,
            "Mul" => Mul,
            "Div" => Div,
            "Pow" => Pow,
            "And" => And,
            "Or" => Or,
            "Xor" => Xor,
            "BitwiseAnd" => BitwiseAnd,
            "BitwiseOr" => BitwiseOr,
            "BitwiseXor" => BitwiseXor,
            "PRelu" => PRelu,
            "Mod" => return Some(ctx.int_or("fmod", 0).map(|f| Mod { fmod: f != 0 })),
            "BitShift" => {
                return Some(match ctx.string("direction") {
                    Ok(Some(d)) if d == "LEFT" => Ok(BitShift { left: true }),
                    Ok(Some(d)) if d == "RIGHT" => Ok(BitShift { left: false }),
                    Ok(d) => Err(OpError::invalid(format!("BitShift direction {d:?} is not LEFT or RIGHT"))),
                    Err(e) => Err(e),
                })
            }
            _ => return None,
        };
        Some(super::legacy_broadcast(ctx).map(|()| op))
    }

    pub fn check(self, x: &TypeInfo, y: &TypeInfo) -> Result<(), OpError> {
        use Binary::*;
        let what = format!("{self:?} input");
        match self {
            Pow => {
                expect_dtype(&what, x, NUMERIC)?;
                return expect_dtype(&what, y, NUMERIC);
            }
            BitShift { .. } => expect_dtype(&what, x, UNSIGNED)?,
            BitwiseAnd | BitwiseOr | BitwiseXor => expect_dtype(&what, x, INTS)?,
            And | Or | Xor => expect_dtype(&what, x, &[DType::Bool])?,
            Add | Sub | Mul | Div | Mod { .. } | PRelu => expect_dtype(&what, x, NUMERIC)?,
        }
        if x.dtype != y.dtype {
            return Err(OpError::invalid(format!("{self:?} inputs have different types {} and {}", x.dtype, y.dtype)));
        }
        Ok(())
    }

    pub fn shape(self, x: &[usize], y: &[usize]) -> Result<Vec<usize>, OpError> {
        if self == Binary::PRelu {
            return prelu_slope_shape(x, y).map(|_| x.to_vec());
        }
        broadcast_shapes(x, y)
    }

    pub fn eval(self, x: &Tensor, y: &Tensor) -> Result<Tensor, OpError> {
        let shape = self.shape(x.shape(), y.shape())?;
        let slope;
        let y = if self == Binary::PRelu {
            let s = prelu_slope_shape(x.shape(), y.shape())?;
            slope = y.reshaped(&s).ok_or_else(|| OpError::invalid("PRelu slope does not fit its shape"))?;
            &slope
        } else {
            y
        };
        let dtype = x.dtype();
        let bits = dtype.bits() as i128;
        match (Nums::of(x), Nums::of(y)) {
            (Nums::I(a), Nums::I(b)) if !(self == Binary::Pow && pow_promote(dtype, y.dtype()) == DType::F64) => {
                Ok(from_i128(dtype, zip_with(&a, &b, &shape, |a, b| self.int(a, b, bits))?))
            }
            (a, b) => {
                let (a, b) = (a.into_f64(), b.into_f64());
                // numpy computes Pow in the promoted type, then casts to the base's.
                let q = rounder(if self == Binary::Pow { pow_promote(dtype, y.dtype()) } else { dtype });
                Ok(from_f64(dtype, zip_with(&a, &b, &shape, |a, b| self.float(a, b, dtype).map(q))?))
            }
        }
    }

    /// Exact integer arithmetic; `bits` is the width of the inputs' type.
    fn int(self, a: i128, b: i128, bits: i128) -> Result<i128, OpError> {
        use Binary::*;
        Ok(match self {
            Add => a.wrapping_add(b),
            Sub => a.wrapping_sub(b),
            Mul => a.wrapping_mul(b),
            Div => {
                if b == 0 {
                    0
                } else {
                    a / b
                }
            }
            Mod { fmod } => {
                if b == 0 {
                    0
                } else {
                    let r = a % b;
                    if !fmod && r != 0 && (r < 0) != (b < 0) {
                        r + b
                    } else {
                        r
                    }
                }
            }
            Pow => wrapping_pow(a, b)?,
            BitShift { left } => {
                if b >= bits || b < 0 {
                    0
                } else if left {
                    a << b
                } else {
                    a >> b
                }
            }
            BitwiseAnd | And => a & b,
            BitwiseOr | Or => a | b,
            BitwiseXor | Xor => a ^ b,
            PRelu => {
                if a > 0 {
                    a
                } else {
                    a.wrapping_mul(b)
                }
            }
        })
    }

    /// Float arithmetic; `dtype` is the inputs' type.
    fn float(self, a: f64, b: f64, dtype: DType) -> Result<f64, OpError> {
        use Binary::*;
        Ok(match self {
            Add => a + b,
            Sub => a - b,
            Mul => a * b,
            Div => a / b,
            Pow => a.powf(b),
            // Rust's `%` on floats is C's `fmod`. For `fmod=0` on floats (which the
            // spec forbids) the reference uses `fmod` on f16/f32/f64 and numpy's
            // sign-of-divisor `mod` on bf16, mapping NaN to 0.
            Mod { fmod: true } => a % b,
            Mod { fmod: false } => {
                let mut r = a % b;
                if dtype == DType::BF16 && r != 0.0 && (r < 0.0) != (b < 0.0) {
                    r += b;
                }
                if r.is_nan() {
                    0.0
                } else {
                    r
                }
            }
            PRelu => {
                if a > 0.0 {
                    a
                } else {
                    a * b
                }
            }
            BitShift { .. } | BitwiseAnd | BitwiseOr | BitwiseXor | And | Or | Xor => {
                return Err(OpError::invalid(format!("{self:?} on floats")))
            }
        })
    }
}

/// The type numpy computes `Pow` in for a base and an exponent type (the result is
/// then cast to the base's type).
fn pow_promote(a: DType, b: DType) -> DType {
    let rank = |d: DType| match d {
        DType::F16 | DType::BF16 => 1,
        DType::F32 => 2,
        _ => 3,
    };
    match (a.is_float(), b.is_float()) {
        (true, true) if a == b => a,
        (true, true) => [DType::F32, DType::F64][(rank(a).max(rank(b)) == 3) as usize],
        // numpy has no integer type holding both u64 and a signed type.
        (false, false) if (a == DType::U64 && b.is_signed_int()) || (b == DType::U64 && a.is_signed_int()) => DType::F64,
        (false, false) => a,
        _ => {
            let (i, f) = if a.is_float() { (b, a) } else { (a, b) };
            match (f, i.bits()) {
                (DType::F16 | DType::BF16, 8) => f,
                (DType::F16 | DType::BF16 | DType::F32, 16) | (DType::F32, 8) => DType::F32,
                _ => DType::F64,
            }
        }
    }
}

/// `a^b` for integers, wrapping like numpy's fixed-width power.
fn wrapping_pow(a: i128, b: i128) -> Result<i128, OpError> {
    if b < 0 {
        return Err(OpError::unsupported("Pow of an integer to a negative integer exponent"));
    }
    let (mut base, mut e, mut acc) = (a, b, 1i128);
    while e > 0 {
        if e & 1 == 1 {
            acc = acc.wrapping_mul(base);
        }
        base = base.wrapping_mul(base);
        e >>= 1;
    }
    Ok(acc)
}

/// The shape PRelu's slope takes to broadcast to `x`.
fn prelu_slope_shape(x: &[usize], slope: &[usize]) -> Result<Vec<usize>, OpError> {
    if broadcast_shapes(x, slope).is_ok_and(|s| s == x) {
        return Ok(slope.to_vec());
    }
    if let [d] = *slope {
        let hits: Vec<usize> = (0..x.len()).filter(|&i| x[i] == d).collect();
        if let [axis] = hits[..] {
            return Ok((0..x.len()).map(|i| if i == axis { d } else { 1 }).collect());
        }
    }
    Err(OpError::invalid(format!("PRelu slope of shape {slope:?} does not broadcast to {x:?}")))
}

// ---------------------------------------------------------------------------------
// Comparisons

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Compare {
    Equal,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
}

impl Compare {
    pub fn parse(name: &str) -> Option<Compare> {
        Some(match name {
            "Equal" => Compare::Equal,
            "Less" => Compare::Less,
            "LessOrEqual" => Compare::LessOrEqual,
            "Greater" => Compare::Greater,
            "GreaterOrEqual" => Compare::GreaterOrEqual,
            _ => return None,
        })
    }

    pub fn check(self, x: &TypeInfo, y: &TypeInfo) -> Result<(), OpError> {
        let what = format!("{self:?} input");
        if x.dtype != DType::Bool {
            expect_dtype(&what, x, NUMERIC)?;
        }
        if x.dtype != y.dtype {
            return Err(OpError::invalid(format!("{self:?} inputs have different types {} and {}", x.dtype, y.dtype)));
        }
        Ok(())
    }

    pub fn eval(self, x: &Tensor, y: &Tensor) -> Result<Tensor, OpError> {
        let shape = broadcast_shapes(x.shape(), y.shape())?;
        let out = match (Nums::of(x), Nums::of(y)) {
            (Nums::I(a), Nums::I(b)) => zip_with(&a, &b, &shape, |a, b| Ok(self.holds(a.partial_cmp(&b))))?,
            (a, b) => {
                zip_with(&a.into_f64(), &b.into_f64(), &shape, |a, b| Ok(self.holds(a.partial_cmp(&b))))?
            }
        };
        Ok(Tensor::Bool(out))
    }

    /// Whether the relation holds for an ordering (`None`: a NaN was compared).
    fn holds(self, o: Option<std::cmp::Ordering>) -> bool {
        use std::cmp::Ordering::*;
        match (self, o) {
            (_, None) => false,
            (Compare::Equal, Some(o)) => o == Equal,
            (Compare::Less, Some(o)) => o == Less,
            (Compare::LessOrEqual, Some(o)) => o != Greater,
            (Compare::Greater, Some(o)) => o == Greater,
            (Compare::GreaterOrEqual, Some(o)) => o != Less,
        }
    }
}

// ---------------------------------------------------------------------------------
// Variadic ops

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Variadic {
    /// NaN-propagating, like `np.maximum`.
    Max,
    Min,
    Sum,
    Mean,
}

impl Variadic {
    pub fn parse(name: &str) -> Option<Variadic> {
        Some(match name {
            "Max" => Variadic::Max,
            "Min" => Variadic::Min,
            "Sum" => Variadic::Sum,
            "Mean" => Variadic::Mean,
            _ => return None,
        })
    }

    /// `t` is an input, `first` the first one.
    pub fn check(self, first: &TypeInfo, t: &TypeInfo) -> Result<(), OpError> {
        expect_dtype(&format!("{self:?} input"), t, NUMERIC)?;
        if t.dtype != first.dtype {
            return Err(OpError::invalid(format!("{self:?} inputs have different types {} and {}", first.dtype, t.dtype)));
        }
        Ok(())
    }

    pub fn eval(self, inputs: &[&Tensor]) -> Result<Tensor, OpError> {
        let first = inputs.first().ok_or_else(|| OpError::invalid(format!("{self:?} needs at least one input")))?;
        let dtype = first.dtype();
        let shape = broadcast_all(inputs.iter().map(|t| t.shape()))?;
        let n = inputs.len() as f64;
        match Nums::of(first) {
            Nums::I(mut acc) => {
                for t in &inputs[1..] {
                    let b = match Nums::of(t) {
                        Nums::I(b) => b,
                        Nums::F(_) => return Err(OpError::invalid(format!("{self:?} inputs have different types"))),
                    };
                    acc = zip_with(&acc, &b, &shape, |a, b| {
                        Ok(match self {
                            Variadic::Max => a.max(b),
                            Variadic::Min => a.min(b),
                            Variadic::Sum | Variadic::Mean => a.wrapping_add(b),
                        })
                    })?;
                }
                let sum = from_i128(dtype, broadcast_to(&acc, &shape)?);
                if self == Variadic::Mean {
                    // numpy divides the wrapped sum into float64 and casts back.
                    return Ok(from_f64(dtype, Nums::of(&sum).into_f64().mapv(|v| v / n)));
                }
                Ok(sum)
            }
            Nums::F(mut acc) => {
                // Each addition is rounded to the type, as numpy adds in it.
                let q = rounder(dtype);
                for t in &inputs[1..] {
                    let b = Nums::of(t).into_f64();
                    acc = zip_with(&acc, &b, &shape, |a, b| {
                        Ok(match self {
                            _ if a.is_nan() || b.is_nan() => f64::NAN,
                            Variadic::Max => a.max(b),
                            Variadic::Min => a.min(b),
                            Variadic::Sum | Variadic::Mean => q(a + b),
                        })
                    })?;
                }
                let acc = broadcast_to(&acc, &shape)?;
                if self == Variadic::Mean {
                    return Ok(from_f64(dtype, acc.mapv(|v| v / n)));
                }
                Ok(from_f64(dtype, acc))
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Where and Clip

/// `Where(cond, x, y)`: elements of `x` where `cond`, else of `y`, all broadcast; any
/// element type, moved without conversion.
pub fn select(cond: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor, OpError> {
    let c = cond.as_array::<bool>().ok_or_else(|| OpError::invalid("Where condition must be bool"))?;
    let shape = broadcast_all([cond.shape(), x.shape(), y.shape()])?;
    let c = broadcast_to(c, &shape)?;
    fn pick<T: Clone>(c: &ArrayD<bool>, a: &ArrayD<T>, b: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, OpError> {
        let ab = zip_with(a, b, shape, |a, b| Ok((a, b)))?;
        zip_with(c, &ab, shape, |c, (a, b)| Ok(if c { a } else { b }))
    }
    macro_rules! same {
        ($($v:ident),*) => {
            match (x, y) {
                $((Tensor::$v(a), Tensor::$v(b)) => Tensor::$v(pick(&c, a, b, &shape)?),)*
                (Tensor::Packed(d, a), Tensor::Packed(e, b)) if d == e => Tensor::Packed(*d, pick(&c, a, b, &shape)?),
                _ => return Err(OpError::invalid(format!("Where inputs have different types {} and {}", x.dtype(), y.dtype()))),
            }
        };
    }
    Ok(same!(F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64, Bool))
}

/// `Clip`: `min(max(x, lo), hi)` like `np.clip` (NaN propagates); absent bounds are
/// unbounded. The bounds may not enlarge `x`'s shape.
pub fn clip(x: &Tensor, lo: Option<&Tensor>, hi: Option<&Tensor>) -> Result<Tensor, OpError> {
    let shape = x.shape().to_vec();
    for b in [lo, hi].into_iter().flatten() {
        if broadcast_shapes(&shape, b.shape())? != shape {
            return Err(OpError::invalid(format!("Clip bound of shape {:?} does not fit input {shape:?}", b.shape())));
        }
    }
    let dtype = x.dtype();
    let all_int = [lo, hi].into_iter().flatten().all(|b| !b.dtype().is_float());
    match Nums::of(x) {
        Nums::I(mut a) if all_int => {
            for (b, is_lo) in [(lo, true), (hi, false)] {
                if let Some(Nums::I(b)) = b.map(Nums::of) {
                    a = zip_with(&a, &b, &shape, |v, b| Ok(if is_lo { v.max(b) } else { v.min(b) }))?;
                }
            }
            Ok(from_i128(dtype, a))
        }
        n => {
            let mut a = n.into_f64();
            for (b, is_lo) in [(lo, true), (hi, false)] {
                if let Some(b) = b.map(|b| Nums::of(b).into_f64()) {
                    a = zip_with(&a, &b, &shape, |v, b| {
                        Ok(match () {
                            _ if v.is_nan() || b.is_nan() => f64::NAN,
                            _ if is_lo => v.max(b),
                            _ => v.min(b),
                        })
                    })?;
                }
            }
            Ok(from_f64(dtype, a))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i64s(t: &Tensor) -> Vec<i64> {
        t.to_i64_vec().unwrap()
    }

    #[test]
    fn integer_div_and_mod_follow_the_reference() {
        let a = Tensor::from_vec(&[4], vec![-7i64, 7, -7, 7]);
        let b = Tensor::from_vec(&[4], vec![2i64, -2, -2, 0]);
        assert_eq!(i64s(&Binary::Div.eval(&a, &b).unwrap()), vec![-3, -3, 3, 0]);
        assert_eq!(i64s(&Binary::Mod { fmod: false }.eval(&a, &b).unwrap()), vec![1, -1, -1, 0]);
        assert_eq!(i64s(&Binary::Mod { fmod: true }.eval(&a, &b).unwrap()), vec![-1, 1, -1, 0]);
    }

    #[test]
    fn integer_overflow_wraps() {
        let a = Tensor::from_vec(&[2], vec![i8::MAX, i8::MIN]);
        let b = Tensor::from_vec(&[2], vec![1i8, -1]);
        assert_eq!(i64s(&Binary::Add.eval(&a, &b).unwrap()), vec![-128, 127]);
        assert_eq!(i64s(&Unary::Neg.eval(&Tensor::from_vec(&[1], vec![i8::MIN])).unwrap()), vec![-128]);
    }

    #[test]
    fn pow_promotion_matches_numpy() {
        assert_eq!(pow_promote(DType::I8, DType::F16), DType::F16);
        assert_eq!(pow_promote(DType::I16, DType::F16), DType::F32);
        assert_eq!(pow_promote(DType::F32, DType::I64), DType::F64);
        assert_eq!(pow_promote(DType::U64, DType::I32), DType::F64);
        assert_eq!(pow_promote(DType::I32, DType::I64), DType::I32);
    }

    #[test]
    fn prelu_slope_on_a_matching_axis() {
        assert_eq!(prelu_slope_shape(&[2, 3, 4], &[3]).unwrap(), vec![1, 3, 1]);
        assert_eq!(prelu_slope_shape(&[2, 3, 4], &[4]).unwrap(), vec![4]);
        assert!(prelu_slope_shape(&[3, 3], &[2]).is_err());
    }
}

//! The quant family: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear and
//! QLinearMatMul.
//!
//! Scales and zero points are per tensor (one value), per axis (a 1-D tensor along
//! `axis`) or blocked (x's shape with `axis` divided into blocks of `block_size`);
//! [`ParamIndex`] maps each element of x to its parameter. Arithmetic follows the
//! ONNX reference implementation's numpy types, so results round the same way.

use super::linalg::integer_matmul;
use super::linalg::num::{expect_float, from_f64, matmul_shape, numel, round_to, strides};
use super::util::{input, norm_axis, opt_input};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{packed, DType, Tensor, TypeInfo};

#[derive(Clone, Debug)]
pub enum QuantOp {
    QuantizeLinear(Quantize),
    DequantizeLinear(Dequantize),
    /// float32 → uint8 with a scale and zero point computed from the data's range.
    DynamicQuantizeLinear,
    QLinearMatMul,
}

#[derive(Clone, Debug)]
pub struct Quantize {
    pub axis: i64,
    pub block_size: usize,
    pub saturate: bool,
    /// The `output_dtype` attribute (opset 21+), when set.
    pub output_dtype: Option<DType>,
    /// The `precision` attribute (opset 23+): the float type of `x / scale`.
    pub precision: Option<DType>,
}

#[derive(Clone, Debug)]
pub struct Dequantize {
    pub axis: i64,
    pub block_size: usize,
    pub output_dtype: Option<DType>,
}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    let op = match ctx.op_type {
        _ if !ctx.is_default_domain() => return None,
        "QuantizeLinear" => parse_quantize(ctx),
        "DequantizeLinear" => parse_dequantize(ctx),
        "DynamicQuantizeLinear" => Ok(QuantOp::DynamicQuantizeLinear),
        "QLinearMatMul" => Ok(QuantOp::QLinearMatMul),
        _ => return None,
    };
    Some(op.map(Op::Quant))
}

/// A data type attribute (0 = unset).
fn dtype_attr(ctx: &NodeCtx, name: &str) -> Result<Option<DType>, OpError> {
    match ctx.int_or(name, 0)? {
        0 => Ok(None),
        code => {
            i32::try_from(code).ok().and_then(DType::from_onnx).map(Some).ok_or_else(|| {
                OpError::unsupported(format!("{name} = {code} ({})", DType::onnx_code_name(code as i32)))
            })
        }
    }
}

fn block_size(ctx: &NodeCtx) -> Result<usize, OpError> {
    let b = ctx.int_or("block_size", 0)?;
    usize::try_from(b).map_err(|_| OpError::invalid(format!("block_size must be >= 0, got {b}")))
}

fn parse_quantize(ctx: &NodeCtx) -> Result<QuantOp, OpError> {
    let precision = dtype_attr(ctx, "precision")?;
    if let Some(p) = precision {
        if !super::util::FLOATS.contains(&p) {
            return Err(OpError::unsupported(format!("QuantizeLinear precision {p}")));
        }
    }
    Ok(QuantOp::QuantizeLinear(Quantize {
        axis: ctx.int_or("axis", 1)?,
        block_size: block_size(ctx)?,
        saturate: ctx.int_or("saturate", 1)? != 0,
        output_dtype: dtype_attr(ctx, "output_dtype")?,
        precision,
    }))
}

fn parse_dequantize(ctx: &NodeCtx) -> Result<QuantOp, OpError> {
    Ok(QuantOp::DequantizeLinear(Dequantize {
        axis: ctx.int_or("axis", 1)?,
        block_size: block_size(ctx)?,
        output_dtype: dtype_attr(ctx, "output_dtype")?,
    }))
}

/// How each element of x finds its scale / zero point.
enum ParamIndex {
    /// One value for the whole tensor.
    Tensor,
    /// One value per index along an axis: `(flat / inner) % len`.
    Axis { inner: usize, len: usize },
    /// Blocks along `axis`: x's coordinate there divided by `block`.
    Blocked { x_shape: Vec<usize>, p_shape: Vec<usize>, axis: usize, block: usize },
}

impl ParamIndex {
    fn new(x: &[usize], p: &[usize], axis: i64, block: usize) -> Result<Self, OpError> {
        let n = numel(p)?;
        if n == 1 {
            return Ok(ParamIndex::Tensor);
        }
        let axis = norm_axis(axis, x.len())?;
        if block == 0 {
            if p.len() != 1 || p[0] != x[axis] {
                return Err(OpError::invalid(format!(
                    "per-axis parameter of shape {p:?} does not fit axis {axis} of {x:?}"
                )));
            }
            return Ok(ParamIndex::Axis { inner: numel(&x[axis + 1..])?, len: p[0] });
        }
        let fits = p.len() == x.len()
            && (0..x.len()).all(|i| if i == axis { p[i] == x[i].div_ceil(block) } else { p[i] == x[i] });
        if !fits {
            return Err(OpError::invalid(format!(
                "blocked parameter of shape {p:?} does not fit {x:?} with block_size {block} on axis {axis}"
            )));
        }
        Ok(ParamIndex::Blocked { x_shape: x.to_vec(), p_shape: p.to_vec(), axis, block })
    }

    /// The parameter index for every element of x, in order.
    fn indices(&self, n: usize) -> Vec<usize> {
        match self {
            ParamIndex::Tensor => vec![0; n],
            ParamIndex::Axis { inner, len } => (0..n).map(|i| (i / inner.max(&1)) % len).collect(),
            ParamIndex::Blocked { x_shape, p_shape, axis, block } => {
                let mut idx = vec![0; x_shape.len()];
                let pstr = strides(p_shape);
                (0..n)
                    .map(|i| {
                        super::conv::unravel(i, x_shape, &mut idx);
                        idx[*axis] /= block;
                        idx.iter().zip(&pstr).map(|(a, s)| a * s).sum()
                    })
                    .collect()
            }
        }
    }
}

/// The type numpy promotes two float types to (f16 with bf16 → f32).
fn promote(a: DType, b: DType) -> DType {
    if a == b {
        a
    } else if a == DType::F64 || b == DType::F64 {
        DType::F64
    } else {
        DType::F32
    }
}

/// Integer ranges of the integer quantized types.
fn int_range(d: DType) -> Option<(f64, f64)> {
    Some(match d {
        DType::U8 => (0.0, 255.0),
        DType::I8 => (-128.0, 127.0),
        DType::U16 => (0.0, 65535.0),
        DType::I16 => (-32768.0, 32767.0),
        DType::U4 => (0.0, 15.0),
        DType::I4 => (-8.0, 7.0),
        DType::U2 => (0.0, 3.0),
        DType::I2 => (-2.0, 1.0),
        _ => return None,
    })
}

fn is_minifloat(d: DType) -> bool {
    matches!(d, DType::F8E4M3FN | DType::F8E4M3FNUZ | DType::F8E5M2 | DType::F8E5M2FNUZ | DType::F4E2M1)
}

/// The 8- and 4-bit float conversions live in `ir::packed` (owned by the cast code);
/// until they round-trip 1.0 these types are reported as unsupported, not computed wrong.
fn check_minifloat(d: DType) -> Result<(), OpError> {
    if is_minifloat(d) && packed::decode(d, packed::encode(d, 1.0, true)) != 1.0 {
        return Err(OpError::unsupported(format!("{d} conversions are not available in ir::packed")));
    }
    Ok(())
}

// ---- QuantizeLinear ----

/// QuantizeLinear reads floats, and int32 (opsets 10 to 18).
fn check_quantize_input(d: DType) -> Result<(), OpError> {
    if d == DType::I32 {
        return Ok(());
    }
    expect_float("QuantizeLinear input", d)
}

impl Quantize {
    fn out_dtype(&self, zp: Option<DType>) -> Result<DType, OpError> {
        let d = match (zp, self.output_dtype) {
            (Some(z), Some(o)) if z != o => {
                return Err(OpError::invalid(format!("output_dtype {o} differs from the zero point's type {z}")));
            }
            (Some(z), _) => z,
            (None, Some(o)) => o,
            (None, None) => DType::U8,
        };
        if int_range(d).is_none() && !is_minifloat(d) {
            return Err(OpError::unsupported(format!("QuantizeLinear to {d}")));
        }
        check_minifloat(d)?;
        Ok(d)
    }

    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        check_quantize_input(x.dtype)?;
        let d = self.out_dtype(ctx.opt_input(2).map(|t| t.dtype))?;
        ParamIndex::new(&x.shape, &ctx.input(1)?.shape, self.axis, self.block_size)?;
        Ok(vec![TypeInfo::new(d, x.shape.clone())])
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (x, scale) = (input(inputs, 0)?, input(inputs, 1)?);
        check_quantize_input(x.dtype())?;
        let zp = opt_input(inputs, 2);
        let d = self.out_dtype(zp.map(|t| t.dtype()))?;
        let pi = ParamIndex::new(x.shape(), scale.shape(), self.axis, self.block_size)?.indices(x.len());
        let zpi = match zp {
            Some(z) => ParamIndex::new(x.shape(), z.shape(), self.axis, self.block_size)?.indices(x.len()),
            None => vec![],
        };
        let (xv, sv) = (x.to_f64_vec(), scale.to_f64_vec());
        let zv = zp.map(|z| z.to_f64_vec());
        // numpy divides int32 x in float64; `precision` casts both operands first.
        let work = match self.precision {
            Some(p) => p,
            None if x.dtype() == DType::I32 => DType::F64,
            None => promote(x.dtype(), scale.dtype()),
        };
        let div = |i: usize| round_to(work, round_to(work, xv[i]) / round_to(work, sv[pi[i]]));
        let zero_at = |i: usize| zv.as_ref().map_or(0.0, |z| z[zpi[i]]);
        let out: Vec<u8>;
        let shape = x.shape();
        if let Some((lo, hi)) = int_range(d) {
            let v: Vec<f64> = (0..xv.len()).map(|i| (div(i).round_ties_even() + zero_at(i)).clamp(lo, hi)).collect();
            if !d.is_packed() {
                return Ok(vec![from_f64(d, shape, v)]);
            }
            out = v.iter().map(|&q| packed::encode(d, q, true)).collect();
        } else {
            // Float targets: the reference ignores the float8 zero point (it must be 0)
            // and adds float4's before the cast.
            let add_zp = d == DType::F4E2M1;
            let saturate = self.saturate || d == DType::F4E2M1;
            out = (0..xv.len())
                .map(|i| {
                    let q = div(i);
                    let q = if add_zp { round_to(work, q + zero_at(i)) } else { q };
                    packed::encode(d, q, saturate)
                })
                .collect();
        }
        let a =
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), out).map_err(|e| OpError::invalid(e.to_string()))?;
        Ok(vec![Tensor::Packed(d, a)])
    }
}

// ---- DequantizeLinear ----

impl Dequantize {
    fn out_dtype(&self, scale: DType) -> Result<DType, OpError> {
        let d = self.output_dtype.unwrap_or(scale);
        expect_float("DequantizeLinear output", d)?;
        Ok(d)
    }

    fn check_x(d: DType) -> Result<(), OpError> {
        if int_range(d).is_none() && !is_minifloat(d) && d != DType::I32 {
            return Err(OpError::unsupported(format!("DequantizeLinear of {d}")));
        }
        check_minifloat(d)
    }

    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let (x, s) = (ctx.input(0)?, ctx.input(1)?);
        Self::check_x(x.dtype)?;
        ParamIndex::new(&x.shape, &s.shape, self.axis, self.block_size)?;
        Ok(vec![TypeInfo::new(self.out_dtype(s.dtype)?, x.shape.clone())])
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (x, scale) = (input(inputs, 0)?, input(inputs, 1)?);
        Self::check_x(x.dtype())?;
        let d = self.out_dtype(scale.dtype())?;
        let n = x.len();
        let pi = ParamIndex::new(x.shape(), scale.shape(), self.axis, self.block_size)?.indices(n);
        // Float zero points must be zero; the reference skips them.
        let zp = opt_input(inputs, 2).filter(|_| !is_minifloat(x.dtype()));
        let zpi = match zp {
            Some(z) => ParamIndex::new(x.shape(), z.shape(), self.axis, self.block_size)?.indices(n),
            None => vec![],
        };
        let (xv, sv) = (x.to_f64_vec(), scale.to_f64_vec());
        let zv = zp.map(|z| z.to_f64_vec());
        // numpy computes in float32 unless the scale (or an int32 x) is wider.
        let work = if scale.dtype() == DType::F64 || x.dtype() == DType::I32 { DType::F64 } else { DType::F32 };
        let y: Vec<f64> = (0..n)
            .map(|i| {
                let dx = round_to(work, xv[i] - zv.as_ref().map_or(0.0, |z| z[zpi[i]]));
                round_to(work, dx * sv[pi[i]])
            })
            .collect();
        Ok(vec![from_f64(d, x.shape(), y)])
    }
}

// ---- DynamicQuantizeLinear ----

fn eval_dynamic_quantize(inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let x = input(inputs, 0)?;
    let xv =
        x.as_array::<f32>().ok_or_else(|| OpError::unsupported(format!("DynamicQuantizeLinear of {}", x.dtype())))?;
    // All in float32, as the reference does.
    let maxx = xv.iter().copied().fold(0.0f32, f32::max);
    let minx = xv.iter().copied().fold(0.0f32, f32::min);
    let scale = (if maxx == minx { 1.0 } else { maxx - minx }) / 255.0f32;
    let zp = (0.0f32 - minx / scale).clamp(0.0, 255.0).round_ties_even();
    let y: Vec<u8> = xv.iter().map(|&v| ((v / scale).round_ties_even() + zp).clamp(0.0, 255.0) as u8).collect();
    Ok(vec![Tensor::from_vec(x.shape(), y), Tensor::scalar(scale), Tensor::scalar(zp as u8)])
}

// ---- QLinearMatMul ----

/// The single value of a per-tensor parameter.
fn scalar_param(t: &Tensor, what: &str) -> Result<f64, OpError> {
    match t.to_f64_vec().as_slice() {
        [v] => Ok(*v),
        _ => Err(OpError::unsupported(format!("QLinearMatMul with a per-axis {what}"))),
    }
}

fn qlinear_out_dtype(a: DType, y_zp: Option<DType>) -> Result<DType, OpError> {
    let d = y_zp.unwrap_or(a);
    if !matches!(d, DType::U8 | DType::I8) {
        return Err(OpError::unsupported(format!("QLinearMatMul to {d}")));
    }
    Ok(d)
}

fn eval_qlinear_matmul(inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
    let (a, a_s, b, b_s, y_s) =
        (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 3)?, input(inputs, 4)?, input(inputs, 6)?);
    let y_zp = opt_input(inputs, 7);
    let d = qlinear_out_dtype(a.dtype(), y_zp.map(|t| t.dtype()))?;
    for (t, w) in [(opt_input(inputs, 2), "a_zero_point"), (opt_input(inputs, 5), "b_zero_point")] {
        if let Some(t) = t {
            scalar_param(t, w)?;
        }
    }
    let (v, shape) = integer_matmul(a, b, opt_input(inputs, 2), opt_input(inputs, 5))?;
    // The factor is computed in the scales' type, the product in float64.
    let work = a_s.dtype();
    let factor = round_to(
        work,
        round_to(work, scalar_param(a_s, "a_scale")? * scalar_param(b_s, "b_scale")?) / scalar_param(y_s, "y_scale")?,
    );
    let zp = y_zp.map(|z| scalar_param(z, "y_zero_point")).transpose()?.unwrap_or(0.0);
    let (lo, hi) = int_range(d).unwrap_or((0.0, 255.0));
    let y: Vec<f64> = v.iter().map(|&c| (c as f64 * factor + zp).round_ties_even().clamp(lo, hi)).collect();
    Ok(vec![from_f64(d, &shape, y)])
}

impl Semantics for QuantOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        match self {
            QuantOp::QuantizeLinear(q) => q.infer(ctx),
            QuantOp::DequantizeLinear(q) => q.infer(ctx),
            QuantOp::DynamicQuantizeLinear => {
                let x = ctx.input(0)?;
                if x.dtype != DType::F32 {
                    return Err(OpError::unsupported(format!("DynamicQuantizeLinear of {}", x.dtype)));
                }
                Ok(vec![
                    TypeInfo::new(DType::U8, x.shape.clone()),
                    TypeInfo::new(DType::F32, vec![]),
                    TypeInfo::new(DType::U8, vec![]),
                ])
            }
            QuantOp::QLinearMatMul => {
                let (a, b) = (ctx.input(0)?, ctx.input(3)?);
                let d = qlinear_out_dtype(a.dtype, ctx.opt_input(7).map(|t| t.dtype))?;
                let s = matmul_shape(&a.shape, &b.shape)?;
                Ok(vec![TypeInfo::new(d, s.out)])
            }
        }
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        match self {
            QuantOp::QuantizeLinear(q) => q.eval(inputs),
            QuantOp::DequantizeLinear(q) => q.eval(inputs),
            QuantOp::DynamicQuantizeLinear => eval_dynamic_quantize(inputs),
            QuantOp::QLinearMatMul => eval_qlinear_matmul(inputs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_index_divides_the_axis() {
        let p = ParamIndex::new(&[1, 4, 2], &[1, 2, 2], 1, 2).unwrap();
        assert_eq!(p.indices(8), vec![0, 1, 0, 1, 2, 3, 2, 3]);
    }
}

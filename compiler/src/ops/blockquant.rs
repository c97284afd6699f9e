//! Ops on block-quantized weights (`--quantize int4` / `int8-weights`), made by
//! `passes::quantize_weights` from MatMul, Gemm and Gather nodes whose weight is a
//! constant: the weight input becomes a `uint8` tensor of packed rows
//! ([`super::blockquant_format`]), activations stay float32.
//!
//! - `QMatMul` (domain `edgec`): inputs `A [..., K]` (float32), `W` packed as `N` rows
//!   of `K` (the transpose of MatMul's `B [K, N]`, so blocks run along the reduction
//!   axis), optional `C` (Gemm's bias, broadcast to `[M, N]`). Output
//!   `alpha * A @ dequant(W)^T + beta * C`, shape `A.shape[..-1] + [N]`.
//! - `QGather`: inputs `W` packed as `rows` rows of `cols`, `indices` (integers,
//!   negatives count from the end). Output `indices.shape + [cols]`: Gather on axis 0.
//!
//! `eval` dequantizes and computes in float64: the reference the kernels are tested
//! against.

use super::blockquant_format::{unpack, BlockFormat, BLOCK};
use super::util::{broadcast_shapes, input, opt_input};
use super::{InferCtx, Semantics};
use crate::error::OpError;
use crate::ir::{DType, Tensor, TypeInfo};

#[derive(Clone, Debug, PartialEq)]
pub enum BlockQuantOp {
    MatMul { format: BlockFormat, k: usize, n: usize, alpha: f32, beta: f32 },
    Gather { format: BlockFormat, rows: usize, cols: usize },
}

/// The graph domain of these ops (they come from no ONNX file).
pub const DOMAIN: &str = "edgec";

impl BlockQuantOp {
    pub fn op_type(&self) -> &'static str {
        match self {
            BlockQuantOp::MatMul { .. } => "QMatMul",
            BlockQuantOp::Gather { .. } => "QGather",
        }
    }

    pub fn format(&self) -> BlockFormat {
        match self {
            BlockQuantOp::MatMul { format, .. } | BlockQuantOp::Gather { format, .. } => *format,
        }
    }

    /// `(rows, row length)` of the packed weight.
    fn packed_dims(&self) -> (usize, usize) {
        match *self {
            BlockQuantOp::MatMul { k, n, .. } => (n, k),
            BlockQuantOp::Gather { rows, cols, .. } => (rows, cols),
        }
    }

    fn check_packed(&self, t: &TypeInfo) -> Result<(), OpError> {
        let (rows, len) = self.packed_dims();
        let want = [rows, self.format().row_bytes(len)];
        if t.dtype != DType::U8 || t.shape != want || len % BLOCK != 0 {
            return Err(OpError::invalid(format!(
                "{}: the packed weight is {} {:?}, uint8 {want:?} expected",
                self.op_type(),
                t.dtype,
                t.shape
            )));
        }
        Ok(())
    }
}

impl Semantics for BlockQuantOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        match *self {
            BlockQuantOp::MatMul { k, n, .. } => {
                let a = ctx.input(0)?;
                self.check_packed(ctx.input(1)?)?;
                if a.dtype != DType::F32 || a.shape.last() != Some(&k) {
                    return Err(OpError::invalid(format!("QMatMul: A is {} {:?}, float32 [..., {k}] expected", a.dtype, a.shape)));
                }
                let mut shape = a.shape[..a.rank() - 1].to_vec();
                shape.push(n);
                if let Some(c) = ctx.opt_input(2) {
                    if a.rank() != 2 || c.dtype != DType::F32 || broadcast_shapes(&c.shape, &shape)? != shape {
                        return Err(OpError::invalid(format!("QMatMul: C {:?} does not broadcast to {shape:?}", c.shape)));
                    }
                }
                Ok(vec![TypeInfo::new(DType::F32, shape)])
            }
            BlockQuantOp::Gather { cols, .. } => {
                self.check_packed(ctx.input(0)?)?;
                let ind = ctx.input(1)?;
                if !matches!(ind.dtype, DType::I32 | DType::I64) {
                    return Err(OpError::invalid(format!("QGather: indices are {}, int32 or int64 expected", ind.dtype)));
                }
                let mut shape = ind.shape.clone();
                shape.push(cols);
                Ok(vec![TypeInfo::new(DType::F32, shape)])
            }
        }
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        match *self {
            BlockQuantOp::MatMul { format, k, n, alpha, beta } => {
                let a = input(inputs, 0)?;
                let w = packed_bytes(input(inputs, 1)?)?;
                let wf = unpack(format, &w);
                let av = a.to_f64_vec();
                let rows = av.len() / k.max(1);
                let mut out = vec![0f32; rows * n];
                let mut shape = a.shape()[..a.rank() - 1].to_vec();
                shape.push(n);
                let c = opt_input(inputs, 2).map(|c| (c.to_f64_vec(), c.shape().to_vec()));
                for r in 0..rows {
                    for j in 0..n {
                        let dot: f64 = (0..k).map(|t| av[r * k + t] * wf[j * k + t] as f64).sum();
                        let bias = c.as_ref().map_or(0.0, |(cv, cs)| cv[bcast_index(cs, &shape, r, j)]);
                        out[r * n + j] = (alpha as f64 * dot + beta as f64 * bias) as f32;
                    }
                }
                Ok(vec![Tensor::from_vec(&shape, out)])
            }
            BlockQuantOp::Gather { format, rows, cols } => {
                let w = packed_bytes(input(inputs, 0)?)?;
                let ind = input(inputs, 1)?.to_i64_vec().ok_or_else(|| OpError::invalid("QGather: indices must be integers"))?;
                let rb = format.row_bytes(cols);
                let mut out = Vec::with_capacity(ind.len() * cols);
                for &i in &ind {
                    let p = if i < 0 { i + rows as i64 } else { i };
                    if p < 0 || p >= rows as i64 {
                        return Err(OpError::invalid(format!("QGather: index {i} is out of range for {rows} rows")));
                    }
                    let p = p as usize;
                    out.extend(unpack(format, &w[p * rb..(p + 1) * rb]));
                }
                let mut shape = input(inputs, 1)?.shape().to_vec();
                shape.push(cols);
                Ok(vec![Tensor::from_vec(&shape, out)])
            }
        }
    }
}

/// The bytes of a packed weight tensor.
fn packed_bytes(t: &Tensor) -> Result<Vec<u8>, OpError> {
    if t.dtype() != DType::U8 {
        return Err(OpError::invalid(format!("a packed weight must be uint8, not {}", t.dtype())));
    }
    Ok(t.to_i64_vec().unwrap_or_default().into_iter().map(|v| v as u8).collect())
}

/// Element of a `cs`-shaped tensor broadcast to the 2-D `out` shape at `(r, j)`.
fn bcast_index(cs: &[usize], out: &[usize], r: usize, j: usize) -> usize {
    let lead = out.len() - cs.len();
    let ix = [r, j];
    let mut lin = 0;
    for (d, &size) in cs.iter().enumerate() {
        let i = if size == 1 { 0 } else { ix[lead + d] };
        lin = lin * size + i;
    }
    lin
}

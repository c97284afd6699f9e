//! The shape family: ops that reshape, rearrange, combine, split, pad or create
//! tensors without computing on element values (Shape, Reshape, Concat, Transpose,
//! Pad, Range ...).
//!
//! Each op computes its output types from [`Values`], so inference (constant inputs
//! only) and evaluation (actual inputs) share one piece of code; evaluation then moves
//! elements through an index map (see [`layout`]).

use std::sync::Arc;

use super::util::{broadcast_shapes, broadcast_to, norm_axes, norm_axis};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};

#[path = "shape_layout.rs"]
pub(crate) mod layout;

use layout::{
    index_map, join, numel, offset, same_dtype, scalar_of, strides, take, to_dims, with_fill, Evaluated, IntsArg,
    TypesOnly, Values,
};

/// How `Pad` fills the new border.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadMode {
    Constant,
    Reflect,
    Edge,
    Wrap,
}

/// Where `Pad`'s constant comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum PadValue {
    /// The `value` attribute of opsets 1-10.
    Attr(f32),
    /// The optional `constant_value` input (opset 11+); zero when omitted.
    Input(usize),
}

#[derive(Clone, Debug)]
pub enum ShapeOp {
    /// The input's dims `[start, end)` (start/end attributes since opset 15).
    Shape {
        start: i64,
        end: Option<i64>,
    },
    Size,
    Identity,
    /// `shape`: attribute in opset 1-4, input 1 after. `allowzero` (opset 14): a 0 in
    /// the shape is a real zero instead of "copy the input dim".
    Reshape {
        shape: IntsArg,
        allowzero: bool,
    },
    Flatten {
        axis: i64,
    },
    /// `axes`: attribute before opset 13, optional input 1 after; none = all 1-dims.
    Squeeze {
        axes: IntsArg,
    },
    Unsqueeze {
        axes: IntsArg,
    },
    /// `perm`: none reverses the axes.
    Transpose {
        perm: Option<Vec<i64>>,
    },
    Concat {
        axis: i64,
    },
    /// `split`: attribute before opset 13, input 1 after; `num_outputs` since opset 18.
    Split {
        axis: i64,
        split: IntsArg,
        num_outputs: Option<usize>,
        n_outputs: usize,
    },
    Expand,
    Tile,
    /// `pads`/`axes`: attributes before opset 11, inputs 1 and 3 after.
    Pad {
        mode: PadMode,
        pads: IntsArg,
        value: PadValue,
        axes: IntsArg,
    },
    CenterCropPad {
        axes: Option<Vec<i64>>,
    },
    /// `value`: a one-element tensor whose type and value fill the output.
    ConstantOfShape {
        value: Arc<Tensor>,
    },
    EyeLike {
        k: i64,
        dtype: Option<DType>,
    },
    Range,
    /// `crd`: the CRD mode instead of the default DCR.
    DepthToSpace {
        block: usize,
        crd: bool,
    },
    SpaceToDepth {
        block: usize,
    },
    Trilu {
        upper: bool,
    },
    BitCast {
        to: DType,
    },
}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    if !ctx.is_default_domain() {
        return None;
    }
    let r = match ctx.op_type {
        "Shape" => parse_shape(ctx),
        "Size" => Ok(ShapeOp::Size),
        "Identity" => Ok(ShapeOp::Identity),
        "Reshape" => parse_reshape(ctx),
        "Flatten" => ctx.int_or("axis", 1).map(|axis| ShapeOp::Flatten { axis }),
        "Squeeze" => attr_or_input(ctx, "axes", 13, 1).map(|axes| ShapeOp::Squeeze { axes }),
        "Unsqueeze" => attr_or_input(ctx, "axes", 13, 1).map(|axes| ShapeOp::Unsqueeze { axes }),
        "Transpose" => ctx.ints("perm").map(|perm| ShapeOp::Transpose { perm }),
        "Concat" => parse_concat(ctx),
        "Split" => parse_split(ctx),
        "Expand" => Ok(ShapeOp::Expand),
        "Tile" => Ok(ShapeOp::Tile),
        "Pad" => parse_pad(ctx),
        "CenterCropPad" => ctx.ints("axes").map(|axes| ShapeOp::CenterCropPad { axes }),
        "ConstantOfShape" => parse_constant_of_shape(ctx),
        "EyeLike" => parse_eye_like(ctx),
        "Range" => Ok(ShapeOp::Range),
        "DepthToSpace" => parse_depth_to_space(ctx),
        "SpaceToDepth" => block_size(ctx).map(|block| ShapeOp::SpaceToDepth { block }),
        "Trilu" => ctx.int_or("upper", 1).map(|u| ShapeOp::Trilu { upper: u != 0 }),
        "BitCast" => parse_bitcast(ctx),
        _ => return None,
    };
    Some(r.map(Op::Shape))
}

/// Integers from attribute `name` before opset `since`, from input `k` from then on.
fn attr_or_input(ctx: &NodeCtx, name: &str, since: i64, k: usize) -> Result<IntsArg, OpError> {
    Ok(if ctx.opset < since { IntsArg::Attr(ctx.ints(name)?) } else { IntsArg::Input(k) })
}

impl Semantics for ShapeOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        self.types(ctx)
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let v = Evaluated(inputs);
        let x = v.req_value(0, "input")?;
        match self {
            ShapeOp::Shape { .. } | ShapeOp::Size => self
                .value_from_types(&[Some(x.type_info())])
                .ok_or_else(|| OpError::invalid("the input has too many elements")),
            ShapeOp::Identity => Ok(vec![x.clone()]),
            ShapeOp::Reshape { .. } | ShapeOp::Flatten { .. } | ShapeOp::Squeeze { .. } | ShapeOp::Unsqueeze { .. } => {
                let ty = self.one_type(&v)?;
                Ok(vec![x.reshaped(&ty.shape).ok_or_else(|| OpError::invalid("reshape changes the element count"))?])
            }
            ShapeOp::Transpose { perm } => eval_transpose(x, perm.as_deref()),
            ShapeOp::Concat { axis } => eval_concat(inputs, *axis),
            ShapeOp::Split { axis, .. } => eval_split(x, *axis, &self.types(&v)?),
            ShapeOp::Expand => {
                let ty = self.one_type(&v)?;
                Ok(vec![crate::map_array!(x, a => broadcast_to(a, &ty.shape)?)])
            }
            ShapeOp::Tile => eval_tile(x, &self.one_type(&v)?.shape),
            ShapeOp::Pad { mode, pads, value, axes } => eval_pad(&v, *mode, pads, value, axes),
            ShapeOp::CenterCropPad { axes } => eval_center_crop_pad(&v, axes.as_deref()),
            ShapeOp::ConstantOfShape { value } => {
                let ty = self.one_type(&v)?;
                Ok(vec![take(value, &vec![0; numel(&ty.shape)?], &ty.shape)?])
            }
            ShapeOp::EyeLike { k, .. } => eval_eye_like(&self.one_type(&v)?, *k),
            ShapeOp::Range => eval_range(&v),
            ShapeOp::DepthToSpace { block, crd } => eval_depth_to_space(x, &self.one_type(&v)?.shape, *block, *crd),
            ShapeOp::SpaceToDepth { block } => eval_space_to_depth(x, &self.one_type(&v)?.shape, *block),
            ShapeOp::Trilu { upper } => eval_trilu(&v, *upper),
            ShapeOp::BitCast { to } => Ok(vec![bitcast(x, *to)?]),
        }
    }

    /// Ops that keep the elements in order are the identity when their output type,
    /// decided by the input types and attributes alone, is the input's type.
    fn passthrough(&self, inputs: &[Option<TypeInfo>]) -> Option<usize> {
        let x = inputs.first()?.as_ref()?;
        let keeps_order = match self {
            ShapeOp::Identity
            | ShapeOp::Reshape { .. }
            | ShapeOp::Flatten { .. }
            | ShapeOp::Squeeze { .. }
            | ShapeOp::Unsqueeze { .. }
            | ShapeOp::Expand
            | ShapeOp::Tile
            | ShapeOp::CenterCropPad { .. } => true,
            ShapeOp::Concat { .. } => inputs.len() == 1,
            ShapeOp::Split { n_outputs, .. } => *n_outputs == 1,
            ShapeOp::Transpose { perm } => {
                permutation(perm.as_deref(), x.rank()).ok()?.iter().enumerate().all(|(i, &a)| a == i)
            }
            _ => false,
        };
        let out = self.types(&TypesOnly(inputs)).ok()?;
        (keeps_order && out.len() == 1 && out[0] == *x).then_some(0)
    }

    fn value_from_types(&self, inputs: &[Option<TypeInfo>]) -> Option<Vec<Tensor>> {
        let x = inputs.first()?.as_ref()?;
        match self {
            ShapeOp::Shape { start, end } => {
                let (s, e) = shape_range(x.rank(), *start, *end);
                let dims: Vec<i64> = x.shape[s..e].iter().map(|&d| d as i64).collect();
                Some(vec![Tensor::from_vec(&[dims.len()], dims)])
            }
            ShapeOp::Size => Some(vec![Tensor::scalar(x.numel()? as i64)]),
            _ => None,
        }
    }
}

impl ShapeOp {
    /// Output types from what is known of the inputs (shared by infer and eval).
    fn types(&self, v: &dyn Values) -> Result<Vec<TypeInfo>, OpError> {
        let x = v.req(0)?;
        let same = |shape: Vec<usize>| Ok(vec![TypeInfo::new(x.dtype, shape)]);
        match self {
            ShapeOp::Shape { start, end } => {
                let (s, e) = shape_range(x.rank(), *start, *end);
                Ok(vec![TypeInfo::new(DType::I64, [e - s])])
            }
            ShapeOp::Size => Ok(vec![TypeInfo::new(DType::I64, Vec::new())]),
            ShapeOp::Identity => Ok(vec![x]),
            ShapeOp::Reshape { shape, allowzero } => {
                let target = shape.get(v, "shape")?.ok_or_else(|| OpError::invalid("Reshape needs a shape"))?;
                same(reshape_dims(&x.shape, &target, *allowzero)?)
            }
            ShapeOp::Flatten { axis } => {
                let r = x.rank() as i64;
                if *axis < -r || *axis > r {
                    return Err(OpError::invalid(format!("Flatten axis {axis} is out of range for rank {r}")));
                }
                let a = (if *axis < 0 { axis + r } else { *axis }) as usize;
                same(vec![numel(&x.shape[..a])?, numel(&x.shape[a..])?])
            }
            ShapeOp::Squeeze { axes } => same(squeeze_dims(&x.shape, axes.get(v, "axes")?.as_deref())?),
            ShapeOp::Unsqueeze { axes } => {
                let axes = axes.get(v, "axes")?.ok_or_else(|| OpError::invalid("Unsqueeze needs axes"))?;
                same(unsqueeze_dims(&x.shape, &axes)?)
            }
            ShapeOp::Transpose { perm } => {
                let p = permutation(perm.as_deref(), x.rank())?;
                same(p.iter().map(|&a| x.shape[a]).collect())
            }
            ShapeOp::Concat { axis } => concat_type(v, *axis).map(|t| vec![t]),
            ShapeOp::Split { axis, split, num_outputs, n_outputs } => {
                let a = norm_axis(*axis, x.rank())?;
                let sizes = split_sizes(x.shape[a], split.get(v, "split")?, *num_outputs, *n_outputs)?;
                Ok(sizes
                    .into_iter()
                    .map(|s| {
                        let mut shape = x.shape.clone();
                        shape[a] = s;
                        TypeInfo::new(x.dtype, shape)
                    })
                    .collect())
            }
            ShapeOp::Expand => {
                let target = to_dims(&v.req_ints(1, "shape")?, "Expand shape")?;
                let shape = broadcast_shapes(&x.shape, &target)?;
                numel(&shape)?;
                same(shape)
            }
            ShapeOp::Tile => {
                let reps = to_dims(&v.req_ints(1, "repeats")?, "Tile repeats")?;
                if reps.len() != x.rank() {
                    return Err(OpError::invalid(format!("Tile has {} repeats for rank {}", reps.len(), x.rank())));
                }
                same(
                    x.shape
                        .iter()
                        .zip(&reps)
                        .map(|(d, r)| d.checked_mul(*r))
                        .collect::<Option<_>>()
                        .ok_or_else(|| OpError::invalid("Tile overflows"))?,
                )
            }
            ShapeOp::Pad { pads, axes, .. } => {
                let (before, after) = pad_amounts(v, &x.shape, pads, axes)?;
                same((0..x.rank()).map(|i| padded_dim(x.shape[i], before[i], after[i])).collect::<Result<_, _>>()?)
            }
            ShapeOp::CenterCropPad { axes } => {
                let target = to_dims(&v.req_ints(1, "shape")?, "CenterCropPad shape")?;
                let axes = crop_axes(axes.as_deref(), x.rank(), target.len())?;
                let mut shape = x.shape.clone();
                for (a, t) in axes.into_iter().zip(target) {
                    shape[a] = t;
                }
                same(shape)
            }
            ShapeOp::ConstantOfShape { value } => {
                let shape = to_dims(&v.req_ints(0, "shape")?, "ConstantOfShape shape")?;
                numel(&shape)?;
                Ok(vec![TypeInfo::new(value.dtype(), shape)])
            }
            ShapeOp::EyeLike { dtype, .. } => {
                let shape = match x.shape[..] {
                    [n] => vec![n, n],
                    [r, c] => vec![r, c],
                    _ => return Err(OpError::invalid(format!("EyeLike needs a 2-D input, got {x}"))),
                };
                Ok(vec![TypeInfo::new(dtype.unwrap_or(x.dtype), shape)])
            }
            ShapeOp::Range => {
                let n = range_len(v.req_value(0, "start")?, v.req_value(1, "limit")?, v.req_value(2, "delta")?)?;
                same(vec![n])
            }
            ShapeOp::DepthToSpace { block, .. } => {
                let [n, c, h, w] = dims4(&x, "DepthToSpace")?;
                let bb = block.checked_mul(*block).filter(|bb| c % bb == 0);
                let (Some(bb), Some(oh), Some(ow)) = (bb, h.checked_mul(*block), w.checked_mul(*block)) else {
                    return Err(OpError::invalid(format!("DepthToSpace: blocksize {block} does not fit {x}")));
                };
                same(vec![n, c / bb, oh, ow])
            }
            ShapeOp::SpaceToDepth { block } => {
                let [n, c, h, w] = dims4(&x, "SpaceToDepth")?;
                let oc = block.checked_mul(*block).and_then(|bb| bb.checked_mul(c));
                match oc {
                    Some(oc) if h % block == 0 && w % block == 0 => same(vec![n, oc, h / block, w / block]),
                    _ => Err(OpError::invalid(format!("SpaceToDepth: blocksize {block} does not fit {x}"))),
                }
            }
            ShapeOp::Trilu { .. } => {
                if x.rank() < 2 {
                    return Err(OpError::invalid("Trilu needs rank 2 or more"));
                }
                Ok(vec![x])
            }
            ShapeOp::BitCast { to } => {
                if x.dtype.bits() != to.bits() {
                    return Err(OpError::invalid(format!("BitCast from {} to {to}: the bit widths differ", x.dtype)));
                }
                Ok(vec![TypeInfo::new(*to, x.shape)])
            }
        }
    }

    /// The single output type.
    fn one_type(&self, v: &dyn Values) -> Result<TypeInfo, OpError> {
        self.types(v)?.pop().ok_or_else(|| OpError::invalid("no output"))
    }
}

// ---------------------------------------------------------------------------------
// Shape, Reshape, Squeeze, Unsqueeze, Transpose

fn parse_shape(ctx: &NodeCtx) -> Result<ShapeOp, OpError> {
    if ctx.opset < 15 {
        return Ok(ShapeOp::Shape { start: 0, end: None });
    }
    Ok(ShapeOp::Shape { start: ctx.int_or("start", 0)?, end: ctx.int("end")? })
}

/// `Shape`'s `[start, end)` made into a valid range: negatives count from the end,
/// then both are clamped into `0..=rank`; an empty range when start > end.
fn shape_range(rank: usize, start: i64, end: Option<i64>) -> (usize, usize) {
    let r = rank as i64;
    let clamp = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
    let s = clamp(start);
    let e = end.map_or(rank, clamp);
    (s, e.max(s))
}

fn parse_reshape(ctx: &NodeCtx) -> Result<ShapeOp, OpError> {
    let shape =
        if ctx.opset < 5 { IntsArg::Attr(Some(ctx.required("shape", ctx.ints("shape"))?)) } else { IntsArg::Input(1) };
    Ok(ShapeOp::Reshape { shape, allowzero: ctx.int_or("allowzero", 0)? != 0 })
}

/// Reshape's target: 0 copies the input dim (unless `allowzero`), one -1 is inferred.
fn reshape_dims(input: &[usize], target: &[i64], allowzero: bool) -> Result<Vec<usize>, OpError> {
    let total = numel(input)?;
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, &d) in target.iter().enumerate() {
        match d {
            -1 if infer_at.is_none() => {
                infer_at = Some(i);
                out.push(1);
            }
            0 if !allowzero => out.push(*input.get(i).ok_or_else(|| {
                OpError::invalid(format!(
                    "Reshape: 0 at position {i} copies a dim the input of rank {} lacks",
                    input.len()
                ))
            })?),
            d if d >= 0 => out.push(d as usize),
            _ => return Err(OpError::invalid(format!("Reshape: bad target shape {target:?}"))),
        }
    }
    let known = numel(&out)?;
    if let Some(i) = infer_at {
        if known == 0 || total % known != 0 {
            return Err(OpError::invalid(format!("Reshape: cannot infer -1 in {target:?} for {input:?}")));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(OpError::invalid(format!("Reshape: {target:?} has another element count than {input:?}")));
    }
    Ok(out)
}

/// Squeeze: drop the given axes (each must have size 1), or every size-1 axis.
fn squeeze_dims(shape: &[usize], axes: Option<&[i64]>) -> Result<Vec<usize>, OpError> {
    let Some(axes) = axes else {
        return Ok(shape.iter().copied().filter(|&d| d != 1).collect());
    };
    let axes = norm_axes(axes, shape.len())?;
    if let Some(&a) = axes.iter().find(|&&a| shape[a] != 1) {
        return Err(OpError::invalid(format!("Squeeze axis {a} of {shape:?} is not 1")));
    }
    Ok(shape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect())
}

/// Unsqueeze: insert size-1 axes at `axes` of the output.
fn unsqueeze_dims(shape: &[usize], axes: &[i64]) -> Result<Vec<usize>, OpError> {
    let rank = shape.len() + axes.len();
    let axes = norm_axes(axes, rank)?;
    let mut rest = shape.iter();
    (0..rank)
        .map(|i| {
            if axes.contains(&i) {
                Ok(1)
            } else {
                rest.next().copied().ok_or_else(|| OpError::invalid("Unsqueeze axes"))
            }
        })
        .collect()
}

/// Transpose's permutation, checked; the default reverses the axes.
fn permutation(perm: Option<&[i64]>, rank: usize) -> Result<Vec<usize>, OpError> {
    let Some(perm) = perm else { return Ok((0..rank).rev().collect()) };
    if perm.len() != rank {
        return Err(OpError::invalid(format!("Transpose perm {perm:?} does not match rank {rank}")));
    }
    norm_axes(perm, rank)
}

fn eval_transpose(x: &Tensor, perm: Option<&[i64]>) -> Result<Vec<Tensor>, OpError> {
    let p = permutation(perm, x.rank())?;
    let shape: Vec<usize> = p.iter().map(|&a| x.shape()[a]).collect();
    let st = strides(x.shape());
    let pst: Vec<usize> = p.iter().map(|&a| st[a]).collect();
    let map = index_map(&shape, |i| Ok(offset(i, &pst)))?;
    Ok(vec![take(x, &map, &shape)?])
}

// ---------------------------------------------------------------------------------
// Concat, Split

fn parse_concat(ctx: &NodeCtx) -> Result<ShapeOp, OpError> {
    // Concat-1 had a default axis of 1; from opset 4 it is required.
    let axis = match ctx.int("axis")? {
        Some(a) => a,
        None if ctx.opset < 4 => 1,
        None => return Err(OpError::invalid("Concat needs the 'axis' attribute")),
    };
    Ok(ShapeOp::Concat { axis })
}

fn concat_type(v: &dyn Values, axis: i64) -> Result<TypeInfo, OpError> {
    let tys: Vec<TypeInfo> = (0..).map_while(|i| v.ty(i)).collect();
    let first = tys.first().ok_or_else(|| OpError::invalid("Concat needs inputs"))?;
    let dtype = same_dtype("Concat", &tys.iter().collect::<Vec<_>>())?;
    let a = norm_axis(axis, first.rank())?;
    let mut shape = first.shape.clone();
    shape[a] = 0;
    for t in &tys {
        let ok = t.rank() == first.rank() && (0..t.rank()).all(|i| i == a || t.shape[i] == first.shape[i]);
        if !ok {
            return Err(OpError::invalid(format!("Concat: {t} does not match {first} off axis {a}")));
        }
        shape[a] = shape[a].checked_add(t.shape[a]).ok_or_else(|| OpError::invalid("Concat overflows"))?;
    }
    Ok(TypeInfo::new(dtype, shape))
}

fn eval_concat(inputs: &[Option<&Tensor>], axis: i64) -> Result<Vec<Tensor>, OpError> {
    let xs: Vec<&Tensor> =
        inputs.iter().map(|t| t.ok_or_else(|| OpError::invalid("Concat input missing"))).collect::<Result<_, _>>()?;
    let ty = concat_type(&Evaluated(inputs), axis)?;
    let a = norm_axis(axis, ty.rank())?;
    // Where each input starts in the joined buffer and along the axis.
    let mut bases = Vec::with_capacity(xs.len());
    let (mut base, mut along) = (0, 0);
    for x in &xs {
        bases.push((base, along, x.shape()[a], strides(x.shape())));
        base += x.len();
        along += x.shape()[a];
    }
    let joined = join(&xs)?;
    let map = index_map(&ty.shape, |i| {
        let (b, start, _, st) = bases
            .iter()
            .find(|(_, start, len, _)| i[a] >= *start && i[a] < start + len)
            .ok_or_else(|| OpError::invalid("Concat index"))?;
        let mut j = i.to_vec();
        j[a] -= start;
        Ok(b + offset(&j, st))
    })?;
    Ok(vec![take(&joined, &map, &ty.shape)?])
}

fn parse_split(ctx: &NodeCtx) -> Result<ShapeOp, OpError> {
    let split = if ctx.opset >= 13 || (ctx.opset < 2 && ctx.has_input(1)) {
        IntsArg::Input(1)
    } else {
        IntsArg::Attr(ctx.ints("split")?)
    };
    let num_outputs = match ctx.int("num_outputs")? {
        Some(n) if ctx.opset >= 18 => Some(usize::try_from(n).map_err(|_| OpError::invalid("negative num_outputs"))?),
        _ => None,
    };
    Ok(ShapeOp::Split { axis: ctx.int_or("axis", 0)?, split, num_outputs, n_outputs: ctx.n_outputs() })
}

/// Chunk sizes along the split axis: explicit, or `n` equal chunks of `ceil(dim / n)`
/// with a smaller last one (as the reference implementation does for every opset).
fn split_sizes(
    dim: usize,
    split: Option<Vec<i64>>,
    num_outputs: Option<usize>,
    n_outputs: usize,
) -> Result<Vec<usize>, OpError> {
    if let Some(split) = split {
        let sizes = to_dims(&split, "Split split")?;
        if sizes.len() != n_outputs || sizes.iter().try_fold(0usize, |a, &s| a.checked_add(s)) != Some(dim) {
            return Err(OpError::invalid(format!("Split sizes {split:?} do not cover {dim} in {n_outputs} outputs")));
        }
        return Ok(sizes);
    }
    let n = num_outputs.unwrap_or(n_outputs);
    if n == 0 || n != n_outputs {
        return Err(OpError::invalid(format!("Split into {n} parts with {n_outputs} outputs")));
    }
    let chunk = dim.div_ceil(n);
    let last = dim
        .checked_sub(chunk * (n - 1))
        .ok_or_else(|| OpError::invalid(format!("Split cannot cut {dim} into {n} parts of {chunk}")))?;
    let mut sizes = vec![chunk; n - 1];
    sizes.push(last);
    Ok(sizes)
}

fn eval_split(x: &Tensor, axis: i64, tys: &[TypeInfo]) -> Result<Vec<Tensor>, OpError> {
    let a = norm_axis(axis, x.rank())?;
    let st = strides(x.shape());
    let mut start = 0;
    let mut out = Vec::with_capacity(tys.len());
    for ty in tys {
        let map = index_map(&ty.shape, |i| Ok(offset(i, &st) + start * st[a]))?;
        out.push(take(x, &map, &ty.shape)?);
        start += ty.shape[a];
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Tile, Pad, CenterCropPad

fn eval_tile(x: &Tensor, shape: &[usize]) -> Result<Vec<Tensor>, OpError> {
    let st = strides(x.shape());
    let map = index_map(shape, |i| Ok(i.iter().zip(x.shape()).zip(&st).map(|((o, d), s)| (o % d) * s).sum()))?;
    Ok(vec![take(x, &map, shape)?])
}

fn parse_pad(ctx: &NodeCtx) -> Result<ShapeOp, OpError> {
    let mode = match ctx.string_or("mode", "constant")?.as_str() {
        "constant" => PadMode::Constant,
        "reflect" => PadMode::Reflect,
        "edge" => PadMode::Edge,
        "wrap" => PadMode::Wrap,
        m => return Err(OpError::unsupported(format!("Pad mode '{m}'"))),
    };
    if ctx.opset < 11 {
        let name = if ctx.opset < 2 { "paddings" } else { "pads" };
        let pads = ctx.required(name, ctx.ints(name))?;
        let value = PadValue::Attr(ctx.float_or("value", 0.0)?);
        return Ok(ShapeOp::Pad { mode, pads: IntsArg::Attr(Some(pads)), value, axes: IntsArg::Attr(None) });
    }
    let axes = if ctx.opset >= 18 { IntsArg::Input(3) } else { IntsArg::Attr(None) };
    Ok(ShapeOp::Pad { mode, pads: IntsArg::Input(1), value: PadValue::Input(2), axes })
}

/// Pad amounts before and after each axis of the input (negative: cropping).
fn pad_amounts(
    v: &dyn Values,
    shape: &[usize],
    pads: &IntsArg,
    axes: &IntsArg,
) -> Result<(Vec<i64>, Vec<i64>), OpError> {
    let pads = pads.get(v, "pads")?.ok_or_else(|| OpError::invalid("Pad needs pads"))?;
    let rank = shape.len();
    let axes = match axes.get(v, "axes")? {
        Some(a) => norm_axes(&a, rank)?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(OpError::invalid(format!("Pad: {} pads for {} axes", pads.len(), axes.len())));
    }
    let (mut before, mut after) = (vec![0; rank], vec![0; rank]);
    for (k, &a) in axes.iter().enumerate() {
        before[a] = pads[k];
        after[a] = pads[axes.len() + k];
    }
    Ok((before, after))
}

/// An axis of `n` padded by `before` and `after` (negative: cropped).
fn padded_dim(n: usize, before: i64, after: i64) -> Result<usize, OpError> {
    usize::try_from(n as i128 + before as i128 + after as i128)
        .map_err(|_| OpError::invalid(format!("Pad by {before} and {after} does not fit an axis of {n}")))
}

/// The input coordinate an output coordinate reads (`i` = output coordinate minus the
/// leading pad), `None` for the constant.
fn pad_source(mode: PadMode, i: i128, n: usize) -> Result<Option<usize>, OpError> {
    let n = n as i128;
    if (0..n).contains(&i) {
        return Ok(Some(i as usize));
    }
    if mode == PadMode::Constant {
        return Ok(None);
    }
    if n == 0 {
        return Err(OpError::invalid("Pad: cannot extend an empty axis in this mode"));
    }
    let j = match mode {
        PadMode::Edge => i.clamp(0, n - 1),
        PadMode::Wrap => i.rem_euclid(n),
        _ if n == 1 => 0,
        _ => {
            let period = 2 * (n - 1);
            let m = i.rem_euclid(period);
            if m >= n {
                period - m
            } else {
                m
            }
        }
    };
    Ok(Some(j as usize))
}

/// Takes, through per-axis tables from output to input coordinate, elements of `x`
/// (the fill value where a table says `None`).
fn take_by_axes(x: &Tensor, tables: &[Vec<Option<usize>>], fill: &Tensor) -> Result<Tensor, OpError> {
    let (buf, fill_at) = with_fill(x, fill)?;
    let shape: Vec<usize> = tables.iter().map(Vec::len).collect();
    let st = strides(x.shape());
    let map = index_map(&shape, |i| {
        let mut at = 0;
        for ((&o, t), s) in i.iter().zip(tables).zip(&st) {
            match t[o] {
                Some(j) => at += j * s,
                None => return Ok(fill_at),
            }
        }
        Ok(at)
    })?;
    take(&buf, &map, &shape)
}

fn eval_pad(
    v: &Evaluated,
    mode: PadMode,
    pads: &IntsArg,
    value: &PadValue,
    axes: &IntsArg,
) -> Result<Vec<Tensor>, OpError> {
    let x = v.req_value(0, "data")?;
    let (before, after) = pad_amounts(v, x.shape(), pads, axes)?;
    let fill = match value {
        PadValue::Attr(f) => scalar_of(x.dtype(), *f as f64),
        PadValue::Input(k) => match v.value(*k) {
            Some(t) if t.dtype() == x.dtype() => t.clone(),
            Some(t) => {
                return Err(OpError::invalid(format!("Pad value of type {} for data of {}", t.dtype(), x.dtype())))
            }
            None => scalar_of(x.dtype(), 0.0),
        },
    };
    let mut tables = Vec::with_capacity(x.rank());
    for (a, &n) in x.shape().iter().enumerate() {
        let len = padded_dim(n, before[a], after[a])?;
        let table = (0..len).map(|o| pad_source(mode, o as i128 - before[a] as i128, n)).collect::<Result<_, _>>()?;
        tables.push(table);
    }
    Ok(vec![take_by_axes(x, &tables, &fill)?])
}

/// CenterCropPad's axes, normalised; one per target dim.
fn crop_axes(axes: Option<&[i64]>, rank: usize, n: usize) -> Result<Vec<usize>, OpError> {
    let axes = match axes {
        Some(a) => norm_axes(a, rank)?,
        None => (0..rank).collect(),
    };
    if axes.len() != n {
        return Err(OpError::invalid(format!("CenterCropPad: {n} target dims for {} axes", axes.len())));
    }
    Ok(axes)
}

fn eval_center_crop_pad(v: &Evaluated, axes: Option<&[i64]>) -> Result<Vec<Tensor>, OpError> {
    let x = v.req_value(0, "input")?;
    let target = to_dims(&v.req_ints(1, "shape")?, "CenterCropPad shape")?;
    let axes = crop_axes(axes, x.rank(), target.len())?;
    let mut tables: Vec<Vec<Option<usize>>> = x.shape().iter().map(|&n| (0..n).map(Some).collect()).collect();
    for (a, t) in axes.into_iter().zip(target) {
        let n = x.shape()[a];
        // Cropping starts at floor((n - t) / 2); padding puts the input at floor((t - n) / 2).
        let shift = if t <= n { ((n - t) / 2) as i64 } else { -(((t - n) / 2) as i64) };
        tables[a] = (0..t as i64).map(|o| usize::try_from(o + shift).ok().filter(|&j| j < n)).collect();
    }
    Ok(vec![take_by_axes(x, &tables, &scalar_of(x.dtype(), 0.0))?])
}

// ---------------------------------------------------------------------------------
// ConstantOfShape, EyeLike, Range, Trilu

fn parse_constant_of_shape(ctx: &NodeCtx) -> Result<ShapeOp, OpError> {
    let value = ctx.tensor("value")?.unwrap_or_else(|| Tensor::from_vec(&[1], vec![0f32]));
    if value.len() != 1 {
        return Err(OpError::invalid(format!("ConstantOfShape value must have one element, has {}", value.len())));
    }
    Ok(ShapeOp::ConstantOfShape { value: Arc::new(value) })
}

fn parse_eye_like(ctx: &NodeCtx) -> Result<ShapeOp, OpError> {
    let dtype =
        match ctx.int("dtype")? {
            None => None,
            Some(code) => Some(i32::try_from(code).ok().and_then(DType::from_onnx).ok_or_else(|| {
                OpError::unsupported(format!("EyeLike dtype {}", DType::onnx_code_name(code as i32)))
            })?),
        };
    Ok(ShapeOp::EyeLike { k: ctx.int_or("k", 0)?, dtype })
}

fn eval_eye_like(ty: &TypeInfo, k: i64) -> Result<Vec<Tensor>, OpError> {
    let ones = join(&[&scalar_of(ty.dtype, 0.0), &scalar_of(ty.dtype, 1.0)])?;
    let map = index_map(&ty.shape, |i| Ok(usize::from(i[1] as i64 - i[0] as i64 == k)))?;
    Ok(vec![take(&ones, &map, &ty.shape)?])
}

/// The one value of a scalar (or one-element) input.
fn single(t: &Tensor, what: &str) -> Result<Tensor, OpError> {
    if t.len() != 1 {
        return Err(OpError::invalid(format!("Range {what} must be a scalar, has {} elements", t.len())));
    }
    take(t, &[0], &[])
}

/// Range's element count, `max(ceil((limit - start) / delta), 0)`: exact for integers.
fn range_len(start: &Tensor, limit: &Tensor, delta: &Tensor) -> Result<usize, OpError> {
    let what = [(start, "start"), (limit, "limit"), (delta, "delta")];
    for (t, name) in what {
        single(t, name)?;
        if t.dtype() != start.dtype() {
            return Err(OpError::invalid(format!("Range {name} has type {}, start {}", t.dtype(), start.dtype())));
        }
    }
    let too_long = || OpError::invalid("Range has too many elements");
    if let (Some(s), Some(l), Some(d)) = (start.to_i64_vec(), limit.to_i64_vec(), delta.to_i64_vec()) {
        let (s, l, d) = (s[0] as i128, l[0] as i128, d[0] as i128);
        if d == 0 {
            return Err(OpError::invalid("Range delta is 0"));
        }
        let diff = l - s;
        let n = diff / d + i128::from(diff % d != 0 && (diff > 0) == (d > 0));
        return usize::try_from(n.max(0)).map_err(|_| too_long());
    }
    if !start.dtype().is_float() || start.dtype().is_packed() {
        return Err(OpError::unsupported(format!("Range of {}", start.dtype())));
    }
    let (s, l, d) = (start.to_f64_vec()[0], limit.to_f64_vec()[0], delta.to_f64_vec()[0]);
    let n = ((l - s) / d).ceil().max(0.0);
    if !n.is_finite() || n > (1u64 << 40) as f64 {
        return Err(too_long());
    }
    Ok(n as usize)
}

/// `start + k * delta`, in i128 for integers (then exact) and f64 for floats — numpy's
/// `arange` on the scalars' Python values, which the reference implementation runs.
fn eval_range(v: &Evaluated) -> Result<Vec<Tensor>, OpError> {
    let (start, limit, delta) = (v.req_value(0, "start")?, v.req_value(1, "limit")?, v.req_value(2, "delta")?);
    let n = range_len(start, limit, delta)?;
    let dtype = start.dtype();
    if let (Some(s), Some(d)) = (start.to_i64_vec(), delta.to_i64_vec()) {
        let vals: Vec<i64> = (0..n as i128).map(|k| (s[0] as i128 + k * d[0] as i128) as i64).collect();
        return Ok(vec![Tensor::from_vec(&[n], vals).cast(dtype)]);
    }
    let (s, d) = (start.to_f64_vec()[0], delta.to_f64_vec()[0]);
    let vals: Vec<f64> = (0..n).map(|k| s + k as f64 * d).collect();
    Ok(vec![Tensor::from_vec(&[n], vals).cast(dtype)])
}

fn eval_trilu(v: &Evaluated, upper: bool) -> Result<Vec<Tensor>, OpError> {
    let x = v.req_value(0, "input")?;
    let k = match v.ints(1, "k")? {
        None => 0,
        Some(k) if k.len() == 1 => k[0],
        Some(k) => return Err(OpError::invalid(format!("Trilu k must be a scalar, got {k:?}"))),
    };
    let r = x.rank();
    if r < 2 {
        return Err(OpError::invalid("Trilu needs rank 2 or more"));
    }
    let (buf, fill_at) = with_fill(x, &scalar_of(x.dtype(), 0.0))?;
    let st = strides(x.shape());
    let map = index_map(x.shape(), |i| {
        let diag = i[r - 1] as i64 - i[r - 2] as i64;
        let keep = if upper { diag >= k } else { diag <= k };
        Ok(if keep { offset(i, &st) } else { fill_at })
    })?;
    Ok(vec![take(&buf, &map, x.shape())?])
}

// ---------------------------------------------------------------------------------
// DepthToSpace, SpaceToDepth

fn block_size(ctx: &NodeCtx) -> Result<usize, OpError> {
    let b = ctx.required("blocksize", ctx.int("blocksize"))?;
    usize::try_from(b)
        .ok()
        .filter(|&b| b > 0)
        .ok_or_else(|| OpError::invalid(format!("blocksize {b} must be positive")))
}

fn parse_depth_to_space(ctx: &NodeCtx) -> Result<ShapeOp, OpError> {
    let crd = match ctx.string_or("mode", "DCR")?.as_str() {
        "DCR" => false,
        "CRD" => true,
        m => return Err(OpError::invalid(format!("DepthToSpace mode '{m}'"))),
    };
    Ok(ShapeOp::DepthToSpace { block: block_size(ctx)?, crd })
}

fn dims4(x: &TypeInfo, op: &str) -> Result<[usize; 4], OpError> {
    x.shape[..].try_into().map_err(|_| OpError::invalid(format!("{op} needs a 4-D input, got {x}")))
}

/// Output (n, c, y, x) reads input channel `(i*b + j)*C + c` (DCR) or `c*b*b + i*b + j`
/// (CRD) at (y / b, x / b), where i, j = y % b, x % b.
fn eval_depth_to_space(x: &Tensor, shape: &[usize], b: usize, crd: bool) -> Result<Vec<Tensor>, OpError> {
    let oc = shape[1];
    let st = strides(x.shape());
    let map = index_map(shape, |o| {
        let (i, j) = (o[2] % b, o[3] % b);
        let ch = if crd { o[1] * b * b + i * b + j } else { (i * b + j) * oc + o[1] };
        Ok(offset(&[o[0], ch, o[2] / b, o[3] / b], &st))
    })?;
    Ok(vec![take(x, &map, shape)?])
}

/// The inverse of DCR DepthToSpace: output channel `(i*b + j)*C + c` at (y, x) is input
/// channel c at (y*b + i, x*b + j).
fn eval_space_to_depth(x: &Tensor, shape: &[usize], b: usize) -> Result<Vec<Tensor>, OpError> {
    let c = x.shape()[1];
    let st = strides(x.shape());
    let map = index_map(shape, |o| {
        let (blk, ch) = (o[1] / c, o[1] % c);
        Ok(offset(&[o[0], ch, o[2] * b + blk / b, o[3] * b + blk % b], &st))
    })?;
    Ok(vec![take(x, &map, shape)?])
}

// ---------------------------------------------------------------------------------
// BitCast

fn parse_bitcast(ctx: &NodeCtx) -> Result<ShapeOp, OpError> {
    let code = ctx.required("to", ctx.int("to"))?;
    let to = i32::try_from(code)
        .ok()
        .and_then(DType::from_onnx)
        .ok_or_else(|| OpError::unsupported(format!("BitCast to {}", DType::onnx_code_name(code as i32))))?;
    Ok(ShapeOp::BitCast { to })
}

/// Each element's bit pattern, zero-extended.
fn to_bits(t: &Tensor) -> Vec<u64> {
    match t {
        Tensor::F32(a) => a.iter().map(|x| x.to_bits() as u64).collect(),
        Tensor::F64(a) => a.iter().map(|x| x.to_bits()).collect(),
        Tensor::F16(a) => a.iter().map(|x| x.to_bits() as u64).collect(),
        Tensor::BF16(a) => a.iter().map(|x| x.to_bits() as u64).collect(),
        Tensor::I8(a) => a.iter().map(|&x| x as u8 as u64).collect(),
        Tensor::U8(a) | Tensor::Packed(_, a) => a.iter().map(|&x| x as u64).collect(),
        Tensor::I16(a) => a.iter().map(|&x| x as u16 as u64).collect(),
        Tensor::U16(a) => a.iter().map(|&x| x as u64).collect(),
        Tensor::I32(a) => a.iter().map(|&x| x as u32 as u64).collect(),
        Tensor::U32(a) => a.iter().map(|&x| x as u64).collect(),
        Tensor::I64(a) => a.iter().map(|&x| x as u64).collect(),
        Tensor::U64(a) => a.iter().copied().collect(),
        Tensor::Bool(a) => a.iter().map(|&x| x as u64).collect(),
    }
}

/// Reinterprets each element's bits as `to` (equal widths, so element-wise).
fn bitcast(x: &Tensor, to: DType) -> Result<Tensor, OpError> {
    if x.dtype().bits() != to.bits() {
        return Err(OpError::invalid(format!("BitCast from {} to {to}: the bit widths differ", x.dtype())));
    }
    let bits = to_bits(x);
    let s = x.shape();
    use half::{bf16, f16};
    Ok(match to {
        DType::F32 => Tensor::from_vec(s, bits.iter().map(|&b| f32::from_bits(b as u32)).collect()),
        DType::F64 => Tensor::from_vec(s, bits.iter().map(|&b| f64::from_bits(b)).collect()),
        DType::F16 => Tensor::from_vec(s, bits.iter().map(|&b| f16::from_bits(b as u16)).collect()),
        DType::BF16 => Tensor::from_vec(s, bits.iter().map(|&b| bf16::from_bits(b as u16)).collect()),
        DType::I8 => Tensor::from_vec(s, bits.iter().map(|&b| b as i8).collect()),
        DType::U8 => Tensor::from_vec(s, bits.iter().map(|&b| b as u8).collect()),
        DType::I16 => Tensor::from_vec(s, bits.iter().map(|&b| b as i16).collect()),
        DType::U16 => Tensor::from_vec(s, bits.iter().map(|&b| b as u16).collect()),
        DType::I32 => Tensor::from_vec(s, bits.iter().map(|&b| b as i32).collect()),
        DType::U32 => Tensor::from_vec(s, bits.iter().map(|&b| b as u32).collect()),
        DType::I64 => Tensor::from_vec(s, bits.iter().map(|&b| b as i64).collect()),
        DType::U64 => Tensor::from_vec(s, bits),
        DType::Bool => Tensor::from_vec(s, bits.iter().map(|&b| b != 0).collect()),
        d => Tensor::Packed(
            d,
            ndarray::ArrayD::from_shape_vec(s, bits.iter().map(|&b| b as u8).collect())
                .map_err(|e| OpError::invalid(e.to_string()))?,
        ),
    })
}

#[cfg(test)]
#[path = "shape_fuzz.rs"]
mod fuzz;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_zero_and_minus_one() {
        assert_eq!(reshape_dims(&[2, 3, 4], &[0, -1], false).unwrap(), vec![2, 12]);
        assert_eq!(reshape_dims(&[0, 3], &[3, 0], true).unwrap(), vec![3, 0]);
        assert!(reshape_dims(&[2, 3], &[-1, -1], false).is_err());
        assert!(reshape_dims(&[2, 3], &[4, -1], false).is_err());
    }

    #[test]
    fn split_uneven_last_chunk() {
        assert_eq!(split_sizes(7, None, Some(3), 3).unwrap(), vec![3, 3, 1]);
        assert!(split_sizes(5, None, Some(4), 4).is_err());
    }

    #[test]
    fn shape_range_clamps() {
        assert_eq!(shape_range(3, -10, Some(10)), (0, 3));
        assert_eq!(shape_range(3, 2, Some(1)), (2, 2));
        assert_eq!(shape_range(3, 1, Some(-1)), (1, 2));
    }

    #[test]
    fn pad_modes() {
        let src = |m, i| pad_source(m, i, 3).unwrap();
        assert_eq!([-2, -1, 3, 4].map(|i| src(PadMode::Reflect, i)), [Some(2), Some(1), Some(1), Some(0)]);
        assert_eq!([-2, 4].map(|i| src(PadMode::Edge, i)), [Some(0), Some(2)]);
        assert_eq!([-2, 4].map(|i| src(PadMode::Wrap, i)), [Some(1), Some(1)]);
        assert_eq!(src(PadMode::Constant, -1), None);
    }

    #[test]
    fn integer_range_is_exact() {
        let t = |v: i64| Tensor::scalar(v);
        assert_eq!(range_len(&t(10), &t(4), &t(-3)).unwrap(), 2);
        assert_eq!(range_len(&t(0), &t(4), &t(-1)).unwrap(), 0);
    }
}

//! The index family: ops that select or write elements at computed or given positions
//! (Slice, Gather*, Scatter*, OneHot, Compress, NonZero, ReverseSequence, Unique,
//! TensorScatter).
//!
//! Like the shape family, each op computes its output types from [`Values`] (shared by
//! inference and evaluation) and moves elements through an index map; scatters build a
//! list of (destination, update) pairs and apply them in order, with a reduction.

use std::cmp::Ordering;

use ndarray::ArrayD;

use super::shape::layout::{
    for_each_index, index_map, join, norm_index, numel, offset, strides, take, Evaluated, IntsArg, Values,
};
use super::util::{norm_axes, norm_axis};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{Tensor, TypeInfo};

/// How a scatter combines an update with the value already there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    None,
    Add,
    Mul,
    Max,
    Min,
}

#[derive(Clone, Debug)]
pub enum IndexOp {
    /// starts/ends/axes as attributes in opsets 1-9, inputs 1-4 (with steps) from 10.
    Slice {
        starts: IntsArg,
        ends: IntsArg,
        axes: IntsArg,
        steps: IntsArg,
    },
    Gather {
        axis: i64,
    },
    GatherElements {
        axis: i64,
    },
    GatherND {
        batch_dims: usize,
    },
    /// Also the old `Scatter` (opsets 9-10), which has no reduction.
    ScatterElements {
        axis: i64,
        reduction: Reduction,
    },
    ScatterND {
        reduction: Reduction,
    },
    OneHot {
        axis: i64,
    },
    /// No axis: the input is flattened first.
    Compress {
        axis: Option<i64>,
    },
    NonZero,
    ReverseSequence {
        batch_axis: i64,
        time_axis: i64,
    },
    Unique {
        sorted: bool,
        axis: Option<i64>,
    },
    TensorScatter {
        circular: bool,
        axis: i64,
    },
}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    if !ctx.is_default_domain() {
        return None;
    }
    let r = match ctx.op_type {
        "Slice" => parse_slice(ctx),
        "Gather" => ctx.int_or("axis", 0).map(|axis| IndexOp::Gather { axis }),
        "GatherElements" => ctx.int_or("axis", 0).map(|axis| IndexOp::GatherElements { axis }),
        "GatherND" => parse_gather_nd(ctx),
        "ScatterElements" | "Scatter" => parse_scatter(ctx, true),
        "ScatterND" => parse_scatter(ctx, false),
        "OneHot" => ctx.int_or("axis", -1).map(|axis| IndexOp::OneHot { axis }),
        "Compress" => ctx.int("axis").map(|axis| IndexOp::Compress { axis }),
        "NonZero" => Ok(IndexOp::NonZero),
        "ReverseSequence" => parse_reverse_sequence(ctx),
        "Unique" => parse_unique(ctx),
        "TensorScatter" => parse_tensor_scatter(ctx),
        _ => return None,
    };
    Some(r.map(Op::Index))
}

impl Semantics for IndexOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        match self {
            // The outputs' shapes are their values' business: known only for constants.
            IndexOp::NonZero | IndexOp::Unique { .. } => {
                ctx.req_value(0, "input")?;
                Ok(self.eval(ctx.consts)?.iter().map(Tensor::type_info).collect())
            }
            _ => self.types(ctx),
        }
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let v = Evaluated(inputs);
        let x = v.req_value(0, "data")?;
        let out = match self {
            IndexOp::Slice { starts, ends, axes, steps } => {
                eval_slice(x, &slice_plan(&v, x.shape(), [starts, ends, axes, steps])?)?
            }
            IndexOp::Gather { axis } => eval_gather(x, v.req_value(1, "indices")?, *axis)?,
            IndexOp::GatherElements { axis } => eval_gather_elements(x, v.req_value(1, "indices")?, *axis)?,
            IndexOp::GatherND { batch_dims } => eval_gather_nd(x, v.req_value(1, "indices")?, *batch_dims)?,
            IndexOp::ScatterElements { axis, reduction } => {
                let pairs = scatter_elements_pairs(x, v.req_value(1, "indices")?, v.req_value(2, "updates")?, *axis)?;
                scatter(x, v.req_value(2, "updates")?, &pairs, *reduction)?
            }
            IndexOp::ScatterND { reduction } => {
                let pairs = scatter_nd_pairs(x, v.req_value(1, "indices")?, v.req_value(2, "updates")?)?;
                scatter(x, v.req_value(2, "updates")?, &pairs, *reduction)?
            }
            IndexOp::OneHot { axis } => eval_one_hot(&v, *axis)?,
            IndexOp::Compress { axis } => eval_compress(x, compress_plan(&v, *axis)?)?,
            IndexOp::NonZero => eval_nonzero(x)?,
            IndexOp::ReverseSequence { batch_axis, time_axis } => {
                eval_reverse_sequence(x, &v.req_ints(1, "sequence_lens")?, *batch_axis, *time_axis)?
            }
            IndexOp::Unique { sorted, axis } => return eval_unique(x, *sorted, *axis),
            IndexOp::TensorScatter { circular, axis } => {
                let update = v.req_value(1, "update")?;
                let pairs = tensor_scatter_pairs(x, update, v.ints(2, "write_indices")?, *axis, *circular)?;
                scatter(x, update, &pairs, Reduction::None)?
            }
        };
        Ok(vec![out])
    }
}

impl IndexOp {
    /// Output types from what is known of the inputs (shared by infer and eval).
    fn types(&self, v: &dyn Values) -> Result<Vec<TypeInfo>, OpError> {
        let x = v.req(0)?;
        let same = |shape: Vec<usize>| Ok(vec![TypeInfo::new(x.dtype, shape)]);
        match self {
            IndexOp::Slice { starts, ends, axes, steps } => {
                same(slice_plan(v, &x.shape, [starts, ends, axes, steps])?.iter().map(|p| p.len).collect())
            }
            IndexOp::Gather { axis } => {
                let a = norm_axis(*axis, x.rank())?;
                let ind = v.req(1)?;
                same([&x.shape[..a], &ind.shape[..], &x.shape[a + 1..]].concat())
            }
            IndexOp::GatherElements { axis } => {
                let ind = v.req(1)?;
                norm_axis(*axis, x.rank())?;
                if ind.rank() != x.rank() {
                    return Err(OpError::invalid(format!("GatherElements: indices {ind} and data {x} differ in rank")));
                }
                same(ind.shape)
            }
            IndexOp::GatherND { batch_dims } => same(gather_nd_shape(&x.shape, &v.req(1)?.shape, *batch_dims)?.0),
            IndexOp::ScatterElements { axis, .. } => {
                let (ind, upd) = (v.req(1)?, v.req(2)?);
                norm_axis(*axis, x.rank())?;
                if ind.shape != upd.shape || ind.rank() != x.rank() || upd.dtype != x.dtype {
                    return Err(OpError::invalid(format!("ScatterElements: data {x}, indices {ind}, updates {upd}")));
                }
                Ok(vec![x])
            }
            IndexOp::ScatterND { .. } => {
                let (ind, upd) = (v.req(1)?, v.req(2)?);
                let k =
                    *ind.shape.last().ok_or_else(|| OpError::invalid("ScatterND indices must have rank 1 or more"))?;
                let want = [&ind.shape[..ind.rank() - 1], x.shape.get(k..).unwrap_or(&[])].concat();
                if k > x.rank() || upd.shape != want || upd.dtype != x.dtype {
                    return Err(OpError::invalid(format!("ScatterND: data {x}, indices {ind}, updates {upd}")));
                }
                Ok(vec![x])
            }
            IndexOp::OneHot { axis } => {
                let depth = one_hot_depth(v.req_value(1, "depth")?)?;
                let values = v.req(2)?;
                let a = one_hot_axis(*axis, x.rank())?;
                let mut shape = x.shape.clone();
                shape.insert(a, depth);
                Ok(vec![TypeInfo::new(values.dtype, shape)])
            }
            IndexOp::Compress { axis } => same(compress_plan(v, *axis)?.shape),
            IndexOp::ReverseSequence { batch_axis, time_axis } => {
                reverse_axes(x.rank(), *batch_axis, *time_axis)?;
                Ok(vec![x])
            }
            IndexOp::TensorScatter { axis, .. } => {
                tensor_scatter_axis(&x.shape, &v.req(1)?.shape, *axis)?;
                Ok(vec![x])
            }
            IndexOp::NonZero | IndexOp::Unique { .. } => Err(OpError::invalid("value-dependent op")),
        }
    }
}

/// A possibly negative index input as positions into a dimension of size `dim`.
fn indices(t: &Tensor, dim: usize, what: &str) -> Result<Vec<usize>, OpError> {
    let v = t.to_i64_vec().ok_or_else(|| OpError::invalid(format!("{what} must be integers")))?;
    v.into_iter().map(|i| norm_index(i, dim, what)).collect()
}

// ---------------------------------------------------------------------------------
// Slice

fn parse_slice(ctx: &NodeCtx) -> Result<IndexOp, OpError> {
    if ctx.opset < 10 {
        let req = |name| ctx.required(name, ctx.ints(name)).map(|v| IntsArg::Attr(Some(v)));
        return Ok(IndexOp::Slice {
            starts: req("starts")?,
            ends: req("ends")?,
            axes: IntsArg::Attr(ctx.ints("axes")?),
            steps: IntsArg::Attr(None),
        });
    }
    Ok(IndexOp::Slice {
        starts: IntsArg::Input(1),
        ends: IntsArg::Input(2),
        axes: IntsArg::Input(3),
        steps: IntsArg::Input(4),
    })
}

/// One axis of a slice: `len` elements from `start`, `step` apart.
#[derive(Clone, Copy, Debug, PartialEq)]
struct AxisSlice {
    start: i64,
    step: i64,
    len: usize,
}

/// numpy's `slice.indices`: negative bounds count from the end, then are clamped into
/// `0..=n` (positive step) or `-1..=n-1` (negative step).
fn axis_slice(n: usize, start: i64, end: i64, step: i64) -> Result<AxisSlice, OpError> {
    if step == 0 {
        return Err(OpError::invalid("Slice step 0"));
    }
    let n = n as i128;
    let (lo, hi) = if step > 0 { (0, n) } else { (-1, n - 1) };
    let fix = |x: i64| {
        let x = x as i128;
        (if x < 0 { x + n } else { x }).clamp(lo, hi)
    };
    let (s, e, st) = (fix(start), fix(end), step as i128);
    let len = if st > 0 { (e - s + st - 1) / st } else { (s - e - st - 1) / -st };
    Ok(AxisSlice { start: s as i64, step, len: len.max(0) as usize })
}

fn slice_plan(v: &dyn Values, shape: &[usize], args: [&IntsArg; 4]) -> Result<Vec<AxisSlice>, OpError> {
    let [starts, ends, axes, steps] = args;
    let starts = starts.get(v, "starts")?.ok_or_else(|| OpError::invalid("Slice needs starts"))?;
    let ends = ends.get(v, "ends")?.ok_or_else(|| OpError::invalid("Slice needs ends"))?;
    let axes = match axes.get(v, "axes")? {
        Some(a) => norm_axes(&a, shape.len())?,
        None => (0..starts.len()).collect(),
    };
    let steps = steps.get(v, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err(OpError::invalid(format!(
            "Slice: starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} differ in length"
        )));
    }
    let mut plan: Vec<AxisSlice> = shape.iter().map(|&n| AxisSlice { start: 0, step: 1, len: n }).collect();
    for (k, &a) in axes.iter().enumerate() {
        let n = *shape.get(a).ok_or_else(|| OpError::invalid(format!("Slice axis {a} is out of range")))?;
        plan[a] = axis_slice(n, starts[k], ends[k], steps[k])?;
    }
    Ok(plan)
}

fn eval_slice(x: &Tensor, plan: &[AxisSlice]) -> Result<Tensor, OpError> {
    let shape: Vec<usize> = plan.iter().map(|p| p.len).collect();
    let st = strides(x.shape());
    let map = index_map(&shape, |o| {
        Ok(o.iter().zip(plan).zip(&st).map(|((&k, p), s)| (p.start + k as i64 * p.step) as usize * s).sum())
    })?;
    take(x, &map, &shape)
}

// ---------------------------------------------------------------------------------
// Gather, GatherElements, GatherND

fn eval_gather(x: &Tensor, ind: &Tensor, axis: i64) -> Result<Tensor, OpError> {
    let a = norm_axis(axis, x.rank())?;
    let idx = indices(ind, x.shape()[a], "Gather index")?;
    let shape = [&x.shape()[..a], ind.shape(), &x.shape()[a + 1..]].concat();
    let (st, ist, q) = (strides(x.shape()), strides(ind.shape()), ind.rank());
    let map = index_map(&shape, |o| {
        let pos = idx[offset(&o[a..a + q], &ist)];
        Ok(offset(&o[..a], &st[..a]) + pos * st[a] + offset(&o[a + q..], &st[a + 1..]))
    })?;
    take(x, &map, &shape)
}

fn eval_gather_elements(x: &Tensor, ind: &Tensor, axis: i64) -> Result<Tensor, OpError> {
    let a = norm_axis(axis, x.rank())?;
    if ind.rank() != x.rank() {
        return Err(OpError::invalid("GatherElements: indices and data differ in rank"));
    }
    let idx = indices(ind, x.shape()[a], "GatherElements index")?;
    let st = strides(x.shape());
    let mut k = 0;
    let map = index_map(ind.shape(), |o| {
        let mut i = o.to_vec();
        i[a] = idx[k];
        k += 1;
        if i.iter().zip(x.shape()).any(|(j, n)| j >= n) {
            return Err(OpError::invalid("GatherElements: indices are larger than the data off the axis"));
        }
        Ok(offset(&i, &st))
    })?;
    take(x, &map, ind.shape())
}

fn parse_gather_nd(ctx: &NodeCtx) -> Result<IndexOp, OpError> {
    let b = ctx.int_or("batch_dims", 0)?;
    let batch_dims =
        usize::try_from(b).map_err(|_| OpError::invalid(format!("GatherND batch_dims {b} is negative")))?;
    Ok(IndexOp::GatherND { batch_dims })
}

/// GatherND's output shape and index-tuple length `m`:
/// `indices.shape[..-1] + data.shape[batch_dims + m..]`.
fn gather_nd_shape(data: &[usize], ind: &[usize], b: usize) -> Result<(Vec<usize>, usize), OpError> {
    let m = *ind.last().ok_or_else(|| OpError::invalid("GatherND indices must have rank 1 or more"))?;
    if b >= ind.len() || b >= data.len() || m < 1 || b + m > data.len() || data[..b] != ind[..b] {
        return Err(OpError::invalid(format!("GatherND: data {data:?}, indices {ind:?}, batch_dims {b}")));
    }
    Ok(([&ind[..ind.len() - 1], &data[b + m..]].concat(), m))
}

fn eval_gather_nd(x: &Tensor, ind: &Tensor, b: usize) -> Result<Tensor, OpError> {
    let (shape, m) = gather_nd_shape(x.shape(), ind.shape(), b)?;
    let raw = ind.to_i64_vec().ok_or_else(|| OpError::invalid("GatherND indices must be integers"))?;
    let q = ind.rank() - 1;
    let (st, ist) = (strides(x.shape()), strides(&ind.shape()[..q]));
    let map = index_map(&shape, |o| {
        let tuple = offset(&o[..q], &ist) * m;
        let mut at = offset(&o[..b], &st[..b]);
        for j in 0..m {
            at += norm_index(raw[tuple + j], x.shape()[b + j], "GatherND index")? * st[b + j];
        }
        Ok(at + offset(&o[q..], &st[b + m..]))
    })?;
    take(x, &map, &shape)
}

// ---------------------------------------------------------------------------------
// ScatterElements, ScatterND, TensorScatter

fn parse_scatter(ctx: &NodeCtx, elements: bool) -> Result<IndexOp, OpError> {
    let reduction = match ctx.string_or("reduction", "none")?.as_str() {
        "none" => Reduction::None,
        "add" => Reduction::Add,
        "mul" => Reduction::Mul,
        "max" => Reduction::Max,
        "min" => Reduction::Min,
        r => return Err(OpError::unsupported(format!("scatter reduction '{r}'"))),
    };
    Ok(if elements {
        IndexOp::ScatterElements { axis: ctx.int_or("axis", 0)?, reduction }
    } else {
        IndexOp::ScatterND { reduction }
    })
}

/// (flat destination in data, flat position in updates) for each update, in order.
type Pairs = Vec<(usize, usize)>;

fn scatter_elements_pairs(x: &Tensor, ind: &Tensor, upd: &Tensor, axis: i64) -> Result<Pairs, OpError> {
    let a = norm_axis(axis, x.rank())?;
    if ind.shape() != upd.shape() || ind.rank() != x.rank() {
        return Err(OpError::invalid(
            "ScatterElements: indices and updates must have the data's rank and equal shapes",
        ));
    }
    let idx = indices(ind, x.shape()[a], "ScatterElements index")?;
    let st = strides(x.shape());
    let mut pairs = Vec::with_capacity(idx.len());
    for_each_index(ind.shape(), |o| {
        let mut i = o.to_vec();
        i[a] = idx[pairs.len()];
        if i.iter().zip(x.shape()).any(|(j, n)| j >= n) {
            return Err(OpError::invalid("ScatterElements: indices are larger than the data off the axis"));
        }
        pairs.push((offset(&i, &st), pairs.len()));
        Ok(())
    })?;
    Ok(pairs)
}

fn scatter_nd_pairs(x: &Tensor, ind: &Tensor, upd: &Tensor) -> Result<Pairs, OpError> {
    let k = *ind.shape().last().ok_or_else(|| OpError::invalid("ScatterND indices must have rank 1 or more"))?;
    let q = ind.rank() - 1;
    if k > x.rank() || upd.shape() != [&ind.shape()[..q], &x.shape()[k..]].concat() {
        return Err(OpError::invalid(format!(
            "ScatterND: data {:?}, indices {:?}, updates {:?}",
            x.shape(),
            ind.shape(),
            upd.shape()
        )));
    }
    let raw = ind.to_i64_vec().ok_or_else(|| OpError::invalid("ScatterND indices must be integers"))?;
    let st = strides(x.shape());
    let inner = numel(&x.shape()[k..])?;
    let mut pairs = Vec::new();
    for t in 0..numel(&ind.shape()[..q])? {
        let tuple = raw.get(t * k..(t + 1) * k).ok_or_else(|| OpError::invalid("ScatterND indices"))?;
        let mut base = 0;
        for (j, &i) in tuple.iter().enumerate() {
            base += norm_index(i, x.shape()[j], "ScatterND index")? * st[j];
        }
        pairs.extend((0..inner).map(|r| (base + r, t * inner + r)));
    }
    Ok(pairs)
}

fn parse_tensor_scatter(ctx: &NodeCtx) -> Result<IndexOp, OpError> {
    let circular = match ctx.string_or("mode", "linear")?.as_str() {
        "linear" => false,
        "circular" => true,
        m => return Err(OpError::invalid(format!("TensorScatter mode '{m}'"))),
    };
    Ok(IndexOp::TensorScatter { circular, axis: ctx.int_or("axis", -2)? })
}

/// TensorScatter's sequence axis (not the batch axis 0); the update may differ from the
/// cache only there, and be no longer.
fn tensor_scatter_axis(cache: &[usize], update: &[usize], axis: i64) -> Result<usize, OpError> {
    let a = norm_axis(axis, cache.len())?;
    let fits = a > 0
        && cache.len() == update.len()
        && (0..cache.len()).all(|i| if i == a { update[i] <= cache[i] } else { update[i] == cache[i] });
    if !fits {
        return Err(OpError::invalid(format!(
            "TensorScatter: update {update:?} does not fit cache {cache:?} on axis {axis}"
        )));
    }
    Ok(a)
}

fn tensor_scatter_pairs(
    cache: &Tensor,
    update: &Tensor,
    write: Option<Vec<i64>>,
    axis: i64,
    circular: bool,
) -> Result<Pairs, OpError> {
    let a = tensor_scatter_axis(cache.shape(), update.shape(), axis)?;
    let max_len = cache.shape()[a] as i128;
    let write = write.unwrap_or_else(|| vec![0; cache.shape()[0]]);
    if write.len() != cache.shape()[0] {
        return Err(OpError::invalid("TensorScatter: one write index per batch entry"));
    }
    let st = strides(cache.shape());
    let mut pairs = Vec::with_capacity(update.len());
    for_each_index(update.shape(), |o| {
        let mut pos = write[o[0]] as i128 + o[a] as i128;
        if circular {
            pos = pos.rem_euclid(max_len.max(1));
        }
        if !(0..max_len).contains(&pos) {
            return Err(OpError::invalid(format!("TensorScatter writes at {pos}, past the cache length {max_len}")));
        }
        let mut i = o.to_vec();
        i[a] = pos as usize;
        pairs.push((offset(&i, &st), pairs.len()));
        Ok(())
    })?;
    Ok(pairs)
}

/// Element arithmetic for scatter reductions; integers wrap like numpy.
trait Combine: Copy + PartialOrd {
    fn add(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
}

macro_rules! combine_int {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            fn add(self, o: Self) -> Self { self.wrapping_add(o) }
            fn mul(self, o: Self) -> Self { self.wrapping_mul(o) }
        }
    )*};
}
combine_int!(i8, u8, i16, u16, i32, u32, i64, u64);

macro_rules! combine_float {
    ($($t:ty),*) => {$(
        impl Combine for $t {
            fn add(self, o: Self) -> Self { self + o }
            fn mul(self, o: Self) -> Self { self * o }
        }
    )*};
}
combine_float!(f32, f64, half::f16, half::bf16);

impl Combine for bool {
    fn add(self, o: Self) -> Self {
        self || o
    }
    fn mul(self, o: Self) -> Self {
        self && o
    }
}

fn reduce_into<T: Combine>(
    data: &ArrayD<T>,
    upd: &ArrayD<T>,
    pairs: &[(usize, usize)],
    r: Reduction,
) -> Result<ArrayD<T>, OpError> {
    let mut out = data.clone();
    let u: Vec<T> = upd.iter().copied().collect();
    let flat = out.as_slice_mut().ok_or_else(|| OpError::invalid("scatter on a non-contiguous array"))?;
    for &(d, s) in pairs {
        let (Some(old), Some(&new)) = (flat.get(d).copied(), u.get(s)) else {
            return Err(OpError::invalid("scatter position out of range"));
        };
        // Max/min as Python's max(old, new): `new` wins only when strictly beyond.
        flat[d] = match r {
            Reduction::None => new,
            Reduction::Add => old.add(new),
            Reduction::Mul => old.mul(new),
            Reduction::Max => {
                if new > old {
                    new
                } else {
                    old
                }
            }
            Reduction::Min => {
                if new < old {
                    new
                } else {
                    old
                }
            }
        };
    }
    Ok(out)
}

/// `data` with the updates written (or combined) at their destinations, in order.
fn scatter(data: &Tensor, updates: &Tensor, pairs: &[(usize, usize)], r: Reduction) -> Result<Tensor, OpError> {
    if r == Reduction::None {
        let joined = join(&[data, updates])?;
        let mut map: Vec<usize> = (0..data.len()).collect();
        for &(d, s) in pairs {
            *map.get_mut(d).ok_or_else(|| OpError::invalid("scatter position out of range"))? = data.len() + s;
        }
        return take(&joined, &map, data.shape());
    }
    macro_rules! arms {
        ($($v:ident),*) => {
            match (data, updates) {
                $((Tensor::$v(a), Tensor::$v(b)) => Ok(Tensor::$v(reduce_into(a, b, pairs, r)?)),)*
                _ => Err(OpError::unsupported(format!("scatter reduction on {} data with {} updates", data.dtype(), updates.dtype()))),
            }
        };
    }
    arms!(F32, F64, F16, BF16, I8, U8, I16, U16, I32, U32, I64, U64, Bool)
}

// ---------------------------------------------------------------------------------
// OneHot, Compress, NonZero, ReverseSequence

fn one_hot_axis(axis: i64, rank: usize) -> Result<usize, OpError> {
    norm_axis(axis, rank + 1)
}

fn one_hot_depth(t: &Tensor) -> Result<usize, OpError> {
    let v = t.to_f64_vec();
    match v[..] {
        [d] if d >= 0.0 && d < (1u64 << 40) as f64 => Ok(d as usize),
        _ => Err(OpError::invalid(format!("OneHot depth must be one non-negative value, got {v:?}"))),
    }
}

/// Output position k along the axis is `on` where the index (negatives counted from
/// `depth`) equals k, `off` elsewhere; out-of-range indices give all `off`, as the spec
/// says.
fn eval_one_hot(v: &Evaluated, axis: i64) -> Result<Tensor, OpError> {
    let ind = v.req_value(0, "indices")?;
    let depth = one_hot_depth(v.req_value(1, "depth")?)?;
    let values = v.req_value(2, "values")?;
    if values.len() != 2 {
        return Err(OpError::invalid("OneHot values must be [off, on]"));
    }
    let a = one_hot_axis(axis, ind.rank())?;
    let mut shape = ind.shape().to_vec();
    shape.insert(a, depth);
    let idx = ind.to_f64_vec();
    let ist = strides(ind.shape());
    let map = index_map(&shape, |o| {
        let pos = [&o[..a], &o[a + 1..]].concat();
        let i = idx[offset(&pos, &ist)];
        let i = if i < 0.0 { i + depth as f64 } else { i };
        Ok(usize::from(i == o[a] as f64))
    })?;
    take(values, &map, &shape)
}

/// What Compress keeps: positions `picked` along `axis` (`None`: of the flattened
/// input), giving `shape`.
struct CompressPlan {
    shape: Vec<usize>,
    axis: Option<usize>,
    picked: Vec<usize>,
}

fn compress_plan(v: &dyn Values, axis: Option<i64>) -> Result<CompressPlan, OpError> {
    let x = v.req(0)?;
    let cond = v.req_ints(1, "condition")?;
    let (dim, a) = match axis {
        Some(axis) => {
            let a = norm_axis(axis, x.rank())?;
            (x.shape[a], Some(a))
        }
        None => (x.numel().ok_or_else(|| OpError::invalid("Compress input too large"))?, None),
    };
    let picked: Vec<usize> = cond.iter().enumerate().filter(|(_, &c)| c != 0).map(|(i, _)| i).collect();
    if picked.last().is_some_and(|&i| i >= dim) {
        return Err(OpError::invalid(format!("Compress condition selects past the {dim} entries")));
    }
    let shape = match a {
        Some(a) => {
            let mut s = x.shape.clone();
            s[a] = picked.len();
            s
        }
        None => vec![picked.len()],
    };
    Ok(CompressPlan { shape, axis: a, picked })
}

fn eval_compress(x: &Tensor, plan: CompressPlan) -> Result<Tensor, OpError> {
    let src = match plan.axis {
        Some(_) => x.clone(),
        None => x.reshaped(&[x.len()]).ok_or_else(|| OpError::invalid("Compress: cannot flatten the input"))?,
    };
    let a = plan.axis.unwrap_or(0);
    let st = strides(src.shape());
    let map = index_map(&plan.shape, |o| {
        let mut i = o.to_vec();
        i[a] = plan.picked[o[a]];
        Ok(offset(&i, &st))
    })?;
    take(&src, &map, &plan.shape)
}

fn eval_nonzero(x: &Tensor) -> Result<Tensor, OpError> {
    let vals = x.to_f64_vec();
    let mut coords: Vec<Vec<i64>> = vec![Vec::new(); x.rank()];
    let mut k = 0;
    for_each_index(x.shape(), |i| {
        if vals[k] != 0.0 {
            for (c, &j) in coords.iter_mut().zip(i) {
                c.push(j as i64);
            }
        }
        k += 1;
        Ok(())
    })?;
    let n = vals.iter().filter(|&&v| v != 0.0).count();
    Ok(Tensor::from_vec(&[x.rank(), n], coords.concat()))
}

fn parse_reverse_sequence(ctx: &NodeCtx) -> Result<IndexOp, OpError> {
    Ok(IndexOp::ReverseSequence { batch_axis: ctx.int_or("batch_axis", 1)?, time_axis: ctx.int_or("time_axis", 0)? })
}

fn reverse_axes(rank: usize, batch_axis: i64, time_axis: i64) -> Result<(usize, usize), OpError> {
    let (b, t) = (norm_axis(batch_axis, rank)?, norm_axis(time_axis, rank)?);
    if rank < 2 || b == t || b > 1 || t > 1 {
        return Err(OpError::invalid(format!(
            "ReverseSequence: batch_axis {batch_axis} and time_axis {time_axis} must be 0 and 1"
        )));
    }
    Ok((b, t))
}

/// Along the time axis, the first `lens[b]` entries of each batch entry b are reversed.
fn eval_reverse_sequence(x: &Tensor, lens: &[i64], batch_axis: i64, time_axis: i64) -> Result<Tensor, OpError> {
    let (b, t) = reverse_axes(x.rank(), batch_axis, time_axis)?;
    let steps = x.shape()[t] as i64;
    if lens.len() != x.shape()[b] || lens.iter().any(|&l| !(0..=steps).contains(&l)) {
        return Err(OpError::invalid(format!("ReverseSequence: sequence_lens {lens:?} for shape {:?}", x.shape())));
    }
    let st = strides(x.shape());
    let map = index_map(x.shape(), |o| {
        let len = lens[o[b]] as usize;
        let mut i = o.to_vec();
        if o[t] < len {
            i[t] = len - 1 - o[t];
        }
        Ok(offset(&i, &st))
    })?;
    take(x, &map, x.shape())
}

// ---------------------------------------------------------------------------------
// Unique

fn parse_unique(ctx: &NodeCtx) -> Result<IndexOp, OpError> {
    Ok(IndexOp::Unique { sorted: ctx.int_or("sorted", 1)? != 0, axis: ctx.int("axis")? })
}

/// An element as a sortable key: integers exactly, floats with NaN last and equal to
/// itself (numpy's `unique` collapses NaNs).
#[derive(Clone, Copy, Debug)]
enum Key {
    Int(i128),
    Float(f64),
}

impl Key {
    fn order(&self, o: &Key) -> Ordering {
        match (self, o) {
            (Key::Int(a), Key::Int(b)) => a.cmp(b),
            (Key::Float(a), Key::Float(b)) => a.partial_cmp(b).unwrap_or_else(|| a.is_nan().cmp(&b.is_nan())),
            _ => Ordering::Equal,
        }
    }
}

fn keys(t: &Tensor) -> Vec<Key> {
    match t {
        Tensor::U64(a) => a.iter().map(|&x| Key::Int(x as i128)).collect(),
        _ => match t.to_i64_vec() {
            Some(v) => v.into_iter().map(|x| Key::Int(x as i128)).collect(),
            None => t.to_f64_vec().into_iter().map(Key::Float).collect(),
        },
    }
}

/// numpy's `unique` with all outputs: unique items (elements, or slices along `axis`)
/// sorted or in order of first occurrence, their first indices, each item's position
/// among the unique ones, and the counts.
fn eval_unique(x: &Tensor, sorted: bool, axis: Option<i64>) -> Result<Vec<Tensor>, OpError> {
    // Items as rows: move the axis first, then each row is one item's elements.
    let (a, moved) = match axis {
        Some(axis) => {
            let a = norm_axis(axis, x.rank())?;
            let mut perm: Vec<usize> = (0..x.rank()).collect();
            perm.remove(a);
            perm.insert(0, a);
            let shape: Vec<usize> = perm.iter().map(|&p| x.shape()[p]).collect();
            let st = strides(x.shape());
            let pst: Vec<usize> = perm.iter().map(|&p| st[p]).collect();
            let map = index_map(&shape, |i| Ok(offset(i, &pst)))?;
            (Some(a), take(x, &map, &shape)?)
        }
        None => (None, x.reshaped(&[x.len()]).ok_or_else(|| OpError::invalid("Unique"))?),
    };
    let n_items = moved.shape().first().copied().unwrap_or(1);
    let row = moved.len().checked_div(n_items).unwrap_or(0);
    let k = keys(&moved);
    let item = |i: usize| &k[i * row..(i + 1) * row];
    let cmp = |i: usize, j: usize| {
        item(i).iter().zip(item(j)).map(|(p, q)| p.order(q)).find(|o| o.is_ne()).unwrap_or(Ordering::Equal)
    };

    // Stable sort, so the first item of each run of equals is its first occurrence.
    let mut order: Vec<usize> = (0..n_items).collect();
    order.sort_by(|&i, &j| cmp(i, j));
    let mut firsts: Vec<usize> = Vec::new();
    let mut counts: Vec<i64> = Vec::new();
    let mut inverse = vec![0i64; n_items];
    for &i in &order {
        match firsts.last() {
            Some(&f) if cmp(f, i).is_eq() => *counts.last_mut().expect("a count per first") += 1,
            _ => {
                firsts.push(i);
                counts.push(1);
            }
        }
        inverse[i] = firsts.len() as i64 - 1;
    }
    if !sorted {
        // Renumber the unique items by first occurrence.
        let mut by_first: Vec<usize> = (0..firsts.len()).collect();
        by_first.sort_by_key(|&u| firsts[u]);
        let mut rank = vec![0i64; firsts.len()];
        for (r, &u) in by_first.iter().enumerate() {
            rank[u] = r as i64;
        }
        inverse.iter_mut().for_each(|v| *v = rank[*v as usize]);
        counts = by_first.iter().map(|&u| counts[u]).collect();
        firsts = by_first.iter().map(|&u| firsts[u]).collect();
    }
    let u = firsts.len();
    let y = match a {
        Some(a) => {
            let mut shape = x.shape().to_vec();
            shape[a] = u;
            let st = strides(moved.shape());
            let map = index_map(&shape, |o| {
                let rest = [&o[..a], &o[a + 1..]].concat();
                Ok(firsts[o[a]] * st.first().copied().unwrap_or(0) + offset(&rest, &st[1..]))
            })?;
            take(&moved, &map, &shape)?
        }
        None => take(&moved, &firsts, &[u])?,
    };
    let firsts: Vec<i64> = firsts.iter().map(|&f| f as i64).collect();
    Ok(vec![y, Tensor::from_vec(&[u], firsts), Tensor::from_vec(&[n_items], inverse), Tensor::from_vec(&[u], counts)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_clamps_like_numpy() {
        let s = |n, a, b, c| axis_slice(n, a, b, c).unwrap();
        assert_eq!(s(10, 0, i64::MAX, 1), AxisSlice { start: 0, step: 1, len: 10 });
        assert_eq!(s(10, -1, i64::MIN, -1), AxisSlice { start: 9, step: -1, len: 10 });
        assert_eq!(s(10, 20, 1, -3), AxisSlice { start: 9, step: -3, len: 3 });
        assert_eq!(s(10, 1000, 1001, 1).len, 0);
        assert!(axis_slice(3, 0, 1, 0).is_err());
    }

    #[test]
    fn unique_unsorted_keeps_first_occurrence_order() {
        let x = Tensor::from_vec(&[6], vec![2.0f32, 1.0, 1.0, 3.0, 4.0, 3.0]);
        let out = eval_unique(&x, false, None).unwrap();
        assert_eq!(out[0], Tensor::from_vec(&[4], vec![2.0f32, 1.0, 3.0, 4.0]));
        assert_eq!(out[1], Tensor::from_vec(&[4], vec![0i64, 1, 3, 4]));
        assert_eq!(out[2], Tensor::from_vec(&[6], vec![0i64, 1, 1, 2, 3, 2]));
        assert_eq!(out[3], Tensor::from_vec(&[4], vec![1i64, 2, 2, 1]));
    }

    #[test]
    fn scatter_add_accumulates_duplicates() {
        let data = Tensor::from_vec(&[3], vec![1i64, 2, 3]);
        let upd = Tensor::from_vec(&[2], vec![10i64, 20]);
        let out = scatter(&data, &upd, &[(1, 0), (1, 1)], Reduction::Add).unwrap();
        assert_eq!(out, Tensor::from_vec(&[3], vec![1i64, 32, 3]));
    }
}

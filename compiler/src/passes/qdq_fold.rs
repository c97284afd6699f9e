//! QDQ fold: rewrites the quantised units of a QDQ model into int8 integer kernels
//! (`ops::qint8::Int8Kernel`).
//!
//! A unit is what `onnxruntime.quantization.quantize_static` (QDQ format) writes around
//! a Conv, ConvTranspose, Gemm or MatMul, and what `passes::quantize_int8` inserts:
//!
//! ```text
//! DequantizeLinear(x_q: int8/uint8, per-tensor) ─┐
//! DequantizeLinear(w: int8 const, zero point 0, ├─ op ─ [Relu | Clip | LeakyRelu] ─ QuantizeLinear ─ y_q
//!                  per-tensor or per-channel)  ─┤
//! [DequantizeLinear(bias: int32 const) | float const bias] ┘
//! ```
//!
//! It becomes `Int8Kernel(x_q, w, bias_i32, multiplier, shift) → y_q`, with the
//! requantisation factor `x_scale * w_scale[c] / y_scale` as a fixed-point multiplier and
//! shift, and the Relu/Clip folded into the output clamp (a LeakyRelu into a second
//! multiplier and shift for negative accumulators). Anything else (a weight zero
//! point, block quantisation, uint8 weights, a grouped ConvTranspose, Gemm with alpha,
//! beta or transA) is left as it is: the float op between DequantizeLinear and
//! QuantizeLinear still computes the right thing, only slower.
//!
//! Runs before shape inference, on the graph as loaded: the weight DequantizeLinear
//! nodes are still there (propagation would fold them into float constants).

use crate::error::Result;
use crate::ir::{DType, Graph, Node, NodeId, Tensor, ValueId};
use crate::ops::conv::ConvOp;
use crate::ops::linalg::LinalgOp;
use crate::ops::qint8::{quantize_multiplier, Int8Core, Int8Kernel};
use crate::ops::quant::QuantOp;
use crate::ops::Op;

/// Folds every unit it recognises; returns how many.
pub fn fold(g: &mut Graph) -> Result<usize> {
    let Ok(order) = g.topo_order() else { return Ok(0) };
    let mut count = 0;
    for n in order {
        if !g.nodes.contains_node(n) {
            continue;
        }
        if let Some(unit) = match_unit(g, n) {
            apply(g, unit);
            count += 1;
        }
    }
    if count > 0 {
        g.rebuild_edges();
    }
    Ok(count)
}

/// The pass as `passes::run` takes it.
pub fn run(g: &mut Graph) -> Result<()> {
    fold(g).map(|_| ())
}

struct Unit {
    /// The op, its optional activation and the QuantizeLinear: removed.
    remove: Vec<NodeId>,
    name: String,
    kernel: Int8Kernel,
    x_q: ValueId,
    w: ValueId,
    bias: Vec<i32>,
    mult: Vec<i32>,
    shift: Vec<i32>,
    /// An absorbed LeakyRelu's multipliers and shifts for negative accumulators.
    neg: Option<(Vec<i32>, Vec<i32>)>,
    y_q: ValueId,
}

fn konst(g: &Graph, v: Option<ValueId>) -> Option<&Tensor> {
    g.value(v?).constant.as_deref()
}

/// The DequantizeLinear producing `v`: (its node, axis, x, scale, zero point).
fn dequantize_of(g: &Graph, v: ValueId) -> Option<(i64, ValueId, ValueId, Option<ValueId>)> {
    let p = g.value(v).producer?;
    let node = g.node(p);
    let Op::Quant(QuantOp::DequantizeLinear(d)) = &node.op else { return None };
    if d.block_size != 0 || d.output_dtype.is_some_and(|t| t != DType::F32) {
        return None;
    }
    Some((d.axis, node.inputs.first().copied()??, node.inputs.get(1).copied()??, node.inputs.get(2).copied().flatten()))
}

/// The only node reading `v`, when `v` is not a graph output.
fn sole_consumer(g: &Graph, v: ValueId) -> Option<NodeId> {
    if g.outputs.contains(&v) {
        return None;
    }
    match g.consumers(v).as_slice() {
        [n] => Some(*n),
        _ => None,
    }
}

fn scalar(t: &Tensor) -> Option<f64> {
    (t.len() == 1).then(|| t.to_f64_vec()[0])
}

/// (qmin, qmax) of an 8-bit activation type.
fn range(d: DType) -> Option<(i32, i32)> {
    match d {
        DType::I8 => Some((-128, 127)),
        DType::U8 => Some((0, 255)),
        _ => None,
    }
}

fn match_unit(g: &Graph, n: NodeId) -> Option<Unit> {
    let node = g.node(n);
    // The core, and the weight axis that indexes output channels.
    let (core, w_axis) = match &node.op {
        Op::Conv(ConvOp::Conv(a)) => (Int8Core::Conv(a.clone()), 0),
        Op::Conv(ConvOp::ConvTranspose(t)) if t.window.group == 1 => (Int8Core::ConvTranspose(t.clone()), 1),
        Op::Linalg(LinalgOp::Gemm(gm)) if gm.alpha == 1.0 && gm.beta == 1.0 && !gm.trans_a => {
            (Int8Core::Dense { trans_b: gm.trans_b }, if gm.trans_b { 0 } else { 1 })
        }
        Op::Linalg(LinalgOp::MatMul) => (Int8Core::Dense { trans_b: false }, 1),
        _ => return None,
    };
    // Activation input: per-tensor DequantizeLinear of an 8-bit tensor.
    let (_, x_q, xs, xz) = dequantize_of(g, node.inputs.first().copied()??)?;
    let x_scale = scalar(konst(g, Some(xs))?)?;
    let (x_zp, x_type) = match xz {
        Some(z) => {
            let z = konst(g, Some(z))?;
            (scalar(z)? as i32, z.dtype())
        }
        None => (0, g.value(x_q).constant.as_ref().map_or(DType::U8, |t| t.dtype())),
    };
    range(x_type)?;
    // Weight: int8 constant, zero point 0, per-tensor or per output channel.
    let (w_dq_axis, w, ws, wz) = dequantize_of(g, node.inputs.get(1).copied()??)?;
    let wt = konst(g, Some(w))?;
    if wt.dtype() != DType::I8 {
        return None;
    }
    if let Some(z) = wz {
        if konst(g, Some(z))?.to_f64_vec().iter().any(|&v| v != 0.0) {
            return None;
        }
    }
    let rank = wt.shape().len();
    let m = *wt.shape().get(w_axis)?;
    if matches!(core, Int8Core::Dense { .. }) && rank != 2 {
        return None;
    }
    let ws = konst(g, Some(ws))?.to_f64_vec();
    let w_scale: Vec<f64> = match ws.len() {
        1 => vec![ws[0]; m],
        l if l == m && crate::ops::util::norm_axis(w_dq_axis, rank).ok()? == w_axis => ws,
        _ => return None,
    };
    // Output: op [→ Relu | Clip] → QuantizeLinear to 8 bits, per tensor.
    let y = node.outputs.first().copied()??;
    let mut remove = vec![n];
    let mut next = sole_consumer(g, y)?;
    let mut act: Option<(f64, f64)> = None;
    let mut slope: Option<f64> = None;
    match g.node(next).op_type.as_str() {
        "Relu" => act = Some((0.0, f64::INFINITY)),
        "Clip" => act = Some(clip_bounds(g, next)?),
        "LeakyRelu" => slope = Some(leaky_slope(g, next)?),
        _ => {}
    }
    if act.is_some() || slope.is_some() {
        remove.push(next);
        next = sole_consumer(g, g.node(next).outputs.first().copied()??)?;
    }
    let qn = g.node(next);
    let Op::Quant(QuantOp::QuantizeLinear(q)) = &qn.op else { return None };
    if q.block_size != 0 || q.precision.is_some() {
        return None;
    }
    let y_scale = scalar(konst(g, qn.inputs.get(1).copied()?)?)?;
    let (y_zp, y_type) = match qn.inputs.get(2).copied().flatten() {
        Some(z) => {
            let z = konst(g, Some(z))?;
            (scalar(z)? as i32, z.dtype())
        }
        None => (0, q.output_dtype.unwrap_or(DType::U8)),
    };
    let (mut lo, mut hi) = range(y_type)?;
    if let Some((a, b)) = act {
        let at = |v: f64| (v / y_scale).round_ties_even() + y_zp as f64;
        if a.is_finite() {
            lo = lo.max(at(a).clamp(i32::MIN as f64, i32::MAX as f64) as i32);
        }
        if b.is_finite() {
            hi = hi.min(at(b).clamp(i32::MIN as f64, i32::MAX as f64) as i32);
        }
        if lo > hi {
            return None;
        }
    }
    let y_q = qn.outputs.first().copied()??;
    remove.push(next);
    if !(x_scale > 0.0 && y_scale > 0.0) || w_scale.iter().any(|&s| !(s > 0.0)) {
        return None;
    }
    // Bias: int32 with scale x_scale * w_scale[c] (requantised when the scale differs),
    // or a float constant quantised to it.
    let acc_scale: Vec<f64> = w_scale.iter().map(|s| x_scale * s).collect();
    let bias = match node.inputs.get(2).copied().flatten() {
        None => vec![0; m],
        Some(b) => bias_values(g, b, &acc_scale)?,
    };
    let (mult, shift) = acc_scale.iter().map(|a| quantize_multiplier(a / y_scale)).unzip();
    // LeakyRelu: the negative side's factor, `alpha` times the positive one's.
    let neg = match slope {
        None => None,
        Some(alpha) => {
            let (q, s): (Vec<i32>, Vec<i32>) = acc_scale.iter().map(|a| quantize_multiplier(alpha * a / y_scale)).unzip();
            if q.contains(&0) {
                return None;
            }
            Some((q, s))
        }
    };
    Some(Unit {
        remove,
        name: node.name.clone(),
        kernel: Int8Kernel { core, x_zp, y_zp, lo, hi, out: y_type },
        x_q,
        w,
        bias,
        mult,
        shift,
        neg,
        y_q,
    })
}

/// LeakyRelu's slope as the float op multiplies by it (f32), when it is positive (a
/// negative or zero one would flip or drop the sign the epilogue selects on).
fn leaky_slope(g: &Graph, n: NodeId) -> Option<f64> {
    use crate::ops::elementwise::{ElementwiseOp, Unary};
    match &g.node(n).op {
        Op::Elementwise(ElementwiseOp::Unary(Unary::LeakyRelu { alpha })) => {
            let a = *alpha as f32 as f64;
            (a > 0.0 && a.is_finite()).then_some(a)
        }
        _ => None,
    }
}

/// Clip's float bounds (missing ones infinite), when they are constants.
fn clip_bounds(g: &Graph, n: NodeId) -> Option<(f64, f64)> {
    use crate::ops::elementwise::{ClipBounds, ElementwiseOp};
    let node = g.node(n);
    match &node.op {
        Op::Elementwise(ElementwiseOp::Clip(ClipBounds::Attrs { min, max })) => Some((*min as f64, *max as f64)),
        Op::Elementwise(ElementwiseOp::Clip(ClipBounds::Inputs)) => {
            let bound = |i: usize, dflt: f64| match node.inputs.get(i).copied().flatten() {
                None => Some(dflt),
                Some(v) => scalar(konst(g, Some(v))?),
            };
            Some((bound(1, f64::NEG_INFINITY)?, bound(2, f64::INFINITY)?))
        }
        _ => None,
    }
}

/// The bias in accumulator units (`acc_scale[c]`), from an int32 DequantizeLinear or a
/// float constant; `None` when it is neither or does not have one value per channel.
fn bias_values(g: &Graph, b: ValueId, acc_scale: &[f64]) -> Option<Vec<i32>> {
    let m = acc_scale.len();
    let (vals, scale): (Vec<f64>, Vec<f64>) = if let Some(t) = konst(g, Some(b)) {
        if !matches!(t.dtype(), DType::F32 | DType::F64) {
            return None;
        }
        (t.to_f64_vec(), vec![1.0; m])
    } else {
        let (_, bq, bs, bz) = dequantize_of(g, b)?;
        let bt = konst(g, Some(bq))?;
        if bt.dtype() != DType::I32 {
            return None;
        }
        if let Some(z) = bz {
            if konst(g, Some(z))?.to_f64_vec().iter().any(|&v| v != 0.0) {
                return None;
            }
        }
        let s = konst(g, Some(bs))?.to_f64_vec();
        let s = if s.len() == 1 { vec![s[0]; m] } else { s };
        (bt.to_f64_vec(), s)
    };
    if vals.len() != m || scale.len() != m {
        return None;
    }
    let out = (0..m)
        .map(|c| {
            let r = scale[c] / acc_scale[c];
            // An int32 bias already in accumulator units stays bit-exact.
            let v = if (r - 1.0).abs() < 1e-6 { vals[c] } else { (vals[c] * r).round() };
            v.clamp(i32::MIN as f64, i32::MAX as f64) as i32
        })
        .collect();
    Some(out)
}

fn apply(g: &mut Graph, u: Unit) {
    let opset = g.opsets.get("").copied().unwrap_or(1);
    for n in &u.remove {
        g.remove_node(*n);
    }
    let m = u.bias.len();
    let bias = g.add_constant(format!("{}.bias_i32", u.name), Tensor::from_vec(&[m], u.bias));
    let mult = g.add_constant(format!("{}.multiplier", u.name), Tensor::from_vec(&[m], u.mult));
    let shift = g.add_constant(format!("{}.shift", u.name), Tensor::from_vec(&[m], u.shift));
    let mut inputs = vec![Some(u.x_q), Some(u.w), Some(bias), Some(mult), Some(shift)];
    if let Some((nq, ns)) = u.neg {
        inputs.push(Some(g.add_constant(format!("{}.neg_multiplier", u.name), Tensor::from_vec(&[m], nq))));
        inputs.push(Some(g.add_constant(format!("{}.neg_shift", u.name), Tensor::from_vec(&[m], ns))));
    }
    g.add_node(Node {
        name: u.name,
        op: Op::Int8(u.kernel),
        op_type: "Int8Kernel".into(),
        domain: "edgec".into(),
        opset,
        inputs,
        outputs: vec![Some(u.y_q)],
    });
}

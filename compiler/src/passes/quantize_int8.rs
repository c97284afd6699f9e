//! Static int8 post-training quantisation (`edgec compile --quantize int8 --calibration
//! DIR`), on a prepared float graph:
//!
//! 1. BatchNormalization after a Conv or ConvTranspose with constant weights is folded
//!    into them (inference-mode BN is a per-channel affine map), so the pair becomes one
//!    integer kernel instead of an integer kernel, a float BN and a requantisation;
//! 2. calibration: the reference evaluator runs the graph on every calibration input
//!    set, recording the range of each activation that will be quantised (min/max, or
//!    a percentile of the values, which ignores rare outliers);
//! 3. QuantizeLinear/DequantizeLinear are inserted as a QDQ model has them: per-tensor
//!    asymmetric int8 on the activations around every Conv, ConvTranspose, Gemm and
//!    MatMul by a constant matrix (after its Relu, when one follows, so the fold absorbs
//!    the Relu into the output clamp), symmetric per-output-channel int8 weights
//!    (`scale = max|w_c| / 127`, values in [-127, 127]);
//! 4. `passes::qdq_fold` turns each unit into an `Int8Kernel` (the same path as an
//!    imported QDQ model); the other ops stay float between DequantizeLinear and
//!    QuantizeLinear. Nodes named in `keep_float` are left float.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::ir::{DType, Graph, Node, NodeId, Tensor, ValueId};
use crate::ops::conv::ConvOp;
use crate::ops::linalg::LinalgOp;
use crate::ops::normalize::NormalizeOp;
use crate::ops::quant::{Dequantize, QuantOp, Quantize};
use crate::ops::Op;

/// How an activation's range is taken from its calibration values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RangeMethod {
    /// The smallest and largest value seen.
    MinMax,
    /// The given percentiles (e.g. 0.01 and 99.99) of all values seen.
    Percentile(f64),
}

#[derive(Clone, Debug)]
pub struct Int8Options {
    pub method: RangeMethod,
    /// Node names to keep in float.
    pub keep_float: Vec<String>,
}

/// What quantisation did, for the compile report.
#[derive(Clone, Debug, Default)]
pub struct Int8Report {
    pub folded_batchnorms: usize,
    pub int8_kernels: usize,
    pub kept_float: Vec<String>,
}

/// Quantises `g` (typed and folded, as `pipeline::prepare` leaves it) with the
/// calibration input sets `calib` (one tensor per graph input each).
pub fn quantize(mut g: Graph, calib: &[Vec<Tensor>], opts: &Int8Options) -> Result<(Graph, Int8Report)> {
    if calib.is_empty() {
        return Err(Error::Usage("--calibration: no input sets found".into()));
    }
    let mut report = Int8Report::default();
    for name in &opts.keep_float {
        if !g.nodes.node_weights().any(|n| n.name == *name) {
            return Err(Error::Usage(format!("--keep-float {name}: the model has no node of that name")));
        }
    }
    report.folded_batchnorms = fold_batchnorms(&mut g, &opts.keep_float);
    let units = plan(&g, opts, &mut report);
    // Values whose range is needed: unit inputs and (activated) outputs.
    let wanted: HashSet<ValueId> = units.iter().flat_map(|u| [Some(u.x), u.y]).flatten().collect();
    let ranges = calibrate(&g, calib, &wanted, opts.method)?;
    let mut dq_of: HashMap<ValueId, ValueId> = HashMap::new();
    for u in &units {
        insert_unit(&mut g, u, &ranges, &mut dq_of);
    }
    g.rebuild_edges();
    report.int8_kernels = super::qdq_fold::fold(&mut g)?;
    super::propagate::propagate(&mut g)?;
    super::dce::dce(&mut g)?;
    Ok((g, report))
}

/// Folds `BatchNormalization(Conv|ConvTranspose(x, W, B))` into the conv's W and B.
fn fold_batchnorms(g: &mut Graph, keep: &[String]) -> usize {
    let Ok(order) = g.topo_order() else { return 0 };
    let mut count = 0;
    for bn in order {
        let node = g.node(bn);
        let Op::Normalize(NormalizeOp::BatchNorm { epsilon, training: false, .. }) = &node.op else { continue };
        if keep.contains(&node.name) || node.outputs.iter().skip(1).flatten().next().is_some() {
            continue;
        }
        let eps = *epsilon;
        let params: Option<Vec<Vec<f64>>> =
            (1..5).map(|i| node.inputs.get(i).copied().flatten().and_then(|v| g.value(v).constant.as_ref()).map(|t| t.to_f64_vec())).collect();
        let (Some(p), Some(Some(x)), Some(Some(y))) = (params, node.inputs.first().copied(), node.outputs.first().copied()) else {
            continue;
        };
        let Some(conv) = g.value(x).producer else { continue };
        if g.consumers(x).len() != 1 || g.outputs.contains(&x) || keep.contains(&g.node(conv).name) {
            continue;
        }
        let cn = g.node(conv);
        // Output-channel axis of W and the channel count.
        let w_axis = match &cn.op {
            Op::Conv(ConvOp::Conv(_)) => 0,
            Op::Conv(ConvOp::ConvTranspose(t)) if t.window.group == 1 => 1,
            _ => continue,
        };
        let Some(w) = cn.inputs.get(1).copied().flatten() else { continue };
        let Some(wt) = g.value(w).constant.clone() else { continue };
        if wt.dtype() != DType::F32 {
            continue;
        }
        let m = wt.shape()[w_axis];
        if p.iter().any(|v| v.len() != m) {
            continue;
        }
        let bias_v = cn.inputs.get(2).copied().flatten();
        let bias = match bias_v {
            None => vec![0.0; m],
            Some(b) => match g.value(b).constant.as_ref() {
                Some(t) if t.len() == m => t.to_f64_vec(),
                _ => continue,
            },
        };
        let (gamma, beta, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
        let k: Vec<f64> = (0..m).map(|c| gamma[c] / (var[c] + eps).sqrt()).collect();
        let inner: usize = wt.shape()[w_axis + 1..].iter().product();
        let wv: Vec<f32> = wt.to_f64_vec().iter().enumerate().map(|(i, &v)| (v * k[(i / inner) % m]) as f32).collect();
        let bv: Vec<f32> = (0..m).map(|c| ((bias[c] - mean[c]) * k[c] + beta[c]) as f32).collect();
        let name = cn.name.clone();
        let new_w = g.add_constant(format!("{name}.weight_bn"), Tensor::from_vec(wt.shape(), wv));
        let new_b = g.add_constant(format!("{name}.bias_bn"), Tensor::from_vec(&[m], bv));
        let cn = g.nodes.node_weight_mut(conv).expect("conv node");
        cn.inputs.resize(3, None);
        cn.inputs[1] = Some(new_w);
        cn.inputs[2] = Some(new_b);
        g.remove_node(bn);
        g.replace_uses(y, x);
        count += 1;
    }
    if count > 0 {
        g.rebuild_edges();
    }
    count
}

/// One op to quantise: its float input `x`, and `y`, the value after it (and after its
/// Relu) that gets QuantizeLinear, `None` when that is a graph output.
struct UnitPlan {
    node: NodeId,
    x: ValueId,
    y: Option<ValueId>,
    w_axis: usize,
}

fn plan(g: &Graph, opts: &Int8Options, report: &mut Int8Report) -> Vec<UnitPlan> {
    let Ok(order) = g.topo_order() else { return Vec::new() };
    let mut units = Vec::new();
    for n in order {
        let node = g.node(n);
        let w_axis = match &node.op {
            Op::Conv(ConvOp::Conv(_)) => 0,
            Op::Conv(ConvOp::ConvTranspose(t)) if t.window.group == 1 => 1,
            Op::Linalg(LinalgOp::Gemm(gm)) if gm.alpha == 1.0 && gm.beta == 1.0 && !gm.trans_a => usize::from(!gm.trans_b),
            Op::Linalg(LinalgOp::MatMul) => 1,
            _ => continue,
        };
        if opts.keep_float.contains(&node.name) {
            report.kept_float.push(node.name.clone());
            continue;
        }
        let (Some(Some(x)), Some(Some(w)), Some(Some(y))) =
            (node.inputs.first().copied(), node.inputs.get(1).copied(), node.outputs.first().copied())
        else {
            continue;
        };
        let f32_value = |v: ValueId| g.value(v).ty.as_ref().is_some_and(|t| t.dtype == DType::F32);
        let Some(wt) = g.value(w).constant.as_ref() else { continue };
        if !f32_value(x) || wt.dtype() != DType::F32 || g.value(x).constant.is_some() {
            continue;
        }
        if matches!(node.op, Op::Linalg(_)) && wt.shape().len() != 2 {
            continue;
        }
        // After the Relu, when the op's only reader is one.
        let mut end = y;
        if !g.outputs.contains(&y) {
            if let [r] = g.consumers(y).as_slice() {
                let rn = g.node(*r);
                // LeakyRelu too: the fold gives it a second multiplier for negative
                // accumulators (a slope it cannot take stays float, after a Q/DQ).
                if matches!(rn.op_type.as_str(), "Relu" | "LeakyRelu") && !opts.keep_float.contains(&rn.name) {
                    end = rn.outputs.first().copied().flatten().unwrap_or(y);
                }
            }
        }
        let y = (!g.outputs.contains(&end)).then_some(end);
        units.push(UnitPlan { node: n, x, y, w_axis });
    }
    units
}

/// `(scale, zero point)` of each wanted value, asymmetric int8 over its range widened
/// to include 0.
fn calibrate(
    g: &Graph,
    calib: &[Vec<Tensor>],
    wanted: &HashSet<ValueId>,
    method: RangeMethod,
) -> Result<HashMap<ValueId, (f32, i8)>> {
    let order = g.topo_order().map_err(|n| Error::Internal(format!("cycle at '{}'", g.node(n).name)))?;
    let mut seen: HashMap<ValueId, Vec<f32>> = HashMap::new();
    let mut mm: HashMap<ValueId, (f32, f32)> = HashMap::new();
    for (s, set) in calib.iter().enumerate() {
        if set.len() != g.inputs.len() {
            return Err(Error::Usage(format!("calibration set {s} has {} inputs, the model {}", set.len(), g.inputs.len())));
        }
        let mut env: Vec<Option<Arc<Tensor>>> = g.values.iter().map(|v| v.constant.clone()).collect();
        for (&id, t) in g.inputs.iter().zip(set) {
            if g.value(id).ty.as_ref().is_some_and(|ty| ty.dtype != t.dtype() || ty.shape != t.shape()) {
                return Err(Error::Usage(format!(
                    "calibration set {s}: input '{}' is {}, the model takes {}",
                    g.value(id).name,
                    t.type_info(),
                    g.value(id).ty.as_ref().map(|t| t.to_string()).unwrap_or_default()
                )));
            }
            env[id.0 as usize] = Some(Arc::new(t.clone()));
        }
        for &n in &order {
            crate::eval::eval_node(g, n, &mut env)?;
        }
        for &v in wanted {
            let Some(t) = &env[v.0 as usize] else { continue };
            let vals: Vec<f32> = t.to_f64_vec().iter().map(|&x| x as f32).filter(|x| x.is_finite()).collect();
            let (lo, hi) = vals.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
            let e = mm.entry(v).or_insert((lo, hi));
            *e = (e.0.min(lo), e.1.max(hi));
            if matches!(method, RangeMethod::Percentile(_)) {
                seen.entry(v).or_default().extend(vals);
            }
        }
    }
    let mut out = HashMap::new();
    for (&v, &(mut lo, mut hi)) in &mm {
        if let (RangeMethod::Percentile(p), Some(vals)) = (method, seen.get_mut(&v)) {
            vals.sort_by(|a, b| a.total_cmp(b));
            let at = |q: f64| vals[((q / 100.0) * (vals.len() - 1) as f64).round() as usize];
            (lo, hi) = (at(100.0 - p), at(p));
        }
        out.insert(v, asymmetric(lo, hi));
    }
    Ok(out)
}

/// Asymmetric int8 parameters for the range `[lo, hi]` (widened to include 0, so zero
/// is exact: padding and Relu's floor).
pub fn asymmetric(lo: f32, hi: f32) -> (f32, i8) {
    let (lo, hi) = (lo.min(0.0), hi.max(0.0));
    let scale = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i8;
    (scale, zp)
}

fn node(name: String, op: QuantOp, op_type: &str, inputs: Vec<ValueId>, out: ValueId, opset: i64) -> Node {
    Node {
        name,
        op: Op::Quant(op),
        op_type: op_type.into(),
        domain: String::new(),
        opset,
        inputs: inputs.into_iter().map(Some).collect(),
        outputs: vec![Some(out)],
    }
}

fn quantize_node(axis: i64) -> QuantOp {
    QuantOp::QuantizeLinear(Quantize { axis, block_size: 0, saturate: true, output_dtype: None, precision: None })
}

fn dequantize_node(axis: i64) -> QuantOp {
    QuantOp::DequantizeLinear(Dequantize { axis, block_size: 0, output_dtype: None })
}

/// Adds `v → QuantizeLinear → DequantizeLinear → (v's former readers)`; returns the
/// DequantizeLinear's output.
fn insert_qdq(g: &mut Graph, v: ValueId, (scale, zp): (f32, i8), readers_only: Option<NodeId>) -> ValueId {
    let opset = 21.max(g.opsets.get("").copied().unwrap_or(1));
    let name = g.value(v).name.clone();
    let s = g.add_constant(format!("{name}_scale"), Tensor::scalar(scale));
    let z = g.add_constant(format!("{name}_zero_point"), Tensor::scalar(zp));
    let q = g.add_value(format!("{name}_quantized"));
    let dq = g.add_value(format!("{name}_dequantized"));
    match readers_only {
        // Only this node reads the dequantized value.
        Some(n) => {
            let slots = g.nodes.node_weight_mut(n).expect("node").inputs.iter_mut();
            for slot in slots.filter(|s| **s == Some(v)) {
                *slot = Some(dq);
            }
        }
        None => g.replace_uses(v, dq),
    }
    g.add_node(node(format!("{name}_QuantizeLinear"), quantize_node(1), "QuantizeLinear", vec![v, s, z], q, opset));
    g.add_node(node(format!("{name}_DequantizeLinear"), dequantize_node(1), "DequantizeLinear", vec![q, s, z], dq, opset));
    dq
}

fn insert_unit(g: &mut Graph, u: &UnitPlan, ranges: &HashMap<ValueId, (f32, i8)>, dq_of: &mut HashMap<ValueId, ValueId>) {
    let n = u.node;
    // Input: already dequantized by an earlier unit's output, or quantized here.
    let x_now = g.node(n).inputs[0].expect("x");
    let from_dq = g.value(x_now).producer.is_some_and(|p| g.node(p).op_type == "DequantizeLinear");
    if !from_dq {
        let Some(&r) = ranges.get(&u.x) else { return };
        match dq_of.get(&u.x) {
            Some(&dq) => g.nodes.node_weight_mut(n).expect("node").inputs[0] = Some(dq),
            None => {
                let dq = insert_qdq(g, u.x, r, Some(n));
                dq_of.insert(u.x, dq);
            }
        }
    }
    // Weight: symmetric per output channel.
    let w = g.node(n).inputs[1].expect("w");
    let wt = g.value(w).constant.clone().expect("constant weight");
    let m = wt.shape()[u.w_axis];
    let inner: usize = wt.shape()[u.w_axis + 1..].iter().product();
    let wv = wt.to_f64_vec();
    let mut amax = vec![0f64; m];
    for (i, &v) in wv.iter().enumerate() {
        let c = (i / inner) % m;
        amax[c] = amax[c].max(v.abs());
    }
    let scale: Vec<f32> = amax.iter().map(|&a| if a > 0.0 { (a / 127.0) as f32 } else { 1.0 }).collect();
    let q: Vec<i8> =
        wv.iter().enumerate().map(|(i, &v)| (v / scale[(i / inner) % m] as f64).round().clamp(-127.0, 127.0) as i8).collect();
    let name = g.node(n).name.clone();
    let wq = g.add_constant(format!("{name}.weight_int8"), Tensor::from_vec(wt.shape(), q));
    let ws = g.add_constant(format!("{name}.weight_scale"), Tensor::from_vec(&[m], scale));
    let wz = g.add_constant(format!("{name}.weight_zero_point"), Tensor::from_vec(&[m], vec![0i8; m]));
    let wdq = g.add_value(format!("{name}.weight_dequantized"));
    let opset = 21.max(g.opsets.get("").copied().unwrap_or(1));
    g.add_node(node(format!("{name}.weight_DequantizeLinear"), dequantize_node(u.w_axis as i64), "DequantizeLinear", vec![wq, ws, wz], wdq, opset));
    g.nodes.node_weight_mut(n).expect("node").inputs[1] = Some(wdq);
    // Output.
    if let Some(y) = u.y {
        if let Some(&r) = ranges.get(&y) {
            let dq = insert_qdq(g, y, r, None);
            dq_of.insert(y, dq);
        }
    }
}

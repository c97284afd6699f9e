//! Control flow: `If`, `Loop`, `Scan`. Bodies are subgraphs ([`SubGraph`]) whose reads
//! of enclosing values are captures, passed as extra node inputs after the formal ones.
//!
//! The evaluator runs bodies with [`crate::eval::run`]. Static inference runs the
//! propagation pass on a copy of the body with its input types bound; a `Loop` whose
//! trip count depends on data has data-dependent output shapes.

use ndarray::{concatenate, ArrayD, Axis};

use super::util::{input, opt_input};
use super::{InferCtx, Op, Semantics};
use crate::error::{Error, OpError};
use crate::front::onnx::{import_subgraph, NodeCtx, SubGraph};
use crate::ir::{DType, Tensor, TypeInfo};
use crate::map_array;

#[derive(Clone, Debug)]
pub enum ControlOp {
    If { then_branch: Box<SubGraph>, else_branch: Box<SubGraph> },
    Loop { body: Box<SubGraph> },
    Scan(Box<Scan>),
}

#[derive(Clone, Debug)]
pub struct Scan {
    pub body: SubGraph,
    pub num_scan_inputs: usize,
    pub input_axes: Vec<i64>,
    pub input_directions: Vec<i64>,
    pub output_axes: Vec<i64>,
    pub output_directions: Vec<i64>,
}

pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    if !ctx.is_default_domain() {
        return None;
    }
    let body = |name: &str| -> Result<SubGraph, OpError> {
        let g = ctx.graph(name).ok_or_else(|| OpError::invalid(format!("required subgraph '{name}' is missing")))?;
        import_subgraph(ctx, g)
    };
    let op = match ctx.op_type {
        "If" => (|| {
            Ok(ControlOp::If { then_branch: Box::new(body("then_branch")?), else_branch: Box::new(body("else_branch")?) })
        })(),
        "Loop" => body("body").map(|b| ControlOp::Loop { body: Box::new(b) }),
        "Scan" if ctx.opset < 9 => Err(OpError::unsupported("Scan before opset 9 (batched form with sequence_lens)")),
        "Scan" => (|| {
            let b = body("body")?;
            let num_scan_inputs = ctx.required("num_scan_inputs", ctx.int("num_scan_inputs"))?;
            if num_scan_inputs < 1 || num_scan_inputs as usize > b.n_formal_inputs {
                return Err(OpError::invalid(format!("num_scan_inputs {num_scan_inputs} does not fit the body")));
            }
            let n_scan = num_scan_inputs as usize;
            let n_state = b.n_formal_inputs - n_scan;
            let n_scan_out = b.graph.outputs.len().checked_sub(n_state).ok_or_else(|| {
                OpError::invalid("the body has fewer outputs than state variables")
            })?;
            let list = |name: &str, n: usize| -> Result<Vec<i64>, OpError> {
                let v = ctx.ints(name)?.unwrap_or_else(|| vec![0; n]);
                if v.len() != n {
                    return Err(OpError::invalid(format!("{name} has {} entries, {n} expected", v.len())));
                }
                Ok(v)
            };
            Ok(ControlOp::Scan(Box::new(Scan {
                input_axes: list("scan_input_axes", n_scan)?,
                input_directions: list("scan_input_directions", n_scan)?,
                output_axes: list("scan_output_axes", n_scan_out)?,
                output_directions: list("scan_output_directions", n_scan_out)?,
                body: b,
                num_scan_inputs: n_scan,
            })))
        })(),
        _ => return None,
    };
    Some(op.map(Op::Control))
}

impl ControlOp {
    fn bodies(&self) -> Vec<&SubGraph> {
        match self {
            ControlOp::If { then_branch, else_branch } => vec![then_branch, else_branch],
            ControlOp::Loop { body } => vec![body],
            ControlOp::Scan(s) => vec![&s.body],
        }
    }

    /// Union of the bodies' captures, in first-seen order.
    pub fn captured_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for b in self.bodies() {
            for c in &b.captures {
                if !names.contains(c) {
                    names.push(c.clone());
                }
            }
        }
        names
    }

    /// Number of formal (ONNX) inputs: the node's inputs after them are captures.
    pub fn split<'a, T>(&self, inputs: &'a [T]) -> (&'a [T], &'a [T]) {
        let n = inputs.len() - self.captured_names().len().min(inputs.len());
        inputs.split_at(n)
    }

    /// The capture values a body needs, picked from the node's capture inputs.
    pub fn body_captures<T: Clone>(&self, body: &SubGraph, captured: &[T]) -> Vec<T> {
        let all = self.captured_names();
        body.captures
            .iter()
            .map(|c| captured[all.iter().position(|a| a == c).expect("body captures are in the union")].clone())
            .collect()
    }
}

fn to_op_error(e: Error) -> OpError {
    match e {
        Error::Node { source, node, .. } => match source {
            OpError::Unsupported(m) => OpError::Unsupported(format!("in node '{node}' of a subgraph: {m}")),
            OpError::DataDependent(m) => OpError::DataDependent(m),
            OpError::Invalid(m) => OpError::Invalid(format!("in node '{node}' of a subgraph: {m}")),
        },
        e if e.is_unsupported() => OpError::Unsupported(e.to_string()),
        e => OpError::Invalid(e.to_string()),
    }
}

/// Output types of a body for the given input types (formal then captures).
fn infer_body(body: &SubGraph, inputs: &[TypeInfo], consts: &[Option<&Tensor>]) -> Result<Vec<TypeInfo>, OpError> {
    let mut g = body.graph.clone();
    for ((&id, ty), c) in g.inputs.clone().iter().zip(inputs).zip(consts.iter().chain(std::iter::repeat(&None))) {
        match c {
            Some(t) => g.set_constant(id, std::sync::Arc::new((*t).clone())),
            None => g.value_mut(id).ty = Some(ty.clone()),
        }
    }
    crate::passes::propagate::propagate(&mut g).map_err(to_op_error)?;
    g.outputs
        .iter()
        .map(|&o| g.value(o).ty.clone().ok_or_else(|| OpError::invalid("a body output has no type")))
        .collect()
}

fn run_body(body: &SubGraph, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, OpError> {
    crate::eval::run(&body.graph, &inputs).map_err(to_op_error)
}

fn scalar_bool(t: &Tensor, what: &str) -> Result<bool, OpError> {
    if t.len() != 1 {
        return Err(OpError::invalid(format!("{what} must have one element, it has {}", t.len())));
    }
    Ok(t.to_f64_vec()[0] != 0.0)
}

/// Stacks per-iteration tensors along a new axis (Loop scan outputs).
fn stack(parts: &[Tensor], axis: usize) -> Result<Tensor, OpError> {
    let first = parts.first().ok_or_else(|| OpError::DataDependent("a loop that ran no iteration".into()))?;
    let expanded: Vec<Tensor> = parts
        .iter()
        .map(|t| {
            let mut shape = t.shape().to_vec();
            shape.insert(axis.min(shape.len()), 1);
            t.reshaped(&shape).expect("same count")
        })
        .collect();
    concat(&expanded, axis, first.dtype())
}

fn concat(parts: &[Tensor], axis: usize, dtype: DType) -> Result<Tensor, OpError> {
    if parts.iter().any(|p| p.dtype() != dtype || p.rank() != parts[0].rank()) {
        return Err(OpError::invalid("iterations produced scan outputs of different types"));
    }
    let first = &parts[0];
    Ok(map_array!(first, a => {
        let _ = a;
        let views: Vec<_> = parts.iter().map(|p| view_as(p, a)).collect();
        concatenate(Axis(axis), &views).map_err(|e| OpError::invalid(format!("scan outputs of different shapes: {e}")))?
    }))
}

/// `t`'s array viewed with the element type of `like` (same variant, checked by dtype).
fn view_as<'a, T: 'static>(t: &'a Tensor, _like: &ArrayD<T>) -> ndarray::ArrayViewD<'a, T> {
    let any: &dyn std::any::Any = crate::with_array!(t, a => a as &dyn std::any::Any);
    any.downcast_ref::<ArrayD<T>>().expect("same dtype").view()
}

impl Semantics for ControlOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let types: Vec<TypeInfo> = ctx.inputs.iter().map(|t| t.clone().unwrap_or(TypeInfo::new(DType::F32, vec![]))).collect();
        let (formal, captured) = self.split(&types);
        let (formal_c, captured_c) = self.split(ctx.consts);
        match self {
            ControlOp::If { then_branch, else_branch } => {
                let infer = |b: &SubGraph| infer_body(b, &self.body_captures(b, captured), &self.body_captures(b, captured_c));
                // With a constant condition only the taken branch must make sense for
                // these shapes (exports guard rank-specific code this way).
                if let Some(c) = formal_c.first().copied().flatten() {
                    return infer(if scalar_bool(c, "cond")? { then_branch } else { else_branch });
                }
                match (infer(then_branch), infer(else_branch)) {
                    (Ok(t), Ok(e)) if t == e => Ok(t),
                    (Err(e), _) | (_, Err(e)) if !matches!(e, OpError::Invalid(_)) => Err(e),
                    _ => Err(OpError::DataDependent("input 0 (cond): the branches differ in output types".into())),
                }
            }
            ControlOp::Loop { .. } if formal.len() < 2 => Err(OpError::invalid("Loop needs inputs M and cond (either may be empty)")),
            ControlOp::Scan(s) if formal.len() < s.num_scan_inputs => Err(OpError::invalid("Scan has fewer inputs than num_scan_inputs")),
            ControlOp::Loop { body } => {
                let trip = formal_c.first().copied().flatten();
                let has_cond = ctx.opt_input(1).is_some();
                let n_carried = formal.len().saturating_sub(2);
                let mut body_in = vec![TypeInfo::new(DType::I64, vec![]), TypeInfo::new(DType::Bool, vec![])];
                body_in.extend(formal[2..].iter().cloned());
                body_in.extend(self.body_captures(body, captured));
                let mut body_c: Vec<Option<&Tensor>> = vec![None; 2 + n_carried];
                body_c.extend(self.body_captures(body, captured_c));
                let outs = infer_body(body, &body_in, &body_c)?;
                if outs.len() < 1 + n_carried {
                    return Err(OpError::invalid("the loop body has too few outputs"));
                }
                if outs[1..1 + n_carried] != formal[2..] {
                    return Err(OpError::DataDependent("loop-carried values that change shape across iterations".into()));
                }
                let mut result: Vec<TypeInfo> = formal[2..].to_vec();
                let scan_outs = &outs[1 + n_carried..];
                if !scan_outs.is_empty() {
                    let Some(m) = trip.filter(|_| !has_cond) else {
                        return Err(OpError::DataDependent("input 0 (M) and 1 (cond): the iteration count".into()));
                    };
                    let m = m.to_i64_vec().and_then(|v| v.first().copied()).unwrap_or(0).max(0) as usize;
                    for s in scan_outs {
                        let mut shape = vec![m];
                        shape.extend(&s.shape);
                        result.push(TypeInfo::new(s.dtype, shape));
                    }
                }
                Ok(result)
            }
            ControlOp::Scan(s) => {
                let n_state = formal.len() - s.num_scan_inputs;
                let mut body_in: Vec<TypeInfo> = formal[..n_state].to_vec();
                let mut seq_len = None;
                for (k, t) in formal[n_state..].iter().enumerate() {
                    let axis = super::util::norm_axis(s.input_axes[k], t.rank())?;
                    let len = t.shape[axis];
                    if seq_len.is_some_and(|l| l != len) {
                        return Err(OpError::invalid("scan inputs have different sequence lengths"));
                    }
                    seq_len = Some(len);
                    let mut shape = t.shape.clone();
                    shape.remove(axis);
                    body_in.push(TypeInfo::new(t.dtype, shape));
                }
                body_in.extend(self.body_captures(&s.body, captured));
                let mut body_c: Vec<Option<&Tensor>> = vec![None; formal.len()];
                body_c.extend(self.body_captures(&s.body, captured_c));
                let outs = infer_body(&s.body, &body_in, &body_c)?;
                let len = seq_len.unwrap_or(0);
                let mut result: Vec<TypeInfo> = outs[..n_state].to_vec();
                for (k, o) in outs[n_state..].iter().enumerate() {
                    let axis = super::util::norm_axis(s.output_axes[k], o.rank() + 1)?;
                    let mut shape = o.shape.clone();
                    shape.insert(axis, len);
                    result.push(TypeInfo::new(o.dtype, shape));
                }
                Ok(result)
            }
        }
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (formal, captured) = self.split(inputs);
        let captured: Vec<Tensor> = captured.iter().map(|c| c.cloned().ok_or_else(|| OpError::invalid("missing capture"))).collect::<Result<_, _>>()?;
        match self {
            ControlOp::If { then_branch, else_branch } => {
                let branch = if scalar_bool(input(formal, 0)?, "cond")? { then_branch } else { else_branch };
                run_body(branch, self.body_captures(branch, &captured))
            }
            ControlOp::Loop { body } => {
                let max = opt_input(formal, 0).map(|t| t.to_i64_vec().and_then(|v| v.first().copied()).unwrap_or(0));
                let mut cond = match opt_input(formal, 1) {
                    Some(c) => scalar_bool(c, "cond")?,
                    None => true,
                };
                let mut carried: Vec<Tensor> = formal.iter().skip(2).map(|t| t.cloned().ok_or_else(|| OpError::invalid("missing loop-carried value"))).collect::<Result<_, _>>()?;
                let caps = self.body_captures(body, &captured);
                let mut scans: Vec<Vec<Tensor>> = Vec::new();
                let mut i: i64 = 0;
                while cond && max.is_none_or(|m| i < m) {
                    let mut args = vec![Tensor::scalar(i), Tensor::scalar(cond)];
                    args.extend(carried.iter().cloned());
                    args.extend(caps.iter().cloned());
                    let outs = run_body(body, args)?;
                    if outs.len() < 1 + carried.len() {
                        return Err(OpError::invalid("the loop body has too few outputs"));
                    }
                    cond = scalar_bool(&outs[0], "the body's condition output")?;
                    let n = carried.len();
                    carried = outs[1..1 + n].to_vec();
                    let rest = &outs[1 + n..];
                    if scans.is_empty() {
                        scans = vec![Vec::new(); rest.len()];
                    }
                    for (s, t) in scans.iter_mut().zip(rest) {
                        s.push(t.clone());
                    }
                    i += 1;
                    if i > 1 << 24 {
                        return Err(OpError::invalid("the loop ran more than 2^24 iterations"));
                    }
                }
                let mut result = carried;
                for s in scans {
                    result.push(stack(&s, 0)?);
                }
                Ok(result)
            }
            ControlOp::Scan(s) if formal.len() < s.num_scan_inputs => Err(OpError::invalid("Scan has fewer inputs than num_scan_inputs")),
            ControlOp::Scan(s) => {
                let n_state = formal.len() - s.num_scan_inputs;
                let mut state: Vec<Tensor> = formal[..n_state].iter().map(|t| t.cloned().ok_or_else(|| OpError::invalid("missing state"))).collect::<Result<_, _>>()?;
                let scan_in: Vec<&Tensor> = formal[n_state..].iter().map(|t| t.ok_or_else(|| OpError::invalid("missing scan input"))).collect::<Result<_, _>>()?;
                let mut axes = Vec::new();
                let mut len = 0;
                for (k, t) in scan_in.iter().enumerate() {
                    let axis = super::util::norm_axis(s.input_axes[k], t.rank())?;
                    len = t.shape()[axis];
                    axes.push(axis);
                }
                let caps = self.body_captures(&s.body, &captured);
                let mut outs_acc: Vec<Vec<Tensor>> = Vec::new();
                for it in 0..len {
                    let mut args = state.clone();
                    for (k, t) in scan_in.iter().enumerate() {
                        let idx = if s.input_directions[k] == 1 { len - 1 - it } else { it };
                        args.push(map_array!(*t, a => a.index_axis(Axis(axes[k]), idx).to_owned()));
                    }
                    args.extend(caps.iter().cloned());
                    let outs = run_body(&s.body, args)?;
                    state = outs[..n_state].to_vec();
                    if outs_acc.is_empty() {
                        outs_acc = vec![Vec::new(); outs.len() - n_state];
                    }
                    for (acc, t) in outs_acc.iter_mut().zip(&outs[n_state..]) {
                        acc.push(t.clone());
                    }
                }
                let mut result = state;
                for (k, mut parts) in outs_acc.into_iter().enumerate() {
                    if s.output_directions[k] == 1 {
                        parts.reverse();
                    }
                    let rank = parts.first().map(|p| p.rank()).unwrap_or(0);
                    let axis = super::util::norm_axis(s.output_axes[k], rank + 1)?;
                    result.push(stack(&parts, axis)?);
                }
                Ok(result)
            }
        }
    }
}

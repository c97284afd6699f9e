//! `ai.onnx.preview:FlexAttention`: 4D attention whose scores and probabilities may be
//! rewritten by user subgraphs (`score_mod`, `prob_mod`). The subgraphs are parsed into
//! typed ops once and run, node by node, by a small interpreter here.

use std::collections::HashMap;
use std::sync::Arc;

use onnx_protobuf::GraphProto;

use super::super::util::{expect_dtype, input, FLOATS};
use super::{f64_tensor, numel, softmax_in_place};
use crate::error::OpError;
use crate::front::onnx::{decode_tensor, NodeCtx, MAX_OPSET};
use crate::ir::{DType, Tensor, TypeInfo};
use crate::ops::{InferCtx, Op, Semantics};

#[derive(Clone, Debug)]
pub struct FlexAttention {
    scale: Option<f64>,
    /// Type the scores are computed in after Q·Kᵀ (`softmax_precision`); `None` =
    /// float32 for 16-bit inputs, else the input type.
    precision: Option<DType>,
    score_mod: Option<ModGraph>,
    prob_mod: Option<ModGraph>,
}

/// A one-input, one-output subgraph.
#[derive(Clone, Debug)]
pub struct ModGraph {
    input: String,
    output: String,
    initializers: Vec<(String, Arc<Tensor>)>,
    nodes: Vec<ModNode>,
}

#[derive(Clone, Debug)]
struct ModNode {
    op: Op,
    /// `None` for an omitted optional input.
    inputs: Vec<Option<String>>,
    outputs: Vec<String>,
}

impl FlexAttention {
    pub(super) fn parse(ctx: &NodeCtx) -> Result<FlexAttention, OpError> {
        let precision = match ctx.int("softmax_precision")? {
            None => None,
            Some(p) => Some(
                [DType::F32, DType::F16, DType::BF16, DType::F64]
                    .into_iter()
                    .find(|d| *d as i64 == p)
                    .ok_or_else(|| OpError::unsupported(format!("FlexAttention softmax_precision {p}")))?,
            ),
        };
        let graph = |name: &str| ctx.graph(name).map(|g| ModGraph::parse(g, ctx, name)).transpose();
        Ok(FlexAttention {
            scale: ctx.float("scale")?.map(f64::from),
            precision,
            score_mod: graph("score_mod")?,
            prob_mod: graph("prob_mod")?,
        })
    }

    /// Checks `Q [B, Hq, L, E]`, `K [B, Hkv, S, E]`, `V [B, Hkv, S, Ev]`; returns Y's shape.
    fn out_shape(q: &[usize], k: &[usize], v: &[usize]) -> Result<Vec<usize>, OpError> {
        let ok = q.len() == 4
            && k.len() == 4
            && v.len() == 4
            && k[0] == q[0]
            && v[0] == q[0]
            && k[1] == v[1]
            && k[1] > 0
            && q[1] % k[1] == 0
            && k[2] == v[2]
            && k[3] == q[3];
        if !ok {
            return Err(OpError::invalid(format!("FlexAttention: Q {q:?}, K {k:?}, V {v:?} do not fit")));
        }
        Ok(vec![q[0], q[1], q[2], v[3]])
    }

    pub(super) fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let (q, k, v) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
        expect_dtype("FlexAttention Q", q, FLOATS)?;
        Ok(vec![TypeInfo::new(v.dtype, Self::out_shape(&q.shape, &k.shape, &v.shape)?)])
    }

    pub(super) fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (q, k, v) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        let y_shape = Self::out_shape(q.shape(), k.shape(), v.shape())?;
        let (b, hq, l, e) = (q.shape()[0], q.shape()[1], q.shape()[2], q.shape()[3]);
        let (hkv, s, ev) = (k.shape()[1], k.shape()[2], v.shape()[3]);
        let group = hq / hkv;
        let compute = self.precision.unwrap_or(match q.dtype() {
            DType::F16 | DType::BF16 => DType::F32,
            d => d,
        });
        let scale = self.scale.unwrap_or(1.0 / (e as f64).sqrt());
        let (qv, kv, vv) = (q.to_f64_vec(), k.to_f64_vec(), v.to_f64_vec());
        let score_shape = [b, hq, l, s];
        let mut scores = vec![0.0; numel(&score_shape)?];
        for (idx, slot) in scores.iter_mut().enumerate() {
            let (j, i, h, bb) = (idx % s, idx / s % l, idx / (s * l) % hq, idx / (s * l * hq));
            let qrow = &qv[((bb * hq + h) * l + i) * e..][..e];
            let krow = &kv[((bb * hkv + h / group) * s + j) * e..][..e];
            *slot = qrow.iter().zip(krow).map(|(x, y)| x * y).sum::<f64>() * scale;
        }
        // The reference multiplies in Q's type, then moves to the compute type.
        let mut scores = f64_tensor(&score_shape, scores, q.dtype()).cast(compute);
        if let Some(g) = &self.score_mod {
            scores = g.run(scores)?.cast(compute);
        }
        let mut probs = scores.to_f64_vec();
        if s > 0 {
            probs.chunks_mut(s).for_each(softmax_in_place);
        }
        let mut probs = f64_tensor(&score_shape, probs, compute);
        if let Some(g) = &self.prob_mod {
            probs = g.run(probs)?.cast(compute);
        }
        let pv = probs.to_f64_vec();
        let mut y = vec![0.0; numel(&y_shape)?];
        for (idx, slot) in y.iter_mut().enumerate() {
            let (d, i, h, bb) = (idx % ev, idx / ev % l, idx / (ev * l) % hq, idx / (ev * l * hq));
            let prow = &pv[((bb * hq + h) * l + i) * s..][..s];
            *slot = (0..s).map(|j| prow[j] * vv[((bb * hkv + h / group) * s + j) * ev + d]).sum();
        }
        Ok(vec![f64_tensor(&y_shape, y, v.dtype())])
    }
}

impl ModGraph {
    /// Parses a modifier subgraph. The preview domain does not say which default-domain
    /// opset its subgraphs use: the newest edgec reads is assumed.
    fn parse(g: &GraphProto, ctx: &NodeCtx, attr: &str) -> Result<ModGraph, OpError> {
        let bad = |why: String| OpError::invalid(format!("FlexAttention {attr}: {why}"));
        let [input] = g.input.as_slice() else { return Err(bad("must have exactly one input".into())) };
        let [output] = g.output.as_slice() else { return Err(bad("must have exactly one output".into())) };
        let initializers = g
            .initializer
            .iter()
            .map(|t| decode_tensor(t, ctx.data_dir).map(|v| (t.name.clone(), Arc::new(v))).map_err(|e| bad(e.to_string())))
            .collect::<Result<_, _>>()?;
        let nodes = g
            .node
            .iter()
            .map(|n| {
                let sub = NodeCtx {
                    name: &n.name,
                    op_type: &n.op_type,
                    domain: &n.domain,
                    opset: MAX_OPSET,
                    inputs_present: n.input.iter().map(|s| !s.is_empty()).collect(),
                    outputs_present: n.output.iter().map(|s| !s.is_empty()).collect(),
                    attrs: &n.attribute,
                    data_dir: ctx.data_dir,
                    proto: n,
                };
                let op = crate::ops::parse(&sub).map_err(|e| match e {
                    OpError::Unsupported(m) => OpError::Unsupported(format!("FlexAttention {attr} node {}: {m}", n.op_type)),
                    other => bad(format!("node {}: {other}", n.op_type)),
                })?;
                let inputs = n.input.iter().map(|s| (!s.is_empty()).then(|| s.clone())).collect();
                Ok(ModNode { op, inputs, outputs: n.output.clone() })
            })
            .collect::<Result<_, OpError>>()?;
        Ok(ModGraph { input: input.name.clone(), output: output.name.clone(), initializers, nodes })
    }

    /// Runs the subgraph on `x`; the result must keep `x`'s shape.
    fn run(&self, x: Tensor) -> Result<Tensor, OpError> {
        let shape = x.shape().to_vec();
        let mut env: HashMap<&str, Arc<Tensor>> = self.initializers.iter().map(|(n, t)| (n.as_str(), t.clone())).collect();
        env.insert(&self.input, Arc::new(x));
        for node in &self.nodes {
            let args = node
                .inputs
                .iter()
                .map(|i| match i {
                    None => Ok(None),
                    Some(name) => env.get(name.as_str()).cloned().map(Some).ok_or_else(|| {
                        OpError::unsupported(format!("FlexAttention modifier reads '{name}', which is not computed inside it (outer-scope values)"))
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<Option<&Tensor>> = args.iter().map(|a| a.as_deref()).collect();
            let outs = node.op.eval(&refs)?;
            for (name, t) in node.outputs.iter().zip(outs) {
                if !name.is_empty() {
                    env.insert(name, Arc::new(t));
                }
            }
        }
        let out = env.remove(self.output.as_str()).ok_or_else(|| OpError::invalid(format!("FlexAttention modifier never computes '{}'", self.output)))?;
        if out.shape() != shape.as_slice() {
            return Err(OpError::invalid(format!("FlexAttention modifier changed the shape {shape:?} to {:?}", out.shape())));
        }
        Ok(Arc::unwrap_or_clone(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::constant::Constant;

    /// A score_mod that ignores the scores and returns a constant: only key 0 is kept.
    fn keep_first_key() -> ModGraph {
        let mask = Tensor::from_vec(&[1, 1, 1, 2], vec![0.0f32, f32::NEG_INFINITY]);
        ModGraph {
            input: "scores".into(),
            output: "out".into(),
            initializers: vec![],
            nodes: vec![ModNode { op: Op::Constant(Constant(Arc::new(mask))), inputs: vec![], outputs: vec!["out".into()] }],
        }
    }

    #[test]
    fn score_mod_rewrites_the_scores_before_softmax() {
        let flex = FlexAttention { scale: None, precision: None, score_mod: Some(keep_first_key()), prob_mod: None };
        let q = Tensor::from_vec(&[1, 1, 1, 2], vec![1.0f32, 2.0]);
        let k = Tensor::from_vec(&[1, 1, 2, 2], vec![3.0f32, 4.0, 5.0, 6.0]);
        let v = Tensor::from_vec(&[1, 1, 2, 1], vec![7.0f32, 8.0]);
        let y = flex.eval(&[Some(&q), Some(&k), Some(&v)]).unwrap();
        assert_eq!(y[0].to_f64_vec(), vec![7.0]);
    }

    #[test]
    fn modifier_reads_initializers_and_checks_the_shape() {
        let g = ModGraph {
            input: "x".into(),
            output: "c".into(),
            initializers: vec![("c".into(), Arc::new(Tensor::from_vec(&[2], vec![1.0f32, 2.0])))],
            nodes: vec![],
        };
        assert_eq!(g.run(Tensor::from_vec(&[2], vec![0.0f32, 0.0])).unwrap().to_f64_vec(), vec![1.0, 2.0]);
        assert!(g.run(Tensor::from_vec(&[3], vec![0.0f32; 3])).is_err());
    }
}

//! `ai.onnx.preview:FlexAttention`: 4D attention whose scores and probabilities may be
//! rewritten by user subgraphs (`score_mod`, `prob_mod`), imported like any subgraph and
//! run by the reference evaluator.

use onnx_protobuf::GraphProto;

use super::super::util::{expect_dtype, input, FLOATS};
use super::{f64_tensor, numel, softmax_in_place};
use crate::error::OpError;
use crate::front::onnx::{import_subgraph, NodeCtx, SubGraph};
use crate::ir::{DType, Tensor, TypeInfo};
use crate::ops::InferCtx;

#[derive(Clone, Debug)]
pub struct FlexAttention {
    scale: Option<f64>,
    /// Type the scores are computed in after Q·Kᵀ (`softmax_precision`); `None` =
    /// float32 for 16-bit inputs, else the input type.
    precision: Option<DType>,
    score_mod: Option<ModGraph>,
    prob_mod: Option<ModGraph>,
}

/// A one-input, one-output subgraph that reads nothing from outside.
#[derive(Clone, Debug)]
pub struct ModGraph(SubGraph);

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

    /// A node with these modifiers (each a one-input, one-output graph, no captures).
    #[cfg(test)]
    pub(crate) fn new(scale: Option<f64>, score_mod: Option<SubGraph>, prob_mod: Option<SubGraph>) -> FlexAttention {
        FlexAttention { scale, precision: None, score_mod: score_mod.map(ModGraph), prob_mod: prob_mod.map(ModGraph) }
    }

    pub(crate) fn scale(&self) -> Option<f64> {
        self.scale
    }
    /// The modifier subgraphs `(score_mod, prob_mod)`.
    pub(crate) fn mods(&self) -> (Option<&SubGraph>, Option<&SubGraph>) {
        (self.score_mod.as_ref().map(|m| &m.0), self.prob_mod.as_ref().map(|m| &m.0))
    }
    /// The type scores and probabilities are kept in for inputs of type `q`.
    pub(crate) fn compute_dtype(&self, q: DType) -> DType {
        self.precision.unwrap_or(match q {
            DType::F16 | DType::BF16 => DType::F32,
            d => d,
        })
    }

    /// Checks `Q [B, Hq, L, E]`, `K [B, Hkv, S, E]`, `V [B, Hkv, S, Ev]`; returns Y's shape.
    pub(crate) fn out_shape(q: &[usize], k: &[usize], v: &[usize]) -> Result<Vec<usize>, OpError> {
        let ok = q.len() == 4
            && k.len() == 4
            && v.len() == 4
            && k[0] == q[0]
            && v[0] == q[0]
            && k[1] == v[1]
            && k[1] > 0
            && q[1].is_multiple_of(k[1])
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
        let compute = self.compute_dtype(q.dtype());
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
    fn parse(g: &GraphProto, ctx: &NodeCtx, attr: &str) -> Result<ModGraph, OpError> {
        let sub = import_subgraph(ctx, g)?;
        if sub.n_formal_inputs != 1 || sub.graph.outputs.len() != 1 {
            return Err(OpError::invalid(format!("FlexAttention {attr} must have exactly one input and one output")));
        }
        if let Some(name) = sub.captures.first() {
            return Err(OpError::unsupported(format!("FlexAttention {attr} reads '{name}' from the enclosing graph")));
        }
        Ok(ModGraph(sub))
    }

    /// Runs the subgraph on `x`; the result must keep `x`'s shape.
    fn run(&self, x: Tensor) -> Result<Tensor, OpError> {
        let shape = x.shape().to_vec();
        let out = crate::eval::run(&self.0.graph, &[x])
            .map_err(|e| OpError::invalid(format!("FlexAttention modifier: {e}")))?
            .pop()
            .ok_or_else(|| OpError::invalid("FlexAttention modifier has no output"))?;
        if out.shape() != shape.as_slice() {
            return Err(OpError::invalid(format!("FlexAttention modifier changed the shape {shape:?} to {:?}", out.shape())));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Graph;

    /// A modifier whose output is the constant `c`, ignoring its input.
    fn constant_mod(c: Tensor) -> ModGraph {
        let mut graph = Graph::default();
        let input = graph.add_value("scores");
        graph.inputs.push(input);
        let out = graph.add_constant("out", c);
        graph.outputs.push(out);
        ModGraph(SubGraph { graph, n_formal_inputs: 1, captures: vec![] })
    }

    #[test]
    fn score_mod_rewrites_the_scores_before_softmax() {
        let mask = Tensor::from_vec(&[1, 1, 1, 2], vec![0.0f32, f32::NEG_INFINITY]);
        let flex = FlexAttention { scale: None, precision: None, score_mod: Some(constant_mod(mask)), prob_mod: None };
        let q = Tensor::from_vec(&[1, 1, 1, 2], vec![1.0f32, 2.0]);
        let k = Tensor::from_vec(&[1, 1, 2, 2], vec![3.0f32, 4.0, 5.0, 6.0]);
        let v = Tensor::from_vec(&[1, 1, 2, 1], vec![7.0f32, 8.0]);
        let y = flex.eval(&[Some(&q), Some(&k), Some(&v)]).unwrap();
        assert_eq!(y[0].to_f64_vec(), vec![7.0]);
    }

    #[test]
    fn modifier_must_keep_the_shape() {
        let g = constant_mod(Tensor::from_vec(&[2], vec![1.0f32, 2.0]));
        assert_eq!(g.run(Tensor::from_vec(&[2], vec![0.0f32, 0.0])).unwrap().to_f64_vec(), vec![1.0, 2.0]);
        assert!(g.run(Tensor::from_vec(&[3], vec![0.0f32; 3])).is_err());
    }
}

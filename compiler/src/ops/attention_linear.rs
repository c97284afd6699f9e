//! `LinearAttention` (opset 27): a recurrent state `S` of shape `[batch, kv_heads, d_k, d_v]`
//! updated token by token with one of four rules, read by each query head.

use super::super::util::{expect_dtype, input, opt_input};
use super::{f64_tensor, numel, opt_positive};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};
use crate::ops::InferCtx;

/// The recurrence: whether the old state decays by `exp(decay)` and whether the update
/// is delta-corrected (`beta * (v - Sᵀk)` instead of `v`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpdateRule {
    Linear,
    Gated,
    Delta,
    GatedDelta,
}

impl UpdateRule {
    fn gated(self) -> bool {
        matches!(self, UpdateRule::Gated | UpdateRule::GatedDelta)
    }
    fn delta(self) -> bool {
        matches!(self, UpdateRule::Delta | UpdateRule::GatedDelta)
    }
}

#[derive(Clone, Debug)]
pub struct LinearAttention {
    q_heads: usize,
    kv_heads: usize,
    /// `None` (or 0 in the file) means `1/sqrt(d_k)`.
    scale: Option<f64>,
    rule: UpdateRule,
}

const PAST: usize = 3;
const DECAY: usize = 4;
const BETA: usize = 5;

/// Sizes of one call.
pub(crate) struct Geom {
    pub(crate) batch: usize,
    pub(crate) steps: usize,
    pub(crate) d_k: usize,
    pub(crate) d_v: usize,
    /// `decay` gives one value per kv head (else one per key feature).
    pub(crate) decay_per_head: bool,
    /// `beta` gives one value per kv head (else one shared value).
    pub(crate) beta_per_head: bool,
}

impl LinearAttention {
    pub(super) fn parse(ctx: &NodeCtx) -> Result<LinearAttention, OpError> {
        let need = |n: &str| opt_positive(ctx, n)?.ok_or_else(|| OpError::invalid(format!("LinearAttention needs attribute '{n}'")));
        let (q_heads, kv_heads) = (need("q_num_heads")?, need("kv_num_heads")?);
        if q_heads % kv_heads != 0 {
            return Err(OpError::invalid("LinearAttention: q_num_heads must be a multiple of kv_num_heads"));
        }
        let rule = match ctx.string_or("update_rule", "gated_delta")?.as_str() {
            "linear" => UpdateRule::Linear,
            "gated" => UpdateRule::Gated,
            "delta" => UpdateRule::Delta,
            "gated_delta" => UpdateRule::GatedDelta,
            r => return Err(OpError::invalid(format!("LinearAttention: unknown update_rule '{r}'"))),
        };
        let scale = ctx.float_or("scale", 0.0)? as f64;
        Ok(LinearAttention { q_heads, kv_heads, scale: (scale != 0.0).then_some(scale), rule })
    }

    pub(crate) fn q_heads(&self) -> usize {
        self.q_heads
    }
    pub(crate) fn kv_heads(&self) -> usize {
        self.kv_heads
    }
    /// The score scale (`1/sqrt(d_k)` unless given).
    pub(crate) fn scale(&self, d_k: usize) -> f64 {
        self.scale.unwrap_or(1.0 / (d_k as f64).sqrt())
    }
    #[cfg(test)]
    pub(crate) fn new(q_heads: usize, kv_heads: usize, scale: Option<f64>, rule: UpdateRule) -> LinearAttention {
        LinearAttention { q_heads, kv_heads, scale, rule }
    }

    /// Sizes of a call with these input shapes (query, key, value, past_state, decay, beta).
    pub(crate) fn geometry(&self, shapes: [Option<&[usize]>; 6]) -> Result<Geom, OpError> {
        let bad = |why: String| OpError::invalid(format!("LinearAttention: {why}"));
        let [Some(q), Some(k), Some(v), past, decay, beta] = shapes else {
            return Err(bad("query, key and value are required".into()));
        };
        let (&[b, t, qh], &[kb, kt, kh], &[vb, vt, vh]) = (q, k, v) else {
            return Err(bad(format!("query/key/value must be 3D, got {q:?} {k:?} {v:?}")));
        };
        if (kb, kt, vb, vt) != (b, t, b, t) || qh % self.q_heads != 0 || vh % self.kv_heads != 0 {
            return Err(bad(format!("inconsistent query/key/value shapes {q:?} {k:?} {v:?}")));
        }
        let (d_k, d_v) = (qh / self.q_heads, vh / self.kv_heads);
        if kh != self.kv_heads * d_k {
            return Err(bad(format!("key hidden size {kh} must be kv_num_heads*d_k = {}", self.kv_heads * d_k)));
        }
        if self.rule.gated() != decay.is_some() || self.rule.delta() != beta.is_some() {
            return Err(bad(format!("update rule {:?} needs decay: {}, beta: {}", self.rule, self.rule.gated(), self.rule.delta())));
        }
        let decay_per_head = match decay {
            Some(&[db, dt, dl]) if (db, dt) == (b, t) && dl == self.kv_heads => true,
            Some(&[db, dt, dl]) if (db, dt) == (b, t) && dl == self.kv_heads * d_k => false,
            Some(d) => return Err(bad(format!("decay shape {d:?} is not [B, T, kv_heads or kv_heads*d_k]"))),
            None => false,
        };
        let beta_per_head = match beta {
            Some(&[bb, bt, bl]) if (bb, bt) == (b, t) && (bl == self.kv_heads || bl == 1) => bl == self.kv_heads,
            Some(s) => return Err(bad(format!("beta shape {s:?} is not [B, T, kv_heads or 1]"))),
            None => false,
        };
        if let Some(p) = past {
            if p != [b, self.kv_heads, d_k, d_v] {
                return Err(bad(format!("past_state {p:?} must be {:?}", [b, self.kv_heads, d_k, d_v])));
            }
        }
        Ok(Geom { batch: b, steps: t, d_k, d_v, decay_per_head, beta_per_head })
    }

    pub(super) fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let shapes: [Option<&[usize]>; 6] = std::array::from_fn(|i| ctx.opt_input(i).map(|t| t.shape.as_slice()));
        let g = self.geometry(shapes)?;
        let q = ctx.input(0)?;
        expect_dtype("LinearAttention query", q, &[DType::F32, DType::F16, DType::BF16])?;
        let state_dtype = ctx.opt_input(PAST).map_or(q.dtype, |p| p.dtype);
        Ok(vec![
            TypeInfo::new(q.dtype, vec![g.batch, g.steps, self.q_heads * g.d_v]),
            TypeInfo::new(state_dtype, vec![g.batch, self.kv_heads, g.d_k, g.d_v]),
        ])
    }

    pub(super) fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let shapes: [Option<&[usize]>; 6] = std::array::from_fn(|i| opt_input(inputs, i).map(|t| t.shape()));
        let g = self.geometry(shapes)?;
        let (q, k, v) = (input(inputs, 0)?.to_f64_vec(), input(inputs, 1)?.to_f64_vec(), input(inputs, 2)?.to_f64_vec());
        let decay = opt_input(inputs, DECAY).map(|t| t.to_f64_vec());
        let beta = opt_input(inputs, BETA).map(|t| t.to_f64_vec());
        let past = opt_input(inputs, PAST);
        let state_shape = [g.batch, self.kv_heads, g.d_k, g.d_v];
        let mut state = match past {
            Some(p) => p.to_f64_vec(),
            None => vec![0.0; numel(&state_shape)?],
        };
        let (kvh, dk, dv) = (self.kv_heads, g.d_k, g.d_v);
        let group = self.q_heads / kvh;
        let scale = self.scale(dk);
        let mut out = vec![0.0; numel(&[g.batch, g.steps, self.q_heads, dv])?];
        for b in 0..g.batch {
            for t in 0..g.steps {
                let bt = b * g.steps + t;
                for h in 0..kvh {
                    let s = &mut state[(b * kvh + h) * dk * dv..][..dk * dv];
                    let kt = &k[(bt * kvh + h) * dk..][..dk];
                    let vt = &v[(bt * kvh + h) * dv..][..dv];
                    if let Some(d) = &decay {
                        for i in 0..dk {
                            let gi = if g.decay_per_head { d[bt * kvh + h] } else { d[(bt * kvh + h) * dk + i] };
                            s[i * dv..][..dv].iter_mut().for_each(|x| *x *= gi.exp());
                        }
                    }
                    let update: Vec<f64> = match &beta {
                        Some(bv) => {
                            let be = if g.beta_per_head { bv[bt * kvh + h] } else { bv[bt] };
                            (0..dv).map(|m| be * (vt[m] - (0..dk).map(|i| s[i * dv + m] * kt[i]).sum::<f64>())).collect()
                        }
                        None => vt.to_vec(),
                    };
                    for i in 0..dk {
                        for m in 0..dv {
                            s[i * dv + m] += kt[i] * update[m];
                        }
                    }
                }
                for h in 0..self.q_heads {
                    let s = &state[(b * kvh + h / group) * dk * dv..][..dk * dv];
                    let qt = &q[(bt * self.q_heads + h) * dk..][..dk];
                    for m in 0..dv {
                        out[(bt * self.q_heads + h) * dv + m] = scale * (0..dk).map(|i| qt[i] * s[i * dv + m]).sum::<f64>();
                    }
                }
            }
        }
        let q_dtype = input(inputs, 0)?.dtype();
        let state_dtype = past.map_or(q_dtype, |p| p.dtype());
        Ok(vec![
            f64_tensor(&[g.batch, g.steps, self.q_heads * dv], out, q_dtype),
            f64_tensor(&state_shape, state, state_dtype),
        ])
    }
}

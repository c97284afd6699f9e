//! The attention family: `Attention` (opset 23/24), `RotaryEmbedding` (23),
//! `LinearAttention` (27, in `attention_linear.rs`) and `ai.onnx.preview:FlexAttention`
//! (in `attention_flex.rs`).
//!
//! All float math is done in f64 on row-major buffers and cast back to the output type
//! once, at the end: the reference implementation computes in the input type, and f64
//! stays within the conformance tolerance of it.

use super::util::{alloc_numel as numel, expect_dtype, input, opt_input, FLOATS};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};

#[path = "attention_linear.rs"]
mod linear;
pub use linear::{LinearAttention, UpdateRule};

#[path = "attention_flex.rs"]
mod flex;
pub use flex::FlexAttention;

#[cfg(test)]
#[path = "attention_fuzz.rs"]
mod fuzz;

#[derive(Clone, Debug)]
pub enum AttentionOp {
    Attention(Attention),
    RotaryEmbedding(Rotary),
    LinearAttention(LinearAttention),
    FlexAttention(FlexAttention),
}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    let op = if ctx.is("Attention") {
        Attention::parse(ctx).map(AttentionOp::Attention)
    } else if ctx.is("RotaryEmbedding") {
        Rotary::parse(ctx).map(AttentionOp::RotaryEmbedding)
    } else if ctx.is("LinearAttention") {
        LinearAttention::parse(ctx).map(AttentionOp::LinearAttention)
    } else if ctx.op_type == "FlexAttention" && ctx.domain == "ai.onnx.preview" {
        FlexAttention::parse(ctx).map(AttentionOp::FlexAttention)
    } else {
        return None;
    };
    Some(op.map(Op::Attention))
}

impl Semantics for AttentionOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        match self {
            AttentionOp::Attention(a) => a.infer(ctx),
            AttentionOp::FlexAttention(f) => f.infer(ctx),
            AttentionOp::RotaryEmbedding(r) => r.infer(ctx),
            AttentionOp::LinearAttention(l) => l.infer(ctx),
        }
    }
    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        match self {
            AttentionOp::Attention(a) => a.eval(inputs),
            AttentionOp::FlexAttention(f) => f.eval(inputs),
            AttentionOp::RotaryEmbedding(r) => r.eval(inputs),
            AttentionOp::LinearAttention(l) => l.eval(inputs),
        }
    }
}

/// f64 values written back as a tensor of `dtype`.
fn f64_tensor(shape: &[usize], data: Vec<f64>, dtype: DType) -> Tensor {
    Tensor::from_vec(shape, data).cast(dtype)
}

/// A positive count attribute (heads ...), `None` when absent.
fn opt_positive(ctx: &NodeCtx, name: &str) -> Result<Option<usize>, OpError> {
    match ctx.int(name)? {
        None => Ok(None),
        Some(v) if v > 0 => Ok(Some(v as usize)),
        Some(v) => Err(OpError::invalid(format!("attribute '{name}' must be positive, got {v}"))),
    }
}


// ---------------------------------------------------------------------------------
// Attention
// ---------------------------------------------------------------------------------

/// What the optional fourth output (`qk_matmul_output`) holds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QkOutput {
    /// Q·Kᵀ·scale, after softcap (modes 0 and 1: the reference softcaps in place).
    Scores,
    /// Scores plus the mask/causal bias (mode 2).
    Biased,
    /// The softmax probabilities (mode 3).
    Softmax,
}

#[derive(Clone, Debug)]
pub struct Attention {
    is_causal: bool,
    q_num_heads: Option<usize>,
    kv_num_heads: Option<usize>,
    qk_output: QkOutput,
    scale: Option<f64>,
    /// Applied as `softcap * tanh(x / softcap)` when positive.
    softcap: f64,
    /// Internal, never parsed: set by `passes::fuse_attention` for the decomposed chains
    /// it replaces. Stays `None`/`false` for ONNX `Attention` nodes.
    fused: FusedExtras,
}

/// What a decomposed attention chain does beyond ONNX `Attention`'s semantics, so the
/// fused node computes exactly what the chain did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FusedExtras {
    /// A bool `attn_mask` *selects* rather than adds: a score stays where the mask is
    /// `keep` and becomes `fill` elsewhere — `Where(cond, fill, scores)`. (ONNX adds
    /// -inf, which differs for a finite fill and for NaN scores under the mask.)
    pub select: Option<SelectMask>,
    /// Probabilities that are NaN become 0 before the weighted sum — the
    /// `Where(IsNaN(p), 0, p)` guard PyTorch's SDPA export puts after the softmax.
    pub nan_to_zero: bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SelectMask {
    pub fill: f64,
    pub keep: bool,
}

/// Input indices of `Attention`.
const ATT_MASK: usize = 3;
const ATT_PAST_K: usize = 4;
const ATT_PAST_V: usize = 5;
const ATT_NONPAD: usize = 6;

/// Every size of one Attention call, derived from the input shapes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AttGeom {
    /// Q/K/V are `[batch, seq, heads * head_size]` rather than `[batch, heads, seq, head_size]`.
    pub(crate) packed: bool,
    pub(crate) batch: usize,
    pub(crate) q_heads: usize,
    pub(crate) kv_heads: usize,
    pub(crate) q_seq: usize,
    pub(crate) kv_seq: usize,
    pub(crate) past_seq: usize,
    pub(crate) head_qk: usize,
    pub(crate) head_v: usize,
}

impl AttGeom {
    pub(crate) fn total_seq(&self) -> usize {
        self.past_seq + self.kv_seq
    }
    fn y_shape(&self) -> Vec<usize> {
        if self.packed {
            vec![self.batch, self.q_seq, self.q_heads * self.head_v]
        } else {
            vec![self.batch, self.q_heads, self.q_seq, self.head_v]
        }
    }
    fn present_shape(&self, head: usize) -> Vec<usize> {
        vec![self.batch, self.kv_heads, self.total_seq(), head]
    }
    fn qk_shape(&self) -> Vec<usize> {
        vec![self.batch, self.q_heads, self.q_seq, self.total_seq()]
    }
}

impl Attention {
    pub fn is_causal(&self) -> bool {
        self.is_causal
    }
    pub fn qk_output(&self) -> QkOutput {
        self.qk_output
    }
    /// The `scale` attribute, `None` for the default `1 / sqrt(head size)`.
    pub fn scale(&self) -> Option<f64> {
        self.scale
    }
    /// The `softcap` attribute (0 when off).
    pub fn softcap(&self) -> f64 {
        self.softcap
    }

    fn parse(ctx: &NodeCtx) -> Result<Attention, OpError> {
        let qk_output = match ctx.int_or("qk_matmul_output_mode", 0)? {
            0 | 1 => QkOutput::Scores,
            2 => QkOutput::Biased,
            3 => QkOutput::Softmax,
            m => return Err(OpError::invalid(format!("qk_matmul_output_mode {m} is not 0..3"))),
        };
        check_softmax_precision(ctx)?;
        Ok(Attention {
            is_causal: ctx.int_or("is_causal", 0)? != 0,
            q_num_heads: opt_positive(ctx, "q_num_heads")?,
            kv_num_heads: opt_positive(ctx, "kv_num_heads")?,
            qk_output,
            scale: ctx.float("scale")?.map(f64::from),
            softcap: ctx.float_or("softcap", 0.0)? as f64,
            fused: FusedExtras::default(),
        })
    }

    /// The fused node `passes::fuse_attention` makes from a decomposed chain: 4D
    /// `[batch, heads, seq, head]` inputs, an explicit scale, no causal flag or softcap.
    pub fn fused(scale: f64, extras: FusedExtras) -> Attention {
        Attention {
            is_causal: false,
            q_num_heads: None,
            kv_num_heads: None,
            qk_output: QkOutput::Scores,
            scale: Some(scale),
            softcap: 0.0,
            fused: extras,
        }
    }

    pub fn extras(&self) -> FusedExtras {
        self.fused
    }

    /// Checks the shapes of Q, K, V and the past cache, and derives every size.
    pub(crate) fn geometry(&self, q: &[usize], k: &[usize], v: &[usize], past_k: Option<&[usize]>, past_v: Option<&[usize]>) -> Result<AttGeom, OpError> {
        let bad = |why: &str| OpError::invalid(format!("Attention: {why} (Q {q:?}, K {k:?}, V {v:?})"));
        if q.len() != k.len() || q.len() != v.len() {
            return Err(bad("Q, K and V must have the same rank"));
        }
        let g = match q.len() {
            3 => {
                let (qh, kvh) = match (self.q_num_heads, self.kv_num_heads) {
                    (Some(a), Some(b)) => (a, b),
                    _ => return Err(bad("3D inputs need q_num_heads and kv_num_heads")),
                };
                if !q[2].is_multiple_of(qh) || !k[2].is_multiple_of(kvh) || !v[2].is_multiple_of(kvh) {
                    return Err(bad("hidden sizes must be multiples of the head counts"));
                }
                AttGeom { packed: true, batch: q[0], q_heads: qh, kv_heads: kvh, q_seq: q[1], kv_seq: k[1], past_seq: 0, head_qk: q[2] / qh, head_v: v[2] / kvh }
            }
            4 => {
                if k[1] != v[1] {
                    return Err(bad("K and V must have the same number of heads"));
                }
                AttGeom { packed: false, batch: q[0], q_heads: q[1], kv_heads: k[1], q_seq: q[2], kv_seq: k[2], past_seq: 0, head_qk: q[3], head_v: v[3] }
            }
            _ => return Err(bad("inputs must be 3D or 4D")),
        };
        let (k_seq, k_head, v_seq) = if g.packed { (k[1], k[2] / g.kv_heads, v[1]) } else { (k[2], k[3], v[2]) };
        if k[0] != g.batch || v[0] != g.batch {
            return Err(bad("batch sizes differ"));
        }
        if k_head != g.head_qk {
            return Err(bad("Q and K head sizes differ"));
        }
        if k_seq != v_seq {
            return Err(bad("K and V sequence lengths differ"));
        }
        if g.kv_heads == 0 || g.q_heads % g.kv_heads != 0 {
            return Err(bad("q_num_heads must be a multiple of kv_num_heads"));
        }
        let past_seq = match (past_k, past_v) {
            (None, None) => 0,
            (Some(pk), Some(pv)) => {
                let want_k = [g.batch, g.kv_heads, pk.get(2).copied().unwrap_or(0), g.head_qk];
                let want_v = [g.batch, g.kv_heads, want_k[2], g.head_v];
                if pk != want_k || pv != want_v {
                    return Err(bad(&format!("past_key {pk:?} / past_value {pv:?} do not match")));
                }
                want_k[2]
            }
            _ => return Err(bad("past_key and past_value must be given together")),
        };
        Ok(AttGeom { past_seq, ..g })
    }

    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let (q, k, v) = (ctx.input(0)?, ctx.input(1)?, ctx.input(2)?);
        for (name, t) in [("Q", q), ("K", k), ("V", v)] {
            expect_dtype(&format!("Attention {name}"), t, FLOATS)?;
        }
        let past_k = ctx.opt_input(ATT_PAST_K).map(|t| t.shape.as_slice());
        let past_v = ctx.opt_input(ATT_PAST_V).map(|t| t.shape.as_slice());
        let g = self.geometry(&q.shape, &k.shape, &v.shape, past_k, past_v)?;
        if let Some(m) = ctx.opt_input(ATT_MASK) {
            check_mask_shape(&m.shape, &g)?;
            if m.dtype.is_packed() {
                return Err(OpError::unsupported(format!("attn_mask of type {}", m.dtype)));
            }
            if self.fused.select.is_some() && m.dtype != DType::Bool {
                return Err(OpError::invalid("a selecting attn_mask must be bool"));
            }
        }
        if let Some(n) = ctx.opt_input(ATT_NONPAD) {
            if n.shape != [g.batch] || n.dtype != DType::I64 {
                return Err(OpError::invalid(format!("nonpad_kv_seqlen must be int64[{}], got {n}", g.batch)));
            }
        }
        let mut out = vec![
            TypeInfo::new(q.dtype, g.y_shape()),
            TypeInfo::new(k.dtype, g.present_shape(g.head_qk)),
            TypeInfo::new(v.dtype, g.present_shape(g.head_v)),
            TypeInfo::new(q.dtype, g.qk_shape()),
        ];
        out.truncate(ctx.n_outputs.clamp(1, 4));
        Ok(out)
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (q, k, v) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        let past_k = opt_input(inputs, ATT_PAST_K);
        let past_v = opt_input(inputs, ATT_PAST_V);
        let g = self.geometry(q.shape(), k.shape(), v.shape(), past_k.map(|t| t.shape()), past_v.map(|t| t.shape()))?;
        let qd = to_heads(&q.to_f64_vec(), &g, g.q_heads, g.q_seq, g.head_qk);
        let kd = to_heads(&k.to_f64_vec(), &g, g.kv_heads, g.kv_seq, g.head_qk);
        let vd = to_heads(&v.to_f64_vec(), &g, g.kv_heads, g.kv_seq, g.head_v);
        let present_k = concat_seq(past_k.map(|t| t.to_f64_vec()).as_deref(), &kd, &g, g.head_qk);
        let present_v = concat_seq(past_v.map(|t| t.to_f64_vec()).as_deref(), &vd, &g, g.head_v);
        let bias = self.bias(&g, opt_input(inputs, ATT_MASK), opt_input(inputs, ATT_NONPAD))?;

        let total = g.total_seq();
        let group = g.q_heads / g.kv_heads;
        let scale = self.scale.unwrap_or(1.0 / (g.head_qk as f64).sqrt());
        let mut y = vec![0.0; numel(&[g.batch, g.q_heads, g.q_seq, g.head_v])?];
        let mut qk_out = vec![0.0; numel(&g.qk_shape())?];
        let mut row = vec![0.0; total];
        for b in 0..g.batch {
            for h in 0..g.q_heads {
                let kvh = h / group;
                for i in 0..g.q_seq {
                    let qrow = &qd[((b * g.q_heads + h) * g.q_seq + i) * g.head_qk..][..g.head_qk];
                    let out_base = ((b * g.q_heads + h) * g.q_seq + i) * total;
                    for (j, r) in row.iter_mut().enumerate() {
                        let krow = &present_k[((b * g.kv_heads + kvh) * total + j) * g.head_qk..][..g.head_qk];
                        let mut s = qrow.iter().zip(krow).map(|(a, c)| a * c).sum::<f64>() * scale;
                        if self.softcap > 0.0 {
                            s = self.softcap * (s / self.softcap).tanh();
                        }
                        let biased = match self.fused.select {
                            Some(sel) => if bias.at(b, h, i, j) == 0.0 { s } else { sel.fill },
                            None => s + bias.at(b, h, i, j),
                        };
                        qk_out[out_base + j] = if self.qk_output == QkOutput::Scores { s } else { biased };
                        *r = biased;
                    }
                    softmax_in_place(&mut row);
                    if self.fused.nan_to_zero {
                        row.iter_mut().filter(|p| p.is_nan()).for_each(|p| *p = 0.0);
                    }
                    if self.qk_output == QkOutput::Softmax {
                        qk_out[out_base..out_base + total].copy_from_slice(&row);
                    }
                    for d in 0..g.head_v {
                        let acc: f64 = (0..total).map(|j| row[j] * present_v[((b * g.kv_heads + kvh) * total + j) * g.head_v + d]).sum();
                        let idx = if g.packed {
                            ((b * g.q_seq + i) * g.q_heads + h) * g.head_v + d
                        } else {
                            ((b * g.q_heads + h) * g.q_seq + i) * g.head_v + d
                        };
                        y[idx] = acc;
                    }
                }
            }
        }
        Ok(vec![
            f64_tensor(&g.y_shape(), y, q.dtype()),
            f64_tensor(&g.present_shape(g.head_qk), present_k, k.dtype()),
            f64_tensor(&g.present_shape(g.head_v), present_v, v.dtype()),
            f64_tensor(&g.qk_shape(), qk_out, q.dtype()),
        ])
    }

    /// The additive bias `[batch, q_heads, q_seq, total_seq]` from the mask, the causal
    /// flag and `nonpad_kv_seqlen`.
    fn bias(&self, g: &AttGeom, mask: Option<&Tensor>, nonpad: Option<&Tensor>) -> Result<Bias, OpError> {
        let total = g.total_seq();
        let shape = [g.batch, g.q_heads, g.q_seq, total];
        let mut data = vec![0.0; numel(&shape)?];
        if let Some(m) = mask {
            check_mask_shape(m.shape(), g)?;
            let is_bool = m.dtype() == DType::Bool;
            let vals = m.to_f64_vec();
            let ms = m.shape();
            // Right-aligned broadcast of the mask over the 4D bias; the missing tail of
            // the key axis is padding, masked out.
            let mut mdims = [1usize; 4];
            mdims[4 - ms.len()..].copy_from_slice(ms);
            let mlen = mdims[3];
            for (idx, slot) in data.iter_mut().enumerate() {
                let j = idx % total;
                let i = idx / total % g.q_seq;
                let h = idx / (total * g.q_seq) % g.q_heads;
                let b = idx / (total * g.q_seq * g.q_heads);
                *slot = if j >= mlen {
                    f64::NEG_INFINITY
                } else {
                    let pick = |x: usize, d: usize| if mdims[d] == 1 { 0 } else { x };
                    let mi = ((pick(b, 0) * mdims[1] + pick(h, 1)) * mdims[2] + pick(i, 2)) * mdims[3] + j;
                    let x = vals[mi];
                    if let Some(sel) = self.fused.select {
                        // Selecting: 0 keeps the score, anything else puts the fill.
                        if (x != 0.0) == sel.keep { 0.0 } else { f64::NEG_INFINITY }
                    } else if is_bool {
                        if x != 0.0 { 0.0 } else { f64::NEG_INFINITY }
                    } else {
                        x
                    }
                };
            }
        }
        if self.is_causal {
            for (idx, slot) in data.iter_mut().enumerate() {
                let (j, i) = (idx % total, idx / total % g.q_seq);
                if j > g.past_seq + i {
                    *slot += f64::NEG_INFINITY;
                }
            }
        }
        if let Some(n) = nonpad {
            let lens = n.to_i64_vec().ok_or_else(|| OpError::invalid("nonpad_kv_seqlen must be int64"))?;
            if lens.len() != g.batch {
                return Err(OpError::invalid("nonpad_kv_seqlen must have one entry per batch"));
            }
            for (idx, slot) in data.iter_mut().enumerate() {
                let (j, b) = (idx % total, idx / (total * g.q_seq * g.q_heads));
                if j as i64 >= lens[b] {
                    *slot += f64::NEG_INFINITY;
                }
            }
        }
        Ok(Bias { data, dims: shape })
    }
}

/// `softmax_precision` is only a precision hint: edgec computes the softmax in f64
/// whatever it says, but it must name a float type.
fn check_softmax_precision(ctx: &NodeCtx) -> Result<(), OpError> {
    match ctx.int("softmax_precision")? {
        Some(p) if ![DType::F32, DType::F16, DType::BF16, DType::F64].iter().any(|d| *d as i64 == p) => {
            Err(OpError::unsupported(format!("softmax_precision {p} (edgec handles float types)")))
        }
        _ => Ok(()),
    }
}

/// The attention bias, materialised in full.
struct Bias {
    data: Vec<f64>,
    dims: [usize; 4],
}

impl Bias {
    fn at(&self, b: usize, h: usize, i: usize, j: usize) -> f64 {
        let d = &self.dims;
        self.data[((b * d[1] + h) * d[2] + i) * d[3] + j]
    }
}

/// The mask must broadcast to `[batch, q_heads, q_seq, ≤ total_seq]`.
fn check_mask_shape(ms: &[usize], g: &AttGeom) -> Result<(), OpError> {
    let target = [g.batch, g.q_heads, g.q_seq, g.total_seq()];
    let ok = !ms.is_empty()
        && ms.len() <= 4
        && ms.iter().rev().zip(target.iter().rev()).enumerate().all(|(k, (&m, &t))| if k == 0 { m <= t && m > 0 } else { m == 1 || m == t });
    if ok {
        Ok(())
    } else {
        Err(OpError::invalid(format!("attn_mask of shape {ms:?} does not broadcast to {target:?}")))
    }
}

/// Q/K/V data as `[batch, heads, seq, head]`, unpacking the 3D layout when needed.
fn to_heads(data: &[f64], g: &AttGeom, heads: usize, seq: usize, head: usize) -> Vec<f64> {
    if !g.packed {
        return data.to_vec();
    }
    let mut out = vec![0.0; data.len()];
    for b in 0..g.batch {
        for s in 0..seq {
            for h in 0..heads {
                for d in 0..head {
                    out[((b * heads + h) * seq + s) * head + d] = data[((b * seq + s) * heads + h) * head + d];
                }
            }
        }
    }
    out
}

/// `past ++ new` along the sequence axis of `[batch, kv_heads, seq, head]` data.
fn concat_seq(past: Option<&[f64]>, new: &[f64], g: &AttGeom, head: usize) -> Vec<f64> {
    let Some(past) = past else { return new.to_vec() };
    let mut out = Vec::with_capacity(past.len() + new.len());
    for bh in 0..g.batch * g.kv_heads {
        out.extend_from_slice(&past[bh * g.past_seq * head..][..g.past_seq * head]);
        out.extend_from_slice(&new[bh * g.kv_seq * head..][..g.kv_seq * head]);
    }
    out
}

/// Numerically stable softmax; a row of only `-inf` becomes NaN, as in the reference.
fn softmax_in_place(row: &mut [f64]) {
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in row.iter_mut() {
        *x /= sum;
    }
}

// ---------------------------------------------------------------------------------
// RotaryEmbedding
// ---------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Rotary {
    /// Needed to split a 3D `[batch, seq, hidden]` input into heads.
    num_heads: Option<usize>,
    /// Leading features of each head that are rotated; `None` = the whole head.
    rotary_dim: Option<usize>,
    /// Pairs are (2i, 2i+1) rather than (i, i + dim/2).
    interleaved: bool,
}

/// Sizes of one RotaryEmbedding call, in `[batch, seq, heads, head]` terms.
pub(crate) struct RotGeom {
    pub(crate) batch: usize,
    pub(crate) seq: usize,
    pub(crate) heads: usize,
    pub(crate) head: usize,
    pub(crate) rot: usize,
    /// The input is `[batch, heads, seq, head]` (else `[batch, seq, heads*head]`).
    pub(crate) heads_first: bool,
}

impl Rotary {
    fn parse(ctx: &NodeCtx) -> Result<Rotary, OpError> {
        let rot = ctx.int_or("rotary_embedding_dim", 0)?;
        if rot < 0 {
            return Err(OpError::invalid("rotary_embedding_dim must not be negative"));
        }
        Ok(Rotary {
            num_heads: opt_positive(ctx, "num_heads")?,
            rotary_dim: if rot == 0 { None } else { Some(rot as usize) },
            interleaved: ctx.int_or("interleaved", 0)? != 0,
        })
    }

    /// Pairs are (2i, 2i+1) rather than (i, i + dim/2).
    pub fn interleaved(&self) -> bool {
        self.interleaved
    }

    pub(crate) fn geometry(&self, x: &[usize], cos: &[usize], sin: &[usize], pos: Option<&[usize]>) -> Result<RotGeom, OpError> {
        let g = match *x {
            [b, h, s, d] => RotGeom { batch: b, seq: s, heads: h, head: d, rot: 0, heads_first: true },
            [b, s, hidden] => {
                let h = self.num_heads.ok_or_else(|| OpError::invalid("RotaryEmbedding: a 3D input needs num_heads"))?;
                if hidden % h != 0 {
                    return Err(OpError::invalid(format!("RotaryEmbedding: hidden size {hidden} is not a multiple of num_heads {h}")));
                }
                RotGeom { batch: b, seq: s, heads: h, head: hidden / h, rot: 0, heads_first: false }
            }
            _ => return Err(OpError::invalid(format!("RotaryEmbedding: input must be 3D or 4D, got {x:?}"))),
        };
        let rot = self.rotary_dim.unwrap_or(g.head);
        if rot > g.head || !rot.is_multiple_of(2) {
            return Err(OpError::invalid(format!("RotaryEmbedding: rotary_embedding_dim {rot} must be even and at most the head size {}", g.head)));
        }
        let want_cache: Vec<usize> = match pos {
            Some(p) => {
                if p != [g.batch, g.seq] {
                    return Err(OpError::invalid(format!("RotaryEmbedding: position_ids {p:?} must be [{}, {}]", g.batch, g.seq)));
                }
                vec![cos.first().copied().unwrap_or(0), rot / 2]
            }
            None => vec![g.batch, g.seq, rot / 2],
        };
        if cos != want_cache.as_slice() || sin != want_cache.as_slice() {
            return Err(OpError::invalid(format!("RotaryEmbedding: cos/sin caches {cos:?}/{sin:?} must be {want_cache:?}")));
        }
        Ok(RotGeom { rot, ..g })
    }

    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        expect_dtype("RotaryEmbedding input", x, FLOATS)?;
        let pos = ctx.opt_input(3).map(|t| t.shape.as_slice());
        self.geometry(&x.shape, &ctx.input(1)?.shape, &ctx.input(2)?.shape, pos)?;
        Ok(vec![x.clone()])
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (x, cos, sin) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        let pos_t = opt_input(inputs, 3);
        let g = self.geometry(x.shape(), cos.shape(), sin.shape(), pos_t.map(|t| t.shape()))?;
        let pos = match pos_t {
            Some(t) => Some(t.to_i64_vec().ok_or_else(|| OpError::invalid("position_ids must be integers"))?),
            None => None,
        };
        let (xv, cv, sv) = (x.to_f64_vec(), cos.to_f64_vec(), sin.to_f64_vec());
        let half = g.rot / 2;
        let max_pos = cos.shape()[0];
        let mut out = xv.clone();
        for b in 0..g.batch {
            for s in 0..g.seq {
                // Row of the caches for this token.
                let row = match &pos {
                    Some(p) => {
                        let id = p[b * g.seq + s];
                        if id < 0 || id as usize >= max_pos {
                            return Err(OpError::invalid(format!("position id {id} is out of range 0..{max_pos}")));
                        }
                        id as usize
                    }
                    None => b * g.seq + s,
                };
                for h in 0..g.heads {
                    let base = if g.heads_first { ((b * g.heads + h) * g.seq + s) * g.head } else { ((b * g.seq + s) * g.heads + h) * g.head };
                    for i in 0..half {
                        let (c, sn) = (cv[row * half + i], sv[row * half + i]);
                        let (i1, i2) = if self.interleaved { (base + 2 * i, base + 2 * i + 1) } else { (base + i, base + half + i) };
                        let (x1, x2) = (xv[i1], xv[i2]);
                        out[i1] = c * x1 - sn * x2;
                        out[i2] = sn * x1 + c * x2;
                    }
                }
            }
        }
        Ok(vec![f64_tensor(x.shape(), out, x.dtype())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain() -> Attention {
        Attention { is_causal: false, q_num_heads: None, kv_num_heads: None, qk_output: QkOutput::Scores, scale: None, softcap: 0.0, fused: FusedExtras::default() }
    }

    #[test]
    fn fully_masked_row_is_nan_like_the_reference() {
        let mut row = [f64::NEG_INFINITY; 3];
        softmax_in_place(&mut row);
        assert!(row.iter().all(|x| x.is_nan()));
        let mut row = [1.0, 2.0, 3.0];
        softmax_in_place(&mut row);
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn causal_mask_is_offset_by_the_past_length() {
        let a = Attention { is_causal: true, ..plain() };
        let g = a.geometry(&[1, 1, 2, 4], &[1, 1, 2, 4], &[1, 1, 2, 4], Some(&[1, 1, 1, 4]), Some(&[1, 1, 1, 4])).unwrap();
        let bias = a.bias(&g, None, None).unwrap();
        // Query i sees keys 0..=past+i.
        assert_eq!(bias.at(0, 0, 0, 1), 0.0);
        assert_eq!(bias.at(0, 0, 0, 2), f64::NEG_INFINITY);
        assert_eq!(bias.at(0, 0, 1, 2), 0.0);
    }

    #[test]
    fn short_mask_pads_with_minus_infinity() {
        let a = plain();
        let g = a.geometry(&[1, 1, 1, 2], &[1, 1, 3, 2], &[1, 1, 3, 2], None, None).unwrap();
        let mask = Tensor::from_vec(&[1, 2], vec![true, false]);
        let bias = a.bias(&g, Some(&mask), None).unwrap();
        assert_eq!([bias.at(0, 0, 0, 0), bias.at(0, 0, 0, 1), bias.at(0, 0, 0, 2)], [0.0, f64::NEG_INFINITY, f64::NEG_INFINITY]);
    }

    #[test]
    fn rotary_interleaved_pairs_neighbours() {
        // A quarter turn maps each pair (a, b) to (-b, a).
        let r = Rotary { num_heads: None, rotary_dim: None, interleaved: true };
        let x = Tensor::from_vec(&[1, 1, 1, 4], vec![1.0f32, 2.0, 3.0, 4.0]);
        let cos = Tensor::from_vec(&[1, 1, 2], vec![0.0f32, 0.0]);
        let sin = Tensor::from_vec(&[1, 1, 2], vec![1.0f32, 1.0]);
        let y = r.eval(&[Some(&x), Some(&cos), Some(&sin)]).unwrap();
        assert_eq!(y[0].to_f64_vec(), vec![-2.0, 1.0, -4.0, 3.0]);
    }
}

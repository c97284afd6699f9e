//! The rnn family: the recurrent layers `RNN`, `GRU`, `LSTM` (one engine, three cells)
//! and `CausalConvWithState` (opset 27, a stateful depthwise causal convolution).
//!
//! Implemented from the ONNX spec (the Python reference covers only the forward
//! direction with default activations): both directions, activations with their
//! alpha/beta, clip, layout, sequence_lens, initial states and peepholes. Math is f64.

use super::util::{expect_dtype, input, opt_input, FLOATS};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};

#[derive(Clone, Debug)]
pub enum RnnOp {
    Recurrent(Recurrent),
    CausalConvWithState(CausalConv),
}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    let op = if ctx.is("RNN") || ctx.is("GRU") || ctx.is("LSTM") {
        Recurrent::parse(ctx).map(RnnOp::Recurrent)
    } else if ctx.is("CausalConvWithState") {
        CausalConv::parse(ctx).map(RnnOp::CausalConvWithState)
    } else {
        return None;
    };
    Some(op.map(Op::Rnn))
}

impl Semantics for RnnOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        match self {
            RnnOp::Recurrent(r) => r.infer(ctx),
            RnnOp::CausalConvWithState(c) => c.infer(ctx),
        }
    }
    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        match self {
            RnnOp::Recurrent(r) => r.eval(inputs),
            RnnOp::CausalConvWithState(c) => c.eval(inputs),
        }
    }
}

// ---------------------------------------------------------------------------------
// RNN / GRU / LSTM
// ---------------------------------------------------------------------------------

/// Which recurrent cell; gate order in W/R/B is the spec's (GRU `zrh`, LSTM `iofc`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    Rnn,
    Gru { linear_before_reset: bool },
    Lstm,
}

impl Cell {
    pub fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru { .. } => 3,
            Cell::Lstm => 4,
        }
    }
    /// Activation functions per direction (RNN f; GRU f, g; LSTM f, g, h).
    fn n_activations(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru { .. } => 2,
            Cell::Lstm => 3,
        }
    }
    fn default_activations(self) -> Vec<Act> {
        match self {
            Cell::Rnn => vec![Act::Tanh],
            Cell::Gru { .. } => vec![Act::Sigmoid, Act::Tanh],
            Cell::Lstm => vec![Act::Sigmoid, Act::Tanh, Act::Tanh],
        }
    }
}

/// An activation function of the recurrent ops, with its parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    Relu,
    Tanh,
    Sigmoid,
    Affine(f64, f64),
    LeakyRelu(f64),
    ThresholdedRelu(f64),
    ScaledTanh(f64, f64),
    HardSigmoid(f64, f64),
    Elu(f64),
    Softsign,
    Softplus,
}

impl Act {
    /// Reads one activation by name, taking its alpha/beta from the shared lists in order
    /// (each list is consumed only by the functions that have that parameter).
    fn parse(name: &str, alphas: &mut impl Iterator<Item = f64>, betas: &mut impl Iterator<Item = f64>) -> Result<Act, OpError> {
        let mut a = |d: f64| alphas.next().unwrap_or(d);
        Ok(match name.to_ascii_lowercase().as_str() {
            "relu" => Act::Relu,
            "tanh" => Act::Tanh,
            "sigmoid" => Act::Sigmoid,
            "affine" => Act::Affine(a(1.0), betas.next().unwrap_or(0.0)),
            "leakyrelu" => Act::LeakyRelu(a(0.01)),
            "thresholdedrelu" => Act::ThresholdedRelu(a(1.0)),
            "scaledtanh" => Act::ScaledTanh(a(1.0), betas.next().unwrap_or(1.0)),
            "hardsigmoid" => Act::HardSigmoid(a(0.2), betas.next().unwrap_or(0.5)),
            "elu" => Act::Elu(a(1.0)),
            "softsign" => Act::Softsign,
            "softplus" => Act::Softplus,
            n => return Err(OpError::unsupported(format!("recurrent activation '{n}'"))),
        })
    }

    fn apply(self, x: f64) -> f64 {
        match self {
            Act::Relu => x.max(0.0),
            Act::Tanh => x.tanh(),
            Act::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Act::Affine(a, b) => a * x + b,
            Act::LeakyRelu(a) => if x >= 0.0 { x } else { a * x },
            Act::ThresholdedRelu(a) => if x > a { x } else { 0.0 },
            Act::ScaledTanh(a, b) => a * (b * x).tanh(),
            Act::HardSigmoid(a, b) => (a * x + b).clamp(0.0, 1.0),
            Act::Elu(a) => if x >= 0.0 { x } else { a * (x.exp() - 1.0) },
            Act::Softsign => x / (1.0 + x.abs()),
            Act::Softplus => (1.0 + x.exp()).ln(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Direction {
    Forward,
    Reverse,
    Bidirectional,
}

impl Direction {
    fn count(self) -> usize {
        if self == Direction::Bidirectional { 2 } else { 1 }
    }
    /// Whether direction slot `d` walks the sequence backwards.
    fn reversed(self, d: usize) -> bool {
        self == Direction::Reverse || d == 1
    }
}

#[derive(Clone, Debug)]
pub struct Recurrent {
    cell: Cell,
    direction: Direction,
    /// `activations[d]`: the functions of direction `d`.
    activations: Vec<Vec<Act>>,
    clip: Option<f64>,
    hidden_size: Option<usize>,
    /// Layout 1: batch-major X, Y and states.
    batch_major: bool,
}

/// Input indices (all three ops share the first six; LSTM adds initial_c and P).
const IN_B: usize = 3;
const IN_SEQ_LENS: usize = 4;
const IN_H0: usize = 5;
const IN_C0: usize = 6;
const IN_P: usize = 7;

/// Sizes of one call.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RnnGeom {
    pub(crate) seq: usize,
    pub(crate) batch: usize,
    pub(crate) input: usize,
    pub(crate) hidden: usize,
    pub(crate) dirs: usize,
}

impl Recurrent {
    fn parse(ctx: &NodeCtx) -> Result<Recurrent, OpError> {
        let cell = match ctx.op_type {
            "RNN" => Cell::Rnn,
            "GRU" => Cell::Gru { linear_before_reset: ctx.int_or("linear_before_reset", 0)? != 0 },
            _ => Cell::Lstm,
        };
        let direction = match ctx.string_or("direction", "forward")?.as_str() {
            "forward" => Direction::Forward,
            "reverse" => Direction::Reverse,
            "bidirectional" => Direction::Bidirectional,
            d => return Err(OpError::invalid(format!("{}: unknown direction '{d}'", ctx.op_type))),
        };
        let dirs = direction.count();
        let per = cell.n_activations();
        let activations = match ctx.strings("activations")? {
            None => vec![cell.default_activations(); dirs],
            Some(names) => {
                if names.len() != per * dirs {
                    return Err(OpError::invalid(format!("{}: {} activations given, {} expected", ctx.op_type, names.len(), per * dirs)));
                }
                let alphas = ctx.floats("activation_alpha")?.unwrap_or_default();
                let betas = ctx.floats("activation_beta")?.unwrap_or_default();
                let (mut al, mut be) = (alphas.into_iter().map(f64::from), betas.into_iter().map(f64::from));
                let acts = names.iter().map(|n| Act::parse(n, &mut al, &mut be)).collect::<Result<Vec<_>, _>>()?;
                acts.chunks(per).map(|c| c.to_vec()).collect()
            }
        };
        if cell == Cell::Lstm && ctx.int_or("input_forget", 0)? != 0 {
            return Err(OpError::unsupported("LSTM input_forget=1 (coupled input and forget gates)"));
        }
        let clip = match ctx.float("clip")? {
            Some(c) if c > 0.0 => Some(c as f64),
            Some(c) => return Err(OpError::invalid(format!("{}: clip must be positive, got {c}", ctx.op_type))),
            None => None,
        };
        let hidden_size = match ctx.int("hidden_size")? {
            Some(h) if h > 0 => Some(h as usize),
            Some(h) => return Err(OpError::invalid(format!("{}: hidden_size must be positive, got {h}", ctx.op_type))),
            None => None,
        };
        let batch_major = match ctx.int_or("layout", 0)? {
            0 => false,
            1 => true,
            l => return Err(OpError::invalid(format!("{}: layout must be 0 or 1, got {l}", ctx.op_type))),
        };
        Ok(Recurrent { cell, direction, activations, clip, hidden_size, batch_major })
    }

    pub fn cell(&self) -> Cell {
        self.cell
    }
    /// Whether direction slot `d` walks the sequence backwards.
    pub fn reversed(&self, d: usize) -> bool {
        self.direction.reversed(d)
    }
    /// `activations()[d]`: the functions of direction `d`.
    pub fn activations(&self) -> &[Vec<Act>] {
        &self.activations
    }
    pub fn clip(&self) -> Option<f64> {
        self.clip
    }
    /// Layout 1: batch-major X, Y and states.
    pub fn batch_major(&self) -> bool {
        self.batch_major
    }

    /// Checks every input shape and derives the sizes.
    pub(crate) fn geometry(&self, shapes: &[Option<&[usize]>]) -> Result<RnnGeom, OpError> {
        let get = |i: usize| shapes.get(i).copied().flatten();
        let bad = |why: String| OpError::invalid(format!("{:?}: {why}", self.cell));
        let (Some(x), Some(w), Some(r)) = (get(0), get(1), get(2)) else {
            return Err(bad("X, W and R are required".into()));
        };
        let (&[a, b, input], &[wd, wg, wi], &[rd, rg, rh]) = (x, w, r) else {
            return Err(bad(format!("X {x:?}, W {w:?}, R {r:?} must be 3D")));
        };
        let (seq, batch) = if self.batch_major { (b, a) } else { (a, b) };
        let (dirs, g) = (self.direction.count(), self.cell.gates());
        let hidden = rh;
        if self.hidden_size.is_some_and(|h| h != hidden) || wd != dirs || rd != dirs || wi != input || wg != g * hidden || rg != g * hidden {
            return Err(bad(format!("W {w:?} / R {r:?} do not fit {dirs} direction(s), hidden size {hidden}, input size {input}")));
        }
        let state = if self.batch_major { [batch, dirs, hidden] } else { [dirs, batch, hidden] };
        let checks: [(usize, Vec<usize>); 5] = [
            (IN_B, vec![dirs, 2 * g * hidden]),
            (IN_SEQ_LENS, vec![batch]),
            (IN_H0, state.to_vec()),
            (IN_C0, state.to_vec()),
            (IN_P, vec![dirs, 3 * hidden]),
        ];
        for (i, want) in checks {
            if let Some(s) = get(i) {
                if s != want.as_slice() {
                    return Err(bad(format!("input {i} has shape {s:?}, expected {want:?}")));
                }
            }
        }
        Ok(RnnGeom { seq, batch, input, hidden, dirs })
    }

    fn out_shapes(&self, g: &RnnGeom) -> [Vec<usize>; 3] {
        let (y, state) = if self.batch_major {
            (vec![g.batch, g.seq, g.dirs, g.hidden], vec![g.batch, g.dirs, g.hidden])
        } else {
            (vec![g.seq, g.dirs, g.batch, g.hidden], vec![g.dirs, g.batch, g.hidden])
        };
        [y, state.clone(), state]
    }

    fn n_outputs(&self) -> usize {
        if self.cell == Cell::Lstm { 3 } else { 2 }
    }

    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        expect_dtype(&format!("{:?} X", self.cell), x, FLOATS)?;
        let shapes: Vec<Option<&[usize]>> = (0..8).map(|i| ctx.opt_input(i).map(|t| t.shape.as_slice())).collect();
        let g = self.geometry(&shapes)?;
        let n = ctx.n_outputs.clamp(1, self.n_outputs());
        Ok(self.out_shapes(&g).into_iter().take(n).map(|s| TypeInfo::new(x.dtype, s)).collect())
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let shapes: Vec<Option<&[usize]>> = (0..8).map(|i| opt_input(inputs, i).map(|t| t.shape())).collect();
        let g = self.geometry(&shapes)?;
        let x = input(inputs, 0)?;
        let vals = |i: usize| opt_input(inputs, i).map(|t| t.to_f64_vec());
        let seq_lens: Vec<usize> = match opt_input(inputs, IN_SEQ_LENS) {
            Some(t) => {
                let v = t.to_i64_vec().ok_or_else(|| OpError::invalid("sequence_lens must be integers"))?;
                v.iter()
                    .map(|&l| if l >= 0 && l as usize <= g.seq { Ok(l as usize) } else { Err(OpError::invalid(format!("sequence length {l} is out of range 0..={}", g.seq))) })
                    .collect::<Result<_, _>>()?
            }
            None => vec![g.seq; g.batch],
        };
        let data = Data {
            x: x.to_f64_vec(),
            w: input(inputs, 1)?.to_f64_vec(),
            r: input(inputs, 2)?.to_f64_vec(),
            b: vals(IN_B),
            h0: vals(IN_H0),
            c0: vals(IN_C0),
            p: vals(IN_P),
        };
        let [ys, hs, cs] = self.out_shapes(&g);
        let mut y = vec![0.0; g.seq * g.dirs * g.batch * g.hidden];
        let mut yh = vec![0.0; g.dirs * g.batch * g.hidden];
        let mut yc = yh.clone();
        for d in 0..g.dirs {
            for b in 0..g.batch {
                let (h, c) = self.run(&g, &data, d, b, seq_lens[b], |t, h| {
                    let at = self.y_index(&g, t, d, b);
                    y[at..at + g.hidden].copy_from_slice(h);
                });
                let at = self.state_index(&g, d, b);
                yh[at..at + g.hidden].copy_from_slice(&h);
                yc[at..at + g.hidden].copy_from_slice(&c);
            }
        }
        let dt = x.dtype();
        let mut out = vec![to_tensor(&ys, y, dt), to_tensor(&hs, yh, dt), to_tensor(&cs, yc, dt)];
        out.truncate(self.n_outputs());
        Ok(out)
    }

    fn y_index(&self, g: &RnnGeom, t: usize, d: usize, b: usize) -> usize {
        let i = if self.batch_major { (b * g.seq + t) * g.dirs + d } else { (t * g.dirs + d) * g.batch + b };
        i * g.hidden
    }

    fn state_index(&self, g: &RnnGeom, d: usize, b: usize) -> usize {
        let i = if self.batch_major { b * g.dirs + d } else { d * g.batch + b };
        i * g.hidden
    }

    /// Runs direction `d` over the first `len` steps of batch entry `b`; `emit(t, h)`
    /// receives each step's hidden state. Returns the final (h, c).
    fn run(&self, g: &RnnGeom, data: &Data, d: usize, b: usize, len: usize, mut emit: impl FnMut(usize, &[f64])) -> (Vec<f64>, Vec<f64>) {
        let hid = g.hidden;
        let gates = self.cell.gates();
        let at = self.state_index(g, d, b);
        let mut h = data.h0.as_ref().map_or(vec![0.0; hid], |v| v[at..at + hid].to_vec());
        let mut c = data.c0.as_ref().map_or(vec![0.0; hid], |v| v[at..at + hid].to_vec());
        let w = &data.w[d * gates * hid * g.input..][..gates * hid * g.input];
        let r = &data.r[d * gates * hid * hid..][..gates * hid * hid];
        let zero = vec![0.0; 2 * gates * hid];
        let bias = data.b.as_ref().map_or(&zero[..], |v| &v[d * 2 * gates * hid..][..2 * gates * hid]);
        let (wb, rb) = bias.split_at(gates * hid);
        let zp = vec![0.0; 3 * hid];
        let p = data.p.as_ref().map_or(&zp[..], |v| &v[d * 3 * hid..][..3 * hid]);
        let acts = &self.activations[d];
        let clip = |v: f64| self.clip.map_or(v, |cl| v.clamp(-cl, cl));
        for s in 0..len {
            let t = if self.direction.reversed(d) { len - 1 - s } else { s };
            let xi = if self.batch_major { (b * g.seq + t) * g.input } else { (t * g.batch + b) * g.input };
            let xt = &data.x[xi..xi + g.input];
            // Per gate row k: W·x + Wb and R·h + Rb, kept apart for GRU's reset gate.
            let wx: Vec<f64> = (0..gates * hid).map(|k| dot(&w[k * g.input..][..g.input], xt) + wb[k]).collect();
            let rh: Vec<f64> = (0..gates * hid).map(|k| dot(&r[k * hid..][..hid], &h) + rb[k]).collect();
            h = match self.cell {
                Cell::Rnn => (0..hid).map(|j| acts[0].apply(clip(wx[j] + rh[j]))).collect(),
                Cell::Gru { linear_before_reset } => {
                    let z: Vec<f64> = (0..hid).map(|j| acts[0].apply(clip(wx[j] + rh[j]))).collect();
                    let rs: Vec<f64> = (0..hid).map(|j| acts[0].apply(clip(wx[hid + j] + rh[hid + j]))).collect();
                    let rh_h = &r[2 * hid * hid..];
                    (0..hid)
                        .map(|j| {
                            let pre = if linear_before_reset {
                                wx[2 * hid + j] + rs[j] * rh[2 * hid + j]
                            } else {
                                let reset_h: f64 = (0..hid).map(|k| rh_h[j * hid + k] * rs[k] * h[k]).sum();
                                wx[2 * hid + j] + reset_h + rb[2 * hid + j]
                            };
                            let cand = acts[1].apply(clip(pre));
                            (1.0 - z[j]) * cand + z[j] * h[j]
                        })
                        .collect()
                }
                Cell::Lstm => {
                    let pre = |gate: usize, j: usize| wx[gate * hid + j] + rh[gate * hid + j];
                    let mut hn = vec![0.0; hid];
                    for j in 0..hid {
                        let i = acts[0].apply(clip(pre(0, j) + p[j] * c[j]));
                        let f = acts[0].apply(clip(pre(2, j) + p[2 * hid + j] * c[j]));
                        let cand = acts[1].apply(clip(pre(3, j)));
                        c[j] = f * c[j] + i * cand;
                        let o = acts[0].apply(clip(pre(1, j) + p[hid + j] * c[j]));
                        hn[j] = o * acts[2].apply(c[j]);
                    }
                    hn
                }
            };
            emit(t, &h);
        }
        (h, c)
    }
}

/// The inputs of one recurrent call, as f64.
struct Data {
    x: Vec<f64>,
    w: Vec<f64>,
    r: Vec<f64>,
    b: Option<Vec<f64>>,
    h0: Option<Vec<f64>>,
    c0: Option<Vec<f64>>,
    p: Option<Vec<f64>>,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn to_tensor(shape: &[usize], data: Vec<f64>, dtype: DType) -> Tensor {
    Tensor::from_vec(shape, data).cast(dtype)
}

// ---------------------------------------------------------------------------------
// CausalConvWithState
// ---------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct CausalConv {
    /// Apply SiLU (`x * sigmoid(x)`, alias swish) to the convolution output.
    silu: bool,
}

/// Sizes `(batch, channels, length, kernel)` of one call.
pub(crate) type ConvGeom = (usize, usize, usize, usize);

impl CausalConv {
    fn parse(ctx: &NodeCtx) -> Result<CausalConv, OpError> {
        let silu = match ctx.string_or("activation", "none")?.as_str() {
            "none" => false,
            "silu" | "swish" => true,
            a => return Err(OpError::invalid(format!("CausalConvWithState: unknown activation '{a}'"))),
        };
        Ok(CausalConv { silu })
    }

    #[cfg(test)]
    pub(crate) fn new(silu: bool) -> CausalConv {
        CausalConv { silu }
    }

    pub(crate) fn silu(&self) -> bool {
        self.silu
    }

    /// `(batch, channels, length, kernel)` for the shapes of (input, weight, bias, past_state).
    pub(crate) fn geometry(shapes: [Option<&[usize]>; 4]) -> Result<ConvGeom, OpError> {
        let bad = |why: String| OpError::invalid(format!("CausalConvWithState: {why}"));
        let [Some(x), Some(w), bias, past] = shapes else {
            return Err(bad("input and weight are required".into()));
        };
        let (&[b, c, l], &[wc, one, k]) = (x, w) else {
            return Err(bad(format!("input {x:?} and weight {w:?} must be 3D")));
        };
        if wc != c || one != 1 || k == 0 {
            return Err(bad(format!("weight {w:?} must be [{c}, 1, k>0]")));
        }
        if bias.is_some_and(|s| s != [c]) || past.is_some_and(|s| s != [b, c, k - 1]) {
            return Err(bad(format!("bias {bias:?} / past_state {past:?} must be [{c}] / [{b}, {c}, {}]", k - 1)));
        }
        Ok((b, c, l, k))
    }

    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        expect_dtype("CausalConvWithState input", x, FLOATS)?;
        let (b, c, l, k) = Self::geometry(std::array::from_fn(|i| ctx.opt_input(i).map(|t| t.shape.as_slice())))?;
        Ok(vec![TypeInfo::new(x.dtype, vec![b, c, l]), TypeInfo::new(x.dtype, vec![b, c, k - 1])])
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (b, c, l, k) = Self::geometry(std::array::from_fn(|i| opt_input(inputs, i).map(|t| t.shape())))?;
        let x = input(inputs, 0)?;
        let (xv, wv) = (x.to_f64_vec(), input(inputs, 1)?.to_f64_vec());
        let bias = opt_input(inputs, 2).map(|t| t.to_f64_vec());
        let past = opt_input(inputs, 3).map(|t| t.to_f64_vec());
        let padded_len = l + k - 1;
        let mut out = Vec::with_capacity(b * c * l);
        let mut state = Vec::with_capacity(b * c * (k - 1));
        for bc in 0..b * c {
            // The past k-1 positions (zeros when absent), then this input.
            let mut padded: Vec<f64> = past.as_ref().map_or(vec![0.0; k - 1], |p| p[bc * (k - 1)..][..k - 1].to_vec());
            padded.extend_from_slice(&xv[bc * l..][..l]);
            let ch = bc % c;
            let w = &wv[ch * k..][..k];
            let bias_c = bias.as_ref().map_or(0.0, |v| v[ch]);
            out.extend((0..l).map(|t| dot(&padded[t..t + k], w) + bias_c));
            state.extend_from_slice(&padded[padded_len - (k - 1)..]);
        }
        let dt = x.dtype();
        // The reference rounds the convolution to the input type before the activation.
        let conv = to_tensor(&[b, c, l], out, dt);
        let output = if self.silu { to_tensor(&[b, c, l], conv.to_f64_vec().into_iter().map(|v| v / (1.0 + (-v).exp())).collect(), dt) } else { conv };
        Ok(vec![output, to_tensor(&[b, c, k - 1], state, dt)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An identity-like RNN (W = 1, R = 0, Affine activation) makes outputs readable.
    fn echo(direction: Direction) -> Recurrent {
        let dirs = direction.count();
        Recurrent { cell: Cell::Rnn, direction, activations: vec![vec![Act::Affine(1.0, 0.0)]; dirs], clip: None, hidden_size: Some(1), batch_major: false }
    }

    #[test]
    fn reverse_direction_respects_sequence_lengths() {
        let x = Tensor::from_vec(&[3, 2, 1], vec![1.0f32, 10.0, 2.0, 20.0, 3.0, 30.0]);
        let w = Tensor::from_vec(&[1, 1, 1], vec![1.0f32]);
        let r = Tensor::from_vec(&[1, 1, 1], vec![0.0f32]);
        let lens = Tensor::from_vec(&[2], vec![3i32, 2]);
        let out = echo(Direction::Reverse).eval(&[Some(&x), Some(&w), Some(&r), None, Some(&lens)]).unwrap();
        // Y is [seq, dirs, batch, hidden]: steps past a sequence's end stay zero.
        assert_eq!(out[0].to_f64_vec(), vec![1.0, 10.0, 2.0, 20.0, 3.0, 0.0]);
        // A reverse pass ends at t = 0.
        assert_eq!(out[1].to_f64_vec(), vec![1.0, 10.0]);
    }

    #[test]
    fn activation_parameters_are_consumed_in_order() {
        let (mut a, mut b) = ([0.5, 0.25].into_iter(), [2.0].into_iter());
        assert_eq!(Act::parse("LeakyRelu", &mut a, &mut b).unwrap(), Act::LeakyRelu(0.5));
        assert_eq!(Act::parse("Tanh", &mut a, &mut b).unwrap(), Act::Tanh);
        assert_eq!(Act::parse("HardSigmoid", &mut a, &mut b).unwrap(), Act::HardSigmoid(0.25, 2.0));
    }
}

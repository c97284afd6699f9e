//! Weight-only block quantization (`--quantize int4` → Q4_0, `--quantize int8-weights`
//! → Q8_0): MatMul/Gemm weights and Gather tables that are float32 constants become
//! packed `uint8` constants read by `QMatMul` / `QGather` (ops/blockquant.rs);
//! activations stay float32.
//!
//! Which weights qualify: a constant of at least [`MIN_ELEMENTS`] float32 values that is
//! MatMul's or Gemm's B operand (2-D; Gemm without transA) or the data of a Gather on
//! axis 0 (2-D), whose reduction length — K for products, the row length for a table —
//! is a multiple of 32. Blocks run along that axis, so MatMul's `B [K, N]` is
//! transposed at compile time into `N` rows of `K`. Everything else stays float and the
//! summary says why.
//!
//! With calibration inputs, MatMul/Gemm weights are rounded with GPTQ (passes/gptq.rs):
//! same format, codes chosen so the layer's outputs on the calibration activations move
//! least. Gather tables (no activations to weigh by) and all weights without
//! calibration data are rounded plainly, as llama.cpp's reference quantizer does.
//!
//! The packed form is shared: two uses whose rows hold the same floats (a tied
//! embedding: Gather on `W` and a MatMul on `W^T`, or Gemm with transB on `W`) get the
//! same packed constant, stored once.

use std::collections::HashMap;

use crate::error::Result;
use crate::ir::{DType, Graph, NodeId, Tensor, ValueId};
use crate::ops::blockquant::{BlockQuantOp, DOMAIN};
use crate::ops::blockquant_format::{pack_searched, BlockFormat};

use crate::ops::index::IndexOp;
use crate::ops::linalg::LinalgOp;
use crate::ops::Op;

/// Smaller weights stay float: their bytes do not matter and their precision might.
pub const MIN_ELEMENTS: usize = 1024;

/// One weight use the pass looked at.
#[derive(Clone, Debug)]
pub struct WeightUse {
    pub node: String,
    pub weight: String,
    /// `Err(reason)` when it stayed float.
    pub outcome: std::result::Result<BlockFormat, String>,
}

/// What the pass did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub uses: Vec<WeightUse>,
    /// Bytes of the constants the graph reads, before and after.
    pub weight_bytes_before: usize,
    pub weight_bytes_after: usize,
    /// Weight uses rounded with GPTQ (the rest plainly).
    pub gptq: usize,
}

impl Summary {
    pub fn quantized(&self) -> usize {
        self.uses.iter().filter(|u| u.outcome.is_ok()).count()
    }
}

/// Bytes of the constants `g` reads.
pub fn constant_bytes(g: &Graph) -> usize {
    g.used_constants().iter().map(|&v| g.value(v).constant.as_ref().map_or(0, |t| t.byte_len())).sum()
}

/// A candidate: the node, its weight input slot, and the weight as rows of the
/// reduction axis.
struct Candidate {
    node: NodeId,
    slot: usize,
    rows: usize,
    k: usize,
    /// Row-major `[rows, k]`.
    data: Vec<f32>,
    op: BlockQuantOp,
}

/// Quantizes the qualifying weights of `g` into `format`; `calibration` (input sets of
/// `g`, possibly none) selects GPTQ rounding for MatMul/Gemm weights.
pub fn quantize_weights(g: &mut Graph, format: BlockFormat, calibration: &[Vec<Tensor>]) -> Result<Summary> {
    let mut summary = Summary { weight_bytes_before: constant_bytes(g), ..Default::default() };
    let nodes: Vec<NodeId> = g.topo_order().unwrap_or_else(|_| g.nodes.node_indices().collect());
    let acts = activations(g, &nodes, format, calibration)?;
    // Packed constants by content: (rows, k, f32 bits) → value.
    let mut packed: HashMap<(usize, usize, Vec<u32>), ValueId> = HashMap::new();
    for n in nodes {
        let cand = match candidate(g, n, format) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err((weight, why)) => {
                summary.uses.push(WeightUse { node: g.node(n).name.clone(), weight, outcome: Err(why) });
                continue;
            }
        };
        let weight_name = g.node(n).inputs[cand.slot].map(|v| g.value(v).name.clone()).unwrap_or_default();
        let key = (cand.rows, cand.k, cand.data.iter().map(|x| x.to_bits()).collect::<Vec<u32>>());
        let v = match packed.get(&key) {
            Some(&v) => v,
            None => match packed_bytes(format, &cand, &acts, g.node(n)) {
                Ok(bytes) => {
                    let t = Tensor::from_vec(&[cand.rows, format.row_bytes(cand.k)], bytes);
                    let v = g.add_constant(format!("{weight_name}.{}", format.name()), t);
                    packed.insert(key, v);
                    v
                }
                Err(e) => {
                    summary.uses.push(WeightUse { node: g.node(n).name.clone(), weight: weight_name, outcome: Err(e.to_string()) });
                    continue;
                }
            },
        };
        let node = &mut g.nodes[cand.node];
        node.inputs[cand.slot] = Some(v);
        node.op_type = cand.op.op_type().to_string();
        node.domain = DOMAIN.to_string();
        node.op = Op::BlockQuant(cand.op);
        summary.uses.push(WeightUse { node: node.name.clone(), weight: weight_name, outcome: Ok(format) });
        if cand.slot == 1 && acts.contains_key(&g.node(n).inputs[0].unwrap_or(ValueId(u32::MAX))) {
            summary.gptq += 1;
        }
    }
    summary.weight_bytes_after = constant_bytes(g);
    Ok(summary)
}

/// `Ok(None)`: not a weight use at all. `Err((weight, reason))`: a constant weight that
/// stays float.
fn candidate(g: &Graph, n: NodeId, format: BlockFormat) -> std::result::Result<Option<Candidate>, (String, String)> {
    let node = g.node(n);
    let (slot, transpose, gemm) = match &node.op {
        Op::Linalg(LinalgOp::MatMul) => (1, true, None),
        Op::Linalg(LinalgOp::Gemm(gm)) => (1, !gm.trans_b, Some(gm.clone())),
        Op::Index(IndexOp::Gather { axis }) if *axis == 0 => (0, false, None),
        _ => return Ok(None),
    };
    let Some(Some(wv)) = node.inputs.get(slot) else { return Ok(None) };
    let wval = g.value(*wv);
    let Some(w) = wval.constant.clone() else { return Ok(None) };
    let stay = |why: &str| Err((wval.name.clone(), why.to_string()));
    if w.dtype() != DType::F32 || w.rank() != 2 {
        return stay("not a 2-D float32 tensor");
    }
    if w.len() < MIN_ELEMENTS {
        return stay(&format!("fewer than {MIN_ELEMENTS} elements"));
    }
    let (r0, c0) = (w.shape()[0], w.shape()[1]);
    let (rows, k) = if transpose { (c0, r0) } else { (r0, c0) };
    if k % 32 != 0 {
        return stay(&format!("the reduction length {k} is not a multiple of 32"));
    }
    if let Some(gm) = &gemm {
        if gm.trans_a {
            return stay("Gemm with transA");
        }
    }
    if slot == 1 {
        // The activation operand must be float32 (A of MatMul/Gemm).
        let a_ty = node.inputs[0].and_then(|a| g.value(a).ty.clone());
        if a_ty.as_ref().map(|t| t.dtype) != Some(DType::F32) {
            return stay("the activation operand is not float32");
        }
        if gemm.is_some() && a_ty.map(|t| t.rank()) != Some(2) {
            return stay("Gemm's A is not 2-D");
        }
    }
    let flat = w.to_f32_array();
    let src: Vec<f32> = flat.iter().copied().collect();
    let data = if transpose {
        let mut t = vec![0f32; src.len()];
        for i in 0..r0 {
            for j in 0..c0 {
                t[j * r0 + i] = src[i * c0 + j];
            }
        }
        t
    } else {
        src
    };
    let op = match (slot, gemm) {
        (0, _) => BlockQuantOp::Gather { format, rows, cols: k },
        (_, None) => BlockQuantOp::MatMul { format, k, n: rows, alpha: 1.0, beta: 1.0 },
        (_, Some(gm)) => BlockQuantOp::MatMul { format, k, n: rows, alpha: gm.alpha as f32, beta: gm.beta as f32 },
    };
    Ok(Some(Candidate { node: n, slot, rows, k, data, op }))
}


/// GPTQ on the calibration activations of the node's A operand when there are some,
/// plain rounding otherwise.
fn packed_bytes(
    format: BlockFormat,
    cand: &Candidate,
    acts: &HashMap<ValueId, Vec<f32>>,
    node: &crate::ir::Node,
) -> std::result::Result<Vec<u8>, crate::ops::blockquant_format::PackError> {
    if cand.slot == 1 {
        if let Some(x) = node.inputs[0].and_then(|a| acts.get(&a)) {
            if let Some(bytes) = super::gptq::quantize(format, &cand.data, cand.k, super::gptq::hessian(x, cand.k)) {
                return Ok(bytes);
            }
        }
    }
    pack_searched(format, &cand.data, cand.k)
}

/// The A operands of the MatMul/Gemm candidates on every calibration set, as rows of
/// their last axis (row-major), from the float graph before any change.
fn activations(g: &Graph, nodes: &[NodeId], format: BlockFormat, calibration: &[Vec<Tensor>]) -> Result<HashMap<ValueId, Vec<f32>>> {
    let mut wanted: Vec<ValueId> = Vec::new();
    for &n in nodes {
        if let Ok(Some(c)) = candidate(g, n, format) {
            if let (1, Some(a)) = (c.slot, g.node(n).inputs[0]) {
                if c.k <= super::gptq::MAX_K && !wanted.contains(&a) {
                    wanted.push(a);
                }
            }
        }
    }
    let mut acts: HashMap<ValueId, Vec<f32>> = HashMap::new();
    if wanted.is_empty() || calibration.is_empty() {
        return Ok(acts);
    }
    let mut probe = g.clone();
    probe.outputs = wanted.clone();
    for set in calibration {
        let outs = crate::eval::run(&probe, set)?;
        for (&v, t) in wanted.iter().zip(outs) {
            acts.entry(v).or_default().extend(t.to_f32_array().iter().copied());
        }
    }
    Ok(acts)
}

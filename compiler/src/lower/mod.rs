//! Lowering: a typed, folded graph → a KIR [`Program`].
//!
//! Every value gets a buffer: graph inputs and outputs are the caller's, constants are
//! weights, the rest are temporaries for the memory planner. Each node is lowered by its
//! family's module here, once for both backends. Ops that only reinterpret their input
//! (Reshape, Squeeze, Identity ...) call [`LowerCx::alias`] and cost no kernel: their
//! output shares the input's buffer.

pub mod copy;

mod attention;
mod attention_flex;
mod attention_linear;
mod blockquant;
mod control;
mod control_body;
mod conv;
mod conv_block;
mod deform;
mod einsum;
mod elementwise;
mod image;
mod image_grid;
mod image_resize;
mod image_roi;
#[cfg(test)]
mod image_tests;
mod index;
mod linalg;
mod normalize;
mod pool;
mod qint8;
mod qint8_dot2;
mod quant;
mod reduce;
mod rnn;
mod rnn_conv;
mod shape;
mod signal;

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, OpError, Result};
use crate::ir::{Graph, NodeId, Tensor, TypeInfo, ValueId};
use crate::kir::build::KernelBuilder;
use crate::kir::{BufId, BufKind, Kernel, Program, Ty};
use crate::ops::Op;

/// A node's input or output as lowering sees it.
#[derive(Clone, Debug)]
pub struct Operand {
    pub buf: BufId,
    pub ty: TypeInfo,
    /// The value, when the operand is a constant (lowering may specialise on it).
    pub konst: Option<Arc<Tensor>>,
}

impl Operand {
    pub fn shape(&self) -> &[usize] {
        &self.ty.shape
    }
    pub fn len(&self) -> usize {
        self.ty.shape.iter().product()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The KIR type its elements load as.
    pub fn kty(&self) -> std::result::Result<Ty, OpError> {
        Ty::of_storage(self.ty.dtype)
            .ok_or_else(|| OpError::unsupported(format!("code generation for {} tensors", self.ty.dtype)))
    }
}

/// What a family's lowering works with for one node.
pub struct LowerCx<'a> {
    pub prog: &'a mut Program,
    name: String,
    aliases: Vec<(usize, usize)>,
}

impl LowerCx<'_> {
    /// A builder for a kernel named after the node (plus `suffix` when a node needs
    /// several kernels).
    pub fn kernel(&self, suffix: &str) -> KernelBuilder {
        KernelBuilder::new(if suffix.is_empty() { self.name.clone() } else { format!("{}.{suffix}", self.name) })
    }

    pub fn emit(&mut self, k: Kernel) {
        self.prog.kernels.push(k);
    }

    /// Scratch memory for this node (planned in the arena like any temporary).
    pub fn scratch(&mut self, what: &str, dtype: crate::ir::DType, shape: Vec<usize>) -> BufId {
        let name = format!("{}.{what}", self.name);
        self.prog.add_buffer(name, dtype, shape, BufKind::Temp)
    }

    /// Output `out` is input `input`'s elements unchanged (row-major order kept): it
    /// shares the buffer instead of being computed.
    pub fn alias(&mut self, out: usize, input: usize) {
        self.aliases.push((out, input));
    }
}

/// Lowers a prepared graph (static types everywhere) to a KIR program, with the packed
/// element types already expanded into bytes (`kir::packed::expand`).
pub fn lower(g: &Graph) -> Result<Program> {
    lower_with(g, crate::kir::GemmTiles::default())
}

/// [`lower`] with the GEMM tile layout suited to the backend that will compile it.
pub fn lower_with(g: &Graph, gemm_tiles: crate::kir::GemmTiles) -> Result<Program> {
    let mut prog = Program { gemm_tiles, ..Program::default() };
    let mut bufs: HashMap<ValueId, BufId> = HashMap::new();
    let ty_of = |v: ValueId| {
        g.value(v).ty.clone().ok_or_else(|| Error::Internal(format!("'{}' has no type at lowering", g.value(v).name)))
    };
    for (k, &v) in g.inputs.iter().enumerate() {
        let t = ty_of(v)?;
        bufs.insert(v, prog.add_buffer(&g.value(v).name, t.dtype, t.shape, BufKind::Input(k)));
    }
    // The first mention of a value among the outputs gets the caller's buffer directly.
    let mut output_of: HashMap<ValueId, usize> = HashMap::new();
    for (k, &v) in g.outputs.iter().enumerate() {
        output_of.entry(v).or_insert(k);
    }
    let order = g.topo_order().map_err(|n| Error::Internal(format!("cycle at node '{}'", g.node(n).name)))?;
    for n in order {
        lower_node(g, n, &mut prog, &mut bufs, &output_of)?;
    }
    // Outputs not computed into the caller's buffer (constants, inputs, repeated
    // outputs, aliases): copied there.
    for (k, &v) in g.outputs.iter().enumerate() {
        let t = ty_of(v)?;
        let src = match bufs.get(&v) {
            Some(&b) => b,
            None => weight(g, v, &mut prog, &mut bufs)?,
        };
        if matches!(prog.buffer(src).kind, BufKind::Output(j) if j == k) {
            continue;
        }
        let dst = prog.add_buffer(&g.value(v).name, t.dtype, t.shape.clone(), BufKind::Output(k));
        prog.kernels.push(copy::copy_kernel(&format!("output {k}"), src, dst, t.shape.iter().product()));
    }
    // Packed element types become bytes and integer code (one place for every backend).
    crate::kir::packed::expand(&mut prog);
    Ok(prog)
}

/// Lowers a typed body graph (If/Loop/Scan) into `prog`: its inputs read `inputs`,
/// everything it computes gets a temporary, and the buffers holding its outputs are
/// returned. Control-flow lowering takes the kernels this appends and nests them.
fn lower_body(g: &Graph, prog: &mut Program, inputs: &[BufId]) -> Result<Vec<BufId>> {
    if inputs.len() != g.inputs.len() {
        return Err(Error::Internal(format!("a body takes {} inputs, {} given", g.inputs.len(), inputs.len())));
    }
    let mut bufs: HashMap<ValueId, BufId> = g.inputs.iter().copied().zip(inputs.iter().copied()).collect();
    let order = g.topo_order().map_err(|n| Error::Internal(format!("cycle at node '{}'", g.node(n).name)))?;
    for n in order {
        lower_node(g, n, prog, &mut bufs, &HashMap::new())?;
    }
    g.outputs.iter().map(|&v| bufs.get(&v).copied().map_or_else(|| weight(g, v, prog, &mut bufs), Ok)).collect()
}

fn weight(g: &Graph, v: ValueId, prog: &mut Program, bufs: &mut HashMap<ValueId, BufId>) -> Result<BufId> {
    let val = g.value(v);
    let t = val.constant.clone().ok_or_else(|| Error::Internal(format!("'{}' is neither computed nor constant", val.name)))?;
    let b = prog.add_buffer(&val.name, t.dtype(), t.shape().to_vec(), BufKind::Weight(t));
    bufs.insert(v, b);
    Ok(b)
}

fn lower_node(
    g: &Graph,
    n: NodeId,
    prog: &mut Program,
    bufs: &mut HashMap<ValueId, BufId>,
    output_of: &HashMap<ValueId, usize>,
) -> Result<()> {
    let node = g.node(n);
    let node_err = |source: OpError| Error::Node {
        node: node.name.clone(),
        op_type: node.op_type.clone(),
        domain: if node.domain.is_empty() { "ai.onnx".into() } else { node.domain.clone() },
        opset: node.opset,
        source,
    };
    let mut ins = Vec::with_capacity(node.inputs.len());
    for i in &node.inputs {
        ins.push(match i {
            None => None,
            Some(v) => {
                let buf = match bufs.get(v) {
                    Some(&b) => b,
                    None => weight(g, *v, prog, bufs)?,
                };
                let val = g.value(*v);
                let ty = val.ty.clone().ok_or_else(|| Error::Internal(format!("'{}' has no type", val.name)))?;
                Some(Operand { buf, ty, konst: val.constant.clone() })
            }
        });
    }
    let mut outs = Vec::with_capacity(node.outputs.len());
    for o in &node.outputs {
        outs.push(match o {
            None => None,
            Some(v) => {
                let val = g.value(*v);
                let ty = val.ty.clone().ok_or_else(|| Error::Internal(format!("'{}' has no type", val.name)))?;
                let kind = match output_of.get(v) {
                    Some(&k) => BufKind::Output(k),
                    None => BufKind::Temp,
                };
                let buf = prog.add_buffer(&val.name, ty.dtype, ty.shape.clone(), kind);
                bufs.insert(*v, buf);
                Some(Operand { buf, ty, konst: None })
            }
        });
    }
    let mut cx = LowerCx { prog, name: node.name.clone(), aliases: Vec::new() };
    lower_op(&node.op, &mut cx, &ins, &outs).map_err(node_err)?;
    for (o, i) in std::mem::take(&mut cx.aliases) {
        let (Some(Some(out)), Some(Some(input))) = (outs.get(o), ins.get(i)) else {
            return Err(Error::Internal(format!("node '{}' aliases a missing operand", node.name)));
        };
        let v = node.outputs[o].expect("present output");
        if output_of.contains_key(&v) {
            // The caller's buffer must hold the value: copy.
            let k = copy::copy_kernel(&node.name, input.buf, out.buf, out.len());
            cx.emit(k);
        } else {
            bufs.insert(v, input.buf);
        }
    }
    Ok(())
}

/// The family lowerings: one module per op family, each `lower(op, cx, ins, outs)`.
fn lower_op(op: &Op, cx: &mut LowerCx, ins: &[Option<Operand>], outs: &[Option<Operand>]) -> std::result::Result<(), OpError> {
    match op {
        Op::Constant(_) => Err(OpError::Unsupported("Constant should have been folded".into())),
        Op::Unsupported(why) => Err(OpError::Unsupported(why.clone())),
        Op::Control(o) => control::lower(o, cx, ins, outs),
        Op::Elementwise(o) => elementwise::lower(o, cx, ins, outs),
        Op::Reduce(o) => reduce::lower(o, cx, ins, outs),
        Op::Normalize(o) => normalize::lower(o, cx, ins, outs),
        Op::Signal(o) => signal::lower(o, cx, ins, outs),
        Op::Linalg(o) => linalg::lower(o, cx, ins, outs),
        Op::Conv(o) => conv::lower(o, cx, ins, outs),
        Op::Pool(o) => pool::lower(o, cx, ins, outs),
        Op::Quant(o) => quant::lower(o, cx, ins, outs),
        Op::Shape(o) => shape::lower(o, cx, ins, outs),
        Op::Index(o) => index::lower(o, cx, ins, outs),
        Op::Image(o) => image::lower(o, cx, ins, outs),
        Op::Attention(o) => attention::lower(o, cx, ins, outs),
        Op::Rnn(o) => rnn::lower(o, cx, ins, outs),
        Op::Int8(o) => qint8::lower(o, cx, ins, outs),
        Op::BlockQuant(o) => blockquant::lower(o, cx, ins, outs),
    }
}

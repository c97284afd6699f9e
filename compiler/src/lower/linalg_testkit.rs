//! Test support for the linalg/conv/pool/quant lowerings: lowers one op on graph
//! inputs and runs it on the KIR interpreter.

use super::super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::{Tensor, TypeInfo};
use std::sync::Arc;

use crate::kir::{interp, BufKind, GemmTiles, Program};

/// Lowers `lower(cx, ins, outs)` with every input a graph input and outputs of
/// `out_types`, runs it on `inputs` and returns the outputs.
pub fn run_op(
    inputs: &[Tensor],
    out_types: &[TypeInfo],
    lower: impl FnOnce(&mut LowerCx, &[Option<Operand>], &[Option<Operand>]) -> Result<(), OpError>,
) -> Vec<Tensor> {
    run_op_with(GemmTiles::default(), inputs, &[], out_types, lower)
}

/// [`run_op`] with the GEMM tile layout `tiles` and the inputs flagged in `consts` as
/// constants (weights the lowering may specialise on).
pub fn run_op_with(
    tiles: GemmTiles,
    inputs: &[Tensor],
    consts: &[bool],
    out_types: &[TypeInfo],
    lower: impl FnOnce(&mut LowerCx, &[Option<Operand>], &[Option<Operand>]) -> Result<(), OpError>,
) -> Vec<Tensor> {
    let mut prog = Program { gemm_tiles: tiles, ..Program::default() };
    let mut runtime = Vec::new();
    let ins: Vec<Option<Operand>> = inputs
        .iter()
        .enumerate()
        .map(|(k, t)| {
            if consts.get(k).copied().unwrap_or(false) {
                let t = Arc::new(t.clone());
                let buf = prog.add_buffer(format!("w{k}"), t.dtype(), t.shape().to_vec(), BufKind::Weight(t.clone()));
                return Some(Operand { buf, ty: t.type_info(), konst: Some(t) });
            }
            let buf = prog.add_buffer(format!("in{k}"), t.dtype(), t.shape().to_vec(), BufKind::Input(runtime.len()));
            runtime.push(t.clone());
            Some(Operand { buf, ty: t.type_info(), konst: None })
        })
        .collect();
    let outs: Vec<Option<Operand>> = out_types
        .iter()
        .enumerate()
        .map(|(k, ty)| {
            let buf = prog.add_buffer(format!("out{k}"), ty.dtype, ty.shape.clone(), BufKind::Output(k));
            Some(Operand { buf, ty: ty.clone(), konst: None })
        })
        .collect();
    let mut cx = LowerCx { prog: &mut prog, name: "op".into(), aliases: Vec::new() };
    lower(&mut cx, &ins, &outs).expect("lowers");
    interp::run(&prog, &runtime).expect("runs")
}

//! Robustness test for the shape and index families: every op, on every combination of
//! a small pool of odd inputs (scalars, empty tensors, wrong types, negative values),
//! must return an error or a result — never panic — and when both inference (with all
//! inputs constant) and evaluation succeed, they must agree on the output types.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use super::layout::IntsArg;
use super::{PadMode, PadValue, ShapeOp};
use crate::ir::{DType, Tensor};
use crate::ops::index::{IndexOp, Reduction};
use crate::ops::{InferCtx, Semantics};

fn pool() -> Vec<Option<Tensor>> {
    vec![
        None,
        Some(Tensor::scalar(1.5f32)),
        Some(Tensor::from_vec(&[2, 3], vec![1f32, -2.0, 3.0, 0.0, 5.0, 6.0])),
        Some(Tensor::from_vec(&[0, 2], Vec::<f32>::new())),
        Some(Tensor::from_vec(&[2], vec![1i64, -1])),
        Some(Tensor::from_vec(&[3], vec![0i64, 2, -5])),
        Some(Tensor::scalar(2i64)),
        Some(Tensor::from_vec(&[4], vec![i64::MIN, i64::MAX, 0, -1])),
        Some(Tensor::from_vec(&[3], vec![true, false, true])),
        Some(Tensor::from_vec(&[2, 2], vec![0i32, 1, 1, 0])),
        Some(Tensor::from_vec(&[2, 3, 2], (0..12u8).collect())),
        Some(Tensor::from_vec(&[1, 4, 2, 2], (0..16).map(|v| v as f32).collect())),
        Some(Tensor::from_vec(&[2, 2], vec![0i64, 1, -1, 0])),
    ]
}

fn attr(v: &[i64]) -> IntsArg {
    IntsArg::Attr(Some(v.to_vec()))
}

/// (name, op, number of inputs) for every op, some with odd attributes.
fn ops() -> Vec<(String, Box<dyn Semantics>, usize)> {
    use IntsArg::Input;
    let s = |op: ShapeOp, n: usize| (format!("{op:?}"), Box::new(op) as Box<dyn Semantics>, n);
    let i = |op: IndexOp, n: usize| (format!("{op:?}"), Box::new(op) as Box<dyn Semantics>, n);
    vec![
        s(ShapeOp::Shape { start: -1, end: Some(i64::MIN) }, 1),
        s(ShapeOp::Size, 1),
        s(ShapeOp::Identity, 1),
        s(ShapeOp::Reshape { shape: Input(1), allowzero: false }, 2),
        s(ShapeOp::Reshape { shape: Input(1), allowzero: true }, 2),
        s(ShapeOp::Flatten { axis: -1 }, 1),
        s(ShapeOp::Flatten { axis: i64::MIN }, 1),
        s(ShapeOp::Squeeze { axes: Input(1) }, 2),
        s(ShapeOp::Unsqueeze { axes: Input(1) }, 2),
        s(ShapeOp::Unsqueeze { axes: attr(&[i64::MAX]) }, 1),
        s(ShapeOp::Transpose { perm: None }, 1),
        s(ShapeOp::Transpose { perm: Some(vec![1, 0]) }, 1),
        s(ShapeOp::Concat { axis: -1 }, 3),
        s(ShapeOp::Split { axis: 0, split: Input(1), num_outputs: None, n_outputs: 2 }, 2),
        s(ShapeOp::Split { axis: 1, split: IntsArg::Attr(None), num_outputs: Some(2), n_outputs: 2 }, 1),
        s(ShapeOp::Expand, 2),
        s(ShapeOp::Tile, 2),
        s(ShapeOp::Pad { mode: PadMode::Reflect, pads: Input(1), value: PadValue::Input(2), axes: Input(3) }, 3),
        s(
            ShapeOp::Pad {
                mode: PadMode::Wrap,
                pads: attr(&[i64::MAX, i64::MIN]),
                value: PadValue::Attr(1.0),
                axes: attr(&[0]),
            },
            1,
        ),
        s(
            ShapeOp::Pad {
                mode: PadMode::Constant,
                pads: Input(1),
                value: PadValue::Input(2),
                axes: IntsArg::Attr(None),
            },
            3,
        ),
        s(ShapeOp::CenterCropPad { axes: None }, 2),
        s(ShapeOp::ConstantOfShape { value: Arc::new(Tensor::scalar(3i32)) }, 1),
        s(ShapeOp::EyeLike { k: i64::MIN, dtype: Some(DType::Bool) }, 1),
        s(ShapeOp::Range, 3),
        s(ShapeOp::DepthToSpace { block: usize::MAX, crd: true }, 1),
        s(ShapeOp::DepthToSpace { block: 1, crd: false }, 1),
        s(ShapeOp::SpaceToDepth { block: 2 }, 1),
        s(ShapeOp::Trilu { upper: false }, 2),
        s(ShapeOp::BitCast { to: DType::I32 }, 1),
        i(IndexOp::Slice { starts: Input(1), ends: Input(2), axes: Input(3), steps: Input(4) }, 4),
        s(ShapeOp::Pad { mode: PadMode::Edge, pads: Input(1), value: PadValue::Input(2), axes: Input(3) }, 4),
        i(IndexOp::Gather { axis: 1 }, 2),
        i(IndexOp::GatherElements { axis: -1 }, 2),
        i(IndexOp::GatherND { batch_dims: 1 }, 2),
        i(IndexOp::GatherND { batch_dims: 0 }, 2),
        i(IndexOp::ScatterElements { axis: 0, reduction: Reduction::Mul }, 3),
        i(IndexOp::ScatterND { reduction: Reduction::None }, 3),
        i(IndexOp::OneHot { axis: -1 }, 3),
        i(IndexOp::Compress { axis: None }, 2),
        i(IndexOp::Compress { axis: Some(1) }, 2),
        i(IndexOp::NonZero, 1),
        i(IndexOp::ReverseSequence { batch_axis: 1, time_axis: 0 }, 2),
        i(IndexOp::Unique { sorted: false, axis: Some(-1) }, 1),
        i(IndexOp::Unique { sorted: true, axis: None }, 1),
        i(IndexOp::TensorScatter { circular: true, axis: -1 }, 3),
    ]
}

/// Every `n`-tuple of pool indices.
fn tuples(pool: usize, n: usize) -> Vec<Vec<usize>> {
    (0..n).fold(vec![vec![]], |acc, _| {
        acc.into_iter().flat_map(|t| (0..pool).map(move |k| [t.clone(), vec![k]].concat())).collect()
    })
}

#[test]
fn no_panics_and_infer_agrees_with_eval() {
    let pool = pool();
    for (name, op, n) in ops() {
        for combo in tuples(pool.len(), n) {
            let inputs: Vec<Option<&Tensor>> = combo.iter().map(|&k| pool[k].as_ref()).collect();
            let types: Vec<_> = inputs.iter().map(|t| t.map(Tensor::type_info)).collect();
            let none: Vec<Option<&Tensor>> = vec![None; n];
            let run = catch_unwind(AssertUnwindSafe(|| {
                let evaluated = op.eval(&inputs);
                let inferred = op.infer(&InferCtx { inputs: &types, consts: &inputs, n_outputs: 2 });
                let _ = op.infer(&InferCtx { inputs: &types, consts: &none, n_outputs: 2 });
                let _ = op.passthrough(&types);
                (evaluated, inferred)
            }));
            let Ok((evaluated, inferred)) = run else { panic!("{name} panicked on {inputs:?}") };
            if let (Ok(out), Ok(tys)) = (evaluated, inferred) {
                let got: Vec<_> = out.iter().map(Tensor::type_info).collect();
                assert_eq!(got, tys[..got.len()], "{name} on {inputs:?}");
            }
        }
    }
}

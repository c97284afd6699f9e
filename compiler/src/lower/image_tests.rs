//! The image lowerings against the reference evaluator on cases the node tests do not
//! cover: integer and float64 data, cubic with antialias, grids far outside the input,
//! reflection of long distances, a run-time crop roi in nearest mode, f64 rois.

use std::sync::Arc;

use onnx_protobuf::{attribute_proto::AttributeType, AttributeProto, NodeProto};

use super::{LowerCx, Operand};
use crate::front::onnx::{DataDir, NodeCtx};
use crate::ir::{DType, Tensor, TypeInfo};
use crate::kir::{interp, BufKind, Program};
use crate::ops::{parse, InferCtx, Op, Semantics};
use crate::testdata::{compare, CONTRACT};

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::INT.into(), i: v, ..Default::default() }
}
fn float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::FLOAT.into(), f: v, ..Default::default() }
}
fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::STRING.into(), s: v.as_bytes().to_vec(), ..Default::default() }
}

fn op(op_type: &str, opset: i64, attrs: &[AttributeProto], n_in: usize) -> Op {
    let (proto, dir) = (NodeProto::default(), DataDir(None));
    let ctx = NodeCtx {
        name: "n",
        op_type,
        domain: "",
        opset,
        inputs_present: vec![true; n_in],
        outputs_present: vec![true],
        attrs,
        data_dir: &dir,
        proto: &proto,
        outer: None,
        opsets: None,
    };
    parse(&ctx).expect("parses")
}

/// Lowers `op` with inputs `ins` (`true`: a constant), runs the KIR interpreter and
/// compares with the reference evaluator.
fn check(op: &Op, ins: &[(Tensor, bool)]) {
    let types: Vec<Option<TypeInfo>> = ins.iter().map(|(t, _)| Some(t.type_info())).collect();
    let consts: Vec<Option<&Tensor>> = ins.iter().map(|(t, k)| k.then_some(t)).collect();
    let out_ty = op.infer(&InferCtx { inputs: &types, consts: &consts, n_outputs: 1 }).expect("infers").remove(0);
    let refs: Vec<Option<&Tensor>> = ins.iter().map(|(t, _)| Some(t)).collect();
    let want = op.eval(&refs).expect("evaluates").remove(0);
    let mut prog = Program::default();
    let mut runtime = Vec::new();
    let operands: Vec<Option<Operand>> = ins
        .iter()
        .map(|(t, k)| {
            let kind = if *k { BufKind::Weight(Arc::new(t.clone())) } else { BufKind::Input(runtime.len()) };
            if !*k {
                runtime.push(t.clone());
            }
            let buf = prog.add_buffer("in", t.dtype(), t.shape().to_vec(), kind);
            Some(Operand { buf, ty: t.type_info(), konst: k.then(|| Arc::new(t.clone())) })
        })
        .collect();
    let buf = prog.add_buffer("out", out_ty.dtype, out_ty.shape.clone(), BufKind::Output(0));
    let outs = vec![Some(Operand { buf, ty: out_ty, konst: None })];
    let mut cx = LowerCx { prog: &mut prog, name: "n".into(), aliases: Vec::new() };
    super::lower_op(op, &mut cx, &operands, &outs).expect("lowers");
    let got = interp::run(&prog, &runtime).expect("runs").remove(0);
    compare(&got, &want, CONTRACT).expect("matches the reference");
}

fn ramp(shape: &[usize], f: impl Fn(usize) -> f32) -> Tensor {
    Tensor::from_vec(shape, (0..shape.iter().product()).map(f).collect::<Vec<f32>>())
}

#[test]
fn resize_cubic_antialias_and_integer_data() {
    let x = ramp(&[1, 2, 5, 7], |i| ((i * 37) % 23) as f32 - 11.0);
    let scales = Tensor::from_vec(&[4], vec![1.0f32, 1.0, 0.6, 1.7]);
    for attrs in [
        vec![string("mode", "cubic"), int("antialias", 1)],
        vec![string("mode", "cubic"), float("cubic_coeff_a", -0.5), int("exclude_outside", 1)],
        vec![string("mode", "linear"), string("coordinate_transformation_mode", "align_corners")],
        vec![string("mode", "nearest"), string("nearest_mode", "ceil"), string("coordinate_transformation_mode", "half_pixel_symmetric")],
    ] {
        let r = op("Resize", 19, &attrs, 3);
        let none = Tensor::from_vec(&[0], Vec::<f32>::new());
        check(&r, &[(x.clone(), false), (none.clone(), true), (scales.clone(), true)]);
        // u8 data: f64 arithmetic, rounded half to even and saturated.
        let xu = Tensor::from_vec(&[1, 2, 5, 7], (0..70).map(|i| ((i * 53) % 256) as u8).collect::<Vec<u8>>());
        check(&r, &[(xu, false), (none.clone(), true), (scales.clone(), true)]);
        check(&r, &[(x.cast(DType::F64), false), (none, true), (scales.clone(), true)]);
    }
}

#[test]
fn resize_crop_with_a_runtime_roi_in_nearest_mode() {
    let x = ramp(&[1, 1, 4, 5], |i| i as f32);
    let sizes = Tensor::from_vec(&[4], vec![1i64, 1, 3, 6]);
    let roi = Tensor::from_vec(&[8], vec![0.0f32, 0.0, -0.2, 0.1, 1.0, 1.0, 0.9, 1.3]);
    let r = op("Resize", 19, &[string("coordinate_transformation_mode", "tf_crop_and_resize"), float("extrapolation_value", 7.0)], 4);
    let none = Tensor::from_vec(&[0], Vec::<f32>::new());
    check(&r, &[(x.clone(), false), (roi.clone(), false), (none.clone(), true), (sizes.clone(), true)]);
    let r = op("Resize", 19, &[string("mode", "linear"), string("coordinate_transformation_mode", "tf_crop_and_resize")], 4);
    check(&r, &[(x, false), (roi, false), (none, true), (sizes, true)]);
}

#[test]
fn grid_sample_far_outside_and_3d() {
    let x = ramp(&[2, 2, 3, 4], |i| (i as f32 * 0.7).sin());
    // Coordinates well beyond [-1, 1] exercise padding and multi-period reflection.
    let grid = ramp(&[2, 3, 5, 2], |i| (i as f32 * 0.37).sin() * 4.5);
    for mode in ["nearest", "linear", "cubic"] {
        for pad in ["zeros", "border", "reflection"] {
            for ac in [0, 1] {
                let g = op("GridSample", 20, &[string("mode", mode), string("padding_mode", pad), int("align_corners", ac)], 2);
                check(&g, &[(x.clone(), false), (grid.clone(), false)]);
            }
        }
    }
    let x3 = ramp(&[1, 1, 2, 3, 3], |i| i as f32);
    let g3 = ramp(&[1, 2, 2, 2, 3], |i| (i as f32 * 0.61).cos() * 1.4);
    let g = op("GridSample", 20, &[string("mode", "linear"), string("padding_mode", "reflection")], 2);
    check(&g, &[(x3.cast(DType::F64), false), (g3, false)]);
}

#[test]
fn affine_grid_and_roi_align_in_f64() {
    let theta = ramp(&[2, 2, 3], |i| i as f32 * 0.25 - 1.0).cast(DType::F64);
    let size = Tensor::from_vec(&[4], vec![2i64, 1, 3, 5]);
    for ac in [0, 1] {
        check(&op("AffineGrid", 20, &[int("align_corners", ac)], 2), &[(theta.clone(), false), (size.clone(), true)]);
    }
    let x = ramp(&[2, 2, 6, 6], |i| ((i * 7) % 13) as f32);
    let rois = Tensor::from_vec(&[3, 4], vec![0.0f64, 0.0, 5.0, 5.0, 1.3, 2.2, 9.0, 4.1, -3.0, -2.0, 0.5, 0.2]);
    let idx = Tensor::from_vec(&[3], vec![0i64, 1, 1]);
    for mode in ["avg", "max"] {
        for ctm in ["half_pixel", "output_half_pixel"] {
            let attrs = [string("mode", mode), string("coordinate_transformation_mode", ctm), int("sampling_ratio", 2), int("output_height", 3), int("output_width", 2), float("spatial_scale", 0.5)];
            check(&op("RoiAlign", 16, &attrs, 3), &[(x.clone(), false), (rois.clone(), false), (idx.clone(), false)]);
            check(&op("RoiAlign", 16, &attrs, 3), &[(x.clone(), false), (rois.cast(DType::F32), false), (idx.clone(), false)]);
        }
    }
}

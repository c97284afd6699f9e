//! Differential tests: each op lowered to KIR and interpreted must give what the
//! reference evaluator gives, on the edge values the ONNX node tests do not reach
//! (`u64` above `i64::MAX`, `MIN / -1`, out-of-range float → int, negative powers ...).

use std::sync::Arc;

use super::lower;
use crate::ir::{DType, Tensor};
use crate::kir::{interp, BufKind, Program};
use crate::lower::{LowerCx, Operand};
use crate::ops::elementwise::{Binary, ElementwiseOp, Unary, Variadic};
use crate::ops::Semantics;

/// Runs `op` on constant `inputs` through lowering + the KIR interpreter.
fn run_kir(op: &ElementwiseOp, inputs: &[Tensor], want: &[Tensor]) -> Vec<Tensor> {
    let mut prog = Program::default();
    let ins: Vec<Option<Operand>> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let t = Arc::new(t.clone());
            let buf = prog.add_buffer(format!("in{i}"), t.dtype(), t.shape().to_vec(), BufKind::Weight(t.clone()));
            Some(Operand { buf, ty: t.type_info(), konst: Some(t) })
        })
        .collect();
    let outs: Vec<Option<Operand>> = want
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let buf = prog.add_buffer(format!("out{k}"), t.dtype(), t.shape().to_vec(), BufKind::Output(k));
            Some(Operand { buf, ty: t.type_info(), konst: None })
        })
        .collect();
    let mut cx = LowerCx { prog: &mut prog, name: "node".into(), aliases: Vec::new() };
    lower(op, &mut cx, &ins, &outs).expect("lowers");
    crate::kir::packed::expand(&mut prog);
    interp::run(&prog, &[]).expect("runs")
}

/// Asserts KIR and the reference agree bit for bit (NaN equal to NaN).
fn check(op: ElementwiseOp, inputs: Vec<Tensor>) {
    let refs: Vec<Option<&Tensor>> = inputs.iter().map(Some).collect();
    let want = op.eval(&refs).expect("reference evaluates");
    let got = run_kir(&op, &inputs, &want);
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.dtype(), w.dtype(), "{op:?}");
        let same = |a: f64, b: f64| a == b || (a.is_nan() && b.is_nan());
        let (gv, wv) = (g.to_f64_vec(), w.to_f64_vec());
        assert!(gv.iter().zip(&wv).all(|(&a, &b)| same(a, b)), "{op:?} on {inputs:?}: got {gv:?}, want {wv:?}");
        if let (Tensor::U64(a), Tensor::U64(b)) = (g, w) {
            assert_eq!(a, b, "{op:?}");
        }
        // Packed outputs: the codes themselves (NaN signs, FNUZ zeros).
        if let (Tensor::Packed(_, a), Tensor::Packed(_, b)) = (g, w) {
            assert_eq!(a, b, "{op:?} on {inputs:?}");
        }
    }
}

fn v<T: crate::ir::Element>(data: Vec<T>) -> Tensor {
    Tensor::from_vec(&[data.len()], data)
}

#[test]
fn signed_division_never_traps() {
    let a = v(vec![i32::MIN, i32::MIN, 7, -7, 7, 0]);
    let b = v(vec![-1, 0, 2, 2, -1, 5]);
    for op in [Binary::Div, Binary::Mod { fmod: true }, Binary::Mod { fmod: false }] {
        check(ElementwiseOp::Binary(op), vec![a.clone(), b.clone()]);
    }
    let a = v(vec![i8::MIN, -7, 7, 100]);
    let b = v(vec![-1i8, 3, -3, 0]);
    check(ElementwiseOp::Binary(Binary::Div), vec![a.clone(), b.clone()]);
    check(ElementwiseOp::Binary(Binary::Mod { fmod: false }), vec![a, b]);
}

#[test]
fn u64_is_unsigned() {
    let a = v(vec![u64::MAX, u64::MAX, 1 << 63, 5, u64::MAX - 1, 0, 9]);
    let b = v(vec![3u64, 1 << 63, u64::MAX, 1 << 63, u64::MAX, 7, 0]);
    for op in [Binary::Div, Binary::Mod { fmod: false }, Binary::Mod { fmod: true }, Binary::Add, Binary::Mul] {
        check(ElementwiseOp::Binary(op), vec![a.clone(), b.clone()]);
    }
    for op in [Variadic::Max, Variadic::Min, Variadic::Mean] {
        check(ElementwiseOp::Variadic(op), vec![a.clone(), b.clone()]);
    }
    use crate::ops::elementwise::Compare;
    check(ElementwiseOp::Compare(Compare::Less), vec![a.clone(), b.clone()]);
    check(ElementwiseOp::Binary(Binary::BitShift { left: false }), vec![a.clone(), v(vec![1u64, 63, 64, 0, 2, 1, 3])]);
    for u in [Unary::Abs, Unary::Sign, Unary::Relu, Unary::Neg] {
        check(ElementwiseOp::Unary(u), vec![a.clone()]);
    }
    for to in [DType::F32, DType::F64, DType::I8, DType::Bool] {
        check(ElementwiseOp::Cast { to, mode: cast_mode() }, vec![a.clone()]);
    }
}

fn cast_mode() -> crate::ops::elementwise::CastMode {
    crate::ops::elementwise::CastMode { saturate: true, round: crate::ir::packed::E8M0Round::Up }
}

#[test]
fn float_to_int_like_the_reference() {
    let x = v(vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 300.7, -1.5, 7e4, 3e9, -3e9, 1e19, 1.5e19, -0.0]);
    for to in [DType::I8, DType::U8, DType::I16, DType::U16, DType::I32, DType::U32, DType::I64, DType::U64, DType::Bool] {
        check(ElementwiseOp::Cast { to, mode: cast_mode() }, vec![x.clone()]);
    }
    let y = v(vec![-1i64, 300, i64::MIN, i64::MAX]);
    for to in [DType::U8, DType::I16, DType::U32, DType::U64, DType::F16, DType::F32] {
        check(ElementwiseOp::Cast { to, mode: cast_mode() }, vec![y.clone()]);
    }
}

const PACKED: [DType; 9] = [
    DType::F8E4M3FN,
    DType::F8E4M3FNUZ,
    DType::F8E5M2,
    DType::F8E5M2FNUZ,
    DType::F4E2M1,
    DType::U4,
    DType::I4,
    DType::U2,
    DType::I2,
];

/// Casts to and from the packed types (`kir::packed`), both `saturate` settings.
#[test]
fn packed_casts_like_the_reference() {
    let xs = vec![f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e6, -470.0, 464.0, 449.0, 0.1, -7.6, 3.5, -0.0, 1e-3, 2.5, 100.0, -9.0, 1e10, -3e9, 6.5, 0.25];
    let mut x64 = xs.clone();
    // Ties only f64 holds: rounding through f32 first would land on the tie.
    x64.extend([1.0625 + 2f64.powi(-40), 1.0625 - 2f64.powi(-40), 3.0 * 2f64.powi(-10) + 2f64.powi(-45)]);
    let x32 = v(xs.iter().map(|&x| x as f32).collect::<Vec<f32>>());
    let ints = v(vec![-9i64, -8, 7, 8, 15, 16, 300, -1, i64::MIN, i64::MAX]);
    for to in PACKED {
        for saturate in [true, false] {
            let mode = crate::ops::elementwise::CastMode { saturate, ..cast_mode() };
            for x in [&x32, &v(x64.clone()), &ints] {
                check(ElementwiseOp::Cast { to, mode }, vec![x.clone()]);
            }
        }
    }
    for from in PACKED {
        let codes: Vec<u8> = (0..1u32 << from.bits()).map(|c| c as u8).collect();
        let x = Tensor::Packed(from, ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[codes.len()]), codes).unwrap());
        let targets = [DType::F32, DType::F16, DType::F64, DType::I8, DType::U8, DType::I32, DType::U32, DType::I64, DType::U64, DType::Bool];
        for to in targets.into_iter().chain(PACKED) {
            if to != from {
                check(ElementwiseOp::Cast { to, mode: cast_mode() }, vec![x.clone()]);
            }
        }
    }
}

#[test]
fn integer_powers_wrap() {
    let a = v(vec![3i32, -2, 1, -1, -1, 5, 0]);
    let b = v(vec![40i32, 7, 1000, 3, 4, 0, 0]);
    check(ElementwiseOp::Binary(Binary::Pow), vec![a, b]);
    for p in [0i32, 1, 5, 31] {
        check(ElementwiseOp::Binary(Binary::Pow), vec![v(vec![3i32, -2, 7]), v(vec![p])]);
    }
    let a = v(vec![3u8, 255, 2]);
    let b = v(vec![5u8, 2, 9]);
    check(ElementwiseOp::Binary(Binary::Pow), vec![a, b]);
    // Mixed integer and float: the reference promotes, then truncates to the base's type.
    check(ElementwiseOp::Binary(Binary::Pow), vec![v(vec![2i64, 3, -4]), v(vec![0.5f32, 2.0, 3.0])]);
}

#[test]
fn narrow_integer_arithmetic_wraps() {
    let a = v(vec![i8::MAX, i8::MIN, -3, 100]);
    let b = v(vec![1i8, -1, 5, 100]);
    for op in [Binary::Add, Binary::Sub, Binary::Mul, Binary::PRelu] {
        check(ElementwiseOp::Binary(op), vec![a.clone(), b.clone()]);
    }
    check(ElementwiseOp::Variadic(Variadic::Mean), vec![a.clone(), b.clone(), a.clone()]);
    check(ElementwiseOp::Unary(Unary::Shrink { bias: 0.5, lambd: 1.0 }), vec![a.clone()]);
    check(ElementwiseOp::Unary(Unary::Abs), vec![a]);
}

#[test]
fn broadcasting_and_nan() {
    let a = Tensor::from_vec(&[2, 3], vec![1.0f32, f32::NAN, -2.0, 0.0, -0.0, 5.0]);
    let b = Tensor::from_vec(&[3], vec![0.5f32, 1.0, f32::NAN]);
    for op in [Variadic::Max, Variadic::Min, Variadic::Sum] {
        check(ElementwiseOp::Variadic(op), vec![a.clone(), b.clone()]);
    }
    check(ElementwiseOp::Binary(Binary::Sub), vec![b.clone(), a.clone()]);
    for u in [Unary::Relu, Unary::Sign, Unary::Celu { alpha: 1.0 }] {
        check(ElementwiseOp::Unary(u), vec![a.clone()]);
    }
}

#[test]
fn constant_scalars_become_literals() {
    let a = v(vec![u64::MAX, 1 << 63, 12]);
    check(ElementwiseOp::Binary(Binary::Div), vec![a.clone(), Tensor::from_vec(&[], vec![(1u64 << 63) + 5])]);
    check(ElementwiseOp::Binary(Binary::Mod { fmod: false }), vec![v(vec![-7i16, 7, i16::MIN]), v(vec![-1i16])]);
    let x = Tensor::from_vec(&[2, 2], vec![-1.5f32, 0.25, f32::NAN, 4.0]);
    let clip = ElementwiseOp::Clip(crate::ops::elementwise::ClipBounds::Inputs);
    check(clip, vec![x.clone(), Tensor::from_vec(&[], vec![0.0f32]), Tensor::from_vec(&[], vec![1.0f32])]);
    check(ElementwiseOp::Binary(Binary::Pow), vec![x.clone(), Tensor::from_vec(&[], vec![2i64])]);
    check(ElementwiseOp::Binary(Binary::Pow), vec![x, Tensor::from_vec(&[], vec![2.0f32])]);
}

/// Every float unary op on every float type, within the contract's tolerance for f32
/// and f64, and 4 units in the last place (relative, and absolute near 0) for f16/bf16:
/// KIR computes those in f32 and rounds once, the reference rounds after every step
/// (numpy computing in f16), so compound activations (Mish, Gelu ...) drift by a few
/// ulps, or more where the reference cancels (Gelu's `1 + tanh` near -1) — KIR being
/// the closer to the exact value.
#[test]
fn float_unaries_within_tolerance() {
    use Unary::*;
    let ops = [
        Neg, Abs, Sign, Relu, Ceil, Floor, Round, Sqrt, Reciprocal, Exp, Log, Tanh, Sigmoid, Cos, Sin, Tan, Acos, Asin,
        Atan, Acosh, Asinh, Atanh, Cosh, Sinh, Erf, Softplus, Softsign, Mish, HardSwish, LeakyRelu { alpha: 0.1 },
        Elu { alpha: 1.5 }, Selu { alpha: 1.67, gamma: 1.05 }, Celu { alpha: 2.0 }, ThresholdedRelu { alpha: 0.5 },
        HardSigmoid { alpha: 0.2, beta: 0.5 }, Shrink { bias: 0.25, lambd: 0.5 }, Gelu { tanh: false },
        Gelu { tanh: true }, Swish { alpha: 1.0 },
    ];
    let xs = vec![-3.5, -1.0, -0.25, 0.0, 0.3, 0.9, 2.5, 7.0, f64::NAN];
    for dtype in [DType::F32, DType::F64, DType::F16, DType::BF16] {
        let x = Tensor::from_vec(&[xs.len()], xs.clone()).cast(dtype);
        for u in ops {
            let op = ElementwiseOp::Unary(u);
            let want = op.eval(&[Some(&x)]).expect("reference evaluates");
            let got = run_kir(&op, std::slice::from_ref(&x), &want);
            let (g, w) = (got[0].to_f64_vec(), want[0].to_f64_vec());
            let (atol, rtol) = match dtype {
                DType::F16 => (4.0 * 2f64.powi(-10), 4.0 * 2f64.powi(-10)),
                DType::BF16 => (4.0 * 2f64.powi(-7), 4.0 * 2f64.powi(-7)),
                _ => (1e-4, 1e-3),
            };
            for (a, b) in g.iter().zip(&w) {
                let ok = (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= atol + rtol * b.abs();
                assert!(ok, "{u:?} on {dtype}: got {g:?}, want {w:?}");
            }
        }
    }
}

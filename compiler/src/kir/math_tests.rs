//! Accuracy tests: each op runs through the KIR interpreter unexpanded (the reference:
//! the interpreter computes transcendentals in f64 with std, rounding once for f32) and
//! expanded, on dense grids, random bit patterns and special values.

use super::super::interp;
use super::super::{e, BinOp, BufKind, Expr, Kernel, Program, Stmt, Ty, UnOp, Var};
use super::expand;
use crate::ir::{DType, Tensor};

/// Distance in units in the last place; NaN against NaN is 0, NaN against a number huge.
fn ulps32(a: f32, b: f32) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() { 0 } else { u64::MAX };
    }
    let ord = |x: f32| {
        let i = x.to_bits() as i32 as i64;
        if i < 0 { -(i & 0x7fff_ffff) } else { i }
    };
    (ord(a) - ord(b)).unsigned_abs()
}

fn ulps64(a: f64, b: f64) -> u64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() { 0 } else { u64::MAX };
    }
    let ord = |x: f64| {
        let i = x.to_bits() as i64 as i128;
        if i < 0 { -(i & 0x7fff_ffff_ffff_ffff) } else { i }
    };
    (ord(a) - ord(b)).unsigned_abs() as u64
}

/// `out[i] = f(in0[i], in1[i])` over `n` elements of `dtype`.
fn program(dtype: DType, n: usize, f: impl Fn(Expr, Expr) -> Expr) -> Program {
    let mut p = Program::default();
    let a = p.add_buffer("a", dtype, vec![n], BufKind::Input(0));
    let b = p.add_buffer("b", dtype, vec![n], BufKind::Input(1));
    let out = p.add_buffer("out", dtype, vec![n], BufKind::Output(0));
    let i = Var(0);
    let value = f(e::load(a, e::var(i)), e::load(b, e::var(i)));
    let body = vec![Stmt::Store { buf: out, index: e::var(i), value }];
    p.kernels.push(Kernel { name: "k".into(), vars: vec![Ty::Index], body: vec![Stmt::Loop { var: i, extent: n, body }] });
    p
}

/// Runs `f` unexpanded and expanded; returns `(x, y, reference, got)` per element.
fn run(dtype: DType, xs: &[f64], ys: &[f64], f: impl Fn(Expr, Expr) -> Expr) -> Vec<(f64, f64, f64, f64)> {
    let n = xs.len();
    let reference = program(dtype, n, &f);
    let mut expanded = reference.clone();
    expand(&mut expanded);
    let ins = [Tensor::from_vec(&[n], xs.to_vec()).cast(dtype), Tensor::from_vec(&[n], ys.to_vec()).cast(dtype)];
    let want = interp::run(&reference, &ins).expect("reference runs").remove(0).to_f64_vec();
    let got = interp::run(&expanded, &ins).expect("expansion runs").remove(0).to_f64_vec();
    let xs = ins[0].to_f64_vec();
    let ys = ins[1].to_f64_vec();
    (0..n).map(|i| (xs[i], ys[i], want[i], got[i])).collect()
}

/// Deterministic samples: dense grids over `ranges`, every power of two of both signs
/// (with neighbours), random bit patterns, and the special values.
fn samples(dtype: DType, ranges: &[(f64, f64)]) -> Vec<f64> {
    let mut v = vec![0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0];
    for &(lo, hi) in ranges {
        let n = 20000;
        v.extend((0..=n).map(|i| lo + (hi - lo) * i as f64 / n as f64));
    }
    let (emin, emax) = if dtype == DType::F64 { (-1074, 1023) } else { (-149, 127) };
    for k in emin..=emax {
        let p = 2f64.powi(k);
        for m in [1.0, 1.0 + 1e-7, 1.5, 1.9999] {
            v.push(p * m);
            v.push(-p * m);
        }
    }
    let mut s = 0x9e3779b97f4a7c15_u64;
    for _ in 0..20000 {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        v.push(if dtype == DType::F64 { f64::from_bits(s) } else { f32::from_bits((s >> 32) as u32) as f64 });
    }
    v
}

struct Tol {
    /// Allowed error in ulps ...
    ulps: u64,
    /// ... or absolute (for results near zero).
    abs: f64,
    /// Inputs of larger magnitude are not checked (documented range limits).
    max_arg: f64,
}

fn check_unary(op: UnOp, dtype: DType, ranges: &[(f64, f64)], tol: Tol) {
    let xs = samples(dtype, ranges);
    let res = run(dtype, &xs, &xs, |a, _| e::un(op, a));
    let mut worst = (0u64, 0.0f64, 0.0f64);
    for (x, _, want, got) in res {
        if x.abs() > tol.max_arg {
            continue;
        }
        let u = if dtype == DType::F64 { ulps64(want, got) } else { ulps32(want as f32, got as f32) };
        let abs_err = (want - got).abs();
        let ok = u <= tol.ulps || abs_err <= tol.abs || (want.is_infinite() && want == got);
        assert!(ok, "{op:?} {dtype}: x = {x:e}: want {want:e}, got {got:e} ({u} ulps)");
        if u > worst.0 && abs_err > tol.abs {
            worst = (u, x, abs_err);
        }
    }
    println!("{op:?} {dtype}: max {} ulps (at x = {:e})", worst.0, worst.1);
}

const F32_TOL: Tol = Tol { ulps: 4, abs: 1e-6, max_arg: f64::INFINITY };
const F64_TOL: Tol = Tol { ulps: 40, abs: 1e-15, max_arg: f64::INFINITY };

fn both(op: UnOp, ranges: &[(f64, f64)]) {
    check_unary(op, DType::F32, ranges, Tol { ..F32_TOL });
    check_unary(op, DType::F64, ranges, Tol { ..F64_TOL });
}

#[test]
fn exp() {
    both(UnOp::Exp, &[(-20.0, 20.0), (-750.0, 750.0), (-1.0, 1.0)]);
}

#[test]
fn log() {
    both(UnOp::Log, &[(0.0, 4.0), (0.5, 1.5), (0.99, 1.01), (0.0, 1e6)]);
}

#[test]
fn tanh() {
    both(UnOp::Tanh, &[(-5.0, 5.0), (-0.1, 0.1), (-30.0, 30.0)]);
}

#[test]
fn erf() {
    both(UnOp::Erf, &[(-7.0, 7.0), (-1.1, 1.1), (0.9, 1.1)]);
}

#[test]
fn sin_cos_tan() {
    for op in [UnOp::Sin, UnOp::Cos, UnOp::Tan] {
        let ranges = [(-10.0, 10.0), (-1e5, 1e5), (-0.8, 0.8)];
        check_unary(op, DType::F32, &ranges, Tol { max_arg: 1e5, ..F32_TOL });
        check_unary(op, DType::F64, &ranges, Tol { max_arg: 1.6e6, ..F64_TOL });
    }
}

#[test]
fn inverse_trig() {
    both(UnOp::Atan, &[(-5.0, 5.0), (-1e3, 1e3), (-0.5, 0.5)]);
    both(UnOp::Asin, &[(-1.0, 1.0), (0.49, 0.51), (0.99, 1.0)]);
    both(UnOp::Acos, &[(-1.0, 1.0), (0.49, 0.51), (-1.0, -0.99)]);
}

#[test]
fn hyperbolic() {
    both(UnOp::Sinh, &[(-5.0, 5.0), (-0.1, 0.1), (-720.0, 720.0), (-100.0, 100.0)]);
    both(UnOp::Cosh, &[(-5.0, 5.0), (-0.1, 0.1), (-720.0, 720.0), (-100.0, 100.0)]);
    both(UnOp::Asinh, &[(-5.0, 5.0), (-0.1, 0.1), (-1e10, 1e10)]);
    both(UnOp::Acosh, &[(1.0, 5.0), (1.0, 1.001), (1.0, 1e10)]);
    both(UnOp::Atanh, &[(-1.0, 1.0), (-0.1, 0.1), (0.99, 1.0)]);
}

#[test]
fn pow() {
    for dtype in [DType::F32, DType::F64] {
        let specials = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-3, 1e3, 7.5];
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for &x in &specials {
            for &y in &specials {
                xs.push(x);
                ys.push(y);
            }
        }
        // Dense: x in (0, 10], y in [-40, 40], plus negative x with integer y.
        for i in 0..200 {
            for j in 0..200 {
                let x = 0.05 * (i + 1) as f64;
                let y = -40.0 + 0.4 * j as f64;
                xs.push(x);
                ys.push(y);
                xs.push(-x);
                ys.push(y.round());
            }
        }
        let res = run(dtype, &xs, &ys, |a, b| e::bin(BinOp::Pow, a, b));
        let mut worst = 0;
        for (x, y, want, got) in res {
            let u = if dtype == DType::F64 { ulps64(want, got) } else { ulps32(want as f32, got as f32) };
            let tol = if dtype == DType::F64 { 40 } else { 2 };
            assert!(u <= tol, "pow {dtype}: ({x:e}, {y:e}): want {want:e}, got {got:e} ({u} ulps)");
            worst = worst.max(u);
        }
        println!("Pow {dtype}: max {worst} ulps");
    }
}

#[test]
fn pow_constant_exponents() {
    for y in [0.0, 0.5, 1.0, 2.0, -1.0] {
        let xs = samples(DType::F32, &[(-3.0, 3.0)]);
        let res = run(DType::F32, &xs, &xs, |a, _| e::bin(BinOp::Pow, a, e::f32(y as f32)));
        for (x, _, want, got) in res {
            assert!(ulps32(want as f32, got as f32) <= 1, "pow({x:e}, {y}): want {want:e}, got {got:e}");
        }
    }
}

/// Calls inside an `If` condition, inside a loop body, and nested calls all expand in
/// place, and the result has no transcendental left.
#[test]
fn placement() {
    let mut p = program(DType::F32, 4, |a, b| e::un(UnOp::Exp, e::un(UnOp::Sin, e::add(a, b))));
    let out = p.outputs()[0];
    let a = p.inputs()[0];
    let cond = e::bin(BinOp::Gt, e::un(UnOp::Tanh, e::load(a, e::idx(0))), e::f32(0.0));
    let fail = Stmt::If { cond, then: vec![Stmt::Store { buf: out, index: e::idx(0), value: e::f32(7.0) }], els: vec![] };
    p.kernels[0].body.push(fail);
    let reference = p.clone();
    expand(&mut p);
    let text = p.to_string();
    for name in ["exp", "sin", "tanh", "Exp", "Sin", "Tanh"] {
        assert!(!text.contains(&format!("{name}(")), "{name} left in:\n{text}");
    }
    let x = Tensor::from_vec(&[4], vec![0.5f32, -1.0, 2.0, 3.0]);
    let y = Tensor::from_vec(&[4], vec![0.25f32, 0.5, -1.0, 1e-3]);
    let want = interp::run(&reference, &[x.clone(), y.clone()]).unwrap().remove(0).to_f64_vec();
    let got = interp::run(&p, &[x, y]).unwrap().remove(0).to_f64_vec();
    for (w, g) in want.iter().zip(&got) {
        assert!(ulps32(*w as f32, *g as f32) <= 4, "{want:?} vs {got:?}");
    }
}

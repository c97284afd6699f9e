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
    /// ... or relative (where the std-based reference is the less accurate side).
    rel: f64,
    /// Inputs of larger magnitude are not checked (documented range limits).
    max_arg: f64,
}

fn check_unary(op: UnOp, dtype: DType, ranges: &[(f64, f64)], tol: Tol) {
    let xs = samples(dtype, ranges);
    let res = run(dtype, &xs, &xs, |a, _| e::un(op, a));
    let (mut worst_ulps, mut worst_x, mut worst_abs) = (0u64, 0.0f64, 0.0f64);
    for (x, _, want, got) in res {
        if x.abs() > tol.max_arg {
            continue;
        }
        let want = fixed_reference(op, x).unwrap_or(want);
        let u = if dtype == DType::F64 { ulps64(want, got) } else { ulps32(want as f32, got as f32) };
        let abs_err = (want - got).abs();
        let ok = u <= tol.ulps || abs_err <= tol.abs || abs_err <= tol.rel * want.abs() || (want.is_infinite() && want == got);
        assert!(ok, "{op:?} {dtype}: x = {x:e}: want {want:e}, got {got:e} ({u} ulps)");
        if want.abs() >= 1e-3 && u > worst_ulps && u != u64::MAX {
            (worst_ulps, worst_x) = (u, x);
        }
        if want.abs() <= 1.0 {
            worst_abs = worst_abs.max(abs_err);
        }
    }
    println!("{op:?} {dtype}: max {worst_ulps} ulps where |f(x)| ≥ 1e-3 (at x = {worst_x:e}), max abs error {worst_abs:.2e}");
}

/// Where the interpreter's std-based reference is itself wrong: its erf has no case for
/// ±inf, and std's asinh overflows for |x| > ~1e308 instead of returning log(2|x|).
fn fixed_reference(op: UnOp, x: f64) -> Option<f64> {
    match op {
        UnOp::Erf if x.is_infinite() => Some(x.signum()),
        UnOp::Asinh if x.is_finite() && x.abs() > 1e300 => Some((x.abs().ln() + std::f64::consts::LN_2).copysign(x)),
        UnOp::Acosh if x.is_finite() && x > 1e300 => Some(x.ln() + std::f64::consts::LN_2),
        _ => None,
    }
}

const F32_TOL: Tol = Tol { ulps: 4, abs: 1e-6, rel: 0.0, max_arg: f64::INFINITY };
const F64_TOL: Tol = Tol { ulps: 40, abs: 1e-15, rel: 0.0, max_arg: f64::INFINITY };

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

/// The interpreter's f64 erf (a Taylor series up to 2.5) is itself only good to ~1e-14
/// near 2.5, so f64 is checked to that bound on the grid, and to 1 ulp against these
/// 30-digit values (mpmath) at the piece boundaries and beyond.
#[test]
fn erf() {
    check_unary(UnOp::Erf, DType::F32, &[(-7.0, 7.0), (-1.1, 1.1), (0.9, 1.1)], F32_TOL);
    check_unary(UnOp::Erf, DType::F64, &[(-7.0, 7.0), (-1.1, 1.1), (0.9, 1.1)], Tol { abs: 1e-14, ..F64_TOL });
    const EXACT: [(f64, f64); 37] = [
        (0.01, 0.011283415555849618), (0.04, 0.04511110614512475), (0.09, 0.10128059391462688), (0.16, 0.17901181319810566),
        (0.25, 0.27632639016823696), (0.36, 0.3893297011286642), (0.49000000000000005, 0.5116682611885232),
        (0.64, 0.6345858291221413), (0.8099999999999999, 0.7480032805977895), (1.0, 0.8427007929497149),
        (1.21, 0.9129555079726694), (1.44, 0.9582965696005648), (1.69, 0.9831525868950262),
        (1.9600000000000002, 0.9944262754648279), (2.25, 0.9985372834133188), (2.56, 0.9997058369795081),
        (2.89, 0.9999563158201618), (3.2399999999999998, 0.9999953956451422), (3.61, 0.9999996697490109),
        (4.0, 0.9999999845827421), (4.41, 0.9999999995530502), (4.84, 0.9999999999923413), (5.29, 0.9999999999999264),
        (5.76, 0.9999999999999997), (0.999999999, 0.8427007925346074), (1.000000001, 0.8427007933648224),
        (1.4999, 0.9660932516622953), (1.5001, 0.9661170377204175), (2.1249, 0.9973447362961807),
        (2.1251, 0.9973472044603697), (2.9999, 0.9999778955735178), (3.0001, 0.9999779234241298),
        (4.2499, 0.9999999981478108), (4.2501, 0.9999999981510396), (5.5, 0.9999999999999927),
        (5.9, 0.9999999999999999), (5.95, 1.0),
    ];
    let xs: Vec<f64> = EXACT.iter().flat_map(|&(x, _)| [x, -x]).collect();
    let res = run(DType::F64, &xs, &xs, |a, _| e::un(UnOp::Erf, a));
    let mut worst = 0;
    for ((x, _, _, got), want) in res.into_iter().zip(EXACT.iter().flat_map(|&(_, y)| [y, -y])) {
        let u = ulps64(want, got);
        assert!(u <= 2, "erf({x:e}): want {want:e}, got {got:e} ({u} ulps)");
        worst = worst.max(u);
    }
    println!("Erf float64 against mpmath: max {worst} ulps");
}

#[test]
fn sin_cos_tan() {
    for op in [UnOp::Sin, UnOp::Cos, UnOp::Tan] {
        let ranges = [(-10.0, 10.0), (-1e5, 1e5), (-0.8, 0.8), (-1.6e6, 1.6e6)];
        check_unary(op, DType::F32, &ranges, Tol { max_arg: 1.6e6, ..F32_TOL });
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
    // std's f64 acosh and atanh lose up to ~1e-13 relative near 1 (ln of a rounded sum),
    // so the grid checks f64 to that bound and `inverse_hyperbolic_exact` to 2 ulps.
    let loose = Tol { rel: 1e-12, ..F64_TOL };
    for (op, ranges) in [
        (UnOp::Asinh, [(-5.0, 5.0), (-0.1, 0.1), (-1e10, 1e10)]),
        (UnOp::Acosh, [(1.0, 5.0), (1.0, 1.001), (1.0, 1e10)]),
        (UnOp::Atanh, [(-1.0, 1.0), (-0.1, 0.1), (0.99, 1.0)]),
    ] {
        check_unary(op, DType::F32, &ranges, F32_TOL);
        check_unary(op, DType::F64, &ranges, Tol { ..loose });
    }
}

/// f64 inverse hyperbolics against 30-digit values (mpmath).
#[test]
fn inverse_hyperbolic_exact() {
    let cases: [(UnOp, &[(f64, f64)]); 3] = [
        (UnOp::Asinh, &[(1e-08, 1e-08), (0.001, 0.0009999998333334083), (0.1, 0.09983407889920756), (0.2449, 0.24251578283389294), (0.5, 0.48121182505960347), (1.5, 1.1947632172871092), (3.0, 1.8184464592320668), (100.0, 5.298342365610589), (100000000.0, 19.11382792451231), (1e+20, 46.74484904044086), (1e+300, 691.4686750787737)]),
        (UnOp::Acosh, &[(1.000000000001, 1.4142764231805424e-06), (1.000001, 0.00141421344446382), (1.001, 0.04471763360830685), (1.0268, 0.23100277719950962), (1.5, 0.9624236501192069), (2.0, 1.3169578969248168), (10.0, 2.993222846126381), (100000000.0, 19.11382792451231), (1e+20, 46.74484904044086), (1e+300, 691.4686750787737)]),
        (UnOp::Atanh, &[(1e-08, 1e-08), (0.001, 0.0010000003333335333), (0.1, 0.10033534773107558), (0.45, 0.48470027859405174), (0.5, 0.5493061443340549), (0.9, 1.4722194895832204), (0.9999, 4.951718775643099), (0.999999999, 10.708206522644144), (-0.9999, -4.951718775643099)]),
    ];
    for (op, table) in cases {
        let xs: Vec<f64> = table.iter().map(|c| c.0).collect();
        let res = run(DType::F64, &xs, &xs, |a, _| e::un(op, a));
        for ((x, _, _, got), &(_, want)) in res.into_iter().zip(table) {
            let u = ulps64(want, got);
            assert!(u <= 2, "{op:?}({x:e}): want {want:e}, got {got:e} ({u} ulps)");
        }
    }
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
        // Results near overflow and underflow, where `y·log x` is large and an
        // unextended log would lose ~10 bits.
        let extremes: &[(f64, f64)] = if dtype == DType::F64 {
            &[(10.0, 308.0), (10.0, -307.5), (1.0000001, 7.09e9), (0.5, 1074.0), (2.0, -1074.0), (2.0, 1024.0), (3.7, 543.21), (0.9999, -7e6), (1.5, -1836.1)]
        } else {
            &[(2.0, 127.9), (10.0, 38.0), (2.0, -149.0), (1.0001, 8.8e5), (3.7, 67.8), (0.99, -8800.0), (1.5, -250.0)]
        };
        for &(x, y) in extremes {
            xs.push(x);
            ys.push(y);
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
    for y in [0.0, 0.5, 1.0, 2.0, -1.0, 3.0] {
        let xs = samples(DType::F32, &[(-3.0, 3.0), (-1e13, 1e13), (-1e-13, 1e-13)]);
        let res = run(DType::F32, &xs, &xs, |a, _| e::bin(BinOp::Pow, a, e::f32(y as f32)));
        for (x, _, want, got) in res {
            assert!(ulps32(want as f32, got as f32) <= 1, "pow({x:e}, {y}): want {want:e}, got {got:e}");
        }
    }
}

/// The f32 exp expansion and every expansion's size, for docs/math.md
/// (`cargo test -p edgec --lib print_expansions -- --nocapture`).
#[test]
fn print_expansions() {
    let mut p = program(DType::F32, 4, |a, _| e::un(UnOp::Exp, a));
    expand(&mut p);
    println!("{p}");
    fn size(e: &Expr) -> usize {
        1 + match e {
            Expr::Lit(_) | Expr::Var(_) => return 0,
            Expr::Load { index, .. } => size(index),
            Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Bitcast(_, a) => size(a),
            Expr::Binary(_, a, b) => size(a) + size(b),
            Expr::Select(a, b, c) | Expr::Fma(a, b, c) => size(a) + size(b) + size(c),
        }
    }
    let ops = [
        UnOp::Exp, UnOp::Log, UnOp::Tanh, UnOp::Erf, UnOp::Sin, UnOp::Cos, UnOp::Tan, UnOp::Atan,
        UnOp::Asin, UnOp::Acos, UnOp::Sinh, UnOp::Cosh, UnOp::Asinh, UnOp::Acosh, UnOp::Atanh,
    ];
    for dtype in [DType::F32, DType::F64] {
        let mut line = format!("{dtype} operations:");
        let mut count = |name: String, f: &dyn Fn(Expr, Expr) -> Expr| {
            let mut p = program(dtype, 4, f);
            expand(&mut p);
            let Stmt::Loop { body, .. } = &p.kernels[0].body[0] else { unreachable!("one loop") };
            let n: usize = body
                .iter()
                .map(|s| match s {
                    Stmt::Set { value, .. } | Stmt::Store { value, .. } => size(value),
                    _ => 0,
                })
                .sum();
            line += &format!(" {name} {}", n - 1);
        };
        for op in ops {
            count(format!("{op:?}"), &|a, _| e::un(op, a));
        }
        count("Pow".into(), &|a, b| e::bin(BinOp::Pow, a, b));
        println!("{line}");
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

/// Transcendentals on non-float operands (a malformed program) are left for the backend
/// to reject, without panicking.
#[test]
fn non_float_operands_are_left_alone() {
    let mut p = program(DType::I32, 2, |a, b| e::add(e::un(UnOp::Exp, a.clone()), e::bin(BinOp::Pow, a, b)));
    let before = p.kernels[0].body.clone();
    expand(&mut p);
    assert_eq!(p.kernels[0].body, before);
    // Mixed-type Pow and an unknown variable: also untouched.
    let mut p = program(DType::F32, 2, |a, _| e::bin(BinOp::Pow, a, e::f64(2.0)));
    p.kernels[0].body.push(Stmt::Set { var: Var(99), value: e::un(UnOp::Log, e::var(Var(98))) });
    let before = p.kernels[0].body.clone();
    expand(&mut p);
    assert_eq!(p.kernels[0].body, before);
}

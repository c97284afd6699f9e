//! The expansions against `ir::packed` (the reference evaluator's conversions): every
//! code decoded, and many f32/f64 values encoded — each representable value, the
//! halfway points between neighbours and their neighbours, NaN and infinities of both
//! signs, the extremes of f32, subnormals and pseudo-random bit patterns.

use ndarray::{ArrayD, IxDyn};

use super::expand;
use crate::ir::{packed, DType, Tensor};
use crate::kir::build::KernelBuilder;
use crate::kir::{e, interp, BufKind, Program};

const FLOATS: [DType; 5] = [DType::F8E4M3FN, DType::F8E4M3FNUZ, DType::F8E5M2, DType::F8E5M2FNUZ, DType::F4E2M1];
const INTS: [DType; 4] = [DType::U4, DType::I4, DType::U2, DType::I2];

fn packed_tensor(d: DType, codes: Vec<u8>) -> Tensor {
    Tensor::Packed(d, ArrayD::from_shape_vec(IxDyn(&[codes.len()]), codes).unwrap())
}

fn codes_of(t: &Tensor) -> Vec<u8> {
    match t {
        Tensor::Packed(_, a) => a.iter().copied().collect(),
        t => panic!("not packed: {t:?}"),
    }
}

/// `out[i] = value(in[i])`, packed types expanded, run by the interpreter.
fn run_map(from: DType, to: DType, input: Tensor, value: impl Fn(crate::kir::Expr) -> crate::kir::Expr) -> Tensor {
    let n = input.len();
    let mut p = Program::default();
    let a = p.add_buffer("a", from, vec![n], BufKind::Input(0));
    let o = p.add_buffer("o", to, vec![n], BufKind::Output(0));
    let mut kb = KernelBuilder::new("map");
    kb.for_(n, |kb, i| kb.store(o, i.clone(), value(e::load(a, i))));
    p.kernels.push(kb.finish());
    expand(&mut p);
    assert!(p.buffers.iter().all(|b| !super::is_expanded(b.dtype)));
    interp::run(&p, &[input]).unwrap().remove(0)
}

fn code_count(d: DType) -> u32 {
    1 << d.bits()
}

#[test]
fn decodes_every_code() {
    for d in FLOATS {
        let codes: Vec<u8> = (0..code_count(d)).map(|c| c as u8).collect();
        let got = run_map(d, DType::F32, packed_tensor(d, codes.clone()), |x| x);
        let Tensor::F32(got) = got else { panic!("f32 output") };
        for (&c, &g) in codes.iter().zip(got.iter()) {
            let want = packed::decode(d, c) as f32;
            if want.is_nan() {
                assert_eq!(g.to_bits(), 0x7FC0_0000, "{d} code {c:#x}");
            } else {
                assert_eq!(g.to_bits(), want.to_bits(), "{d} code {c:#x}: got {g}, want {want}");
            }
        }
    }
    for d in INTS {
        let codes: Vec<u8> = (0..code_count(d)).map(|c| c as u8).collect();
        let got = run_map(d, DType::I32, packed_tensor(d, codes.clone()), |x| x);
        let want: Vec<i64> = codes.iter().map(|&c| packed::decode(d, c) as i64).collect();
        assert_eq!(got.to_i64_vec().unwrap(), want, "{d}");
    }
}

/// Values that exercise every rounding decision of `d`.
fn probes(d: DType) -> Vec<f64> {
    let f = packed::minifloat(d).unwrap();
    let mut reps: Vec<f64> = (0..code_count(d)).map(|c| f.decode(c)).filter(|v| v.is_finite() && *v >= 0.0).collect();
    reps.sort_by(f64::total_cmp);
    reps.dedup();
    let mut v = vec![
        0.0,
        f64::INFINITY,
        f64::NAN,
        f64::MAX,
        1e30,
        3.4e38,
        1e-30,
        1e-45,
        1.17e-38,
        65504.0,
        65536.0,
        57344.0,
        61440.0,
        61439.0,
        480.0,
        464.0,
        448.0,
        240.0,
        248.0,
        6.0,
        7.0,
        5.0,
    ];
    let ulp = |x: f64, up: bool| {
        let b = (x as f32).to_bits();
        f32::from_bits(if up { b + 1 } else { b.saturating_sub(1) }) as f64
    };
    for w in reps.windows(2) {
        let mid = (w[0] + w[1]) / 2.0;
        v.extend([w[0], mid, ulp(mid, true), ulp(mid, false), ulp(w[0], true), ulp(w[0], false)]);
    }
    let top = *reps.last().unwrap();
    let step = top - reps[reps.len() - 2];
    v.extend([top + step / 2.0, ulp(top + step / 2.0, true), ulp(top + step / 2.0, false), top + step, top * 4.0]);
    // Pseudo-random f32 bit patterns (a fixed LCG).
    let mut s = 0x2545_F491u32;
    for _ in 0..4000 {
        s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        v.push(f32::from_bits(s) as f64);
    }
    let neg: Vec<f64> = v.iter().map(|x| -x).collect();
    v.extend(neg);
    v
}

#[test]
fn encodes_f32_like_the_reference() {
    for d in FLOATS {
        let xs: Vec<f32> = probes(d).into_iter().map(|x| x as f32).collect();
        let got = codes_of(&run_map(DType::F32, d, Tensor::from_vec(&[xs.len()], xs.clone()), |x| x));
        for (&x, &g) in xs.iter().zip(&got) {
            let want = packed::encode(d, x as f64, false);
            assert_eq!(g, want, "{d} of {x:e} ({:#010x}): got {g:#x}, want {want:#x}", x.to_bits());
        }
    }
}

#[test]
fn encodes_f64_like_the_reference() {
    for d in FLOATS {
        let mut xs = probes(d);
        // Halfway points only f64 can hold: rounding once, not through f32, matters.
        let mut s = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..4000 {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            xs.push(f64::from_bits(s));
            xs.push(f64::from_bits((s & 0x800F_FFFF_FFFF_FFFF) | (1020u64 << 52)));
        }
        xs.extend([1.0 + 2f64.powi(-4) + 2f64.powi(-40), 1.0 + 2f64.powi(-4) - 2f64.powi(-40), 1.0 + 2f64.powi(-4)]);
        let got = codes_of(&run_map(DType::F64, d, Tensor::from_vec(&[xs.len()], xs.clone()), |x| x));
        for (&x, &g) in xs.iter().zip(&got) {
            let want = packed::encode(d, x, false);
            assert_eq!(g, want, "{d} of {x:e}: got {g:#x}, want {want:#x}");
        }
    }
}

#[test]
fn integer_stores_keep_the_low_bits() {
    for d in INTS {
        let xs: Vec<i32> = (-40..40).chain([i32::MIN, i32::MAX]).collect();
        let got = codes_of(&run_map(DType::I32, d, Tensor::from_vec(&[xs.len()], xs.clone()), |x| x));
        let mask = (1 << d.bits()) - 1;
        let want: Vec<u8> = xs.iter().map(|&x| (x & mask) as u8).collect();
        assert_eq!(got, want, "{d}");
    }
}

/// Sub-byte stores in any order (read-modify-write of the byte), odd lengths, and
/// copies between buffers of one type (codes moved as they are: NaN payloads too).
#[test]
fn scattered_stores_and_copies() {
    for d in [DType::I4, DType::U2, DType::F4E2M1, DType::F8E5M2, DType::F8E4M3FN] {
        let n = 29usize;
        let codes: Vec<u8> = (0..n).map(|i| ((i * 7 + 3) % code_count(d) as usize) as u8).collect();
        let mut p = Program::default();
        let a = p.add_buffer("a", d, vec![n], BufKind::Input(0));
        let t = p.add_buffer("t", d, vec![n], BufKind::Temp);
        let o = p.add_buffer("o", d, vec![n], BufKind::Output(0));
        let mut kb = KernelBuilder::new("reverse");
        // t[n-1-i] = a[i], then o[i] = t[n-1-i]: every byte written from both halves.
        kb.for_(n, |kb, i| kb.store(t, e::sub(e::idx(n as i64 - 1), i.clone()), e::load(a, i)));
        kb.for_(n, |kb, i| kb.store(o, i.clone(), e::load(t, e::sub(e::idx(n as i64 - 1), i))));
        p.kernels.push(kb.finish());
        expand(&mut p);
        let got = interp::run(&p, &[packed_tensor(d, codes.clone())]).unwrap();
        assert_eq!(codes_of(&got[0]), codes, "{d}");
    }
}

/// Weights are packed into bytes as ONNX stores them; loads decode them.
#[test]
fn weights_are_packed() {
    let codes: Vec<u8> = vec![0x1, 0xF, 0x8, 0x7, 0x3];
    let mut p = Program::default();
    let w =
        p.add_buffer("w", DType::I4, vec![5], BufKind::Weight(std::sync::Arc::new(packed_tensor(DType::I4, codes))));
    let o = p.add_buffer("o", DType::I32, vec![5], BufKind::Output(0));
    let mut kb = KernelBuilder::new("k");
    kb.for_(5, |kb, i| kb.store(o, i.clone(), e::load(w, i)));
    p.kernels.push(kb.finish());
    expand(&mut p);
    match &p.buffers[0].kind {
        BufKind::Weight(t) => assert_eq!(t.to_i64_vec().unwrap(), vec![0xF1, 0x78, 0x03]),
        k => panic!("{k:?}"),
    }
    assert_eq!(p.buffers[0].dtype, DType::U8);
    let got = interp::run(&p, &[]).unwrap();
    assert_eq!(got[0].to_i64_vec().unwrap(), vec![1, -1, -8, 7, 3]);
}

//! The paths the host's ISA does not exercise: rounding without SSE4.1 and f32 fma
//! without FMA, forced on x86_64 and compared with the interpreter.

use std::fmt::Write as _;
use std::process::Command;

use super::{emit_with, isa, Caps};
use crate::back::{EmitOptions, Input};
use crate::ir::{DType, Tensor};
use crate::kir::build::KernelBuilder;
use crate::kir::{e, interp, BufKind, Expr, Program, UnOp};
use crate::plan::layout::layout;

fn program(dtype: DType, n: usize) -> Program {
    let mut p = Program::default();
    let a = p.add_buffer("a", dtype, vec![n], BufKind::Input(0));
    let ops = [UnOp::Floor, UnOp::Ceil, UnOp::Round, UnOp::Trunc];
    for (k, op) in ops.into_iter().enumerate() {
        let o = p.add_buffer(format!("{op:?}"), dtype, vec![n], BufKind::Output(k));
        let mut kb = KernelBuilder::new(format!("{op:?}"));
        kb.for_(n, |kb, i| kb.store(o, i.clone(), e::un(op, e::load(a, i))));
        p.kernels.push(kb.finish());
    }
    if dtype == DType::F32 {
        let o = p.add_buffer("fma", dtype, vec![n], BufKind::Output(ops.len()));
        let mut kb = KernelBuilder::new("fma");
        kb.for_(n, |kb, i| kb.store(o, i.clone(), e::fma(e::load(a, i.clone()), e::f32(1.0 / 3.0), e::load(a, i))));
        p.kernels.push(kb.finish());
    }
    p
}

fn values() -> Vec<f64> {
    let mut v = vec![0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, -3.5, 0.49999997, 4503599627370495.5, 8388607.5, -8388607.5, 1e20, -1e20, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-40, -7.0];
    v.extend((0..45).map(|i| (i as f64 - 22.0) * 0.37));
    v
}

#[test]
fn emulated_rounding_and_fma_match_the_interpreter() {
    for dtype in [DType::F32, DType::F64] {
        let n = values().len();
        let input = match dtype {
            DType::F32 => Tensor::from_vec(&[n], values().into_iter().map(|x| x as f32).collect()),
            _ => Tensor::from_vec(&[n], values()),
        };
        let p = program(dtype, n);
        let bytes: Vec<u8> = match &input {
            Tensor::F32(a) => a.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Tensor::F64(a) => a.iter().flat_map(|x| x.to_le_bytes()).collect(),
            _ => unreachable!(),
        };
        let (isa, caps) = isa::for_target(crate::targets::find("host").unwrap()).unwrap();
        let outs = run_native(&p, isa, Caps { rounding: false, fma: false, ..caps }, &bytes, &format!("{dtype}"));
        let lines = outs.iter();
        let want = interp::run(&p, std::slice::from_ref(&input)).unwrap();
        for (k, (got, w)) in lines.zip(&want).enumerate() {
            let (got, want): (Vec<f64>, Vec<f64>) = match w {
                Tensor::F32(a) => (got.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect(), a.iter().map(|&x| x as f64).collect()),
                Tensor::F64(a) => (got.chunks(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect(), a.iter().copied().collect()),
                _ => unreachable!(),
            };
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{dtype} output {k} element {i} ({}): got {g}, want {w}", values()[i]);
            }
        }
    }
}

/// Compiles `p` for the host with `caps`, links it with a C `main` that passes `input`
/// as the one input and prints the return code and every output's bytes, runs it and
/// returns the outputs' bytes (asserting a return code of 0).
fn run_native(p: &Program, isa: cranelift_codegen::isa::OwnedTargetIsa, caps: Caps, input: &[u8], tag: &str) -> Vec<Vec<u8>> {
    let target = crate::targets::find("host").unwrap();
    let l = layout(p);
    let opts = EmitOptions { name: "m", target, model_hash: 7, embedded_weights: None };
    let obj = emit_with(&[Input { program: p, layout: &l, options: opts }], isa, caps).unwrap();
    let dir = std::env::temp_dir().join(format!("edgec-cranelift-unit-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sizes: Vec<usize> = p.outputs().iter().map(|&b| p.buffer(b).len() * p.buffer(b).dtype.size()).collect();
    let mut c = String::from("#include <stdio.h>\nint m_run(const void *, void *, const void *const[], void *const[]);\n");
    let blob = crate::emit::blob::build(p, &l, 7).unwrap();
    writeln!(c, "static const unsigned char blob[{}] __attribute__((aligned(16))) = {{{}}};", blob.len(), blob.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",")).unwrap();
    writeln!(c, "static const unsigned char in0[{}] __attribute__((aligned(16))) = {{{}}};", input.len(), input.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",")).unwrap();
    writeln!(c, "static unsigned char arena[{}] __attribute__((aligned(16)));", l.arena_size.max(1)).unwrap();
    for (k, size) in sizes.iter().enumerate() {
        writeln!(c, "static unsigned char out{k}[{}] __attribute__((aligned(16)));", size.max(&1)).unwrap();
    }
    let list = (0..sizes.len()).map(|k| format!("out{k}")).collect::<Vec<_>>().join(",");
    writeln!(c, "int main(void) {{ const void *ins[] = {{in0}}; void *outs[] = {{{list}}};").unwrap();
    writeln!(c, "  printf(\"%d\\n\", m_run(blob, arena, ins, outs));").unwrap();
    for (k, size) in sizes.iter().enumerate() {
        writeln!(c, "  for (int i = 0; i < {size}; i++) printf(\"%02x\", out{k}[i]); printf(\"\\n\");").unwrap();
    }
    c.push_str("  return 0;\n}\n");
    std::fs::write(dir.join("m.o"), obj).unwrap();
    std::fs::write(dir.join("main.c"), c).unwrap();
    let cc = Command::new("cc").arg("-o").arg(dir.join("main")).arg(dir.join("main.c")).arg(dir.join("m.o")).status().unwrap();
    assert!(cc.success());
    let out = String::from_utf8(Command::new(dir.join("main")).output().unwrap().stdout).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"));
    lines.map(|line| (0..line.len() / 2).map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16).unwrap()).collect()).collect()
}

/// Packed stores are byte read-modify-writes: a loop that loads and stores the same byte
/// buffer (4-bit stores) must run in order, never as `f32x4`, and an f32 loop beside
/// them still vectorises. Compiled with the host's SIMD and compared with the
/// interpreter byte for byte.
#[test]
fn packed_read_modify_write_is_not_vectorised_wrongly() {
    let n = 37;
    let xs: Vec<f32> = (0..n).map(|i| (i as f32 - 18.0) * 0.7).collect();
    let mut p = Program::default();
    let a = p.add_buffer("a", DType::F32, vec![n], BufKind::Input(0));
    let mut kb = KernelBuilder::new("k");
    for (k, d) in [DType::I4, DType::U2, DType::F4E2M1, DType::F8E4M3FN].into_iter().enumerate() {
        let o = p.add_buffer(format!("o{k}"), d, vec![n], BufKind::Output(k));
        let v = |x| if d.is_int() { e::cast(crate::kir::Ty::I32, x) } else { x };
        kb.for_(n, |kb, i| kb.store(o, i.clone(), v(e::load(a, i))));
        // Overwrite the odd elements in a second pass: the even ones must survive.
        kb.for_(n / 2, |kb, i| {
            let j = e::add(e::mul(i.clone(), e::idx(2)), e::idx(1));
            kb.store(o, j, v(e::un(UnOp::Neg, e::load(a, i))))
        });
    }
    let f = p.add_buffer("f", DType::F32, vec![n], BufKind::Output(4));
    kb.for_(n, |kb, i| kb.store(f, i.clone(), e::mul(e::load(a, i), e::f32(3.0))));
    p.kernels.push(kb.finish());
    crate::kir::packed::expand(&mut p);
    let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    let (isa, caps) = isa::for_target(crate::targets::find("host").unwrap()).unwrap();
    let got = run_native(&p, isa, caps, &bytes, "packed");
    let want = interp::run(&p, &[Tensor::from_vec(&[n], xs)]).unwrap();
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(Some(g.clone()), crate::emit::bytes::to_le_bytes(w), "output {k}");
    }
}

/// Inputs that exercise every branch of the expansions: signed zeros, ±inf, NaNs (two
/// payloads), subnormals, the overflow/underflow edges of exp, huge magnitudes, the erf
/// piece edges, and a dense grid; 4·k + 3 of them, so the vector loops have a tail.
fn tricky_f32() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::from_bits(0xffc0_1234),
        1e-45,
        -1e-45,
        1.1754942e-38,
        -3e-39,
        f32::MIN_POSITIVE,
        88.72,
        88.73,
        89.5,
        -87.3,
        -103.9,
        -104.5,
        1e30,
        -1e30,
        f32::MAX,
        f32::MIN,
        0.5,
        -0.5,
        1.0,
        -1.0,
        0.84375,
        1.25,
        2.857143,
        3.9,
        6.0,
        9.99,
        10.01,
        16777216.0,
        1e-8,
        -2e-20,
    ];
    v.extend((0..200).map(|i| (i as f32 - 100.0) * 0.137));
    while v.len() % 4 != 3 {
        v.push(0.3);
    }
    v
}

/// One kernel per op over the input, through `math::expand` as compilation does.
fn transcendental_program(n: usize) -> Program {
    use crate::kir::BinOp;
    let mut p = Program::default();
    let a = p.add_buffer("a", DType::F32, vec![n], BufKind::Input(0));
    let ops = [UnOp::Exp, UnOp::Log, UnOp::Tanh, UnOp::Erf, UnOp::Sin, UnOp::Cos, UnOp::Atan, UnOp::Sinh, UnOp::Cosh, UnOp::Asinh, UnOp::Atanh, UnOp::Floor, UnOp::Round];
    let mut k = 0;
    let mut out = |p: &mut Program, name: &str| {
        k += 1;
        p.add_buffer(name, DType::F32, vec![n], BufKind::Output(k - 1))
    };
    for op in ops {
        // As the elementwise lowering writes it: the element in a variable first.
        let o = out(&mut p, &format!("{op:?}"));
        let mut kb = KernelBuilder::new(format!("{op:?}"));
        kb.for_(n, |kb, i| {
            let x = kb.let_(crate::kir::Ty::F32, e::load(a, i.clone()));
            kb.store(o, i, e::un(op, e::var(x)));
        });
        p.kernels.push(kb.finish());
    }
    // Pow with a variable exponent (f32 pow runs in f64: stays scalar) and GELU's cube.
    let o = out(&mut p, "pow");
    let mut kb = KernelBuilder::new("pow");
    kb.for_(n, |kb, i| kb.store(o, i.clone(), e::bin(BinOp::Pow, e::load(a, i.clone()), e::f32(3.0))));
    p.kernels.push(kb.finish());
    // Integer and mask work: casts, shifts, compares, selects on bools.
    let o = out(&mut p, "bits");
    let mut kb = KernelBuilder::new("bits");
    kb.for_(n, |kb, i| {
        let x = kb.let_(crate::kir::Ty::F32, e::load(a, i.clone()));
        let b = kb.let_(crate::kir::Ty::I32, Expr::Bitcast(crate::kir::Ty::I32, Box::new(e::var(x))));
        let c = kb.let_(crate::kir::Ty::I32, e::cast(crate::kir::Ty::I32, e::var(x)));
        let big = kb.let_(crate::kir::Ty::Bool, e::bin(BinOp::Gt, e::un(UnOp::Abs, e::var(x)), e::f32(100.0)));
        let mixed = e::bin(BinOp::Xor, e::bin(BinOp::UShr, e::var(b), e::i32(9)), e::bin(BinOp::Shl, e::var(c), e::i32(3)));
        let mixed = e::bin(BinOp::Or, e::bin(BinOp::Shr, mixed, e::i32(31)), e::bin(BinOp::And, e::var(b), e::i32(0x7fff)));
        let either = e::bin(BinOp::Or, e::var(big), e::bin(BinOp::Ne, e::var(x), e::var(x)));
        let v = e::select(either, e::cast(crate::kir::Ty::F32, e::var(c)), e::add(e::cast(crate::kir::Ty::F32, mixed), e::var(x)));
        kb.store(o, i, v);
    });
    p.kernels.push(kb.finish());
    // A softmax-shaped kernel: a running sum of exponentials (serial, in order) and a
    // store of each; then a maximum (stays scalar: too little work to vectorise).
    let o = out(&mut p, "expsum");
    let s_out = p.add_buffer("sum_max", DType::F32, vec![2], BufKind::Output(k));
    let mut kb = KernelBuilder::new("expsum");
    let s = kb.let_(crate::kir::Ty::F32, e::f32(0.0));
    kb.for_(n, |kb, i| {
        let ex = kb.let_(crate::kir::Ty::F32, e::un(UnOp::Exp, e::sub(e::load(a, i.clone()), e::f32(3.0))));
        kb.store(o, i.clone(), e::var(ex));
        kb.set(s, e::add(e::var(s), e::var(ex)));
    });
    kb.store(s_out, e::idx(0), e::var(s));
    p.kernels.push(kb.finish());
    let mut kb = KernelBuilder::new("max");
    let m = kb.let_(crate::kir::Ty::F32, e::f32(f32::NEG_INFINITY));
    kb.for_(n, |kb, i| {
        let v = e::load(a, i);
        kb.set(m, e::select(e::bin(BinOp::Gt, v.clone(), e::var(m)), v, e::var(m)));
    });
    kb.store(s_out, e::idx(1), e::var(m));
    p.kernels.push(kb.finish());
    crate::kir::math::expand(&mut p);
    p
}

/// The vectorised expansions (f32x4 with the host's SIMD) are bit-identical to the
/// interpreter and to the scalar code on tricky inputs, and the vectoriser did take
/// them: each kernel's code differs from its scalar compilation.
#[test]
fn vectorised_transcendentals_match_the_interpreter_bit_for_bit() {
    let xs = tricky_f32();
    let n = xs.len();
    let p = transcendental_program(n);
    let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    let want = interp::run(&p, &[Tensor::from_vec(&[n], xs.clone())]).unwrap();
    let (isa, caps) = isa::for_target(crate::targets::find("host").unwrap()).unwrap();
    assert!(caps.simd128, "the host vectorises");
    let vector = run_native(&p, isa, caps, &bytes, "vec");
    let (isa, _) = isa::for_target(crate::targets::find("host").unwrap()).unwrap();
    let scalar = run_native(&p, isa, Caps { simd128: false, ..caps }, &bytes, "scalar");
    for (k, w) in want.iter().enumerate() {
        let name = &p.buffer(p.outputs()[k]).name;
        let w = crate::emit::bytes::to_le_bytes(w).unwrap();
        for (i, ((g, s), w)) in vector[k].chunks(4).zip(scalar[k].chunks(4)).zip(w.chunks(4)).enumerate() {
            let x = xs.get(i).copied().unwrap_or(f32::NAN);
            let f = |b: &[u8]| f32::from_le_bytes(b.try_into().unwrap());
            // A NaN made inside an expansion (sin/cos of inf or of huge arguments) carries
            // whatever sign the instruction that made it gives (x86's default NaN is
            // negative, Cranelift's scalar and vector lowerings differ there, the
            // interpreter is Rust's); every other value, and NaNs passed through, agree bit
            // for bit.
            assert!(g == s || (f(g).is_nan() && f(s).is_nan()), "{name} element {i} (x = {x:e}): vector {:?} vs scalar {:?}", f(g), f(s));
            assert!(g == w || (f(g).is_nan() && f(w).is_nan()), "{name} element {i} (x = {x:e}): vector {:?} vs interpreter {:?}", f(g), f(w));
        }
    }
    // Vectorised or not, kernel by kernel: compile each alone both ways.
    let expect_vector = ["Exp", "Log", "Tanh", "Erf", "Sin", "Cos", "Atan", "Sinh", "Cosh", "Asinh", "Atanh", "Floor", "Round", "pow", "bits", "expsum"];
    for (ki, kernel) in p.kernels.iter().enumerate() {
        let one = Program { buffers: p.buffers.clone(), kernels: vec![kernel.clone()], ..Program::default() };
        let obj = |simd128| {
            let (isa, caps) = isa::for_target(crate::targets::find("host").unwrap()).unwrap();
            let l = layout(&one);
            let opts = EmitOptions { name: "m", target: crate::targets::find("host").unwrap(), model_hash: 7, embedded_weights: None };
            emit_with(&[Input { program: &one, layout: &l, options: opts }], isa, Caps { simd128, ..caps }).unwrap()
        };
        assert_eq!(obj(true) != obj(false), expect_vector.contains(&kernel.name.as_str()), "kernel {ki} ({})", kernel.name);
    }
}

/// A GEMM register block (stores fixed over the `k` loop, as `lower::linalg`'s panel
/// tiles build them): three rows, a 12-wide block kept in f32x4 registers over `k`, a
/// constant B, a 2-wide scalar edge. Compiled with the host's SIMD and compared with the
/// interpreter bit for bit.
#[test]
fn register_blocks_match_the_interpreter() {
    let (m, k, n) = (3usize, 11usize, 14usize);
    let xs: Vec<f32> = (0..m * k).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.173).collect();
    let ws: Vec<f32> = (0..k * n).map(|i| ((i * 53 % 29) as f32 - 14.0) * 0.071).collect();
    let mut p = Program::default();
    let a = p.add_buffer("a", DType::F32, vec![m, k], BufKind::Input(0));
    let w = std::sync::Arc::new(Tensor::from_vec(&[k, n], ws));
    let b = p.add_buffer("b", DType::F32, vec![k, n], BufKind::Weight(w));
    let y = p.add_buffer("y", DType::F32, vec![m, n], BufKind::Output(0));
    let mut kb = KernelBuilder::new("gemm");
    kb.for_(m * n, |kb, t| kb.store(y, t, e::f32(0.5)));
    for (j0, width) in [(0, 12), (12, 2)] {
        kb.for_(k, |kb, q| {
            kb.for_(width, |kb, jj| {
                let j = e::add(e::idx(j0), jj.clone());
                for r in 0..m as i64 {
                    let at = e::add(e::idx(r * n as i64), j.clone());
                    let av = e::load(a, e::add(e::idx(r * k as i64), q.clone()));
                    let bv = e::load(b, e::add(e::mul(q.clone(), e::idx(n as i64)), j.clone()));
                    kb.store(y, at.clone(), e::fma(av, bv, e::load(y, at)));
                }
            })
        });
    }
    p.kernels.push(kb.finish());
    let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
    let (isa, caps) = isa::for_target(crate::targets::find("host").unwrap()).unwrap();
    let got = run_native(&p, isa, caps, &bytes, "blocks");
    let want = interp::run(&p, &[Tensor::from_vec(&[m, k], xs)]).unwrap();
    assert_eq!(Some(got[0].clone()), crate::emit::bytes::to_le_bytes(&want[0]));
}

//! The Cranelift backend against the KIR interpreter: hand-written KIR programs are
//! compiled to objects, linked with a generated C driver and run natively (host) or
//! under QEMU (aarch64, riscv64, riscv64-v); every output must equal the
//! interpreter's bit for bit (NaNs compare equal to NaNs). Tests needing a cross
//! compiler or QEMU fail when the tool is missing.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use edgec::back::{cranelift::emit_object, BackendError, EmitOptions, Input};
use edgec::ir::{DType, Tensor};
use edgec::kir::build::{iadd, ilt, imul, KernelBuilder};
use edgec::kir::{e, interp, BinOp, BufId, BufKind, Expr, Program, Ty, UnOp};
use edgec::plan::layout::{layout, Layout};
use half::{bf16, f16};

const HASH: u64 = 0x1234_5678_9abc_def0;

// ---------------------------------------------------------------- test data

/// Deterministic pseudo-random numbers (no `rand` dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    fn f64(&mut self, scale: f64) -> f64 {
        (self.next() as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale
    }
}

/// Floats with the awkward cases first: signed zeros, ties, infinities, NaN, huge,
/// tiny and subnormal values.
fn special_f64() -> Vec<f64> {
    vec![
        0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.49, 1.0, -1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e30, -1e30, 1e-30, 7.0, -7.25,
        1e-40, 65504.0, 65520.0, 1e5, 3.0e9, -3.0e9, 1e19, 2.0f64.powi(52) + 0.5, 8388609.5, 0.1, 123.456, -0.75,
    ]
}

fn f32_values(n: usize, seed: u64) -> Vec<f32> {
    let mut r = Lcg(seed);
    let mut v: Vec<f32> = special_f64().into_iter().map(|x| x as f32).collect();
    while v.len() < n {
        v.push(r.f64(100.0) as f32);
    }
    v.truncate(n);
    v
}

fn f64_values(n: usize, seed: u64) -> Vec<f64> {
    let mut r = Lcg(seed);
    let mut v = special_f64();
    while v.len() < n {
        v.push(r.f64(100.0));
    }
    v.truncate(n);
    v
}

fn i64_values(n: usize, seed: u64) -> Vec<i64> {
    let mut r = Lcg(seed);
    let mut v = vec![0, 1, -1, 2, -2, 31, 32, 33, 63, 64, 65, -31, -64, i64::MIN, i64::MAX, i32::MIN as i64, i32::MAX as i64, 7, -7, 3];
    while v.len() < n {
        v.push((r.next() as i64) >> (r.next() % 60));
    }
    v.truncate(n);
    v
}

fn le_bytes(t: &Tensor) -> Vec<u8> {
    macro_rules! bytes {
        ($a:expr) => {
            $a.iter().flat_map(|x| x.to_le_bytes()).collect()
        };
    }
    match t {
        Tensor::F32(a) => bytes!(a),
        Tensor::F64(a) => bytes!(a),
        Tensor::F16(a) => bytes!(a),
        Tensor::BF16(a) => bytes!(a),
        Tensor::I8(a) => bytes!(a),
        Tensor::U8(a) => bytes!(a),
        Tensor::I16(a) => bytes!(a),
        Tensor::U16(a) => bytes!(a),
        Tensor::I32(a) => bytes!(a),
        Tensor::U32(a) => bytes!(a),
        Tensor::I64(a) => bytes!(a),
        Tensor::U64(a) => bytes!(a),
        Tensor::Bool(a) => a.iter().map(|&b| b as u8).collect(),
        Tensor::Packed(_, a) => a.iter().copied().collect(),
    }
}

/// The weight blob for a program, as `edgec compile` writes it.
fn weight_blob(p: &Program, l: &Layout) -> Vec<u8> {
    edgec::emit::blob::build(p, l, HASH).expect("weight blob")
}

// ---------------------------------------------------------------- running

#[derive(Clone, Copy)]
struct Platform {
    target: &'static str,
    cc: &'static str,
    nm: &'static str,
    runner: &'static [&'static str],
}

const HOST: Platform = Platform { target: "host", cc: "cc", nm: "nm", runner: &[] };
const A53: Platform = Platform { target: "cortex-a53", cc: "aarch64-linux-gnu-gcc", nm: "aarch64-linux-gnu-nm", runner: &["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"] };
const RV64: Platform = Platform { target: "riscv64", cc: "riscv64-linux-gnu-gcc", nm: "riscv64-linux-gnu-nm", runner: &["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu"] };
const RV64V: Platform =
    Platform { target: "riscv64-v", cc: "riscv64-linux-gnu-gcc", nm: "riscv64-linux-gnu-nm", runner: &["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu", "-cpu", "rv64,v=true,vlen=128"] };

fn c_bytes(name: &str, bytes: &[u8], konst: bool) -> String {
    let mut s = format!("static {}unsigned char {name}[{}] __attribute__((aligned(16))) = {{", if konst { "const " } else { "" }, bytes.len().max(1));
    for (i, b) in bytes.iter().enumerate() {
        if i % 32 == 0 {
            s.push('\n');
        }
        write!(s, "{b},").unwrap();
    }
    s.push_str("0};\n");
    s
}

/// A C program that calls `m_run` on the given data; `argv[1]` selects a fault to
/// inject (see `FAULTS`), then it prints the return code and each output in hex.
fn driver(p: &Program, l: &Layout, inputs: &[Tensor], embedded: bool) -> String {
    let mut c = String::from("#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>\n");
    c.push_str("int m_run(const void *, void *, const void *const[], void *const[]);\n");
    c.push_str(&c_bytes("blob", &weight_blob(p, l), false));
    for (k, t) in inputs.iter().enumerate() {
        c.push_str(&c_bytes(&format!("in{k}"), &le_bytes(t), false));
    }
    let outs = p.outputs();
    for (k, &o) in outs.iter().enumerate() {
        let b = p.buffer(o);
        writeln!(c, "static unsigned char out{k}[{}] __attribute__((aligned(16)));", (b.len() * b.dtype.size()).max(1)).unwrap();
    }
    writeln!(c, "static unsigned char arena[{}] __attribute__((aligned(16)));", l.arena_size + 16).unwrap();
    c.push_str("int main(int argc, char **argv) {\n  int fault = argc > 1 ? atoi(argv[1]) : 0;\n");
    let list = |pre: &str, n: usize| (0..n).map(|k| format!("{pre}{k}")).collect::<Vec<_>>().join(", ");
    writeln!(c, "  const void *ins[] = {{ {} }};", if inputs.is_empty() { "0".into() } else { list("in", inputs.len()) }).unwrap();
    writeln!(c, "  void *outs[] = {{ {} }};", if outs.is_empty() { "0".into() } else { list("out", outs.len()) }).unwrap();
    writeln!(c, "  const void *w = {};", if embedded { "0" } else { "blob" }).unwrap();
    c.push_str(
        "  void *a = arena;\n  const void *const *pi = ins;\n  void *const *po = outs;\n\
         switch (fault) {\n\
         case 1: w = 0; break;\n\
         case 2: blob[3] ^= 1; break;\n\
         case 3: blob[8] ^= 1; break;\n\
         case 4: blob[20] ^= 1; break;\n\
         case 5: blob[24] ^= 16; break;\n\
         case 7: a = arena + 4; break;\n\
         case 8: a = 0; break;\n\
         case 9: pi = 0; break;\n\
         case 10: ins[0] = 0; break;\n\
         case 11: po = 0; break;\n\
         }\n  int rc = m_run(w, a, pi, po);\n  printf(\"rc %d\\n\", rc);\n",
    );
    for (k, &o) in outs.iter().enumerate() {
        let b = p.buffer(o);
        writeln!(c, "  for (int i = 0; i < {}; i++) printf(\"%02x\", out{k}[i]);\n  printf(\"\\n\");", b.len() * b.dtype.size()).unwrap();
    }
    c.push_str("  return 0;\n}\n");
    c
}

fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("edgec-cranelift-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn compile(p: &Program, target: &str, embedded: Option<&[u8]>) -> Result<(Vec<u8>, Layout), BackendError> {
    let l = layout(p);
    let target = edgec::targets::find(target).expect("known target");
    let input = Input { program: p, layout: &l, options: EmitOptions { name: "m", target, model_hash: HASH, embedded_weights: embedded } };
    Ok((emit_object(&input)?, l))
}

fn tool(cmd: &mut Command, what: &str) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: cannot run {:?} ({e}); install the cross toolchain and qemu-user", cmd.get_program()));
    assert!(out.status.success(), "{what} failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

/// Builds the program for `plat` and runs it with fault `fault`; returns the code and
/// the outputs' bytes.
fn run(plat: Platform, p: &Program, inputs: &[Tensor], embed: bool, faults: &[u32], tag: &str) -> Vec<(i32, Vec<Vec<u8>>)> {
    let l = layout(p);
    let blob = weight_blob(p, &l);
    let (obj, l) = compile(p, plat.target, embed.then_some(blob.as_slice())).unwrap_or_else(|e| panic!("{tag}: {e}"));
    let dir = scratch_dir(&format!("{tag}-{}", plat.target));
    let (o, c, exe) = (dir.join("m.o"), dir.join("main.c"), dir.join("main"));
    std::fs::write(&o, obj).unwrap();
    std::fs::write(&c, driver(p, &l, inputs, embed)).unwrap();
    // No libcalls: the object must link against nothing.
    let undefined = tool(Command::new(plat.nm).arg("-u").arg(&o), &format!("{tag}: {}", plat.nm)).stdout;
    assert!(undefined.is_empty(), "{tag} on {}: undefined symbols {}", plat.target, String::from_utf8_lossy(&undefined));
    tool(Command::new(plat.cc).arg("-O1").arg("-o").arg(&exe).arg(&c).arg(&o), &format!("{tag}: linking with {}", plat.cc));
    let results = faults.iter().map(|&f| execute(plat, &exe, f, tag)).collect();
    std::fs::remove_dir_all(&dir).ok();
    results
}

fn execute(plat: Platform, exe: &Path, fault: u32, tag: &str) -> (i32, Vec<Vec<u8>>) {
    let mut cmd = match plat.runner.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.arg(fault.to_string());
    let out = tool(&mut cmd, &format!("{tag}: running"));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    let rc = lines.next().and_then(|l| l.strip_prefix("rc ")).and_then(|v| v.parse().ok()).expect("rc line");
    let outs = lines.map(|l| (0..l.len() / 2).map(|i| u8::from_str_radix(&l[2 * i..2 * i + 2], 16).unwrap()).collect()).collect();
    (rc, outs)
}

/// Element-wise comparison of output bytes, NaN equal to NaN.
fn same(dtype: DType, got: &[u8], want: &[u8]) -> Option<usize> {
    if got.len() != want.len() {
        return Some(usize::MAX);
    }
    let w = dtype.size();
    (0..got.len() / w).find(|&i| {
        let (g, x) = (&got[i * w..(i + 1) * w], &want[i * w..(i + 1) * w]);
        let nan = |b: &[u8]| match dtype {
            DType::F32 => f32::from_le_bytes(b.try_into().unwrap()).is_nan(),
            DType::F64 => f64::from_le_bytes(b.try_into().unwrap()).is_nan(),
            DType::F16 => f16::from_le_bytes(b.try_into().unwrap()).is_nan(),
            DType::BF16 => bf16::from_le_bytes(b.try_into().unwrap()).is_nan(),
            _ => false,
        };
        g != x && !(nan(g) && nan(x))
    })
}

/// Runs on `plat` (weights passed, then embedded) and compares every output with the
/// interpreter's.
fn matches_interpreter(plat: Platform, p: &Program, inputs: &[Tensor], tag: &str) -> Result<(), String> {
    let want = interp::run(p, inputs).map_err(|e| format!("{tag}: interpreter: {e:?}"))?;
    for embed in [false, true] {
        let (rc, got) = run(plat, p, inputs, embed, &[0], tag).remove(0);
        if rc != 0 {
            return Err(format!("{tag} on {}: return code {rc}", plat.target));
        }
        for (k, (o, w)) in p.outputs().into_iter().zip(&want).enumerate() {
            let b = p.buffer(o);
            let want = le_bytes(w);
            if let Some(i) = same(b.dtype, &got[k], &want) {
                let at = i.saturating_mul(b.dtype.size())..(i.saturating_add(1)).saturating_mul(b.dtype.size());
                return Err(format!(
                    "{tag} on {} (embedded {embed}): output {k} '{}' ({}) differs at element {i}: got {:02x?}, want {:02x?}",
                    plat.target,
                    b.name,
                    b.dtype,
                    got[k].get(at.clone()),
                    want.get(at)
                ));
            }
        }
    }
    Ok(())
}

fn check(plat: Platform, p: &Program, inputs: &[Tensor], tag: &str) {
    if let Err(e) = matches_interpreter(plat, p, inputs, tag) {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------- programs

/// `out_k[i] = f_k(a[i], b[i])` for each op, in one kernel per op.
/// A named elementwise op and its output type.
type Op = (&'static str, fn(Expr, Expr) -> Expr, DType);

fn elementwise(dtype: DType, n: usize, ops: &[Op]) -> Program {
    let mut p = Program::default();
    let a = p.add_buffer("a", dtype, vec![n], BufKind::Input(0));
    let b = p.add_buffer("b", dtype, vec![n], BufKind::Input(1));
    for (k, (name, f, out_dtype)) in ops.iter().enumerate() {
        let o = p.add_buffer(*name, *out_dtype, vec![n], BufKind::Output(k));
        let mut kb = KernelBuilder::new(*name);
        kb.for_(n, |kb, i| kb.store(o, i.clone(), f(e::load(a, i.clone()), e::load(b, i))));
        p.kernels.push(kb.finish());
    }
    p
}

fn un(op: UnOp) -> impl Fn(Expr, Expr) -> Expr {
    move |a, _| e::un(op, a)
}

macro_rules! ops {
    ($($name:literal => $f:expr, $dt:expr;)*) => {
        vec![$(($name, { fn f(a: Expr, b: Expr) -> Expr { let g = $f; g(a, b) } f } as fn(Expr, Expr) -> Expr, $dt)),*]
    };
}

fn float_ops(dt: DType) -> Vec<Op> {
    let mut v = ops! {
        "add" => |a, b| e::add(a, b), DType::F32;
        "sub" => |a, b| e::sub(a, b), DType::F32;
        "mul" => |a, b| e::mul(a, b), DType::F32;
        "div" => |a, b| e::div(a, b), DType::F32;
        "rem" => |a, b| e::bin(BinOp::Rem, a, b), DType::F32;
        "min" => |a, b| e::bin(BinOp::Min, a, b), DType::F32;
        "max" => |a, b| e::bin(BinOp::Max, a, b), DType::F32;
        "floor" => un(UnOp::Floor), DType::F32;
        "ceil" => un(UnOp::Ceil), DType::F32;
        "round" => un(UnOp::Round), DType::F32;
        "trunc" => un(UnOp::Trunc), DType::F32;
        "sqrt" => un(UnOp::Sqrt), DType::F32;
        "abs" => un(UnOp::Abs), DType::F32;
        "neg" => un(UnOp::Neg), DType::F32;
        "fma" => |a: Expr, b: Expr| e::fma(a.clone(), b, a), DType::F32;
        "lt" => |a, b| e::bin(BinOp::Lt, a, b), DType::Bool;
        "ne" => |a, b| e::bin(BinOp::Ne, a, b), DType::Bool;
        "ge" => |a, b| e::bin(BinOp::Ge, a, b), DType::Bool;
        "eq" => |a, b| e::bin(BinOp::Eq, a, b), DType::Bool;
        "sel" => |a: Expr, b: Expr| e::select(e::bin(BinOp::Le, a.clone(), b.clone()), a, b), DType::F32;
        "to_bool" => |a, _| e::cast(Ty::Bool, a), DType::Bool;
        "to_i32" => |a, _| e::cast(Ty::I32, a), DType::I32;
        "to_i64" => |a, _| e::cast(Ty::I64, a), DType::I64;
    };
    for o in &mut v {
        if o.2 == DType::F32 {
            o.2 = dt;
        }
    }
    v
}

fn float_program(dt: DType, n: usize) -> (Program, Vec<Tensor>) {
    let mut p = elementwise(dt, n, &float_ops(dt));
    // Casts to the other float width and through bits.
    let (a, other) = (BufId(0), if dt == DType::F32 { (DType::F64, Ty::F64) } else { (DType::F32, Ty::F32) });
    let o = p.add_buffer("to_other", other.0, vec![n], BufKind::Output(p.outputs().len()));
    let mut kb = KernelBuilder::new("to_other");
    kb.for_(n, |kb, i| kb.store(o, i.clone(), e::cast(other.1, e::load(a, i))));
    p.kernels.push(kb.finish());
    let (it, ft) = if dt == DType::F32 { (Ty::I32, Ty::F32) } else { (Ty::I64, Ty::F64) };
    let o = p.add_buffer("bits", dt, vec![n], BufKind::Output(p.outputs().len()));
    let mut kb = KernelBuilder::new("bits");
    kb.for_(n, |kb, i| {
        let bits = Expr::Bitcast(it, Box::new(e::load(a, i.clone())));
        let flipped = e::bin(BinOp::Xor, bits, if it == Ty::I32 { e::i32(1) } else { e::i64(1) });
        kb.store(o, i, Expr::Bitcast(ft, Box::new(flipped)))
    });
    p.kernels.push(kb.finish());
    if dt == DType::F32 {
        vector_cases(&mut p, n);
    }
    let inputs = if dt == DType::F32 {
        let a = f32_values(n, 1);
        let mut b = f32_values(n, 2);
        b.rotate_left(7);
        vec![Tensor::from_vec(&[n], a), Tensor::from_vec(&[n], b)]
    } else {
        let a = f64_values(n, 1);
        let mut b = f64_values(n, 2);
        b.rotate_left(7);
        vec![Tensor::from_vec(&[n], a), Tensor::from_vec(&[n], b)]
    };
    (p, inputs)
}

/// Loops the vectoriser takes (invariant loads and variables, in-place updates of a
/// temporary) and one it must leave scalar (a store and a load of the same buffer at
/// different indices: a loop-carried dependence).
fn vector_cases(p: &mut Program, n: usize) {
    let (a, b) = (BufId(0), BufId(1));
    let t = p.add_buffer("t", DType::F32, vec![n], BufKind::Temp);
    let axpy = p.add_buffer("axpy", DType::F32, vec![n], BufKind::Output(p.outputs().len()));
    let mut kb = KernelBuilder::new("axpy");
    let s = kb.let_(Ty::F32, e::load(b, e::idx(3)));
    kb.for_(n, |kb, i| kb.store(t, i.clone(), e::add(e::mul(e::load(a, i.clone()), e::var(s)), e::load(b, e::idx(5)))));
    kb.for_(n, |kb, i| kb.store(t, i.clone(), e::bin(BinOp::Max, e::load(t, i.clone()), e::f32(0.25))));
    kb.for_(n, |kb, i| kb.store(axpy, i.clone(), e::un(UnOp::Neg, e::load(t, i))));
    p.kernels.push(kb.finish());
    let scan = p.add_buffer("scan", DType::F32, vec![n], BufKind::Output(p.outputs().len()));
    let mut kb = KernelBuilder::new("scan");
    kb.store(scan, e::idx(0), e::f32(1.0));
    kb.for_(n - 1, |kb, i| kb.store(scan, iadd(i.clone(), e::idx(1)), e::mul(e::load(scan, i.clone()), e::f32(1.5))));
    p.kernels.push(kb.finish());
}

fn int_program(dt: DType, n: usize) -> (Program, Vec<Tensor>) {
    let ops = ops! {
        "add" => |a, b| e::add(a, b), DType::I64;
        "sub" => |a, b| e::sub(a, b), DType::I64;
        "mul" => |a, b| e::mul(a, b), DType::I64;
        "div" => |a, b| e::div(a, b), DType::I64;
        "rem" => |a, b| e::bin(BinOp::Rem, a, b), DType::I64;
        "min" => |a, b| e::bin(BinOp::Min, a, b), DType::I64;
        "max" => |a, b| e::bin(BinOp::Max, a, b), DType::I64;
        "and" => |a, b| e::bin(BinOp::And, a, b), DType::I64;
        "or" => |a, b| e::bin(BinOp::Or, a, b), DType::I64;
        "xor" => |a, b| e::bin(BinOp::Xor, a, b), DType::I64;
        "shl" => |a, b| e::bin(BinOp::Shl, a, b), DType::I64;
        "shr" => |a, b| e::bin(BinOp::Shr, a, b), DType::I64;
        "ushr" => |a, b| e::bin(BinOp::UShr, a, b), DType::I64;
        "neg" => un(UnOp::Neg), DType::I64;
        "abs" => un(UnOp::Abs), DType::I64;
        "not" => un(UnOp::Not), DType::I64;
        "le" => |a, b| e::bin(BinOp::Le, a, b), DType::Bool;
        "gt" => |a, b| e::bin(BinOp::Gt, a, b), DType::Bool;
        "to_f32" => |a, _| e::cast(Ty::F32, a), DType::F32;
        "to_f64" => |a, _| e::cast(Ty::F64, a), DType::F64;
        "to_bool" => |a, _| e::cast(Ty::Bool, a), DType::Bool;
    };
    let ops: Vec<_> = ops.into_iter().map(|(n, f, d)| (n, f, if d == DType::I64 { dt } else { d })).collect();
    let mut p = elementwise(dt, n, &ops);
    let (a, other) = (BufId(0), if dt == DType::I32 { (DType::I64, Ty::I64) } else { (DType::I32, Ty::I32) });
    let o = p.add_buffer("to_other", other.0, vec![n], BufKind::Output(p.outputs().len()));
    let mut kb = KernelBuilder::new("to_other");
    kb.for_(n, |kb, i| kb.store(o, i.clone(), e::cast(other.1, e::load(a, i))));
    p.kernels.push(kb.finish());
    let a = i64_values(n, 3);
    let mut b = i64_values(n, 4);
    b.rotate_left(3);
    let inputs = if dt == DType::I32 {
        let c = |v: Vec<i64>| Tensor::from_vec(&[n], v.into_iter().map(|x| x as i32).collect::<Vec<_>>());
        vec![c(a), c(b)]
    } else {
        vec![Tensor::from_vec(&[n], a), Tensor::from_vec(&[n], b)]
    };
    (p, inputs)
}

/// Every storage type: each input is loaded, changed (so narrowing matters) and
/// stored to an output of the same type; f32 values also go through f16 and bf16
/// temporaries in the arena.
fn storage_program(n: usize) -> (Program, Vec<Tensor>) {
    let mut p = Program::default();
    let vals = f64_values(n, 5);
    let mut r = Lcg(9);
    let ints: Vec<i64> = (0..n).map(|_| r.next() as i64).collect();
    let types = [DType::F16, DType::BF16, DType::I8, DType::U8, DType::I16, DType::U16, DType::U32, DType::U64, DType::Bool];
    let mut inputs = Vec::new();
    for (k, &dt) in types.iter().enumerate() {
        let t = match dt {
            DType::F16 => Tensor::from_vec(&[n], vals.iter().map(|&v| f16::from_f64(v)).collect()),
            DType::BF16 => Tensor::from_vec(&[n], vals.iter().map(|&v| bf16::from_f64(v)).collect()),
            DType::Bool => Tensor::from_vec(&[n], ints.iter().map(|&v| v % 3 == 0).collect()),
            DType::U64 => Tensor::from_vec(&[n], ints.iter().map(|&v| v as u64).collect()),
            d => Tensor::from_vec(&[n], ints.clone()).cast(d),
        };
        inputs.push(t);
        let i = p.add_buffer(format!("in_{dt}"), dt, vec![n], BufKind::Input(k));
        let o = p.add_buffer(format!("out_{dt}"), dt, vec![n], BufKind::Output(k));
        let ty = Ty::of_storage(dt).unwrap();
        let mut kb = KernelBuilder::new(format!("copy_{dt}"));
        kb.for_(n, |kb, ix| {
            let x = e::load(i, ix.clone());
            let y = match ty {
                Ty::F32 => e::mul(x, e::f32(1.75)),
                Ty::I32 => e::add(x, e::i32(100)),
                Ty::I64 => e::add(x, e::i64(1 << 33)),
                _ => e::un(UnOp::Not, x),
            };
            kb.store(o, ix, y)
        });
        p.kernels.push(kb.finish());
    }
    // f32 → f16 / bf16 temporaries → f32 output.
    let k = types.len();
    let src = p.add_buffer("f32_in", DType::F32, vec![n], BufKind::Input(k));
    inputs.push(Tensor::from_vec(&[n], f32_values(n, 6).into_iter().enumerate().map(|(i, v)| if i % 2 == 0 { v * 1e-6 } else { v * 700.0 }).collect()));
    for (j, dt) in [DType::F16, DType::BF16].into_iter().enumerate() {
        let tmp = p.add_buffer(format!("tmp_{dt}"), dt, vec![n], BufKind::Temp);
        let o = p.add_buffer(format!("round_trip_{dt}"), DType::F32, vec![n], BufKind::Output(k + j));
        let mut kb = KernelBuilder::new("narrow");
        kb.for_(n, |kb, i| kb.store(tmp, i.clone(), e::load(src, i)));
        p.kernels.push(kb.finish());
        let mut kb = KernelBuilder::new("widen");
        kb.for_(n, |kb, i| kb.store(o, i.clone(), e::load(tmp, i)));
        p.kernels.push(kb.finish());
    }
    (p, inputs)
}

/// Weights, arena temporaries, nested loops, variables, `If` and a guarded `Select`:
/// `y = relu(x @ W + bias)` then a gather from `y` by an index input that fails with
/// code 6 when out of range.
fn model_program(rows: usize, k: usize, cols: usize, idx: Vec<i64>) -> (Program, Vec<Tensor>) {
    let mut p = Program::default();
    let mut r = Lcg(11);
    let x = p.add_buffer("x", DType::F32, vec![rows, k], BufKind::Input(0));
    let ids = p.add_buffer("ids", DType::I64, vec![idx.len()], BufKind::Input(1));
    let w_t = Tensor::from_vec(&[k, cols], (0..k * cols).map(|_| r.f64(1.0) as f32).collect());
    let w = p.add_buffer("w", DType::F32, vec![k, cols], BufKind::Weight(w_t.into()));
    let b_t = Tensor::from_vec(&[cols], (0..cols).map(|_| r.f64(1.0) as f32).collect());
    let bias = p.add_buffer("bias", DType::F32, vec![cols], BufKind::Weight(b_t.into()));
    let y = p.add_buffer("y", DType::F32, vec![rows, cols], BufKind::Temp);
    let out = p.add_buffer("out", DType::F32, vec![idx.len(), cols], BufKind::Output(0));
    let guarded = p.add_buffer("guarded", DType::F32, vec![idx.len()], BufKind::Output(1));

    let mut kb = KernelBuilder::new("matmul");
    kb.for_shape(&[rows, cols], |kb, ix| {
        let acc = kb.let_(Ty::F32, e::load(bias, ix[1].clone()));
        kb.for_(k, |kb, kk| {
            let xv = e::load(x, iadd(imul(ix[0].clone(), k as i64), kk.clone()));
            let wv = e::load(w, iadd(imul(kk, cols as i64), ix[1].clone()));
            kb.set(acc, e::fma(xv, wv, e::var(acc)));
        });
        let v = e::var(acc);
        kb.if_(e::bin(BinOp::Lt, v.clone(), e::f32(0.0)), |kb| kb.store(y, iadd(imul(ix[0].clone(), cols as i64), ix[1].clone()), e::f32(0.0)), |kb| {
            kb.store(y, iadd(imul(ix[0].clone(), cols as i64), ix[1].clone()), v)
        });
    });
    p.kernels.push(kb.finish());

    let mut kb = KernelBuilder::new("gather");
    let n = idx.len();
    kb.for_(n, |kb, i| {
        let id = kb.let_(Ty::Index, e::load(ids, i.clone()));
        let bad = e::bin(BinOp::Or, ilt(e::var(id), e::idx(0)), e::bin(BinOp::Ge, e::var(id), e::idx(rows as i64)));
        kb.if_(bad, |kb| kb.fail(6), |_| {});
        kb.for_(cols, |kb, c| kb.store(out, iadd(imul(i.clone(), cols as i64), c.clone()), e::load(y, iadd(imul(e::var(id), cols as i64), c))));
    });
    p.kernels.push(kb.finish());

    // A load that is in bounds only where its guard holds: KIR's `Select` evaluates
    // both sides, so the guard is an `If` (the form lowerings must use).
    let mut kb = KernelBuilder::new("guarded");
    kb.for_(n, |kb, i| {
        let id = e::load(ids, i.clone());
        let ok = e::bin(BinOp::Lt, id.clone(), e::idx(3));
        kb.if_(ok, |kb| kb.store(guarded, i.clone(), e::load(y, id.clone())), |kb| kb.store(guarded, i.clone(), e::f32(-1.0)));
    });
    p.kernels.push(kb.finish());

    let xs = Tensor::from_vec(&[rows, k], (0..rows * k).map(|_| r.f64(2.0) as f32).collect());
    let n = idx.len();
    (p, vec![xs, Tensor::from_vec(&[n], idx)])
}

// ---------------------------------------------------------------- suites

fn all_programs() -> Vec<(&'static str, Program, Vec<Tensor>)> {
    let (p1, i1) = float_program(DType::F32, 67);
    let (p2, i2) = float_program(DType::F64, 45);
    let (p3, i3) = int_program(DType::I32, 64);
    let (p4, i4) = int_program(DType::I64, 64);
    let (p5, i5) = storage_program(70);
    let (p6, i6) = model_program(5, 7, 9, vec![0, 4, 2, 2]);
    vec![("f32", p1, i1), ("f64", p2, i2), ("i32", p3, i3), ("i64", p4, i4), ("storage", p5, i5), ("model", p6, i6)]
}

fn suite(plat: Platform) {
    for (tag, p, inputs) in all_programs() {
        check(plat, &p, &inputs, tag);
    }
}

#[test]
fn host_matches_interpreter() {
    suite(HOST);
}

#[test]
fn aarch64_matches_interpreter() {
    suite(A53);
}

#[test]
fn riscv64_matches_interpreter() {
    suite(RV64);
}

#[test]
fn riscv64_v_matches_interpreter() {
    suite(RV64V);
}

#[test]
fn fail_codes_and_argument_checks() {
    let (p, inputs) = model_program(3, 2, 4, vec![1, 3]);
    assert_eq!(interp::run(&p, &inputs).unwrap_err(), interp::Stop::Fail(6));
    let faults = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11];
    let codes: Vec<i32> = run(HOST, &p, &inputs, false, &faults, "faults").into_iter().map(|r| r.0).collect();
    assert_eq!(codes, [6, 1, 2, 3, 4, 5, 7, 8, 8, 8, 8]);
    // With embedded weights the argument and the caller's blob are ignored.
    let codes: Vec<i32> = run(HOST, &p, &inputs, true, &[1, 2, 7], "faults-embedded").into_iter().map(|r| r.0).collect();
    assert_eq!(codes, [6, 6, 7]);
}

#[test]
fn objects_are_reproducible() {
    for (_, p, _) in all_programs() {
        for t in ["host", "cortex-a72", "riscv64"] {
            assert_eq!(compile(&p, t, None).unwrap().0, compile(&p, t, None).unwrap().0, "{t}");
        }
    }
}

#[test]
fn unsupported_is_an_error() {
    let mut p = Program::default();
    let a = p.add_buffer("a", DType::F32, vec![4], BufKind::Input(0));
    let o = p.add_buffer("o", DType::F32, vec![4], BufKind::Output(0));
    let mut kb = KernelBuilder::new("exp");
    kb.for_(4, |kb, i| kb.store(o, i.clone(), e::un(UnOp::Exp, e::load(a, i))));
    p.kernels.push(kb.finish());
    assert!(matches!(compile(&p, "host", None), Err(BackendError::Unsupported { .. })));
    assert!(matches!(compile(&p, "cortex-m4", None), Err(BackendError::Unsupported { .. })));
    // A type error in KIR is a clean error too, not a panic.
    let mut kb = KernelBuilder::new("bad");
    kb.for_(4, |kb, i| kb.store(o, i.clone(), e::add(e::load(a, i), e::i32(1))));
    p.kernels = vec![kb.finish()];
    assert!(compile(&p, "host", None).is_err());
}

/// Contiguous f32 loops use 128-bit vector instructions on x86_64 and aarch64.
#[test]
fn contiguous_f32_loops_are_vectorised() {
    let (p, _) = float_program(DType::F32, 67);
    for (target, objdump, needle) in [("host", "objdump", "mulps"), ("cortex-a76", "aarch64-linux-gnu-objdump", ".4s")] {
        let dir = scratch_dir(&format!("simd-{target}"));
        let o = dir.join("m.o");
        std::fs::write(&o, compile(&p, target, None).unwrap().0).unwrap();
        let asm = String::from_utf8(tool(Command::new(objdump).arg("-d").arg(&o), objdump).stdout).unwrap();
        std::fs::remove_dir_all(&dir).ok();
        assert!(asm.contains(needle), "{target}: no '{needle}' in the disassembly");
    }
}

/// The ONNX backend node tests that lower to KIR and run on the interpreter, compiled
/// for the host and compared with the interpreter (after `kir::math::expand`, so both
/// compute the same expansions). The data comes from `EDGEC_NODE_DATA` or the onnx
/// package in the project's `.venv`; `EDGEC_NODE_FILTER` keeps the cases whose name
/// contains it, `EDGEC_NODE_TARGET` (`cortex-a53`, `riscv64`, `riscv64-v`) runs them
/// under QEMU instead of on the host.
#[test]
#[ignore = "about 2 minutes; CI runs the node tests per target through edgec-testsuite — run with --ignored"]
fn onnx_node_tests_match_interpreter() {
    use edgec::passes::bind::ShapeBindings;
    let dir = std::env::var_os("EDGEC_NODE_DATA").map(PathBuf::from).or_else(|| {
        let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/lib");
        std::fs::read_dir(lib).ok()?.flatten().map(|e| e.path().join("site-packages/onnx/backend/test/data/node")).find(|p| p.is_dir())
    });
    let dir = dir.expect("no ONNX node-test data: set EDGEC_NODE_DATA or create .venv with onnx==1.22.0");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    cases.sort();
    let filter = std::env::var("EDGEC_NODE_FILTER").unwrap_or_default();
    let plat = match std::env::var("EDGEC_NODE_TARGET").as_deref() {
        Ok("cortex-a53") => A53,
        Ok("riscv64") => RV64,
        Ok("riscv64-v") => RV64V,
        Ok(t) if t != "host" => panic!("EDGEC_NODE_TARGET={t}: expected host, cortex-a53, riscv64 or riscv64-v"),
        _ => HOST,
    };
    let (mut passed, mut failed, mut unsupported) = (0, Vec::new(), 0);
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if !name.contains(&filter) {
            continue;
        }
        let Ok(model) = edgec::front::onnx::load(&case.join("model.onnx")) else { continue };
        if model.check_supported().is_err() {
            continue;
        }
        let Some(set) = edgec::testdata::data_sets(&case).into_iter().next() else { continue };
        let Ok(inputs) = edgec::testdata::read_numbered(&set, "input") else { continue };
        let g = &model.graph;
        if inputs.len() != g.inputs.len() {
            continue;
        }
        let bindings = ShapeBindings {
            dims: Default::default(),
            input_shapes: g.inputs.iter().zip(&inputs).map(|(&v, t)| (g.value(v).name.clone(), t.shape().to_vec())).collect(),
        };
        let Ok(prepared) = edgec::pipeline::prepare(g.clone(), &bindings) else { continue };
        let Ok(mut program) = edgec::lower::lower(&prepared) else { continue };
        edgec::kir::math::expand(&mut program);
        if interp::run(&program, &inputs).is_err() {
            continue;
        }
        match compile(&program, plat.target, None) {
            Err(BackendError::Unsupported { .. }) => unsupported += 1,
            Err(e) => failed.push(format!("{name}: {e}")),
            Ok(_) => match matches_interpreter(plat, &program, &inputs, &name) {
                Ok(()) => passed += 1,
                Err(e) => failed.push(e),
            },
        }
    }
    println!("cranelift node tests on {}: {passed} passed, {} failed, {unsupported} unsupported", plat.target, failed.len());
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// Every f16 and bf16 bit pattern widened, random f32 bit patterns narrowed to both,
/// and `fmod` on every pair of awkward values, on the host, aarch64 and riscv64.
#[test]
fn half_conversions_and_fmod_exhaustively() {
    let mut p = Program::default();
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let mut r = Lcg(21);
    let mut bits: Vec<f32> = special_f64().into_iter().map(|x| x as f32).collect();
    bits.extend((0..20_000).map(|_| f32::from_bits(r.next() as u32)));
    // Values at and around the f16 rounding boundaries.
    bits.extend((0..4096u32).map(|i| f32::from_bits(0x3380_0000 + i * 0x0001_1000 + (i % 3))));
    let specials = special_f64();
    let pairs: Vec<(f64, f64)> = specials.iter().flat_map(|&x| specials.iter().map(move |&y| (x, y))).collect();
    let inputs = vec![
        Tensor::from_vec(&[all.len()], all.iter().map(|&b| f16::from_bits(b)).collect()),
        Tensor::from_vec(&[all.len()], all.iter().map(|&b| bf16::from_bits(b)).collect()),
        Tensor::from_vec(&[bits.len()], bits.clone()),
        Tensor::from_vec(&[pairs.len()], pairs.iter().map(|p| p.0 as f32).collect()),
        Tensor::from_vec(&[pairs.len()], pairs.iter().map(|p| p.1 as f32).collect()),
        Tensor::from_vec(&[pairs.len()], pairs.iter().map(|p| p.0).collect()),
        Tensor::from_vec(&[pairs.len()], pairs.iter().map(|p| p.1).collect()),
    ];
    let ins: Vec<BufId> = inputs.iter().enumerate().map(|(k, t)| p.add_buffer(format!("in{k}"), t.dtype(), t.shape().to_vec(), BufKind::Input(k))).collect();
    let outs = [
        ("f16_to_f32", DType::F32, all.len()),
        ("bf16_to_f32", DType::F32, all.len()),
        ("f32_to_f16", DType::F16, bits.len()),
        ("f32_to_bf16", DType::BF16, bits.len()),
        ("fmod32", DType::F32, pairs.len()),
        ("fmod64", DType::F64, pairs.len()),
    ];
    let outs: Vec<BufId> = outs.iter().enumerate().map(|(k, (name, dt, n))| p.add_buffer(*name, *dt, vec![*n], BufKind::Output(k))).collect();
    let sources: [(usize, Option<usize>); 6] = [(0, None), (1, None), (2, None), (2, None), (3, Some(4)), (5, Some(6))];
    for (&o, (a, b)) in outs.iter().zip(sources) {
        let n = p.buffer(o).len();
        let mut kb = KernelBuilder::new(p.buffer(o).name.clone());
        kb.for_(n, |kb, i| {
            let x = e::load(ins[a], i.clone());
            let v = match b {
                Some(b) => e::bin(BinOp::Rem, x, e::load(ins[b], i.clone())),
                None => x,
            };
            kb.store(o, i, v)
        });
        p.kernels.push(kb.finish());
    }
    check(HOST, &p, &inputs, "half-fmod");
    check(A53, &p, &inputs, "half-fmod");
    check(RV64, &p, &inputs, "half-fmod");
}

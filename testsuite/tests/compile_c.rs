//! The C backend against the KIR interpreter, bit for bit, on hand-built programs that
//! exercise every primitive's edge cases (NaN, ±0, infinities, overflow, division by
//! zero, out-of-range shifts, f16/bf16 rounding); plus the artifacts: deterministic
//! output, the header under strict flags, and the blob checks' error codes.
//!
//! These need the host C compiler (`cc`): without it they fail, never skip.

use std::path::Path;
use std::process::Command;

use edgec::emit::driver::{run_batch, Job, SetResult};
use edgec::emit::{compile_program, toolchain, Artifacts, CodeKind, CompileOptions};
use edgec::ir::{DType, Tensor};
use edgec::kir::e::*;
use edgec::kir::{interp, BinOp, BufKind, Expr, Kernel, Program, Stmt, Ty, UnOp, Var};
use edgec::plan::layout::layout;

const N: usize = 20;

/// An output's value from the loaded inputs (and the weight, last).
type OutFn = Box<dyn Fn(&[Expr]) -> Expr>;

fn xs() -> Vec<f32> {
    vec![
        0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, 3.7, -3.7, 1e-40, 3e9, -3e9, 1e20, f32::NAN, f32::INFINITY,
        f32::NEG_INFINITY, 65520.0, 1e-8, 123.456, -7.0,
    ]
}
fn ys() -> Vec<f32> {
    vec![1.0, 3.0, 0.0, -0.0, 2.0, -2.0, 0.3, f32::NAN, 1.5, 1e-3, 7.0, -3.0, f32::INFINITY, 2.0, 2.0, 1.0, 0.1, 3.0, -0.7, 2.5]
}
fn is() -> Vec<i32> {
    vec![0, 1, -1, i32::MIN, i32::MAX, 7, -7, 100, -100, 31, 32, 33, -5, 5, 12345678, -2, 3, 64, 1 << 30, 17]
}
fn js() -> Vec<i32> {
    vec![0, 0, -1, -1, 2, 3, -3, 0, 7, 31, 32, -1, 2, -2, 1000, 1, 40, 63, 3, i32::MIN]
}

/// One kernel: `for i in 0..N { out_k[i] = f_k(inputs[i]) }` for every (dtype, f_k).
fn elementwise(inputs: &[(DType, Vec<usize>)], outs: Vec<(DType, OutFn)>) -> Program {
    let mut p = Program::default();
    let ins: Vec<_> = inputs.iter().enumerate().map(|(k, (d, s))| p.add_buffer(format!("in{k}"), *d, s.clone(), BufKind::Input(k))).collect();
    let w = p.add_buffer("w", DType::F32, vec![N], BufKind::Weight(std::sync::Arc::new(Tensor::from_vec(&[N], (0..N).map(|i| i as f32 * 0.37 - 2.0).collect::<Vec<f32>>()))));
    let i = Var(0);
    let mut loads: Vec<Expr> = ins.iter().map(|&b| load(b, var(i))).collect();
    loads.push(load(w, var(i)));
    let mut body = Vec::new();
    for (k, (d, f)) in outs.iter().enumerate() {
        let o = p.add_buffer(format!("out{k}"), *d, vec![N], BufKind::Output(k));
        body.push(Stmt::Store { buf: o, index: var(i), value: f(&loads) });
    }
    p.kernels.push(Kernel { name: "elementwise".into(), vars: vec![Ty::Index], body: vec![Stmt::Loop { var: i, extent: N, body }] });
    p
}

fn b(op: BinOp, a: &Expr, c: &Expr) -> Expr {
    bin(op, a.clone(), c.clone())
}

fn float_program() -> Program {
    use BinOp::*;
    let mut outs: Vec<(DType, OutFn)> = Vec::new();
    for op in [Add, Sub, Mul, Div, Rem, Min, Max] {
        outs.push((DType::F32, Box::new(move |l| b(op, &l[0], &l[1]))));
        outs.push((DType::F64, Box::new(move |l| b(op, &cast(Ty::F64, l[0].clone()), &cast(Ty::F64, l[1].clone())))));
    }
    for op in [Lt, Le, Eq, Ne] {
        outs.push((DType::Bool, Box::new(move |l| b(op, &l[0], &l[1]))));
    }
    for op in [UnOp::Neg, UnOp::Abs, UnOp::Sqrt, UnOp::Floor, UnOp::Ceil, UnOp::Round, UnOp::Trunc] {
        outs.push((DType::F32, Box::new(move |l| un(op, l[0].clone()))));
        outs.push((DType::F64, Box::new(move |l| un(op, cast(Ty::F64, mul(l[0].clone(), l[1].clone()))))));
    }
    outs.push((DType::I32, Box::new(|l| cast(Ty::I32, l[0].clone()))));
    outs.push((DType::I64, Box::new(|l| cast(Ty::I64, mul(l[0].clone(), l[0].clone())))));
    outs.push((DType::F16, Box::new(|l| mul(l[0].clone(), l[1].clone()))));
    outs.push((DType::BF16, Box::new(|l| div(l[0].clone(), l[1].clone()))));
    outs.push((DType::F32, Box::new(|l| l[2].clone())));
    outs.push((DType::F32, Box::new(|l| l[3].clone())));
    outs.push((DType::F32, Box::new(|l| fma(l[0].clone(), l[1].clone(), l[4].clone()))));
    outs.push((DType::F32, Box::new(|l| select(b(Lt, &l[0], &l[1]), l[0].clone(), l[4].clone()))));
    // The exact rounding error of a product, which the math expansions rely on.
    let d = |e: &Expr| cast(Ty::F64, mul(e.clone(), f32(1.1)));
    outs.push((DType::F64, Box::new(move |l| fma(d(&l[0]), d(&l[1]), un(UnOp::Neg, mul(d(&l[0]), d(&l[1])))))));
    outs.push((DType::F64, Box::new(move |l| fma(d(&l[0]), d(&l[1]), d(&l[4])))));
    outs.push((DType::I32, Box::new(|l| Expr::Bitcast(Ty::I32, Box::new(l[0].clone())))));
    outs.push((DType::Bool, Box::new(|l| cast(Ty::Bool, l[0].clone()))));
    outs.push((DType::F32, Box::new(|l| add(cast(Ty::F32, b(Lt, &l[0], &l[1])), f32(f32::INFINITY)))));
    elementwise(&[(DType::F32, vec![N]), (DType::F32, vec![N]), (DType::F16, vec![N]), (DType::BF16, vec![N])], outs)
}

fn int_program() -> Program {
    use BinOp::*;
    let mut outs: Vec<(DType, OutFn)> = Vec::new();
    for op in [Add, Sub, Mul, Div, Rem, Min, Max, And, Or, Xor, Shl, Shr, UShr] {
        outs.push((DType::I32, Box::new(move |l| b(op, &l[0], &l[1]))));
        outs.push((DType::I64, Box::new(move |l| {
            let big = |e: &Expr| mul(cast(Ty::I64, e.clone()), i64(3_000_000_007));
            b(op, &big(&l[0]), &cast(Ty::I64, l[1].clone()))
        })));
    }
    for op in [UnOp::Neg, UnOp::Abs, UnOp::Not] {
        outs.push((DType::I32, Box::new(move |l| un(op, l[0].clone()))));
    }
    outs.push((DType::U8, Box::new(|l| l[0].clone())));
    outs.push((DType::I8, Box::new(|l| l[0].clone())));
    outs.push((DType::U16, Box::new(|l| l[0].clone())));
    outs.push((DType::U32, Box::new(|l| cast(Ty::I64, l[0].clone()))));
    outs.push((DType::I32, Box::new(|l| cast(Ty::I32, mul(cast(Ty::I64, l[0].clone()), i64(1 << 33 | 5))))));
    outs.push((DType::F32, Box::new(|l| cast(Ty::F32, mul(cast(Ty::I64, l[0].clone()), i64(123_456_789_123))))));
    outs.push((DType::F32, Box::new(|l| cast(Ty::F32, l[0].clone()))));
    outs.push((DType::I32, Box::new(|l| l[2].clone())));
    outs.push((DType::I64, Box::new(|l| l[3].clone())));
    outs.push((DType::Bool, Box::new(|l| b(Lt, &l[0], &l[1]))));
    outs.push((DType::Bool, Box::new(|l| un(UnOp::Not, b(Xor, &b(Lt, &l[0], &l[1]), &b(Ge, &l[0], &i32(0)))))));
    elementwise(&[(DType::I32, vec![N]), (DType::I32, vec![N]), (DType::U8, vec![N]), (DType::U64, vec![N])], outs)
}

fn ia(l: &[Expr]) -> Expr {
    cast(Ty::Index, bin(BinOp::Rem, l[0].clone(), i32(1000)))
}
fn ic(l: &[Expr]) -> Expr {
    cast(Ty::Index, bin(BinOp::Rem, l[1].clone(), i32(50)))
}

/// Index arithmetic on values whose results fit in 32 bits, so a 32-bit Index (the
/// boards) must give the interpreter's 64-bit results exactly: every operation, Index
/// mixed with I64 (done in 64 bits), the i64::MIN/MAX sentinels, and the casts in and
/// out of Index (sign extension).
fn index_program() -> Program {
    use BinOp::*;
    let mut outs: Vec<(DType, OutFn)> = Vec::new();
    for op in [Add, Sub, Mul, Div, Rem, Min, Max, And, Or, Xor] {
        outs.push((DType::I64, Box::new(move |l| cast(Ty::I64, bin(op, ia(l), ic(l))))));
    }
    outs.push((DType::I64, Box::new(|l| cast(Ty::I64, bin(Shl, ia(l), bin(And, ic(l), idx(15)))))));
    outs.push((DType::I64, Box::new(|l| cast(Ty::I64, bin(Shr, ia(l), bin(And, ic(l), idx(31)))))));
    outs.push((DType::I64, Box::new(|l| cast(Ty::I64, bin(Shr, ia(l), idx(40))))));
    outs.push((DType::I64, Box::new(|l| cast(Ty::I64, bin(UShr, un(UnOp::Abs, ia(l)), bin(And, ic(l), idx(31)))))));
    for op in [UnOp::Neg, UnOp::Abs, UnOp::Not] {
        outs.push((DType::I64, Box::new(move |l| cast(Ty::I64, un(op, ia(l))))));
    }
    // Index mixed with I64 values and sentinels beyond int32.
    outs.push((DType::I64, Box::new(|l| add(ia(l), cast(Ty::I64, l[1].clone())))));
    outs.push((DType::I64, Box::new(|l| mul(ia(l), i64(3_000_000_007)))));
    outs.push((DType::I64, Box::new(|l| bin(Min, ia(l), idx(i64::MAX)))));
    outs.push((DType::I64, Box::new(|l| bin(Max, ia(l), idx(i64::MIN)))));
    outs.push((DType::I64, Box::new(|l| select(bin(Lt, ia(l), idx(0)), idx(i64::MIN), ia(l)))));
    outs.push((DType::I64, Box::new(|l| sub(idx(1 << 40), ia(l)))));
    outs.push((DType::Bool, Box::new(|l| bin(Lt, ia(l), i64(5)))));
    outs.push((DType::I64, Box::new(|l| cast(Ty::I64, cast(Ty::Index, mul(cast(Ty::I64, l[0].clone()), i64(0)))))));
    outs.push((DType::I64, Box::new(|l| cast(Ty::Index, mul(cast(Ty::I64, bin(Rem, l[0].clone(), i32(1000))), i64(-7))))));
    // In and out of floats and I32; loads at Index and I64 subscripts.
    outs.push((DType::F32, Box::new(|l| cast(Ty::F32, ia(l)))));
    outs.push((DType::I32, Box::new(|l| cast(Ty::I32, cast(Ty::Index, mul(cast(Ty::F32, ia(l)), f32(2.5)))))));
    outs.push((DType::I32, Box::new(|l| cast(Ty::I32, mul(ia(l), ic(l))))));
    outs.push((DType::I32, Box::new(|l| load_rev(l, false))));
    outs.push((DType::I32, Box::new(|l| load_rev(l, true))));
    elementwise(&[(DType::I32, vec![N]), (DType::I32, vec![N]), (DType::U8, vec![N]), (DType::U64, vec![N])], outs)
}

/// `in0[N - 1 - i]`, the subscript Index or (mixed with an I64) I64; `l[0]` is
/// `in0[i]` (`elementwise` builds it), so the buffer and loop variable come from it.
fn load_rev(l: &[Expr], wide: bool) -> Expr {
    let Expr::Load { buf, index } = &l[0] else { unreachable!("elementwise loads its inputs") };
    let last = if wide { i64(N as i64 - 1) } else { idx(N as i64 - 1) };
    load(*buf, sub(last, (**index).clone()))
}

/// `out[i] = w[idx[i]]`, failing with code 6 when an index is out of range.
fn gather_program() -> Program {
    let mut p = Program::default();
    let idx = p.add_buffer("idx", DType::I64, vec![4], BufKind::Input(0));
    let w = p.add_buffer("table", DType::F32, vec![5], BufKind::Weight(std::sync::Arc::new(Tensor::from_vec(&[5], vec![1.0f32, 2.0, 3.0, 4.0, 5.0]))));
    let t = p.add_buffer("tmp", DType::F32, vec![4], BufKind::Temp);
    let o = p.add_buffer("out", DType::F32, vec![4], BufKind::Output(0));
    let (i, j) = (Var(0), Var(1));
    let bad = bin(BinOp::Or, bin(BinOp::Lt, var(j), idx_lit(0)), bin(BinOp::Ge, var(j), idx_lit(5)));
    p.kernels.push(Kernel {
        name: "gather".into(),
        vars: vec![Ty::Index, Ty::Index],
        body: vec![Stmt::Loop {
            var: i,
            extent: 4,
            body: vec![
                Stmt::Set { var: j, value: cast(Ty::Index, load(idx, var(i))) },
                Stmt::If { cond: bad, then: vec![Stmt::Fail(6)], els: vec![] },
                Stmt::Store { buf: t, index: var(i), value: load(w, var(j)) },
            ],
        }],
    });
    p.kernels.push(Kernel {
        name: "double".into(),
        vars: vec![Ty::Index],
        body: vec![Stmt::Loop { var: i, extent: 4, body: vec![Stmt::Store { buf: o, index: var(i), value: add(load(t, var(i)), load(t, var(i))) }] }],
    });
    p
}

fn idx_lit(v: i64) -> Expr {
    idx(v)
}

fn compile(p: &Program, name: &str, embed: bool) -> Artifacts {
    compile_for(p, name, embed, "host")
}

/// The C for `target` (a 32-bit one has a 32-bit Index).
fn compile_for(p: &Program, name: &str, embed: bool, target: &str) -> Artifacts {
    let l = layout(p);
    let target = edgec::targets::find(target).unwrap();
    let opts = CompileOptions { name, target, code: CodeKind::C, embed_weights: embed };
    compile_program(p, &l, (1, 1), &opts).unwrap_or_else(|e| panic!("{e}"))
}

fn run_on(toolchain: &str, jobs: Vec<Job>) -> Vec<Vec<SetResult>> {
    let dir = tempfile::tempdir().unwrap();
    let tc = toolchain::find(toolchain).unwrap();
    run_batch(tc, &jobs, dir.path()).unwrap_or_else(|e| panic!("{e}"))
}

/// Same values bit for bit (any NaN equals any NaN).
fn assert_same(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dtype(), want.dtype(), "{what}");
    assert_eq!(got.shape(), want.shape(), "{what}");
    let bits = |t: &Tensor| -> Vec<Option<u64>> {
        match t {
            Tensor::F32(a) => a.iter().map(|x| (!x.is_nan()).then_some(x.to_bits() as u64)).collect(),
            Tensor::F64(a) => a.iter().map(|x| (!x.is_nan()).then_some(x.to_bits())).collect(),
            Tensor::F16(a) => a.iter().map(|x| (!x.is_nan()).then_some(x.to_bits() as u64)).collect(),
            Tensor::BF16(a) => a.iter().map(|x| (!x.is_nan()).then_some(x.to_bits() as u64)).collect(),
            t => edgec::emit::bytes::to_le_bytes(t).unwrap().into_iter().map(|b| Some(b as u64)).collect(),
        }
    };
    assert_eq!(bits(got), bits(want), "{what}: C {got:?}\ninterpreter {want:?}");
}

fn inputs_float() -> Vec<Tensor> {
    let h = Tensor::from_vec(&[N], xs()).cast(DType::F16);
    let bf = Tensor::from_vec(&[N], ys().iter().map(|y| y * 3.3).collect::<Vec<f32>>()).cast(DType::BF16);
    vec![Tensor::from_vec(&[N], xs()), Tensor::from_vec(&[N], ys()), h, bf]
}

fn inputs_int() -> Vec<Tensor> {
    let u8s: Vec<u8> = (0..N).map(|i| (i * 13) as u8).collect();
    let u64s: Vec<u64> = (0..N).map(|i| u64::MAX - i as u64 * 1_000_000_000_000).collect();
    vec![Tensor::from_vec(&[N], is()), Tensor::from_vec(&[N], js()), Tensor::from_vec(&[N], u8s), Tensor::from_vec(&[N], u64s)]
}

#[test]
fn c_backend_matches_the_interpreter() {
    matches_interpreter("c-host");
}

/// The same C on aarch64 and riscv64 (cross gcc + qemu-user): other ISAs' float
/// conversions and shifts must not change a bit.
#[test]
fn c_backend_matches_the_interpreter_on_aarch64() {
    matches_interpreter("c-cortex-a53");
}

#[test]
fn c_backend_matches_the_interpreter_on_riscv64() {
    matches_interpreter("c-riscv64");
}

// The microcontroller targets: firmware images under QEMU system emulation
// (docs/microcontrollers.md); soft double on the M4 and RV32, single/double FPUs.
#[test]
fn c_backend_matches_the_interpreter_on_cortex_m4() {
    matches_interpreter("cortex-m4");
}

#[test]
fn c_backend_matches_the_interpreter_on_cortex_m7() {
    matches_interpreter("cortex-m7");
}

#[test]
fn c_backend_matches_the_interpreter_on_cortex_m55() {
    matches_interpreter("cortex-m55");
}

#[test]
fn c_backend_matches_the_interpreter_on_riscv32() {
    matches_interpreter("riscv32");
}

/// The boards' C (32-bit Index) built and run on the host.
#[test]
fn c_backend_with_32_bit_index_matches_the_interpreter() {
    matches_interpreter_for("c-host", "cortex-m7");
}

/// The C for the toolchain's own target (a 32-bit Index on the boards).
fn matches_interpreter(toolchain: &str) {
    matches_interpreter_for(toolchain, toolchain::find(toolchain).unwrap().target);
}

fn matches_interpreter_for(toolchain: &str, target: &str) {
    let cases = [
        ("floats", float_program(), inputs_float()),
        ("ints", int_program(), inputs_int()),
        ("indices", index_program(), inputs_int()),
    ];
    let jobs: Vec<Job> = cases.iter().map(|(n, p, i)| Job { artifacts: compile_for(p, n, false, target), sets: vec![i.clone()] }).collect();
    let results = run_on(toolchain, jobs);
    for ((name, p, inputs), mut r) in cases.iter().zip(results) {
        let want = interp::run(p, inputs).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let SetResult::Outputs(got) = r.remove(0) else { panic!("{name}: no outputs") };
        for (k, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_same(&format!("{name} output {k}"), g, w);
        }
    }
}

#[test]
fn fail_statements_return_their_code_and_embedded_weights_work() {
    fail_codes_and_embedded_weights("c-host");
}

#[test]
fn fail_statements_and_embedded_weights_on_a_board() {
    fail_codes_and_embedded_weights("cortex-m7");
}

fn fail_codes_and_embedded_weights(toolchain: &str) {
    let p = gather_program();
    let good = vec![Tensor::from_vec(&[4], vec![4i64, 0, 2, 1])];
    let bad = vec![Tensor::from_vec(&[4], vec![0i64, 5, 2, 1])];
    let jobs = vec![
        Job { artifacts: compile(&p, "gather", false), sets: vec![good.clone(), bad.clone()] },
        Job { artifacts: compile(&p, "gather_embedded", true), sets: vec![good.clone()] },
    ];
    let want = interp::run(&p, &good).unwrap();
    assert_eq!(interp::run(&p, &bad), Err(interp::Stop::Fail(6)));
    let r: Vec<SetResult> = run_on(toolchain, jobs).into_iter().flatten().collect();
    let [SetResult::Outputs(a), SetResult::Code(6), SetResult::Outputs(c)] = &r[..] else { panic!("{toolchain}: {r:?}") };
    assert_same("gather", &a[0], &want[0]);
    assert_same("gather (embedded weights)", &c[0], &want[0]);
}

/// I64 indices beyond int32 that truncation would alias to valid ones (2^32 + 1 → 1,
/// 2 - 2^32 → 2, 2^63 - 1 → -1 + 5) fail the bounds check with a 32-bit Index too.
fn wide_indices_fail(toolchain: &str, target: &str) {
    let p = gather_program();
    let good = vec![Tensor::from_vec(&[4], vec![4i64, 0, 2, 1])];
    let bads = [[0i64, (1 << 32) + 1, 2, 1], [2 - (1 << 32), 0, 0, 0], [0, 0, 0, i64::MAX], [i64::MIN, 0, 0, 0]];
    let mut sets = vec![good.clone()];
    for b in bads {
        let b = vec![Tensor::from_vec(&[4], b.to_vec())];
        assert_eq!(interp::run(&p, &b), Err(interp::Stop::Fail(6)));
        sets.push(b);
    }
    let r: Vec<SetResult> = run_on(toolchain, vec![Job { artifacts: compile_for(&p, "gather", false, target), sets }]).into_iter().flatten().collect();
    let [SetResult::Outputs(a), rest @ ..] = &r[..] else { panic!("{toolchain}: {r:?}") };
    assert_same("gather", &a[0], &interp::run(&p, &good).unwrap()[0]);
    assert!(rest.len() == bads.len() && rest.iter().all(|x| matches!(x, SetResult::Code(6))), "{toolchain}: {r:?}");
}

#[test]
fn wide_indices_fail_with_a_32_bit_index() {
    wide_indices_fail("c-host", "cortex-m7");
}

#[test]
fn wide_indices_fail_on_a_board() {
    wide_indices_fail("cortex-m7", "cortex-m7");
}

/// A buffer a 32-bit index cannot address is a compile error on the boards (and fine on
/// a 64-bit target).
#[test]
fn buffers_beyond_32_bit_indices_are_a_clear_error() {
    let mut p = Program::default();
    let x = p.add_buffer("x", DType::F32, vec![1], BufKind::Input(0));
    let big = p.add_buffer("big", DType::F32, vec![1 << 29], BufKind::Temp);
    let o = p.add_buffer("out", DType::F32, vec![1], BufKind::Output(0));
    let i = Var(0);
    p.kernels.push(Kernel {
        name: "k".into(),
        vars: vec![Ty::Index],
        body: vec![
            Stmt::Loop { var: i, extent: 1 << 29, body: vec![Stmt::Store { buf: big, index: var(i), value: load(x, idx(0)) }] },
            Stmt::Store { buf: o, index: idx(0), value: load(big, idx(7)) },
        ],
    });
    let l = layout(&p);
    let opts = |t: &str| CompileOptions { name: "big", target: edgec::targets::find(t).unwrap(), code: CodeKind::C, embed_weights: false };
    let err = compile_program(&p, &l, (1, 1), &opts("cortex-m7")).err().expect("2 GiB buffer on a 32-bit target");
    assert!(err.to_string().contains("too large for the 32-bit indices"), "{err}");
    assert!(compile_program(&p, &l, (1, 1), &opts("host")).is_ok());
}

#[test]
fn two_compiles_are_byte_identical() {
    let p = float_program();
    let (a, b2) = (compile(&p, "m", false), compile(&p, "m", false));
    for ((n1, d1), (n2, d2)) in a.files().iter().zip(b2.files()) {
        assert_eq!(n1, &n2);
        assert!(*d1 == d2, "{n1} differs between two compiles");
    }
}

/// A plain C program that includes NAME.h, reads NAME.weights and checks NAME_run's
/// error codes for damaged blobs and bad arguments.
#[test]
fn blob_checks_return_the_documented_codes() {
    let dir = tempfile::tempdir().unwrap();
    let art = compile(&gather_program(), "gm", false);
    edgec::emit::write::write_all(dir.path(), &art.files()).unwrap();
    let prog = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "gm.h"
static unsigned char blob[gm_WEIGHTS_SIZE + 64];
static unsigned char copy[gm_WEIGHTS_SIZE + 64];
static union { double d; unsigned char b[gm_ARENA_SIZE + 32]; } arena;
static int run(const void *w, void *a) {
    int64_t idx[4] = { 4, 0, 2, 1 };
    float out[4];
    const void *in[1];
    void *outs[1];
    in[0] = idx; outs[0] = out;
    return gm_run(w, a, in, outs);
}
int main(int argc, char **argv) {
    FILE *f;
    size_t n;
    (void)argc;
    f = fopen(argv[1], "rb");
    if (!f) return 100;
    n = fread(blob, 1, sizeof blob, f);
    fclose(f);
    if (n != gm_WEIGHTS_SIZE) return 101;
    printf("ok %d\n", run(blob, arena.b));
    printf("null %d\n", run(NULL, arena.b));
    memcpy(copy, blob, n); copy[0] = 'X'; printf("magic %d\n", run(copy, arena.b));
    memcpy(copy, blob, n); copy[8] = 9; printf("version %d\n", run(copy, arena.b));
    memcpy(copy, blob, n); copy[17] ^= 1; printf("hash %d\n", run(copy, arena.b));
    memcpy(copy, blob, n); copy[24] = (unsigned char)(copy[24] - 16); printf("size %d\n", run(copy, arena.b));
    printf("align %d\n", run(blob, arena.b + 1));
    printf("arena %d\n", run(blob, NULL));
    printf("inputs %d\n", gm_run(blob, arena.b, NULL, NULL));
    return 0;
}
"#;
    std::fs::write(dir.path().join("main.c"), prog).unwrap();
    let exe = dir.path().join("main");
    let cc = |args: &[&Path]| {
        let out = Command::new("cc")
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"])
            .args(args)
            .output()
            .expect("cc (the host C compiler) must be installed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    let (main_c, gm_c) = (dir.path().join("main.c"), dir.path().join("gm.c"));
    cc(&[Path::new("-I"), dir.path(), &main_c, &gm_c, Path::new("-o"), &exe]);
    let out = Command::new(&exe).arg(dir.path().join("gm.weights")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let want = "ok 0\nnull 1\nmagic 2\nversion 3\nhash 4\nsize 5\nalign 7\narena 8\ninputs 8\n";
    assert_eq!(text, want);
}

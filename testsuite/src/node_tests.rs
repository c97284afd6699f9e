//! The ONNX backend node-test runner.
//!
//! Each case directory holds `model.onnx` and `test_data_set_*/{input,output}_N.pb`. A
//! case *passes* when every output matches; it is *unsupported* when edgec stops with a
//! clean "unsupported" error (an op, a type, a non-tensor value); anything else — a
//! wrong value, a panic, any other error — *fails*.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::{bail, Context};
use edgec::front::onnx::load;
use edgec::pipeline::{prepare, Bindings};
use edgec::{Error, OpError};

use edgec::testdata::{compare, data_sets, read_numbered, CONTRACT};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The node-test data directory (default: the onnx package in the project's .venv).
    #[arg(long)]
    data: Option<PathBuf>,
    /// What runs the cases: `reference` (the evaluator), `kir` (lowering to KIR and
    /// the KIR interpreter, the oracle for the backends), or a target that compiles and
    /// runs generated code: `c-host` (C backend, host cc), `host` (Cranelift),
    /// `cortex-a53`, `riscv64`, `riscv64-v` (Cranelift under QEMU), `c-cortex-a53`, `c-riscv64`,
    /// and the microcontrollers `cortex-m4`, `cortex-m7`, `cortex-m55`, `riscv32` (C
    /// firmware under QEMU system emulation, docs/microcontrollers.md).
    #[arg(long, default_value = "reference")]
    pub target: String,
    /// Only cases whose name contains PATTERN, or whose op type is PATTERN.
    #[arg(long)]
    pub filter: Option<String>,
    /// Print every case's outcome, not only failures.
    #[arg(long, short)]
    verbose: bool,
    /// Print the reason of every unsupported case.
    #[arg(long)]
    show_unsupported: bool,
    /// Worker threads.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Exit non-zero when fewer cases pass (the floor CI keeps).
    #[arg(long)]
    min_passed: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    Passed,
    Failed(String),
    Unsupported(String),
}

pub(crate) struct CaseResult {
    pub name: String,
    pub op: String,
    pub outcome: Outcome,
    pub seconds: f64,
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let lib = root.join(".venv/lib");
    if let Ok(entries) = std::fs::read_dir(&lib) {
        for e in entries.flatten() {
            let p = e.path().join("site-packages/onnx/backend/test/data/node");
            if p.is_dir() {
                return Ok(p);
            }
        }
    }
    bail!(
        "no ONNX node-test data under {}; create the venv (python3 -m venv .venv && .venv/bin/pip install onnx==1.22.0) or pass --data DIR",
        lib.display()
    )
}

pub fn run(args: &Args) -> anyhow::Result<bool> {
    let toolchain = match args.target.as_str() {
        "reference" | "kir" => None,
        t => Some(edgec::emit::toolchain::find(t).ok_or_else(|| {
            let known: Vec<&str> = edgec::emit::toolchain::TOOLCHAINS.iter().map(|t| t.name).collect();
            anyhow::anyhow!("unknown target '{t}': the node tests run on reference, kir, {}", known.join(", "))
        })?),
    };
    let data = match &args.data {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&data)
        .with_context(|| format!("reading {}", data.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    cases.sort();

    // Panics are caught per case and counted as failures; keep their noise short.
    std::panic::set_hook(Box::new(|_| {}));
    if let Some(tc) = toolchain {
        let mut results = crate::compiled::run(args, tc, &cases)?;
        results.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(report(args, &results));
    }

    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..args.jobs.max(1) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(dir) = cases.get(k) else { break };
                let name = dir.file_name().unwrap().to_string_lossy().to_string();
                let start = Instant::now();
                let (op, outcome) = match catch_unwind(AssertUnwindSafe(|| run_case(dir, args.filter.as_deref(), &name, &args.target))) {
                    Ok(Some(r)) => r,
                    Ok(None) => continue,
                    Err(p) => ("?".to_string(), Outcome::Failed(format!("panic: {}", panic_message(&p)))),
                };
                results.lock().unwrap().push(CaseResult { name, op, outcome, seconds: start.elapsed().as_secs_f64() });
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(report(args, &results))
}

pub(crate) fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown".into())
}

/// The op a case tests: its single node's op type, or for an expanded function body
/// the op of the case it expands.
pub(crate) fn case_op(model: &edgec::front::onnx::Model, name: &str) -> String {
    let h = model.graph.op_histogram();
    if h.len() == 1 {
        return h.keys().next().unwrap().clone();
    }
    if name.contains("_expanded") {
        return "(expanded function)".into();
    }
    h.iter().max_by_key(|(_, c)| **c).map(|(k, _)| k.clone()).unwrap_or_default()
}

pub(crate) fn classify(e: &Error) -> Outcome {
    if e.is_unsupported() {
        Outcome::Unsupported(e.to_string())
    } else {
        Outcome::Failed(e.to_string())
    }
}

fn run_case(dir: &Path, filter: Option<&str>, name: &str, target: &str) -> Option<(String, Outcome)> {
    let model = match load(&dir.join("model.onnx")) {
        Ok(m) => m,
        Err(e) => {
            if filter.is_some_and(|f| !name.contains(f)) {
                return None;
            }
            return Some(("(model not loaded)".into(), classify(&e)));
        }
    };
    let op = case_op(&model, name);
    if let Some(f) = filter {
        if !name.contains(f) && op != f && !model.graph.op_histogram().contains_key(f) {
            return None;
        }
    }
    if let Err(e) = model.check_supported() {
        return Some((op, classify(&e)));
    }
    for set in data_sets(dir) {
        if let Err(o) = run_set(&model, &set, target) {
            return Some((op, o));
        }
    }
    Some((op, Outcome::Passed))
}

fn run_set(model: &edgec::front::onnx::Model, set: &Path, target: &str) -> Result<(), Outcome> {
    // Data that is no tensor (sequences, optionals) is unsupported.
    let read = |prefix| read_numbered(set, prefix).map_err(|e| Outcome::Unsupported(e.to_string()));
    let inputs = read("input")?;
    let expected = read("output")?;
    let g = &model.graph;
    if inputs.len() != g.inputs.len() {
        return Err(Outcome::Failed(format!("{} inputs in the data, {} in the model", inputs.len(), g.inputs.len())));
    }
    let bindings = Bindings {
        dims: BTreeMap::new(),
        input_shapes: g.inputs.iter().zip(&inputs).map(|(&v, t)| (g.value(v).name.clone(), t.shape().to_vec())).collect(),
    };
    let outputs = if target == "kir" {
        run_kir(g, &bindings, &inputs)?
    } else {
        // The static pipeline first; shapes that depend on input values fall back to
        // evaluating the loaded graph directly (the evaluator needs no static shapes).
        match prepare(g.clone(), &bindings) {
            Ok(prepared) => edgec::eval::run(&prepared, &inputs),
            Err(Error::Node { source: OpError::DataDependent(_), .. }) => edgec::eval::run(g, &inputs),
            Err(e) => return Err(classify(&e)),
        }
        .map_err(|e| classify(&e))?
    };
    if outputs.len() != expected.len() {
        return Err(Outcome::Failed(format!("{} outputs, {} expected", outputs.len(), expected.len())));
    }
    for (k, (got, want)) in outputs.iter().zip(&expected).enumerate() {
        compare(got, want, CONTRACT).map_err(|e| Outcome::Failed(format!("output {k}: {e}")))?;
    }
    Ok(())
}

/// Compiles to KIR (static shapes required) and interprets it.
fn run_kir(g: &edgec::ir::Graph, bindings: &Bindings, inputs: &[edgec::ir::Tensor]) -> Result<Vec<edgec::ir::Tensor>, Outcome> {
    let (prepared, inputs) = crate::specialize::prepare_static(g, bindings, inputs).map_err(|e| classify(&e))?;
    let mut program = edgec::lower::lower(&prepared).map_err(|e| classify(&e))?;
    edgec::kir::math::expand(&mut program);
    edgec::kir::interp::run(&program, &inputs).map_err(|stop| match stop {
        edgec::kir::interp::Stop::Fail(code) => Outcome::Failed(format!("the program failed with code {code}")),
        edgec::kir::interp::Stop::Bug(why) => Outcome::Failed(format!("malformed KIR: {why}")),
    })
}

fn report(args: &Args, results: &[CaseResult]) -> bool {
    let mut per_op: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for r in results {
        let e = per_op.entry(r.op.as_str()).or_default();
        match &r.outcome {
            Outcome::Passed => e[0] += 1,
            Outcome::Failed(_) => e[1] += 1,
            Outcome::Unsupported(_) => e[2] += 1,
        }
    }
    println!("{:<36} {:>7} {:>7} {:>11}", "op", "passed", "failed", "unsupported");
    for (op, [p, f, u]) in &per_op {
        println!("{op:<36} {p:>7} {f:>7} {u:>11}");
    }
    println!();
    for r in results {
        match &r.outcome {
            Outcome::Failed(why) => println!("FAILED {} [{}]: {}", r.name, r.op, truncate(why)),
            Outcome::Unsupported(why) if args.show_unsupported || args.verbose => {
                println!("unsupported {}: {}", r.name, truncate(why))
            }
            Outcome::Passed if args.verbose => println!("passed {} ({:.2} s)", r.name, r.seconds),
            _ => {}
        }
    }
    let passed = results.iter().filter(|r| r.outcome == Outcome::Passed).count();
    let failed = results.iter().filter(|r| matches!(r.outcome, Outcome::Failed(_))).count();
    let unsupported = results.len() - passed - failed;
    let floor_ok = args.min_passed.is_none_or(|m| passed >= m);
    if !floor_ok {
        println!("pass count {passed} is below the floor {}", args.min_passed.unwrap());
    }
    let specialized = crate::specialize::SPECIALIZED.load(std::sync::atomic::Ordering::Relaxed);
    if specialized > 0 {
        let floats = crate::specialize::SPECIALIZED_FLOAT.load(std::sync::atomic::Ordering::Relaxed);
        println!("{specialized} cases were compiled with their small integer/bool inputs fixed to the test's values, {floats} of them also with shape-deciding float inputs fixed (see docs/conformance.md)");
    }
    println!("onnx-node {}: {passed} passed, {failed} failed, {unsupported} unsupported", args.target);
    failed == 0 && floor_ok
}

fn truncate(s: &str) -> String {
    let one_line = s.replace('\n', " | ");
    if one_line.chars().count() > 300 {
        format!("{}...", one_line.chars().take(300).collect::<String>())
    } else {
        one_line
    }
}

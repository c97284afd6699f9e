//! Node tests on compiled code: each case is compiled for the target (one model per
//! data set, since a set fixes the input shapes), the models are grouped into batches
//! that share one driver binary (one compiler invocation per batch, the expensive
//! step), run, and their outputs compared with the expected ones.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use edgec::emit::driver::{run_batch, Job, SetResult};
use edgec::emit::toolchain::{ToolError, Toolchain};
use edgec::emit::CompileOptions;
use edgec::front::onnx::load;
use edgec::ir::Tensor;
use edgec::pipeline::Bindings;
use edgec::testdata::{compare, data_sets, read_numbered, CONTRACT};

use crate::node_tests::{case_op, classify, panic_message, Args, CaseResult, Outcome};

/// Cases per driver binary (one model per case and data set): large enough that the
/// compiler's start-up cost is shared, small enough that one bad case costs little.
const CASES_PER_BATCH: usize = 24;

/// A case compiled and waiting for its batch: one job per data set.
struct Pending {
    name: String,
    op: String,
    jobs: Vec<(Job, Vec<Tensor>)>,
    seconds: f64,
}

enum Prepared {
    Done(CaseResult),
    Pending(Pending),
}

pub fn run(args: &Args, tc: &'static Toolchain, cases: &[PathBuf]) -> anyhow::Result<Vec<CaseResult>> {
    let target = edgec::targets::find(tc.target).ok_or_else(|| anyhow::anyhow!("no target '{}'", tc.target))?;
    let next = AtomicUsize::new(0);
    let prepared = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..args.jobs.max(1) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(dir) = cases.get(k) else { break };
                let name = dir.file_name().unwrap_or_default().to_string_lossy().to_string();
                let start = Instant::now();
                let r = catch_unwind(AssertUnwindSafe(|| prepare_case(dir, k, args.filter.as_deref(), &name, (target, tc.code))));
                let p = match r {
                    Ok(None) => continue,
                    Ok(Some(Ok(mut p))) => {
                        p.seconds = start.elapsed().as_secs_f64();
                        Prepared::Pending(p)
                    }
                    Ok(Some(Err((op, outcome)))) => {
                        Prepared::Done(CaseResult { name, op, outcome, seconds: start.elapsed().as_secs_f64() })
                    }
                    Err(p) => Prepared::Done(CaseResult {
                        name,
                        op: "?".into(),
                        outcome: Outcome::Failed(format!("panic: {}", panic_message(&p))),
                        seconds: 0.0,
                    }),
                };
                prepared.lock().unwrap_or_else(|e| e.into_inner()).push(p);
            });
        }
    });
    let mut results = Vec::new();
    let mut pending = Vec::new();
    for p in prepared.into_inner().unwrap_or_else(|e| e.into_inner()) {
        match p {
            Prepared::Done(r) => results.push(r),
            Prepared::Pending(p) => pending.push(p),
        }
    }
    pending.sort_by(|a, b| a.name.cmp(&b.name));
    let batches: Vec<&[Pending]> = pending.chunks(CASES_PER_BATCH).collect();
    let next = AtomicUsize::new(0);
    let done = Mutex::new(Vec::new());
    let tool_error = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..args.jobs.max(1) {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = batches.get(k) else { break };
                match run_cases(tc, batch) {
                    Ok(r) => done.lock().unwrap_or_else(|e| e.into_inner()).extend(r),
                    Err(e) => {
                        *tool_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = tool_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        // A missing compiler or emulator fails the run (it must not look like a skip).
        anyhow::bail!("target '{}': {e}", tc.name);
    }
    results.extend(done.into_inner().unwrap_or_else(|e| e.into_inner()));
    Ok(results)
}

/// Builds and runs one batch of cases in a temporary directory.
fn run_cases(tc: &Toolchain, batch: &[Pending]) -> Result<Vec<CaseResult>, ToolError> {
    let dir = tempfile::tempdir().map_err(|e| ToolError::Failed(e.to_string()))?;
    let start = Instant::now();
    let owned: Vec<Job> = batch.iter().flat_map(|p| p.jobs.iter().map(|(j, _)| j.clone())).collect();
    let ran = run_batch(tc, &owned, dir.path())?;
    let per_case = start.elapsed().as_secs_f64() / batch.len().max(1) as f64;
    let mut ran = ran.into_iter();
    let mut out = Vec::new();
    for p in batch {
        let mut outcome = Outcome::Passed;
        for (_, expected) in &p.jobs {
            let Some(mut sets) = ran.next() else { break };
            let r = sets.pop().unwrap_or(SetResult::Error("no result".into()));
            let o = match r {
                SetResult::Outputs(got) => check(&got, expected),
                SetResult::Code(c) => Outcome::Failed(format!("NAME_run returned {c}")),
                SetResult::Unsupported(why) => Outcome::Unsupported(why),
                SetResult::Error(why) => Outcome::Failed(why),
            };
            if outcome == Outcome::Passed {
                outcome = o;
            }
        }
        out.push(CaseResult { name: p.name.clone(), op: p.op.clone(), outcome, seconds: p.seconds + per_case });
    }
    Ok(out)
}

fn check(got: &[Tensor], expected: &[Tensor]) -> Outcome {
    if got.len() != expected.len() {
        return Outcome::Failed(format!("{} outputs, {} expected", got.len(), expected.len()));
    }
    for (k, (g, w)) in got.iter().zip(expected).enumerate() {
        if let Err(e) = compare(g, w, CONTRACT) {
            return Outcome::Failed(format!("output {k}: {e}"));
        }
    }
    Outcome::Passed
}

type CaseError = (String, Outcome);

/// Loads and compiles a case (`None`: filtered out).
fn prepare_case(
    dir: &Path,
    index: usize,
    filter: Option<&str>,
    name: &str,
    (target, code): (&'static edgec::targets::Target, edgec::emit::CodeKind),
) -> Option<Result<Pending, CaseError>> {
    let model = match load(&dir.join("model.onnx")) {
        Ok(m) => m,
        Err(e) => {
            if filter.is_some_and(|f| !name.contains(f)) {
                return None;
            }
            return Some(Err(("?".into(), classify(&e))));
        }
    };
    let op = case_op(&model, name);
    if let Some(f) = filter {
        if !name.contains(f) && op != f && !model.graph.op_histogram().contains_key(f) {
            return None;
        }
    }
    if let Err(e) = model.check_supported() {
        return Some(Err((op, classify(&e))));
    }
    let g = &model.graph;
    let ops_before = g.op_histogram().values().sum();
    let mut jobs = Vec::new();
    for (s, set) in data_sets(dir).iter().enumerate() {
        let read = |prefix| read_numbered(set, prefix).map_err(|e| (op.clone(), Outcome::Unsupported(e.to_string())));
        let inputs = match read("input") {
            Ok(i) => i,
            Err(e) => return Some(Err(e)),
        };
        let expected = match read("output") {
            Ok(i) => i,
            Err(e) => return Some(Err(e)),
        };
        if inputs.len() != g.inputs.len() {
            let why = format!("{} inputs in the data, {} in the model", inputs.len(), g.inputs.len());
            return Some(Err((op, Outcome::Failed(why))));
        }
        let bindings = Bindings {
            dims: BTreeMap::new(),
            input_shapes: g.inputs.iter().zip(&inputs).map(|(&v, t)| (g.value(v).name.clone(), t.shape().to_vec())).collect(),
        };
        let compiled = crate::specialize::prepare_static(g, &bindings, &inputs).and_then(|(prepared, inputs)| {
            edgec::emit::compile(&prepared, ops_before, &CompileOptions { name: &format!("case{index}_{s}"), target, code, embed_weights: false })
                .map(|a| (a, inputs))
        });
        match compiled {
            Ok((artifacts, inputs)) => jobs.push((Job { artifacts, sets: vec![inputs] }, expected)),
            Err(e) => return Some(Err((op, classify(&e)))),
        }
    }
    Some(Ok(Pending { name: name.to_string(), op, jobs, seconds: 0.0 }))
}

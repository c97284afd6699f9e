//! `edgec profile`: where an inference's instructions go, per kernel and per op type.
//!
//! The model is compiled for the target and run once under QEMU with edgec's
//! instruction-counting plugin (targets/qemu-plugin; the host target runs under
//! qemu-x86_64), which counts the instructions executed inside each of the model's
//! functions: `NAME_run`, every kernel `NAME_kI` (one per KIR kernel: a graph node, or
//! the nodes fused into it) and every helper. Counts are deterministic (the same run
//! gives the same numbers), unlike timings on a shared machine. C targets are built at
//! -O2 (what `--emit obj` uses) with kernels kept out of line, so each is counted apart
//! (GCC still inlines a few tiny ones into `NAME_run`, which the report says).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use edgec::emit::driver::{Job, SetResult};
use edgec::emit::toolchain::{self, Toolchain};
use edgec::emit::{icount, CompileOptions};
use edgec::pipeline::{prepare, Bindings};

use super::profile_timing as timing;
use super::run::gather_inputs;
use super::verify::check_inputs;

pub struct ProfileOptions {
    pub top: usize,
    /// Host: time the kernels natively (median over this many runs) instead of counting
    /// instructions under qemu-x86_64.
    pub time_runs: Option<usize>,
    /// `--quantize int8 --calibration DIR`: profile the int8 build.
    pub int8: Option<super::int8::Int8Args>,
}

pub fn profile(model_path: &Path, target: &str, input_args: &[String], inputs_dir: Option<&Path>, po: &ProfileOptions, bindings: &Bindings) -> Result<i32> {
    let top = po.top;
    if po.time_runs.is_some() && target != "host" {
        return Err(edgec::Error::Usage("--time measures the host's own clock: use it with --target host".into()).into());
    }
    let tc: &'static Toolchain = match target {
        "host" => &toolchain::HOST_EMULATED,
        t => toolchain::find(t).filter(|tc| tc.name != "c-host").ok_or_else(|| {
            edgec::Error::Usage(format!("profile runs on the targets of `edgec targets` (under QEMU); not on '{t}'"))
        })?,
    };
    let model = edgec::front::onnx::load(model_path)?;
    model.check_supported()?;
    let names: Vec<String> = model.graph.inputs.iter().map(|&i| model.graph.value(i).name.clone()).collect();
    // Without inputs: the first test_data_set_* beside the model.
    let beside = edgec::testdata::data_sets(model_path.parent().unwrap_or(Path::new(".")));
    let dir = match (input_args.is_empty(), inputs_dir, beside.first()) {
        (true, None, Some(d)) => Some(d.as_path()),
        _ => inputs_dir,
    };
    let inputs = gather_inputs(&names, input_args, dir)?;
    let ops_before = model.graph.op_histogram().values().sum();
    let mut graph = prepare(model.graph.clone(), &bindings.completed_from(&model.graph, &inputs))?;
    if let Some(q) = &po.int8 {
        graph = super::int8::apply_quiet(graph, q)?;
    }
    check_inputs(&graph, &inputs, Path::new("--input"))?;
    // Kernel names are node names; the op type comes from the graph.
    let order = graph.topo_order().map_err(|_| anyhow::anyhow!("the graph has a cycle"))?;
    let op_of: BTreeMap<&str, &str> = order.iter().map(|&n| graph.node(n)).map(|n| (n.name.as_str(), n.op_type.as_str())).collect();

    let target_desc = edgec::targets::find(tc.target).ok_or_else(|| anyhow::anyhow!("no target {}", tc.target))?;
    let opts = CompileOptions { name: "model", target: target_desc, code: tc.code, embed_weights: false };
    // Lowered once: the program gives the kernels' names, and is what gets compiled.
    let (program, layout) = edgec::emit::lower_for(&graph, &opts)?;
    let ops_after = graph.op_histogram().values().sum();
    let artifacts = edgec::emit::compile_program(&program, &layout, (ops_before, ops_after), &opts)?;
    let work = tempfile::tempdir()?;
    if let Some(runs) = po.time_runs {
        let rows = match timing::time_kernels(&artifacts, &inputs, program.kernels.len(), runs, work.path()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(4);
            }
        };
        let labelled: Vec<(String, String, u64)> = rows
            .per_kernel
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                let kname = program.kernels[i].name.clone();
                let op = op_of.get(kname.as_str()).copied().unwrap_or("(fused/internal)").to_string();
                (format!("k{i} {kname}"), op, *ns)
            })
            .collect();
        let sum: u64 = rows.per_kernel.iter().sum();
        println!(
            "{} on the host: {} per inference (median of {runs} runs of NAME_run); kernels timed one by one in order, sum of their medians {}",
            model_path.display(),
            micros(rows.run_ns),
            micros(sum)
        );
        print_tables(labelled, rows.per_kernel.iter().sum(), top, &micros, "time", &[]);
        return Ok(0);
    }

    let plugin = match icount::build_plugin(work.path()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(4);
        }
    };
    let job = Job { artifacts, sets: vec![inputs] };
    let (results, counts, per_symbol) = match icount::profile(tc, &job, &work.path().join("run"), &plugin) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(4);
        }
    };
    if let Some(SetResult::Code(c)) = results.first() {
        anyhow::bail!("model_run returned {c}");
    }
    // Under qemu-x86_64 (QEMU 7.2) the driver's begin/end markers are not seen, so the
    // span is empty: the model's code is then the sum of its functions' counts.
    let symbols: u64 = per_symbol.iter().map(|(_, n)| n).sum();
    let span = counts.first().copied().filter(|c| c.inference > 0);
    let total = span.map_or(symbols, |c| c.inference);
    let model_code = span.map_or(symbols, |c| c.model_code);

    let mut rows: Vec<(String, String, u64)> = Vec::new();
    let mut other = 0u64;
    for (full, n) in &per_symbol {
        // GCC's clones keep the name before a dot (`model_k7.constprop.0`).
        let sym = full.split('.').next().unwrap_or(full);
        match sym.strip_prefix("model_k").and_then(|i| i.parse::<usize>().ok()) {
            Some(i) => {
                let kname = program.kernels.get(i).map(|k| k.name.clone()).unwrap_or_default();
                let op = op_of.get(kname.as_str()).copied().unwrap_or("(fused/internal)").to_string();
                rows.push((format!("k{i} {kname}"), op, *n));
            }
            // NAME_run itself is bookkeeping; helpers (the C backend's ec_*) get a row each.
            None if sym == "model_run" => other += n,
            None => rows.push((sym.to_string(), "(helper)".to_string(), *n)),
        }
    }
    println!("{} on {}: {} instructions per inference ({} in the model's code)", model_path.display(), tc.name, group(total), group(model_code));
    let tail = [
        ("NAME_run (checks; kernels GCC inlined into it)".to_string(), other),
        ("outside the model's code (libc, libgcc, libm)".to_string(), total.saturating_sub(model_code)),
    ];
    print_tables(rows, total, top, &group, "instructions", &tail);
    Ok(0)
}

/// The per-kernel table (largest first, `top` rows, the rest summed) and the per-op-type
/// table; shares are of `total`.
fn print_tables(mut rows: Vec<(String, String, u64)>, total: u64, top: usize, fmt: &dyn Fn(u64) -> String, unit: &str, tail: &[(String, u64)]) {
    rows.sort_by(|a, b| b.2.cmp(&a.2));
    let pct = |n: u64| if total == 0 { 0.0 } else { 100.0 * n as f64 / total as f64 };
    println!("\n{:<52} {:<22} {:>14} {:>7}", "kernel", "op", unit, "share");
    for (k, op, n) in rows.iter().take(top) {
        println!("{:<52} {:<22} {:>14} {:>6.1}%", truncate(k, 52), truncate(op, 22), fmt(*n), pct(*n));
    }
    if rows.len() > top {
        let rest: u64 = rows[top..].iter().map(|r| r.2).sum();
        println!("{:<52} {:<22} {:>14} {:>6.1}%", format!("({} more kernels)", rows.len() - top), "", fmt(rest), pct(rest));
    }
    for (label, n) in tail {
        println!("{:<52} {:<22} {:>14} {:>6.1}%", label, "", fmt(*n), pct(*n));
    }
    let mut by_op: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, op, n) in &rows {
        *by_op.entry(op.as_str()).or_default() += n;
    }
    let mut by_op: Vec<_> = by_op.into_iter().collect();
    by_op.sort_by(|a, b| b.1.cmp(&a.1));
    println!("\n{:<22} {:>14} {:>7}", "op type", unit, "share");
    for (op, n) in by_op {
        println!("{:<22} {:>14} {:>6.1}%", op, fmt(n), pct(n));
    }
    println!();
}

/// Nanoseconds as microseconds.
fn micros(ns: u64) -> String {
    format!("{:.1} µs", ns as f64 / 1000.0)
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let tail: String = s.chars().rev().take(n - 1).collect::<Vec<_>>().into_iter().rev().collect();
        format!("…{tail}")
    }
}

/// 1234567 → "1,234,567".
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

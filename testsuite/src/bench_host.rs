//! `edgec-testsuite bench-host`: host latency of edgec against ONNX Runtime and tract,
//! and against the core's measured FMA peak (docs/performance.md).
//!
//! Per model (the shared reference models and the generated medium decoder): edgec's
//! object for `host` is linked into a small C timing harness (harness.c) built on the
//! fly; ONNX Runtime runs in Python (testsuite/scripts/bench_ort.py); tract runs in
//! process. All three: one thread, the same inputs (the model's test_data_set_0),
//! warm-up runs, then the median of `--runs` timed runs in thread CPU time. edgec's
//! outputs of the timed runs are checked against the reference outputs, so a fast but
//! wrong kernel posts no figure. The peak is measured in the same run (fma_peak.c).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use edgec::emit::bytes::{from_le_bytes, to_le_bytes};
use edgec::emit::{CodeKind, CompileOptions};
use edgec::ir::{DType, Tensor};
use edgec::pipeline::prepare;
use edgec::testdata::{compare, data_sets, read_numbered, CONTRACT};

use crate::bench::{bindings_for, macs, model_dirs, parse_dim};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory of model folders (`NAME/model.onnx` + `test_data_set_0`); default the
    /// testsuite's copy of the reference models.
    #[arg(long)]
    models: Option<PathBuf>,
    /// Where the generated medium decoder lives (made by scripts/gen_decoder.py when
    /// missing).
    #[arg(long, default_value_os_t = crate::generated::default_dir())]
    generated: PathBuf,
    /// Leave out the generated medium decoder.
    #[arg(long)]
    no_generated: bool,
    /// Only models whose folder name contains PATTERN.
    #[arg(long)]
    filter: Option<String>,
    /// Fix a symbolic dimension (SYMBOL=VALUE) in the models that declare it.
    #[arg(long = "dim", value_parser = parse_dim, default_value = "past_sequence_length=16")]
    dims: Vec<(String, usize)>,
    /// Timed runs per model and engine (the median is reported).
    #[arg(long, default_value_t = 200)]
    runs: usize,
    /// Untimed warm-up runs per model and engine.
    #[arg(long, default_value_t = 10)]
    warmup: usize,
    /// Python with onnxruntime (default: the repository's .venv, else python3).
    #[arg(long, default_value_os_t = crate::generated::default_python())]
    python: PathBuf,
    /// Skip tract (e.g. for a quick look).
    #[arg(long)]
    no_tract: bool,
}

/// One model's figures, in microseconds; `None` where an engine could not run it.
struct Row {
    model: String,
    macs: u64,
    edgec: Result<f64, String>,
    ort: Result<f64, String>,
    tract: Result<f64, String>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Thread CPU time in seconds (what the C harness and bench_ort.py measure too).
fn thread_cpu_time() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + 1e-9 * t.tv_nsec as f64
}

fn c_args(list: impl Iterator<Item = usize>) -> String {
    list.map(|b| format!("{b}u")).collect::<Vec<_>>().join(", ")
}

/// edgec: compile for the host, link with harness.c, run, check the outputs.
fn bench_edgec(dir: &Path, inputs: &[Tensor], expected: &[Tensor], args: &Args, work: &Path) -> anyhow::Result<f64> {
    let model = edgec::front::onnx::load(&dir.join("model.onnx"))?;
    model.check_supported()?;
    let ops_before = model.graph.op_histogram().values().sum();
    let bindings = bindings_for(&model.graph, &args.dims).completed_from(&model.graph, inputs);
    let graph = prepare(model.graph, &bindings)?;
    let target = edgec::targets::find("host").context("no host target")?;
    let opts = CompileOptions { name: "model", target, code: CodeKind::Object, embed_weights: false };
    let art = edgec::emit::compile(&graph, ops_before, &opts)?;
    std::fs::create_dir_all(work)?;
    for (file, data) in art.files() {
        std::fs::write(work.join(file), data)?;
    }
    for (k, t) in inputs.iter().enumerate() {
        std::fs::write(work.join(format!("in{k}")), to_le_bytes(t).context("input type")?)?;
    }
    let size = |t: &edgec::emit::TensorInfo| t.dtype.storage_bytes(t.shape.iter().product::<usize>());
    let src = include_str!("harness.c")
        .replace("{EDGEC_IN_BYTES}", &format!("{{{}}}", c_args(art.inputs.iter().map(size))))
        .replace("{EDGEC_OUT_BYTES}", &format!("{{{}}}", c_args(art.outputs.iter().map(size))));
    std::fs::write(work.join("harness.c"), src)?;
    let exe = work.join("harness");
    let out = Command::new("cc")
        .args(["-O2", "-std=c99", "-I"])
        .arg(work)
        .arg(work.join("harness.c"))
        .arg(work.join("model.o"))
        .args(["-lm", "-o"])
        .arg(&exe)
        .output()
        .context("running cc")?;
    if !out.status.success() {
        bail!("cc: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = Command::new(&exe).arg(work).arg(args.runs.to_string()).arg(args.warmup.to_string()).output()?;
    if !out.status.success() {
        bail!("harness failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let median_ns: f64 = stdout.split_whitespace().next().and_then(|s| s.parse().ok()).context("harness output")?;
    for (k, (info, want)) in art.outputs.iter().zip(expected).enumerate() {
        let bytes = std::fs::read(work.join(format!("out{k}")))?;
        let got = from_le_bytes(info.dtype, &info.shape, &bytes).context("output bytes")?;
        compare(&got, want, CONTRACT).map_err(|e| anyhow::anyhow!("WRONG OUTPUT {k} ({}): {e}", info.name))?;
    }
    Ok(median_ns / 1e3)
}

/// ONNX Runtime through bench_ort.py.
fn bench_ort(dir: &Path, set: &Path, n_inputs: usize, args: &Args, script: &Path) -> anyhow::Result<f64> {
    let mut cmd = Command::new(&args.python);
    cmd.arg(script).arg(dir.join("model.onnx")).arg(args.runs.to_string()).arg(args.warmup.to_string());
    for k in 0..n_inputs {
        cmd.arg(set.join(format!("input_{k}.pb")));
    }
    let out = cmd.output().with_context(|| format!("running {}", args.python.display()))?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("onnxruntime failed"));
    }
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().and_then(|s| s.parse().ok()).context("bench_ort.py output")
}

fn tract_tensor(t: &Tensor) -> anyhow::Result<tract_onnx::prelude::Tensor> {
    use tract_onnx::prelude::Tensor as T;
    let shape = t.shape();
    Ok(match t.dtype() {
        DType::F32 => T::from_shape(shape, t.to_f32_array().as_slice().context("layout")?)?,
        DType::I64 => T::from_shape(shape, &t.to_i64_vec().context("int64")?)?,
        DType::I32 => T::from_shape(shape, &t.to_i64_vec().context("int32")?.iter().map(|&v| v as i32).collect::<Vec<_>>())?,
        DType::Bool => T::from_shape(shape, &t.to_i64_vec().context("bool")?.iter().map(|&v| v != 0).collect::<Vec<_>>())?,
        d => bail!("input type {d} not handled for tract"),
    })
}

/// tract: the optimised model, single thread (tract's default), in process.
fn bench_tract(dir: &Path, inputs: &[Tensor], args: &Args) -> anyhow::Result<f64> {
    use tract_onnx::prelude::*;
    let mut model = tract_onnx::onnx().model_for_path(dir.join("model.onnx")).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let mut feeds = TVec::new();
    for (k, t) in inputs.iter().enumerate() {
        let tt = tract_tensor(t)?;
        model = model.with_input_fact(k, InferenceFact::dt_shape(tt.datum_type(), tt.shape())).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        feeds.push(TValue::from(tt));
    }
    let plan = model.into_optimized().and_then(|m| m.into_runnable()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    for _ in 0..args.warmup {
        plan.run(feeds.clone()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    }
    let mut times = Vec::with_capacity(args.runs);
    for _ in 0..args.runs.max(1) {
        let t0 = thread_cpu_time();
        let out = plan.run(feeds.clone()).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        times.push(thread_cpu_time() - t0);
        drop(out);
    }
    Ok(median(times) * 1e6)
}

/// The core's f32 FMA peak (GFLOP/s) with 128-bit and (when the CPU has them) 256-bit
/// and 512-bit vectors, from fma_peak.c built for this machine.
fn measure_peak(work: &Path) -> anyhow::Result<(Option<f64>, Option<f64>, Option<f64>)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flag = |f: &str| cpuinfo.lines().any(|l| l.starts_with("flags") && l.split_whitespace().any(|w| w == f));
    let mut flags = vec!["-O2"];
    if cfg!(target_arch = "x86_64") && flag("fma") {
        flags.push("-mfma");
        if flag("avx2") {
            flags.push("-mavx2");
        }
        if flag("avx512f") {
            flags.push("-mavx512f");
        }
    }
    std::fs::create_dir_all(work)?;
    let src = work.join("fma_peak.c");
    std::fs::write(&src, include_str!("fma_peak.c"))?;
    let exe = work.join("fma_peak");
    let out = Command::new("cc").args(&flags).arg(&src).arg("-o").arg(&exe).output().context("running cc")?;
    if !out.status.success() {
        bail!("cc fma_peak.c: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = Command::new(&exe).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace().map(|s| s.parse::<f64>().ok());
    Ok((it.next().flatten(), it.next().flatten(), it.next().flatten()))
}

fn fmt_us(r: &Result<f64, String>) -> String {
    match r {
        Ok(v) => format!("{v:.1}"),
        Err(_) => "-".into(),
    }
}

fn geomean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| (v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

/// Runs the benchmark; `Ok(false)` when edgec failed or was wrong on a model.
pub fn run(args: &Args) -> anyhow::Result<bool> {
    let generated = if args.no_generated { Vec::new() } else { crate::generated::medium(&args.generated, &args.python)? };
    let dirs = model_dirs(args.models.as_deref(), generated, args.filter.as_deref())?;
    let work = tempfile::tempdir()?;
    let script = work.path().join("bench_ort.py");
    std::fs::write(&script, include_str!("../scripts/bench_ort.py"))?;
    let (peak128, peak256, peak512) = measure_peak(&work.path().join("peak"))?;
    let show = |p: Option<f64>| p.map_or("-".to_string(), |v| format!("{v:.1} GFLOP/s"));
    println!(
        "host core f32 FMA peak (fma_peak.c, best of 5, thread CPU time): 128-bit {}, 256-bit {}, 512-bit {}",
        show(peak128),
        show(peak256),
        show(peak512)
    );
    println!(
        "one thread, median of {} runs after {} warm-up runs, thread CPU time; {}",
        args.runs,
        args.warmup,
        args.dims.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
    );
    println!(
        "{:<20} {:>11} {:>11} {:>11} {:>11} {:>9} {:>11} {:>9} {:>9}",
        "model", "MACs", "edgec µs", "ORT µs", "tract µs", "edgec/ORT", "edgec/tract", "GFLOP/s", "% peak128"
    );
    let mut ok = true;
    let mut rows = Vec::new();
    for dir in &dirs {
        let model_name = dir.file_name().unwrap_or_default().to_string_lossy().to_string();
        let set = data_sets(dir).into_iter().next().with_context(|| format!("{}: no test_data_set_*", dir.display()))?;
        let (inputs, expected) = (read_numbered(&set, "input")?, read_numbered(&set, "output")?);
        let model = edgec::front::onnx::load(&dir.join("model.onnx"))?;
        let bindings = bindings_for(&model.graph, &args.dims).completed_from(&model.graph, &inputs);
        let n_macs = prepare(model.graph, &bindings).map(|g| macs(&g)).unwrap_or(0);
        let started = Instant::now();
        let edgec = bench_edgec(dir, &inputs, &expected, args, &work.path().join(&model_name)).map_err(|e| format!("{e:#}"));
        let ort = bench_ort(dir, &set, inputs.len(), args, &script).map_err(|e| format!("{e:#}"));
        let tract = if args.no_tract { Err("skipped".into()) } else { bench_tract(dir, &inputs, args).map_err(|e| format!("{e:#}")) };
        let row = Row { model: model_name, macs: n_macs, edgec, ort, tract };
        let ratio = |a: &Result<f64, String>, b: &Result<f64, String>| match (a, b) {
            (Ok(a), Ok(b)) => format!("{:.2}", a / b),
            _ => "-".into(),
        };
        let gflops = row.edgec.as_ref().ok().filter(|_| row.macs > 0).map(|us| 2.0 * row.macs as f64 / (us * 1e3));
        println!(
            "{:<20} {:>11} {:>11} {:>11} {:>11} {:>9} {:>11} {:>9} {:>9}   ({:.0} s)",
            row.model,
            row.macs,
            fmt_us(&row.edgec),
            fmt_us(&row.ort),
            fmt_us(&row.tract),
            ratio(&row.edgec, &row.ort),
            ratio(&row.edgec, &row.tract),
            gflops.map_or("-".into(), |g| format!("{g:.2}")),
            gflops.zip(peak128).map_or("-".into(), |(g, p)| format!("{:.1}%", 100.0 * g / p)),
            started.elapsed().as_secs_f64()
        );
        for (engine, r) in [("edgec", &row.edgec), ("onnxruntime", &row.ort), ("tract", &row.tract)] {
            if let Err(e) = r {
                println!("    {engine}: {}", e.lines().next().unwrap_or(""));
            }
        }
        ok &= row.edgec.is_ok();
        rows.push(row);
    }
    // The figure: over the shared models and the medium decode step (not the
    // prefill, which is judged against the peak).
    let geo = |f: &dyn Fn(&Row) -> Option<f64>| {
        let v: Vec<f64> = rows.iter().filter(|r| r.model != "medium_prefill").filter_map(f).collect();
        geomean(&v).map_or("-".into(), |g| format!("{g:.2} over {} models", v.len()))
    };
    let of = |a: &Result<f64, String>, b: &Result<f64, String>| a.as_ref().ok().zip(b.as_ref().ok()).map(|(a, b)| a / b);
    println!("geometric mean edgec/ORT:   {} (all but medium_prefill)", geo(&|r| of(&r.edgec, &r.ort)));
    println!("geometric mean edgec/tract: {} (all but medium_prefill)", geo(&|r| of(&r.edgec, &r.tract)));
    Ok(ok)
}

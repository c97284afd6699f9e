//! `edgec-testsuite bench`: guest instructions per inference of the reference models
//! under QEMU (emit/icount.rs), the performance figure for emulated targets; see
//! docs/benchmarks.md. Each model is compiled for the target, run on its first data
//! set, counted `--runs` times (the counts must be identical) and checked against the
//! reference outputs, so a fast but wrong kernel cannot post a figure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use edgec::emit::driver::{Job, SetResult};
use edgec::emit::icount::{self, Count};
use edgec::emit::{toolchain, CompileOptions};
use edgec::ir::{DimSpec, Graph};
use edgec::pipeline::{prepare, Bindings};
use edgec::testdata::{compare, data_sets, read_numbered, CONTRACT};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Targets to count on (repeatable): any QEMU target of the runner, e.g.
    /// `cortex-a53`, `riscv64`, `riscv64-v`, `c-cortex-a53`, `c-riscv64`, and the
    /// boards `cortex-m4`, `cortex-m7`, `cortex-m55`, `riscv32`.
    #[arg(long = "target", default_value = "cortex-a53")]
    targets: Vec<String>,
    /// Directory of model folders (`NAME/model.onnx` + `test_data_set_0`); default the
    /// testsuite's copy of the reference models.
    #[arg(long)]
    models: Option<PathBuf>,
    /// Only models whose folder name contains PATTERN.
    #[arg(long)]
    filter: Option<String>,
    /// Fix a symbolic dimension (SYMBOL=VALUE) in the models that declare it; the
    /// others are bound from the test data's shapes.
    #[arg(long = "dim", value_parser = parse_dim)]
    dims: Vec<(String, usize)>,
    /// Also count the generated medium decoder (scripts/gen_decoder.py, made into
    /// `--generated` when missing): its decode step and 128-token prefill.
    #[arg(long)]
    medium: bool,
    /// Where the generated models live.
    #[arg(long, default_value_os_t = crate::generated::default_dir())]
    generated: PathBuf,
    /// Python with onnx, numpy and onnxruntime for the generator.
    #[arg(long, default_value_os_t = crate::generated::default_python())]
    python: PathBuf,
    /// Counted runs per model; all must give the same count.
    #[arg(long, default_value_t = 2)]
    runs: usize,
}

pub fn parse_dim(s: &str) -> Result<(String, usize), String> {
    let (k, v) = s.split_once('=').ok_or("expected SYMBOL=VALUE")?;
    Ok((k.to_string(), v.parse().map_err(|e| format!("{v}: {e}"))?))
}

/// Multiply-accumulates of the graph's MatMul, Gemm, Conv and ConvTranspose nodes, from
/// their static shapes: the arithmetic that dominates these models, so instructions per
/// MAC is comparable across models and targets.
pub fn macs(g: &Graph) -> u64 {
    let shape = |v: Option<edgec::ir::ValueId>| -> Option<Vec<usize>> { g.value(v?).ty.as_ref().map(|t| t.shape.clone()) };
    let prod = |s: &[usize]| s.iter().map(|&d| d as u64).product::<u64>();
    let mut total = 0;
    for n in g.nodes.node_weights() {
        let input = |k: usize| shape(n.inputs.get(k).copied().flatten());
        let output = shape(n.outputs.first().copied().flatten());
        let (Some(a), Some(y)) = (input(0), output) else { continue };
        total += match n.op_type.as_str() {
            // Every output element sums over A's last axis.
            "MatMul" => prod(&y) * a.last().copied().unwrap_or(1) as u64,
            // Y[M, N] from A[M, K] (or its transpose): K = |A| / M.
            "Gemm" if !y.is_empty() && y[0] > 0 => prod(&y) * (prod(&a) / y[0] as u64),
            // W[M, C/group, k...]: each output element reads C/group * prod(k) products.
            "Conv" => input(1).map_or(0, |w| prod(&y) * prod(w.get(1..).unwrap_or(&[]))),
            // W[C, M/group, k...]: each input element scatters M/group * prod(k) products.
            "ConvTranspose" => input(1).map_or(0, |w| prod(&a) * prod(w.get(1..).unwrap_or(&[]))),
            // Q·Kᵀ and P·V (what `passes::fuse_attention` folds a chain's two MatMuls
            // into): every Q and every Y element sums over the k keys, V's second-to-last
            // axis in its 3D and 4D forms (a past cache input adds keys not counted here).
            "Attention" => input(2).map_or(0, |v| (prod(&a) + prod(&y)) * v.len().checked_sub(2).map_or(0, |i| v[i]) as u64),
            _ => 0,
        };
    }
    total
}

/// The `--dim` bindings that `g` declares (a symbol it lacks would be an error).
pub fn bindings_for(g: &Graph, dims: &[(String, usize)]) -> Bindings {
    let declared = |sym: &str| {
        g.inputs.iter().any(|&v| {
            let dims = g.value(v).declared.as_ref().and_then(|d| d.dims.as_ref());
            dims.is_some_and(|d| d.iter().any(|x| matches!(x, DimSpec::Symbol(s) if s == sym)))
        })
    };
    Bindings { dims: dims.iter().filter(|(k, _)| declared(k)).cloned().collect::<BTreeMap<_, _>>(), input_shapes: BTreeMap::new() }
}

fn c_identifier(s: &str) -> String {
    let mut id: String = s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if !id.starts_with(|c: char| c.is_ascii_alphabetic()) {
        id.insert(0, 'm');
    }
    id
}

struct Row {
    model: String,
    macs: u64,
    counts: Vec<Count>,
    verdict: String,
}

/// Compiles, counts and checks one model (a row without counts when edgec cannot
/// compile it yet).
fn bench_model(tc: &'static toolchain::Toolchain, dir: &Path, args: &Args, plugin: &Path, work: &Path) -> anyhow::Result<Row> {
    let model_name = dir.file_name().unwrap_or_default().to_string_lossy().to_string();
    let model = edgec::front::onnx::load(&dir.join("model.onnx"))?;
    model.check_supported()?;
    let ops_before = model.graph.op_histogram().values().sum();
    let set = data_sets(dir).into_iter().next().with_context(|| format!("{}: no test_data_set_*", dir.display()))?;
    let (inputs, expected) = (read_numbered(&set, "input")?, read_numbered(&set, "output")?);
    let bindings = bindings_for(&model.graph, &args.dims).completed_from(&model.graph, &inputs);
    let graph = prepare(model.graph, &bindings)?;
    let target = edgec::targets::find(tc.target).with_context(|| format!("no target {}", tc.target))?;
    let name = c_identifier(&model_name);
    let opts = CompileOptions { name: &name, target, code: tc.code, embed_weights: false };
    let row = |counts, verdict: String| Row { model: model_name.clone(), macs: macs(&graph), counts, verdict };
    let artifacts = match edgec::emit::compile(&graph, ops_before, &opts) {
        Ok(a) => a,
        Err(e) if e.is_unsupported() => return Ok(row(vec![], format!("unsupported: {e}"))),
        Err(e) => return Err(e.into()),
    };
    let job = Job { artifacts, sets: vec![inputs] };
    let mut counts = Vec::new();
    let mut verdict = String::from("ok");
    for run in 0..args.runs.max(1) {
        let (results, c) = icount::count(tc, &job, &work.join(format!("{name}.{run}")), plugin)?;
        counts.extend(c);
        let mismatch = match results.into_iter().next() {
            Some(SetResult::Outputs(got)) if got.len() == expected.len() => {
                got.iter().zip(&expected).enumerate().find_map(|(k, (g, w))| compare(g, w, CONTRACT).err().map(|e| format!("output {k}: {e}")))
            }
            Some(SetResult::Outputs(got)) => Some(format!("{} outputs, {} expected", got.len(), expected.len())),
            Some(SetResult::Code(c)) => Some(format!("{name}_run returned {c}")),
            other => Some(format!("{other:?}")),
        };
        if let Some(why) = mismatch {
            verdict = format!("WRONG OUTPUT: {why}");
        }
    }
    Ok(row(counts, verdict))
}

/// The model folders to run: every `NAME/model.onnx` under `models` (default: the
/// testsuite's copy of the reference models) in name order, then `generated`, kept when
/// their folder name contains `filter`. Shared by `bench` and `bench-host`.
pub fn model_dirs(models: Option<&Path>, generated: Vec<PathBuf>, filter: Option<&str>) -> anyhow::Result<Vec<PathBuf>> {
    let models = models.map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("models"), Path::to_path_buf);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&models)
        .with_context(|| format!("reading {}", models.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    dirs.sort();
    dirs.extend(generated);
    dirs.retain(|p| filter.is_none_or(|f| p.file_name().is_some_and(|n| n.to_string_lossy().contains(f))));
    if dirs.is_empty() {
        bail!("no NAME/model.onnx under {}", models.display());
    }
    Ok(dirs)
}

/// Runs the benchmark; `Ok(false)` when a count was not reproducible or an output wrong.
pub fn run(args: &Args) -> anyhow::Result<bool> {
    let generated = if args.medium { crate::generated::medium(&args.generated, &args.python)? } else { Vec::new() };
    let dirs = model_dirs(args.models.as_deref(), generated, args.filter.as_deref())?;
    let work = tempfile::tempdir()?;
    let plugin = icount::build_plugin(&work.path().join("plugin"))?;
    let mut ok = true;
    for t in &args.targets {
        let tc = toolchain::find(t).with_context(|| {
            let known: Vec<&str> = toolchain::TOOLCHAINS.iter().map(|t| t.name).collect();
            format!("no runner target '{t}' (known: {})", known.join(", "))
        })?;
        let runs_on = match tc.board {
            Some(b) => format!("{} firmware, -icount shift=0", b.qemu.join(" ")),
            None => tc.run_prefix.join(" "),
        };
        println!("target {t} ({runs_on}), {} counted runs per model", args.runs.max(1));
        println!("{:<20} {:>12} {:>15} {:>15} {:>10}  check", "model", "MACs", "instr/infer", "in model code", "instr/MAC");
        for dir in &dirs {
            // The generated decoders (15 MB of weights) do not fit the boards' memory;
            // their firmware does not start, so they are not counted there.
            if tc.board.is_some() && dir.starts_with(&args.generated) {
                let name = dir.file_name().unwrap_or_default().to_string_lossy();
                println!("{name:<20} {:>12} not counted: the generated models do not fit the board's memory", "-");
                continue;
            }
            // A directory per target: a batch directory must not hold another
            // backend's `NAME.o` (it would name the wrong code as the model's).
            let row = bench_model(tc, dir, args, &plugin, &work.path().join(t)).with_context(|| format!("{} on {t}", dir.display()))?;
            let Some(first) = row.counts.first().copied() else {
                println!("{:<20} {:>12} {}", row.model, row.macs, row.verdict);
                continue;
            };
            let same = row.counts.iter().all(|c| *c == first);
            let mut verdict = row.verdict;
            if !same {
                let all: Vec<String> = row.counts.iter().map(|c| c.inference.to_string()).collect();
                verdict = format!("COUNTS DIFFER: {}; {verdict}", all.join(" "));
            }
            ok &= same && verdict == "ok";
            let per_mac = if row.macs > 0 { format!("{:.2}", first.inference as f64 / row.macs as f64) } else { "-".into() };
            let check = if verdict == "ok" { format!("identical x{}, outputs ok", row.counts.len()) } else { verdict };
            println!("{:<20} {:>12} {:>15} {:>15} {:>10}  {check}", row.model, row.macs, first.inference, first.model_code, per_mac);
        }
        println!();
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GPT-2 decode step, 2 layers, d = 64, 4 heads of 16, vocab 512, past 16 (17 keys):
    /// per layer c_attn 64·192 + c_proj 64·64 + MLP 2·64·256 = 49152 and attention
    /// 2·4·17·16 = 2176; the LM head 64·512 = 32768.
    #[test]
    fn macs_of_gpt2_decode_step() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/gpt2_decode_kv");
        let model = edgec::front::onnx::load(&dir.join("model.onnx")).unwrap();
        let dims = [("batch".to_string(), 1), ("past_sequence_length".to_string(), 16), ("total_sequence_length".to_string(), 17)];
        let bindings = bindings_for(&model.graph, &dims);
        let g = prepare(model.graph, &bindings).unwrap();
        assert_eq!(macs(&g), 2 * (49152 + 2176) + 32768);
    }
}

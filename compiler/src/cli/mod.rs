//! Argument parsing (clap) and the subcommands.

mod compile;
mod int8;
mod inspect;
mod profile;
mod profile_timing;
mod progress;
mod quantize_report;
mod run;
mod verify;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use edgec::emit::{CodeKind, CompileOptions};
use edgec::pipeline::Bindings;

#[derive(Parser)]
#[command(name = "edgec", version, about = "Ahead-of-time compiler for generative ONNX models on edge devices")]
pub struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compiles a model into a header, an object or C source, a weight blob and a manifest.
    Compile(CompileArgs),
    /// Prints a model's inputs, outputs, op histogram before and after folding, parameters
    /// and every unsupported node.
    Inspect(InspectArgs),
    /// Runs the model on test data (ONNX backend-test layout) and compares with the
    /// expected outputs.
    Verify(VerifyArgs),
    /// Runs the generated code (natively or under QEMU) on inputs from .npy/.pb files
    /// and writes every output as OUT_DIR/OUTPUT_NAME.npy.
    Run(RunArgs),
    /// Counts one inference's instructions per kernel and per op type under QEMU.
    Profile(ProfileArgs),
    /// Lists the targets.
    Targets,
}

/// Flags that fix symbolic dimensions, shared by every subcommand that reads a model.
#[derive(Args, Clone, Debug, Default)]
pub struct ShapeArgs {
    /// Fixes a symbolic dimension, e.g. --dim past_sequence_length=16. `compile` also
    /// takes a range, --dim past_sequence_length=0..64 (or 0..=63): a shape family, one
    /// specialisation per value sharing one weight blob; and a symbol that follows
    /// another, --dim total_sequence_length=past_sequence_length+1.
    #[arg(long = "dim", value_name = "SYMBOL=VALUE", value_parser = parse_dim)]
    dims: Vec<(String, DimArg)>,
    /// Fixes a whole input shape, e.g. --input-shape input_ids=1,16.
    #[arg(long = "input-shape", value_name = "INPUT=D0,D1,...", value_parser = parse_input_shape)]
    input_shapes: Vec<(String, Vec<usize>)>,
}

/// The value of one `--dim`.
#[derive(Clone, Debug, PartialEq)]
pub enum DimArg {
    Value(usize),
    /// Inclusive bounds.
    Range(usize, usize),
    /// Another symbol plus a constant.
    Follows(String, i64),
}

impl ShapeArgs {
    /// The bindings of a single compilation; a range is a usage error here.
    pub fn bindings(&self) -> Result<Bindings> {
        if let Some((sym, _)) = self.dims.iter().find(|(_, d)| matches!(d, DimArg::Range(..))) {
            return Err(edgec::Error::Usage(format!("--dim {sym} takes a range only in `edgec compile` (a shape family)")).into());
        }
        self.bindings_at(None)
    }

    /// A shape family: the ranged symbol and the bindings of each of its values, or
    /// `None` without a range.
    pub fn family(&self) -> Result<Option<(String, Vec<(usize, Bindings)>)>> {
        let ranges: Vec<_> = self
            .dims
            .iter()
            .filter_map(|(s, d)| match d {
                DimArg::Range(lo, hi) => Some((s.clone(), *lo, *hi)),
                _ => None,
            })
            .collect();
        match ranges.as_slice() {
            [] => Ok(None),
            [(sym, lo, hi)] => {
                let members = (*lo..=*hi).map(|v| Ok((v, self.bindings_at(Some((sym, v)))?))).collect::<Result<_>>()?;
                Ok(Some((sym.clone(), members)))
            }
            _ => Err(edgec::Error::Usage("only one --dim may be a range; make the others follow it (--dim B=A+1)".into()).into()),
        }
    }

    fn bindings_at(&self, ranged: Option<(&str, usize)>) -> Result<Bindings> {
        let value = |sym: &str| -> Option<usize> {
            match ranged {
                Some((r, v)) if r == sym => Some(v),
                _ => self.dims.iter().find_map(|(s, d)| match d {
                    DimArg::Value(v) if s == sym => Some(*v),
                    _ => None,
                }),
            }
        };
        let mut dims = std::collections::BTreeMap::new();
        for (sym, d) in &self.dims {
            let v = match d {
                DimArg::Value(v) => *v,
                DimArg::Range(..) => value(sym).unwrap_or_default(),
                DimArg::Follows(base, k) => {
                    let b = value(base).ok_or_else(|| {
                        edgec::Error::Usage(format!("--dim {sym}={base}{k:+}: '{base}' needs a value or range of its own (--dim {base}=...)"))
                    })?;
                    usize::try_from(b as i64 + k)
                        .map_err(|_| edgec::Error::Usage(format!("--dim {sym}={base}{k:+} is negative at {base}={b}")))?
                }
            };
            dims.insert(sym.clone(), v);
        }
        Ok(Bindings { dims, input_shapes: self.input_shapes.iter().cloned().collect() })
    }
}

fn parse_dim(s: &str) -> Result<(String, DimArg), String> {
    let (k, v) = s.rsplit_once('=').ok_or("expected SYMBOL=VALUE")?;
    // `a..=b` splits at its own '='.
    let (k, v) = match k.strip_suffix("..") {
        Some(_) => s.split_once('=').map(|(k, v)| (k, v)).ok_or("expected SYMBOL=VALUE")?,
        None => (k, v),
    };
    let v = v.trim();
    let int = |t: &str| t.trim().parse::<usize>().map_err(|_| format!("'{t}' is not a non-negative integer"));
    let d = if let Some((lo, hi)) = v.split_once("..=") {
        DimArg::Range(int(lo)?, int(hi)?)
    } else if let Some((lo, hi)) = v.split_once("..") {
        let (lo, hi) = (int(lo)?, int(hi)?);
        if hi == 0 {
            return Err(format!("the range {v} is empty"));
        }
        DimArg::Range(lo, hi - 1)
    } else if v.starts_with(|c: char| c.is_ascii_digit()) {
        DimArg::Value(int(v)?)
    } else {
        let (base, k) = match v.find(['+', '-']) {
            Some(i) => {
                let k: i64 = v[i..].replace('+', "").trim().parse().map_err(|_| format!("'{}' is not an integer offset", &v[i..]))?;
                (v[..i].trim(), k)
            }
            None => (v, 0),
        };
        if base.is_empty() {
            return Err(format!("'{v}' is not a value, a range LO..HI or SYMBOL+K"));
        }
        DimArg::Follows(base.to_string(), k)
    };
    if let DimArg::Range(lo, hi) = d {
        if lo > hi {
            return Err(format!("the range {v} is empty"));
        }
    }
    Ok((k.to_string(), d))
}

fn parse_input_shape(s: &str) -> Result<(String, Vec<usize>), String> {
    let (k, v) = s.rsplit_once('=').ok_or("expected INPUT=D0,D1,...")?;
    let dims = if v.trim().is_empty() {
        Vec::new()
    } else {
        v.split(',')
            .map(|d| d.trim().parse().map_err(|_| format!("'{d}' is not a non-negative integer")))
            .collect::<Result<_, _>>()?
    };
    Ok((k.to_string(), dims))
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Quantize {
    Int8,
    /// Weight-only Q4_0 blocks (docs/quantization.md).
    Int4,
    /// Weight-only Q8_0 blocks (docs/quantization.md).
    #[value(name = "int8-weights")]
    Int8Weights,
}

/// `minmax`: the extremes seen; `percentile`: the 0.01st and 99.99th percentiles.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum CalibrationMethod {
    Minmax,
    Percentile,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Emit {
    Obj,
    C,
}

#[derive(Args)]
struct CompileArgs {
    model: PathBuf,
    #[arg(long)]
    target: String,
    /// Output directory.
    #[arg(short = 'o', long = "out-dir", default_value = ".")]
    out_dir: PathBuf,
    /// Prefix of every generated symbol (default: the model file's stem as a C identifier).
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    shapes: ShapeArgs,
    #[command(flatten)]
    quant: QuantizeFlags,
    /// --quantize int8: nodes (by name) to keep in float.
    #[arg(long = "keep-float", value_name = "NODE", num_args = 1..)]
    keep_float: Vec<String>,
    /// --quantize: test_data_set_* directories for the accuracy report (default: for int8
    /// the calibration sets; for int4/int8-weights the model's own, else seeded random inputs).
    #[arg(long = "test-data")]
    test_data: Vec<PathBuf>,
    #[arg(long, value_enum)]
    emit: Option<Emit>,
    /// Put the weights in the object's read-only data instead of NAME.weights.
    #[arg(long)]
    embed_weights: bool,
    /// Also write an HTML page of the memory plan (arena over time) and bytes per kernel.
    #[arg(long, value_name = "FILE.html")]
    report: Option<PathBuf>,
    /// MCU targets with --embed-weights: the section of the weights (default .edgec_weights).
    #[arg(long = "weights-section", value_name = "NAME")]
    weights_section: Option<String>,
    /// MCU targets: flash available to code + weights (bytes; K and M suffixes, 1024-based).
    #[arg(long = "flash-budget", value_name = "BYTES", value_parser = edgec::emit::footprint::parse_bytes)]
    flash_budget: Option<usize>,
    /// MCU targets: RAM available to arena + inputs/outputs + stack (bytes; K, M suffixes).
    #[arg(long = "ram-budget", value_name = "BYTES", value_parser = edgec::emit::footprint::parse_bytes)]
    ram_budget: Option<usize>,
}

#[derive(Args)]
struct InspectArgs {
    model: PathBuf,
    #[arg(long)]
    target: Option<String>,
    #[command(flatten)]
    shapes: ShapeArgs,
}

#[derive(Args)]
struct VerifyArgs {
    model: PathBuf,
    /// A target of `edgec targets`, or `reference` for the reference evaluator.
    #[arg(long)]
    target: String,
    /// A test_data_set_* directory; default: every test_data_set_* beside the model.
    #[arg(long = "test-data")]
    test_data: Vec<PathBuf>,
    #[command(flatten)]
    shapes: ShapeArgs,
}

/// Where `run` and `profile` read a model's inputs.
#[derive(Args)]
struct InputFiles {
    /// An input file (.npy or .pb): in the model's input order, or NAME=FILE.
    #[arg(long = "input", value_name = "[NAME=]FILE")]
    inputs: Vec<String>,
    /// A directory of inputs: input_N.pb (backend-test layout) or NAME.npy per input.
    #[arg(long = "inputs", value_name = "DIR")]
    inputs_dir: Option<PathBuf>,
}

#[derive(Args)]
struct RunArgs {
    model: PathBuf,
    /// A target of `edgec targets`, or `reference` for the reference evaluator.
    #[arg(long)]
    target: String,
    #[command(flatten)]
    data: InputFiles,
    /// Where the outputs go, one OUTPUT_NAME.npy each.
    #[arg(short = 'o', long = "out-dir", default_value = ".")]
    out_dir: PathBuf,
    #[command(flatten)]
    shapes: ShapeArgs,
}

#[derive(Args)]
struct ProfileArgs {
    model: PathBuf,
    /// A target of `edgec targets` (host runs under qemu-x86_64).
    #[arg(long)]
    target: String,
    /// The inputs (default: the first test_data_set_* beside the model).
    #[command(flatten)]
    data: InputFiles,
    /// How many kernels to list (the rest are summed).
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Host only: time each kernel natively on the host's clock, median of RUNS runs,
    /// instead of counting instructions under qemu-x86_64.
    #[arg(long, value_name = "RUNS")]
    time: Option<usize>,
    /// `profile` takes `--quantize int8` only: it profiles the static post-training
    /// quantisation build, as `compile --quantize int8` makes it.
    #[command(flatten)]
    quant: QuantizeFlags,
    #[command(flatten)]
    shapes: ShapeArgs,
}

/// The quantisation flags `compile` and `profile` share.
#[derive(Args)]
struct QuantizeFlags {
    #[arg(long, value_enum)]
    quantize: Option<Quantize>,
    /// Calibration inputs (test_data_set_* directories, or one): for --quantize int8;
    /// for int4/int8-weights, the GPTQ rounding's (default: the model's test data).
    #[arg(long)]
    calibration: Option<PathBuf>,
    /// --quantize int8: how activation ranges are taken from the calibration values.
    #[arg(long = "calibration-method", value_enum, default_value = "minmax")]
    calibration_method: CalibrationMethod,
}

impl QuantizeFlags {
    /// The static int8 build's arguments, `None` without `--quantize int8`; a usage error
    /// when int8 lacks its calibration or calibration comes without a quantize mode.
    fn int8(&self, keep_float: &[String], test_data: &[PathBuf]) -> Result<Option<int8::Int8Args>> {
        match (&self.quantize, &self.calibration) {
            (Some(Quantize::Int8), Some(calibration)) => Ok(Some(int8::Int8Args {
                calibration: calibration.clone(),
                method: range_method(&self.calibration_method),
                keep_float: keep_float.to_vec(),
                test_data: test_data.to_vec(),
            })),
            (Some(Quantize::Int8), None) => Err(edgec::Error::Usage("--quantize int8 needs --calibration DIR".into()).into()),
            (None, Some(_)) => Err(edgec::Error::Usage("--calibration goes with --quantize".into()).into()),
            _ => Ok(None),
        }
    }
}

/// A target name from the contract, or a usage error listing them.
fn check_target(name: &str) -> Result<&'static edgec::targets::Target> {
    edgec::targets::find(name).ok_or_else(|| {
        anyhow::Error::new(edgec::Error::Usage(format!(
            "unknown target '{name}'; `edgec targets` lists them ({})",
            edgec::targets::TARGETS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
        )))
    })
}

/// The C identifier a model's file stem becomes (the default `--name`).
pub fn c_identifier(stem: &str) -> String {
    let mut s: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

pub fn run(cli: Cli) -> Result<i32> {
    match cli.cmd {
        Command::Targets => {
            println!("{:<12} {:<30} {:<10} tests run under", "target", "ISA", "code path");
            for t in edgec::targets::TARGETS {
                let path = match t.path {
                    edgec::targets::CodePath::Cranelift => "Cranelift",
                    edgec::targets::CodePath::C => "C99",
                };
                println!("{:<12} {:<30} {:<10} {}", t.name, t.isa, path, t.emulator);
            }
            Ok(0)
        }
        Command::Inspect(a) => {
            if let Some(t) = &a.target {
                check_target(t)?;
            }
            inspect::inspect(&a.model, &a.shapes.bindings()?)
        }
        Command::Run(a) => run::run(&a.model, &a.target, &a.data.inputs, a.data.inputs_dir.as_deref(), &a.out_dir, &a.shapes.bindings()?),
        Command::Profile(a) => {
            if matches!(a.quant.quantize, Some(Quantize::Int4 | Quantize::Int8Weights)) {
                return Err(edgec::Error::Usage("profile takes --quantize int8 only".into()).into());
            }
            let int8 = a.quant.int8(&[], &[])?;
            let po = profile::ProfileOptions { top: a.top, time_runs: a.time, int8 };
            profile::profile(&a.model, &a.target, &a.data.inputs, a.data.inputs_dir.as_deref(), &po, &a.shapes.bindings()?)
        }
        Command::Verify(a) => verify::verify(&a.model, &a.target, &a.test_data, &a.shapes.bindings()?),
        Command::Compile(a) => {
            let target = check_target(&a.target)?;
            let name = a.name.clone().unwrap_or_else(|| {
                c_identifier(&a.model.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default())
            });
            if c_identifier(&name) != name {
                return Err(edgec::Error::Usage(format!("--name '{name}' is not a C identifier")).into());
            }
            let int8 = a.quant.int8(&a.keep_float, &a.test_data)?;
            // Weight-only modes (passes::quantize_weights); int8 is static PTQ (cli/int8.rs).
            let quantize = match a.quant.quantize {
                None | Some(Quantize::Int8) => None,
                Some(Quantize::Int4) => Some(edgec::quantize::QuantizeMode::Int4),
                Some(Quantize::Int8Weights) => Some(edgec::quantize::QuantizeMode::Int8Weights),
            };
            if a.quant.quantize.is_none() && !a.test_data.is_empty() {
                return Err(edgec::Error::Usage("--test-data on compile is for the accuracy report of --quantize".into()).into());
            }
            if !matches!(a.quant.quantize, Some(Quantize::Int8)) && !a.keep_float.is_empty() {
                return Err(edgec::Error::Usage("--keep-float goes with --quantize int8".into()).into());
            }
            let code = match a.emit {
                Some(Emit::C) => CodeKind::C,
                Some(Emit::Obj) => CodeKind::Object,
                None => CodeKind::default_for(target),
            };
            let mcu = edgec::emit::footprint::is_mcu(target);
            if !mcu && (a.flash_budget.is_some() || a.ram_budget.is_some() || a.weights_section.is_some()) {
                return Err(edgec::Error::Usage(format!(
                    "--flash-budget, --ram-budget and --weights-section apply to the MCU targets (cortex-m4, cortex-m7, cortex-m55, riscv32), not '{}'",
                    target.name
                ))
                .into());
            }
            if let Some(s) = &a.weights_section {
                if !a.embed_weights {
                    return Err(edgec::Error::Usage("--weights-section needs --embed-weights".into()).into());
                }
                edgec::emit::weights_asm::check_section_name(s).map_err(edgec::Error::Usage)?;
            }
            let flags = compile::McuFlags {
                weights_section: a.weights_section.clone(),
                flash_budget: a.flash_budget,
                ram_budget: a.ram_budget,
                quantize,
                test_data: a.test_data.clone(),
                calibration: a.quant.calibration.clone(),
            };
            let opts = CompileOptions { name: &name, target, code, embed_weights: a.embed_weights };
            if let Some((symbol, members)) = a.shapes.family()? {
                if a.quant.quantize.is_some() || a.report.is_some() || mcu {
                    return Err(edgec::Error::Usage("a shape family (--dim SYMBOL=LO..HI) is compiled for a Cranelift target without --quantize or --report".into()).into());
                }
                return compile::compile_family(&a.model, &a.out_dir, &symbol, &members, &opts);
            }
            compile::compile(&a.model, &a.out_dir, &a.shapes.bindings()?, &opts, &flags, a.report.as_deref(), int8.as_ref())
        }
    }
}

/// `--calibration-method` as the pass's option.
fn range_method(m: &CalibrationMethod) -> edgec::passes::quantize_int8::RangeMethod {
    match m {
        CalibrationMethod::Minmax => edgec::passes::quantize_int8::RangeMethod::MinMax,
        CalibrationMethod::Percentile => edgec::passes::quantize_int8::RangeMethod::Percentile(99.99),
    }
}

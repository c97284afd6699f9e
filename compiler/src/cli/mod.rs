//! Argument parsing (clap) and the subcommands.

mod compile;
mod inspect;
mod progress;
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
    /// Lists the targets.
    Targets,
}

/// Flags that fix symbolic dimensions, shared by every subcommand that reads a model.
#[derive(Args, Clone, Debug, Default)]
pub struct ShapeArgs {
    /// Fixes a symbolic dimension, e.g. --dim past_sequence_length=16.
    #[arg(long = "dim", value_name = "SYMBOL=VALUE", value_parser = parse_dim)]
    dims: Vec<(String, usize)>,
    /// Fixes a whole input shape, e.g. --input-shape input_ids=1,16.
    #[arg(long = "input-shape", value_name = "INPUT=D0,D1,...", value_parser = parse_input_shape)]
    input_shapes: Vec<(String, Vec<usize>)>,
}

impl ShapeArgs {
    pub fn bindings(&self) -> Bindings {
        Bindings {
            dims: self.dims.iter().cloned().collect(),
            input_shapes: self.input_shapes.iter().cloned().collect(),
        }
    }
}

fn parse_dim(s: &str) -> Result<(String, usize), String> {
    let (k, v) = s.rsplit_once('=').ok_or("expected SYMBOL=VALUE")?;
    let v = v.trim().parse().map_err(|_| format!("'{v}' is not a non-negative integer"))?;
    Ok((k.to_string(), v))
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
    Int4,
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
    #[arg(long, value_enum)]
    quantize: Option<Quantize>,
    /// Calibration inputs for --quantize int8.
    #[arg(long)]
    calibration: Option<PathBuf>,
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
            inspect::inspect(&a.model, &a.shapes.bindings())
        }
        Command::Verify(a) => verify::verify(&a.model, &a.target, &a.test_data, &a.shapes.bindings()),
        Command::Compile(a) => {
            let target = check_target(&a.target)?;
            let name = a.name.clone().unwrap_or_else(|| {
                c_identifier(&a.model.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default())
            });
            if c_identifier(&name) != name {
                return Err(edgec::Error::Usage(format!("--name '{name}' is not a C identifier")).into());
            }
            if matches!(a.quantize, Some(Quantize::Int8)) && a.calibration.is_none() {
                return Err(edgec::Error::Usage("--quantize int8 needs --calibration DIR".into()).into());
            }
            if a.quantize.is_some() {
                return Err(edgec::Error::UnsupportedModel("--quantize is not implemented in this build yet".into()).into());
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
            let flags = compile::McuFlags { weights_section: a.weights_section.clone(), flash_budget: a.flash_budget, ram_budget: a.ram_budget };
            let opts = CompileOptions { name: &name, target, code, embed_weights: a.embed_weights };
            compile::compile(&a.model, &a.out_dir, &a.shapes.bindings(), &opts, &flags, a.report.as_deref())
        }
    }
}

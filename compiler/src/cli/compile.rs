//! `edgec compile`: model → NAME.h, NAME.c or NAME.o, NAME.weights, NAME.json (and, for
//! MCU targets with --embed-weights and C output, NAME_weights.S + NAME_weights.bin).

use std::path::Path;

use anyhow::Result;
use edgec::emit::toolchain::ToolError;
use edgec::emit::{self, firmware, footprint, CodeKind, CompileOptions};
use edgec::pipeline::{prepare, Bindings};
use edgec::targets::CodePath;

/// The MCU-only flags (validated by the caller), and --quantize with its report's data.
#[derive(Clone, Debug, Default)]
pub struct McuFlags {
    pub weights_section: Option<String>,
    pub flash_budget: Option<usize>,
    pub ram_budget: Option<usize>,
    pub quantize: Option<edgec::quantize::QuantizeMode>,
    pub test_data: Vec<std::path::PathBuf>,
    pub calibration: Option<std::path::PathBuf>,
}

pub fn compile(model_path: &Path, out_dir: &Path, bindings: &Bindings, opts: &CompileOptions, mcu: &McuFlags, html: Option<&Path>, int8: Option<&super::int8::Int8Args>) -> Result<i32> {
    let progress = super::progress::Stages::new(4);
    progress.stage(0, "loading the model");
    let model = edgec::front::onnx::load(model_path)?;
    model.check_supported()?;
    let ops_before = model.graph.op_histogram().values().sum();
    progress.stage(1, "optimising the graph");
    let mut graph = prepare(model.graph, bindings)?;
    let quant_report = match (int8, mcu.quantize) {
        (Some(q), _) => {
            let (g, report) = super::int8::apply(graph, q)?;
            graph = g;
            Some(report)
        }
        (None, Some(mode)) => Some(super::quantize_report::quantize(&mut graph, mode, model_path, &mcu.test_data, mcu.calibration.as_deref())?),
        (None, None) => None,
    };
    progress.stage(2, "lowering, generating code, packing weights");
    // C targets make objects with the firmware's compiler from the C backend's source.
    let c_target = opts.target.path == CodePath::C;
    let firmware_obj = c_target && opts.code == CodeKind::Object;
    let c_opts = CompileOptions { code: CodeKind::C, ..opts.clone() };
    let mut art = emit::compile_owned(graph, ops_before, if firmware_obj { &c_opts } else { opts })?;
    if let Some(section) = &mcu.weights_section {
        art.set_weights_section(section);
    }
    if c_target {
        // The cross compiler, when installed, gives the object (--emit obj) and the
        // measured code size and stack; without it, --emit c keeps the estimate.
        match firmware::build(opts.target, &art) {
            Ok(fw) => {
                if let Some(mut f) = art.report.footprint.clone() {
                    let io = f.ram_io_bytes;
                    let budget = footprint::Budget { flash: f.flash_budget, ram: f.ram_budget };
                    f = footprint::Footprint::new(fw.code, f.flash_weights_bytes, f.ram_arena_bytes, io, fw.stack, budget);
                    art.set_footprint(f);
                }
                if firmware_obj {
                    art.set_object(fw.object);
                }
            }
            Err(e) if firmware_obj => {
                eprintln!("error: --emit obj for {}: {e}", opts.target.name);
                return Ok(4);
            }
            Err(ToolError::Missing(_)) => {}
            Err(e) => eprintln!("warning: the cross compiler did not build the C code ({e}); the code size is estimated"),
        }
        if let Some(mut f) = art.report.footprint.clone() {
            f.flash_budget = mcu.flash_budget.unwrap_or(f.flash_budget);
            f.ram_budget = mcu.ram_budget.unwrap_or(f.ram_budget);
            if let Err(msg) = f.check(opts.target.name) {
                return Err(edgec::Error::DoesNotFit(msg).into());
            }
            art.set_footprint(f);
        }
    }
    if let Some(q) = &quant_report {
        art.manifest = emit::manifest::with_field(&art.manifest, "quantization", &q.json);
    }
    progress.stage(3, "writing");
    drop(progress);
    let code = print_report(out_dir, &art, opts, html, model_path)?;
    if let Some(q) = &quant_report {
        for line in &q.lines {
            println!("{line}");
        }
    }
    Ok(code)
}

/// `edgec compile --dim SYMBOL=LO..HI`: a shape family (`emit::family`).
pub fn compile_family(model_path: &Path, out_dir: &Path, symbol: &str, members: &[(usize, Bindings)], opts: &CompileOptions) -> Result<i32> {
    let model = edgec::front::onnx::load(model_path)?;
    model.check_supported()?;
    let ops_before = model.graph.op_histogram().values().sum();
    let mut prepared = Vec::with_capacity(members.len());
    for (value, bindings) in members {
        let graph = prepare(model.graph.clone(), bindings).map_err(|e| anyhow::anyhow!("at --dim {symbol}={value}: {e}"))?;
        prepared.push(emit::family::Member { value: *value, graph });
    }
    let art = emit::family::compile_family(symbol, prepared, ops_before, opts)?;
    println!("family:  {} members, {symbol} = {}..={}", members.len(), members[0].0, members[members.len() - 1].0);
    print_report(out_dir, &art, opts, None, model_path)
}

/// Writes the artifacts and prints what was written and the report.
fn print_report(out_dir: &Path, art: &emit::Artifacts, opts: &CompileOptions, html: Option<&Path>, model_path: &Path) -> Result<i32> {
    let written = emit::write::write_all(out_dir, &art.files())?;
    let r = &art.report;
    for p in &written {
        println!("wrote {}", p.display());
    }
    if let Some(path) = html {
        let title = model_path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        std::fs::write(path, emit::html::render(&title, opts.target.name, &art.timeline, &art.report))
            .map_err(|e| anyhow::anyhow!("cannot write the report {}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    println!("ops:     {} before optimisation, {} after ({} kernels)", r.ops_before, r.ops_after, r.kernels);
    let embedded = match &art.weights_asm {
        Some(w) => format!(" (embedded: section {} of {}_weights.S)", w.section, art.name),
        None if opts.embed_weights => " (embedded in the code)".into(),
        None => String::new(),
    };
    println!("weights: {} bytes{embedded}", r.weights_bytes);
    println!("arena:   {} bytes (lower bound {} bytes)", r.arena_bytes, r.arena_lower_bound);
    let what = if r.code_kind == "c" { "of C source" } else { "of object file" };
    println!("code:    {} bytes {what}", r.code_bytes);
    if let Some(f) = &r.footprint {
        for line in f.report_lines() {
            println!("{line}");
        }
    }
    Ok(0)
}

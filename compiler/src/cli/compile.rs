//! `edgec compile`: model → NAME.h, NAME.c or NAME.o, NAME.weights, NAME.json.

use std::path::Path;

use anyhow::Result;
use edgec::emit::{self, CompileOptions};
use edgec::pipeline::{prepare, Bindings};
use edgec::targets::CodePath;

pub fn compile(model_path: &Path, out_dir: &Path, bindings: &Bindings, opts: &CompileOptions) -> Result<i32> {
    let model = edgec::front::onnx::load(model_path)?;
    model.check_supported()?;
    let ops_before = model.graph.op_histogram().values().sum();
    let graph = prepare(model.graph, bindings)?;
    let art = emit::compile(&graph, ops_before, opts)?;
    let written = emit::write::write_all(out_dir, &art.files())?;
    let r = &art.report;
    for p in &written {
        println!("wrote {}", p.display());
    }
    println!("ops:     {} before optimisation, {} after ({} kernels)", r.ops_before, r.ops_after, r.kernels);
    println!("weights: {} bytes{}", r.weights_bytes, if opts.embed_weights { " (embedded in the code)" } else { "" });
    println!("arena:   {} bytes (lower bound {} bytes)", r.arena_bytes, r.arena_lower_bound);
    let what = if r.code_kind == "c" { "of C source" } else { "of object file" };
    println!("code:    {} bytes {what}", r.code_bytes);
    if opts.target.path == CodePath::C {
        // The C source's size is not its machine code's: flash is a lower bound until
        // the firmware's compiler has run.
        println!("flash:   >= {} bytes (weights) + the compiled code", r.weights_bytes);
        println!("RAM:     {} bytes (arena) + the inputs and outputs", r.arena_bytes);
    }
    Ok(0)
}

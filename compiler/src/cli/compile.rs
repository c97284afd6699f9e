//! `edgec compile`: model → NAME.h, NAME.c or NAME.o, NAME.weights, NAME.json.

use std::path::Path;

use anyhow::Result;
use edgec::emit::{self, toolchain, Code, CodeKind, CompileOptions};
use edgec::pipeline::{prepare, Bindings};
use edgec::targets::CodePath;

pub fn compile(model_path: &Path, out_dir: &Path, bindings: &Bindings, opts: &CompileOptions, html: Option<&Path>) -> Result<i32> {
    let model = edgec::front::onnx::load(model_path)?;
    model.check_supported()?;
    let ops_before = model.graph.op_histogram().values().sum();
    let graph = prepare(model.graph, bindings)?;
    // C targets make objects with the firmware's compiler from the C backend's source.
    let firmware_obj = opts.target.path == CodePath::C && opts.code == CodeKind::Object;
    let c_opts = CompileOptions { code: CodeKind::C, ..opts.clone() };
    let mut art = emit::compile(&graph, ops_before, if firmware_obj { &c_opts } else { opts })?;
    if firmware_obj {
        let Some((cc, flags)) = toolchain::firmware_compiler(opts.target.name) else {
            return Err(edgec::Error::UnsupportedModel(format!("no firmware compiler known for '{}'", opts.target.name)).into());
        };
        let Code::C(source) = &art.code else {
            return Err(edgec::Error::Internal("the C backend returned no source".into()).into());
        };
        match toolchain::compile_object(cc, flags, source) {
            Ok(obj) => {
                art.report.code_bytes = obj.len();
                art.report.code_kind = "obj";
                art.code = Code::Object(obj);
                let mut m: serde_json::Value = serde_json::from_str(&art.manifest)?;
                m["code"] = "obj".into();
                m["code_bytes"] = art.report.code_bytes.into();
                art.manifest = serde_json::to_string_pretty(&m)? + "\n";
            }
            Err(e) => {
                eprintln!("error: --emit obj for {}: {e}", opts.target.name);
                return Ok(4);
            }
        }
    }
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

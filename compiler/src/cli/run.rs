//! `edgec run`: compiles a model for a target, runs the generated code (natively for
//! the host, under QEMU for the others, or the reference evaluator) on inputs from
//! `.npy` or `.pb` files, and writes every output as `OUT_DIR/OUTPUT_NAME.npy`.
//!
//! Inputs come as `--input FILE` in the model's input order, `--input NAME=FILE`, or
//! `--inputs DIR` (a backend-test `test_data_set_*`: `input_N.pb`; or one `NAME.npy`
//! per input). Open dimensions take the inputs' shapes. Outputs are written only after
//! the run succeeded, all or none.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use edgec::ir::Tensor;
use edgec::pipeline::{prepare, Bindings};

use super::verify::{check_inputs, execute, runner, Ran};

pub fn run(model_path: &Path, target: &str, input_args: &[String], inputs_dir: Option<&Path>, out_dir: &Path, bindings: &Bindings) -> Result<i32> {
    let tc = runner("run", target)?;
    let model = edgec::front::onnx::load(model_path)?;
    model.check_supported()?;
    let names: Vec<String> = model.graph.inputs.iter().map(|&i| model.graph.value(i).name.clone()).collect();
    let inputs = gather_inputs(&names, input_args, inputs_dir)?;
    let ops_before = model.graph.op_histogram().values().sum();
    let bindings = bindings.completed_from(&model.graph, &inputs);
    let graph = prepare(model.graph.clone(), &bindings)?;
    check_inputs(&graph, &inputs, Path::new("--input"))?;
    let outputs = match execute(tc, &graph, ops_before, vec![inputs], &["the inputs".to_string()])? {
        Ran::Outputs(mut o) => o.pop().unwrap_or_default(),
        Ran::ToolFailed => return Ok(4),
    };
    let out_names: Vec<String> = graph.outputs.iter().map(|&id| graph.value(id).name.clone()).collect();
    write_outputs(out_dir, &out_names, &outputs)?;
    Ok(0)
}

/// One tensor per model input, in the model's order.
pub(super) fn gather_inputs(names: &[String], args: &[String], dir: Option<&Path>) -> Result<Vec<Tensor>> {
    let mut slots: Vec<Option<Tensor>> = vec![None; names.len()];
    if let Some(dir) = dir {
        if !dir.is_dir() {
            return Err(edgec::Error::Usage(format!("--inputs {}: not a directory", dir.display())).into());
        }
        let numbered = edgec::testdata::read_numbered(dir, "input")?;
        if !numbered.is_empty() {
            if numbered.len() != names.len() {
                bail!("{}: {} input_N.pb files, but the model has {} inputs ({})", dir.display(), numbered.len(), names.len(), names.join(", "));
            }
            slots = numbered.into_iter().map(Some).collect();
        } else {
            for (slot, name) in slots.iter_mut().zip(names) {
                let p = dir.join(format!("{}.npy", file_stem(name)));
                if p.exists() {
                    *slot = Some(edgec::npy::read(&p)?);
                }
            }
        }
    }
    let mut next_positional = 0;
    for a in args {
        let (slot, file) = match a.split_once('=') {
            Some((name, file)) if names.iter().any(|n| n == name) => (names.iter().position(|n| n == name).unwrap_or(0), file),
            Some((name, _)) if !Path::new(a).exists() => {
                return Err(edgec::Error::Usage(format!("--input {a}: '{name}' is not an input of the model ({})", names.join(", "))).into())
            }
            _ => {
                let k = next_positional;
                next_positional += 1;
                if k >= names.len() {
                    return Err(edgec::Error::Usage(format!("--input {a}: the model has only {} inputs ({})", names.len(), names.join(", "))).into());
                }
                (k, a.as_str())
            }
        };
        slots[slot] = Some(read_tensor(Path::new(file))?);
    }
    let missing: Vec<&str> = names.iter().zip(&slots).filter(|(_, s)| s.is_none()).map(|(n, _)| n.as_str()).collect();
    if !missing.is_empty() {
        return Err(edgec::Error::Usage(format!(
            "no data for input(s) {}: pass --input NAME=FILE.npy|.pb or --inputs DIR",
            missing.join(", ")
        ))
        .into());
    }
    Ok(slots.into_iter().flatten().collect())
}

/// A `.npy` or a `.pb` (ONNX TensorProto) file.
fn read_tensor(path: &Path) -> Result<Tensor> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("npy") => Ok(edgec::npy::read(path)?),
        Some("pb") => Ok(edgec::front::onnx::read_tensor_file(path)?.1),
        _ => Err(edgec::Error::Usage(format!("{}: expected a .npy or .pb file", path.display())).into()),
    }
}

/// An output or input name as a file stem: `/` and other path characters become `_`.
fn file_stem(name: &str) -> String {
    let s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

/// Writes every output beside a temporary name first, then renames them all, so a
/// failure leaves no partial set of files.
fn write_outputs(dir: &Path, names: &[String], outputs: &[Tensor]) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(format!("{}.npy", file_stem(n)))).collect();
    let temps: Vec<PathBuf> = paths.iter().map(|p| p.with_extension("npy.partial")).collect();
    let written = names.iter().zip(outputs).zip(&temps).try_for_each(|((_, t), tmp)| edgec::npy::write(tmp, t));
    if let Err(e) = written {
        for t in &temps {
            let _ = std::fs::remove_file(t);
        }
        return Err(e.into());
    }
    for ((name, t), (tmp, path)) in names.iter().zip(outputs).zip(temps.iter().zip(&paths)) {
        std::fs::rename(tmp, path).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("{name}: {} {:?} -> {}", t.dtype(), t.shape(), path.display());
    }
    Ok(())
}

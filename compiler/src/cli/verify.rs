//! `edgec verify`: runs a model on backend-test data and compares with expected outputs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use edgec::pipeline::{prepare, Bindings};
use edgec::emit::driver::{run_batch, Job, SetResult};
use edgec::emit::toolchain::{self, ToolError};
use edgec::emit::CompileOptions;
use edgec::testdata::{compare, data_sets, read_numbered, CONTRACT};

pub fn verify(model_path: &Path, target: &str, test_data: &[PathBuf], bindings: &Bindings) -> Result<i32> {
    let toolchain = match target {
        "reference" => None,
        t => Some(toolchain::find(t).ok_or_else(|| {
            let known: Vec<&str> = toolchain::TOOLCHAINS.iter().map(|t| t.name).collect();
            edgec::Error::Usage(format!("verify runs on 'reference' or {}; not on '{t}' yet", known.join(", ")))
        })?),
    };
    let model = edgec::front::onnx::load(model_path)?;
    model.check_supported()?;
    let ops_before = model.graph.op_histogram().values().sum();
    let graph = prepare(model.graph, bindings)?;
    let sets = if test_data.is_empty() {
        data_sets(model_path.parent().unwrap_or(Path::new(".")))
    } else {
        test_data.to_vec()
    };
    if sets.is_empty() {
        return Err(edgec::Error::Usage(format!(
            "no test data: pass --test-data DIR or put test_data_set_* beside {}",
            model_path.display()
        ))
        .into());
    }
    let mut data = Vec::new();
    for set in &sets {
        data.push((read_numbered(set, "input")?, read_numbered(set, "output")?));
    }
    let mut results: Vec<Vec<edgec::ir::Tensor>> = Vec::new();
    match toolchain {
        None => {
            for (inputs, _) in &data {
                results.push(edgec::eval::run(&graph, inputs)?);
            }
        }
        Some(tc) => {
            let target = edgec::targets::find(tc.target).ok_or_else(|| anyhow::anyhow!("no target {}", tc.target))?;
            let opts = CompileOptions { name: "model", target, code: tc.code, embed_weights: false };
            let artifacts = edgec::emit::compile(&graph, ops_before, &opts)?;
            let job = Job { artifacts, sets: data.iter().map(|(i, _)| i.clone()).collect() };
            let dir = tempfile::tempdir()?;
            let ran = match run_batch(tc, std::slice::from_ref(&job), dir.path()) {
                Ok(r) => r,
                Err(e @ ToolError::Missing(_)) | Err(e @ ToolError::Failed(_)) => {
                    eprintln!("error: {e}");
                    return Ok(4);
                }
            };
            for (set, r) in sets.iter().zip(ran.into_iter().flatten()) {
                match r {
                    SetResult::Outputs(o) => results.push(o),
                    SetResult::Code(c) => bail!("{}: model_run returned error code {c}", set.display()),
                    SetResult::Error(why) => {
                        eprintln!("error: {}: {why}", set.display());
                        return Ok(4);
                    }
                }
            }
        }
    }
    let mut all_ok = true;
    for ((set, (_, expected)), outputs) in sets.iter().zip(&data).zip(&results) {
        if outputs.len() != expected.len() {
            bail!("{}: the model has {} outputs, the data {}", set.display(), outputs.len(), expected.len());
        }
        println!("{}:", set.display());
        for ((got, want), &id) in outputs.iter().zip(expected).zip(&graph.outputs) {
            let name = &graph.value(id).name;
            match compare(got, want, CONTRACT) {
                Ok((abs, rel)) => println!("  {name}: ok (max abs error {abs:.3e}, max rel error {rel:.3e})"),
                Err(why) => {
                    all_ok = false;
                    println!("  {name}: MISMATCH: {why}");
                }
            }
        }
    }
    Ok(if all_ok { 0 } else { 3 })
}

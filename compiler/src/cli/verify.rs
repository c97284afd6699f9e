//! `edgec verify`: runs a model on backend-test data and compares with expected outputs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use edgec::pipeline::{prepare, Bindings};
use edgec::testdata::{compare, data_sets, read_numbered, CONTRACT};

pub fn verify(model_path: &Path, target: &str, test_data: &[PathBuf], bindings: &Bindings) -> Result<i32> {
    if target != "reference" {
        super::check_target(target)?;
        bail!(
            "running generated code for target '{target}' is not implemented in this build yet; \
             `--target reference` checks the model with the reference evaluator"
        );
    }
    let model = edgec::front::onnx::load(model_path)?;
    model.check_supported()?;
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
    let mut all_ok = true;
    for set in &sets {
        let inputs = read_numbered(set, "input")?;
        let expected = read_numbered(set, "output")?;
        let outputs = edgec::eval::run(&graph, &inputs)?;
        if outputs.len() != expected.len() {
            bail!("{}: the model has {} outputs, the data {}", set.display(), outputs.len(), expected.len());
        }
        println!("{}:", set.display());
        for ((got, want), &id) in outputs.iter().zip(&expected).zip(&graph.outputs) {
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

//! `edgec verify`: runs a model on backend-test data and compares with expected outputs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use edgec::pipeline::{prepare, Bindings};
use edgec::emit::driver::{run_batch, Job, SetResult};
use edgec::emit::toolchain;
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
        let inputs = read_numbered(set, "input")?;
        if inputs.len() != model.graph.inputs.len() {
            bail!("{}: {} inputs, but the model has {}", set.display(), inputs.len(), model.graph.inputs.len());
        }
        data.push((inputs, read_numbered(set, "output")?));
    }
    // Dimensions the user left open take the test data's shapes; sets of different
    // shapes (a KV cache at two lengths, say) are compiled once per shape.
    let mut groups: Vec<(Bindings, Vec<usize>)> = Vec::new();
    for (k, (inputs, _)) in data.iter().enumerate() {
        let b = bindings.completed_from(&model.graph, inputs);
        match groups.iter_mut().find(|(g, _)| *g == b) {
            Some((_, members)) => members.push(k),
            None => groups.push((b, vec![k])),
        }
    }
    let mut results: Vec<Option<Vec<edgec::ir::Tensor>>> = vec![None; sets.len()];
    let mut output_names = Vec::new();
    for (b, members) in &groups {
        let graph = prepare(model.graph.clone(), b)?;
        output_names = graph.outputs.iter().map(|&id| graph.value(id).name.clone()).collect();
        for &k in members {
            for (i, (&id, t)) in graph.inputs.iter().zip(&data[k].0).enumerate() {
                let v = graph.value(id);
                let want = v.ty.as_ref().map(|ty| (ty.dtype, ty.shape.clone()));
                if want.as_ref() != Some(&(t.dtype(), t.shape().to_vec())) {
                    bail!(
                        "{}: input {i} '{}' is {} {:?}, but the model was compiled for {}; fix the shape with --dim/--input-shape or the data",
                        sets[k].display(),
                        v.name,
                        t.dtype(),
                        t.shape(),
                        want.map(|(d, s)| format!("{d} {s:?}")).unwrap_or_else(|| "an untyped input".into())
                    );
                }
            }
        }
        match toolchain {
            None => {
                for &k in members {
                    results[k] = Some(edgec::eval::run(&graph, &data[k].0)?);
                }
            }
            Some(tc) => {
                let target = edgec::targets::find(tc.target).ok_or_else(|| anyhow::anyhow!("no target {}", tc.target))?;
                let opts = CompileOptions { name: "model", target, code: tc.code, embed_weights: false };
                let artifacts = edgec::emit::compile(&graph, ops_before, &opts)?;
                let job = Job { artifacts, sets: members.iter().map(|&k| data[k].0.clone()).collect() };
                let dir = tempfile::tempdir()?;
                let ran = match run_batch(tc, std::slice::from_ref(&job), dir.path()) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("error: {e}");
                        return Ok(4);
                    }
                };
                for (&k, r) in members.iter().zip(ran.into_iter().flatten()) {
                    match r {
                        SetResult::Outputs(o) => results[k] = Some(o),
                        SetResult::Code(c) => bail!("{}: model_run returned error code {c}", sets[k].display()),
                        SetResult::Unsupported(why) => return Err(edgec::Error::UnsupportedModel(why).into()),
                        SetResult::Error(why) => {
                            eprintln!("error: {}: {why}", sets[k].display());
                            return Ok(4);
                        }
                    }
                }
            }
        }
    }
    let mut all_ok = true;
    for ((set, (_, expected)), outputs) in sets.iter().zip(&data).zip(&results) {
        let Some(outputs) = outputs else { bail!("{}: the generated code produced no result", set.display()) };
        if outputs.len() != expected.len() {
            bail!("{}: the model has {} outputs, the data {}", set.display(), outputs.len(), expected.len());
        }
        println!("{}:", set.display());
        for ((got, want), name) in outputs.iter().zip(expected).zip(&output_names) {
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

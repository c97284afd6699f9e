//! `edgec verify`: runs a model on backend-test data and compares with expected outputs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use edgec::pipeline::{prepare, Bindings};
use edgec::emit::driver::{run_batch, Job, SetResult};
use edgec::emit::toolchain::{self, Toolchain};
use edgec::emit::CompileOptions;
use edgec::ir::{Graph, Tensor};
use edgec::testdata::{compare, data_sets, read_numbered, CONTRACT};

/// The runner of `--target` (`None`: the reference evaluator).
pub fn runner(command: &str, target: &str) -> Result<Option<&'static Toolchain>> {
    Ok(match target {
        "reference" => None,
        t => Some(toolchain::find(t).ok_or_else(|| {
            let known: Vec<&str> = toolchain::TOOLCHAINS.iter().map(|t| t.name).collect();
            edgec::Error::Usage(format!("{command} runs on 'reference' or {}; not on '{t}' yet", known.join(", ")))
        })?),
    })
}

/// Fails unless every input matches the type and shape the graph was prepared for.
pub fn check_inputs(graph: &Graph, inputs: &[Tensor], what: &Path) -> Result<()> {
    for (i, (&id, t)) in graph.inputs.iter().zip(inputs).enumerate() {
        let v = graph.value(id);
        let want = v.ty.as_ref().map(|ty| (ty.dtype, ty.shape.clone()));
        if want.as_ref() != Some(&(t.dtype(), t.shape().to_vec())) {
            return Err(edgec::Error::Usage(format!(
                "{}: input {i} '{}' is {} {:?}, but the model was compiled for {}; fix the shape with --dim/--input-shape or the data",
                what.display(),
                v.name,
                t.dtype(),
                t.shape(),
                want.map(|(d, s)| format!("{d} {s:?}")).unwrap_or_else(|| "an untyped input".into())
            ))
            .into());
        }
    }
    Ok(())
}

/// How running input sets ended: outputs per set, or an external tool's failure
/// (exit 4, message printed).
pub enum Ran {
    Outputs(Vec<Vec<Tensor>>),
    ToolFailed,
}

/// Runs a prepared graph on input sets: the reference evaluator, or compiled for the
/// runner's target and run natively or under QEMU. `labels` name the sets in messages.
pub fn execute(tc: Option<&Toolchain>, graph: &Graph, ops_before: usize, sets: Vec<Vec<Tensor>>, labels: &[String]) -> Result<Ran> {
    let Some(tc) = tc else {
        return Ok(Ran::Outputs(sets.iter().map(|s| edgec::eval::run(graph, s)).collect::<Result<_, _>>()?));
    };
    let target = edgec::targets::find(tc.target).ok_or_else(|| anyhow::anyhow!("no target {}", tc.target))?;
    let opts = CompileOptions { name: "model", target, code: tc.code, embed_weights: false };
    let artifacts = edgec::emit::compile(graph, ops_before, &opts)?;
    let job = Job { artifacts, sets };
    let dir = tempfile::tempdir()?;
    let ran = match run_batch(tc, std::slice::from_ref(&job), dir.path()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(Ran::ToolFailed);
        }
    };
    let mut outputs = Vec::new();
    for (label, r) in labels.iter().zip(ran.into_iter().flatten()) {
        match r {
            SetResult::Outputs(o) => outputs.push(o),
            SetResult::Code(c) => {
                let name = edgec_runtime::Status::from_code(c).map(|s| s.c_name()).unwrap_or("an unknown code");
                bail!("{label}: model_run returned {c} ({name})")
            }
            SetResult::Unsupported(why) => return Err(edgec::Error::UnsupportedModel(why).into()),
            SetResult::Error(why) => {
                eprintln!("error: {label}: {why}");
                return Ok(Ran::ToolFailed);
            }
        }
    }
    if outputs.len() != labels.len() {
        bail!("the generated code produced {} results for {} input sets", outputs.len(), labels.len());
    }
    Ok(Ran::Outputs(outputs))
}

pub fn verify(model_path: &Path, target: &str, test_data: &[PathBuf], bindings: &Bindings) -> Result<i32> {
    let toolchain = runner("verify", target)?;
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
            check_inputs(&graph, &data[k].0, &sets[k])?;
        }
        let labels: Vec<String> = members.iter().map(|&k| sets[k].display().to_string()).collect();
        match execute(toolchain, &graph, ops_before, members.iter().map(|&k| data[k].0.clone()).collect(), &labels)? {
            Ran::Outputs(outs) => {
                for (&k, o) in members.iter().zip(outs) {
                    results[k] = Some(o);
                }
            }
            Ran::ToolFailed => return Ok(4),
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

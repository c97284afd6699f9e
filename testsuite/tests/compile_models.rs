//! Whole models through the compile path on the host C compiler (and the reference
//! models also on two microcontroller boards under QEMU): compile, write the
//! artifacts, build a plain C driver that includes NAME.h, reads NAME.weights and calls
//! NAME_run, and compare with the reference outputs.
//!
//! Models whose ops have no lowering yet must stop with a clean "unsupported" error;
//! once their lowerings land, the same tests check their values. Needs `cc`: without
//! it the tests fail, never skip.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use edgec::emit::driver::{run_batch, Job, SetResult};
use edgec::emit::{toolchain, CodeKind, CompileOptions};
use edgec::pipeline::{prepare, Bindings};
use edgec::testdata::{compare, data_sets, read_numbered, CONTRACT};

fn testsuite() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dims(pairs: &[(&str, usize)]) -> Bindings {
    Bindings { dims: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(), input_shapes: BTreeMap::new() }
}

/// Compiles `dir/model.onnx` to C; `None` when edgec cannot generate code for it yet
/// (a clean "unsupported"), else the job and each set's expected outputs.
fn compile_case(dir: &Path, bindings: &Bindings, name: &str) -> Option<(Job, Vec<Vec<edgec::ir::Tensor>>)> {
    let what = dir.display();
    let model = edgec::front::onnx::load(&dir.join("model.onnx")).unwrap_or_else(|e| panic!("{what}: {e}"));
    model.check_supported().unwrap_or_else(|e| panic!("{what}: {e}"));
    let ops_before = model.graph.op_histogram().values().sum();
    let graph = prepare(model.graph, bindings).unwrap_or_else(|e| panic!("{what}: {e}"));
    let target = edgec::targets::find("cortex-m7").unwrap();
    let opts = CompileOptions { name, target, code: CodeKind::C, embed_weights: false };
    let artifacts = match edgec::emit::compile(&graph, ops_before, &opts) {
        Ok(a) => a,
        Err(e) if e.is_unsupported() => return None,
        Err(e) => panic!("{what}: {e}"),
    };
    let sets = data_sets(dir);
    assert!(!sets.is_empty(), "{what} has reference data");
    let data: Vec<_> = sets.iter().map(|s| (read_numbered(s, "input").unwrap(), read_numbered(s, "output").unwrap())).collect();
    let job = Job { artifacts, sets: data.iter().map(|(i, _)| i.clone()).collect() };
    Some((job, data.into_iter().map(|(_, o)| o).collect()))
}

/// Runs the jobs as one batch on `toolchain` and compares every set's outputs.
fn run_and_compare(toolchain: &str, cases: Vec<(Job, Vec<Vec<edgec::ir::Tensor>>)>) {
    let tmp = tempfile::tempdir().unwrap();
    let jobs: Vec<Job> = cases.iter().map(|(j, _)| j.clone()).collect();
    let ran = run_batch(toolchain::find(toolchain).unwrap(), &jobs, tmp.path()).unwrap_or_else(|e| panic!("{e}"));
    for ((job, expected), results) in cases.iter().zip(ran) {
        let what = format!("{} on {toolchain}", job.artifacts.name);
        for (r, expected) in results.into_iter().zip(expected) {
            let SetResult::Outputs(got) = r else { panic!("{what}: {r:?}") };
            assert_eq!(got.len(), expected.len());
            for (k, (g, w)) in got.iter().zip(expected).enumerate() {
                compare(g, w, CONTRACT).unwrap_or_else(|e| panic!("{what} output {k}: {e}"));
            }
        }
    }
}

/// A case on the host C compiler: `false` when unsupported, `true` when the C code
/// reproduced every output.
fn check(dir: &Path, bindings: &Bindings, name: &str) -> bool {
    match compile_case(dir, bindings, name) {
        Some(case) => {
            run_and_compare("c-host", vec![case]);
            true
        }
        None => false,
    }
}

fn reference_models() -> Vec<(&'static str, Bindings)> {
    let kv = dims(&[("batch", 1), ("past_sequence_length", 16), ("total_sequence_length", 17)]);
    vec![
        ("gpt2_prefill", Bindings::default()),
        ("gpt2_decode_kv", kv),
        ("chargpt", Bindings::default()),
        ("dcgan_generator", Bindings::default()),
        ("hifigan_tiny", Bindings::default()),
        ("digits_vae_decoder", Bindings::default()),
    ]
}

/// Graph outputs that are inputs or folded constants (f16, bool, i64): runs today.
#[test]
fn passthrough_model_runs_on_c_host() {
    assert!(check(&testsuite().join("tests/compile_data/passthrough"), &Bindings::default(), "passthrough"));
}

#[test]
fn frontend_cases_compile_or_are_unsupported() {
    for case in ["constants", "external_data", "local_function"] {
        check(&testsuite().join("frontend").join(case), &Bindings::default(), case);
    }
}

#[test]
fn reference_models_compile_or_are_unsupported() {
    for (m, b) in reference_models() {
        check(&testsuite().join("models").join(m), &b, m);
    }
}

/// The six reference models in one firmware image per board, under QEMU system
/// emulation (docs/microcontrollers.md): Cortex-M7 and RV32 (soft float).
#[test]
fn reference_models_run_on_microcontroller_boards() {
    for board in ["cortex-m7", "riscv32"] {
        let cases: Vec<_> =
            reference_models().iter().filter_map(|(m, b)| compile_case(&testsuite().join("models").join(m), b, m)).collect();
        assert_eq!(cases.len(), 6, "all six reference models compile");
        run_and_compare(board, cases);
    }
}

/// Two models' headers in one translation unit, under the strictest flags.
#[test]
fn headers_compile_strictly_and_coexist() {
    let dir = tempfile::tempdir().unwrap();
    let model = edgec::front::onnx::load(&testsuite().join("tests/compile_data/passthrough/model.onnx")).unwrap();
    let graph = prepare(model.graph, &Bindings::default()).unwrap();
    for (name, embed) in [("first", false), ("second", true)] {
        let target = edgec::targets::find("cortex-m4").unwrap();
        let opts = CompileOptions { name, target, code: CodeKind::C, embed_weights: embed };
        let a = edgec::emit::compile(&graph, 2, &opts).unwrap();
        edgec::emit::write::write_all(dir.path(), &a.files()).unwrap();
    }
    let main = "#include \"first.h\"\n#include \"second.h\"\n\
int main(void) { return (int)(first_NUM_INPUTS + second_WEIGHTS_SIZE) + EDGEC_OK - 2; }\n";
    std::fs::write(dir.path().join("main.c"), main).unwrap();
    let out = Command::new("cc")
        // second is embedded on an MCU target: its blob comes from second_weights.S (.incbin).
        .args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-I", ".", "main.c", "first.c", "second.c", "second_weights.S", "-o", "main"])
        .current_dir(dir.path())
        .output()
        .expect("cc (the host C compiler) must be installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(Command::new(dir.path().join("main")).status().unwrap().success());
}

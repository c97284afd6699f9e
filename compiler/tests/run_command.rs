//! `edgec run`: inputs from .npy / .pb files, outputs written as .npy, on the host and
//! under qemu-user (cortex-a53) and the reference evaluator; bad inputs are clear errors
//! that leave no output files. Cross targets need scripts/setup.sh's tools (a missing
//! tool fails the test).

use std::path::{Path, PathBuf};
use std::process::Command;

use edgec::testdata::{compare, CONTRACT};

fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testsuite/models").join(name)
}

fn edgec(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgec")).args(args).output().expect("run edgec")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn npy_inputs_give_the_reference_outputs() {
    let dir = model_dir("digits_vae_decoder");
    let want = edgec::npy::read(&dir.join("test_data/output_0.npy")).unwrap();
    for target in ["reference", "host", "cortex-a53"] {
        let out = tempfile::tempdir().unwrap();
        let o = edgec(&["run", s(&dir.join("model.onnx")), "--target", target, "--input", s(&dir.join("test_data/input_0.npy")), "-o", s(out.path())]);
        assert!(o.status.success(), "{target}: {}", String::from_utf8_lossy(&o.stderr));
        let got = edgec::npy::read(&out.path().join("image.npy")).unwrap();
        compare(&got, &want, CONTRACT).unwrap_or_else(|e| panic!("{target}: {e}"));
    }
}

#[test]
fn backend_test_directories_and_named_inputs_work() {
    let dir = model_dir("gpt2_decode_kv");
    let set = dir.join("test_data_set_0");
    let out = tempfile::tempdir().unwrap();
    // Open dimensions take the inputs' shapes.
    let o = edgec(&["run", s(&dir.join("model.onnx")), "--target", "host", "--inputs", s(&set), "-o", s(out.path())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = edgec::testdata::read_numbered(&set, "output").unwrap();
    for (name, w) in ["logits", "present.0.key", "present.0.value", "present.1.key", "present.1.value"].iter().zip(&want) {
        let got = edgec::npy::read(&out.path().join(format!("{name}.npy"))).unwrap();
        compare(&got, w, CONTRACT).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // NAME=FILE with a .pb file.
    let chargpt = model_dir("chargpt");
    let pb = chargpt.join("test_data_set_0/input_0.pb");
    let o = edgec(&["run", s(&chargpt.join("model.onnx")), "--target", "host", "--input", &format!("input_ids={}", s(&pb)), "-o", s(out.path())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.path().join("logits.npy").exists());
}

#[test]
fn bad_inputs_are_clear_errors_and_write_nothing() {
    let dir = model_dir("digits_vae_decoder");
    let model = dir.join("model.onnx");
    let out = tempfile::tempdir().unwrap();
    // No data for the input: usage error.
    let o = edgec(&["run", s(&model), "--target", "host", "-o", s(out.path())]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no data for input(s) z"));
    // A truncated .npy: invalid input.
    let bad = out.path().join("bad.npy");
    let bytes = std::fs::read(dir.join("test_data/input_0.npy")).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() - 4]).unwrap();
    let o = edgec(&["run", s(&model), "--target", "host", "--input", s(&bad), "-o", s(out.path())]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    // The wrong shape: names the input and what it was compiled for.
    let wrong = out.path().join("wrong.npy");
    edgec::npy::write(&wrong, &edgec::ir::Tensor::from_vec(&[1, 9], vec![0.5f32; 9])).unwrap();
    let o = edgec(&["run", s(&model), "--target", "host", "--input", s(&wrong), "-o", s(out.path())]);
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("'z'"), "{err}");
    assert!(!out.path().join("image.npy").exists(), "no output after a failed run");
}

/// `edgec profile`: per-kernel instruction counts under QEMU add up to the model's code,
/// and the VAE decoder's time goes to its transposed convolutions.
#[test]
fn profile_attributes_instructions_to_kernels() {
    let dir = model_dir("digits_vae_decoder");
    for target in ["cortex-a53", "cortex-m7"] {
        let o = edgec(&["profile", s(&dir.join("model.onnx")), "--target", target, "--top", "100"]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{target}: {}{}", out, String::from_utf8_lossy(&o.stderr));
        let number = |l: &str, field: usize| -> u64 {
            l.split_whitespace().rev().nth(field).unwrap().replace(',', "").parse().unwrap()
        };
        let first = out.lines().next().unwrap();
        let model_code: u64 = first.split('(').nth(1).unwrap().split_whitespace().next().unwrap().replace(',', "").parse().unwrap();
        let table: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("kernel")).skip(1).take_while(|l| !l.is_empty()).collect();
        let listed: u64 = table.iter().filter(|l| !l.starts_with("outside")).map(|l| number(l, 1)).sum();
        assert_eq!(listed, model_code, "{target}: kernels + NAME_run must add up to the model's code\n{out}");
        let top = table.first().unwrap();
        assert!(top.contains("ConvTranspose"), "{target}: {out}");
    }
}

/// `edgec profile --target host --time N`: every kernel timed natively, in order.
#[test]
fn profile_times_host_kernels() {
    let dir = model_dir("digits_vae_decoder");
    let o = edgec(&["profile", s(&dir.join("model.onnx")), "--target", "host", "--time", "20", "--top", "100"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{}", out, String::from_utf8_lossy(&o.stderr));
    let kernels = out.lines().filter(|l| l.starts_with('k') && l.contains(" µs")).count();
    assert!(kernels >= 5, "{out}");
    // --time is for the host's clock only.
    let o = edgec(&["profile", s(&dir.join("model.onnx")), "--target", "cortex-a53", "--time", "20"]);
    assert_eq!(o.status.code(), Some(2));
}

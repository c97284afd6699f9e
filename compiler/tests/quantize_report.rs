//! `edgec compile --quantize ...` reports what quantisation cost: weight bytes before and
//! after, and per output the max abs error, cosine and SNR of the quantised graph
//! against the float one — printed and in the manifest's `quantization` field.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn edgec(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgec")).args(args).output().expect("run edgec")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn manifest_quantization(dir: &Path, name: &str) -> serde_json::Value {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    m["quantization"].clone()
}

#[test]
fn int8_reports_accuracy_against_float() {
    let model = root().join("testsuite/models/digits_vae_decoder/model.onnx");
    let calib = root().join("testsuite/quant/digits_latents/calib");
    let out = tempfile::tempdir().unwrap();
    let o = edgec(&["compile", s(&model), "--target", "host", "--quantize", "int8", "--calibration", s(&calib), "-o", s(out.path())]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{}", stdout, String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("accuracy vs float on 16 of the 64 calibration sets"), "{stdout}");
    let q = manifest_quantization(out.path(), "model");
    assert_eq!(q["mode"], "int8");
    let (before, after) = (q["weight_bytes_before"].as_f64().unwrap(), q["weight_bytes_after"].as_f64().unwrap());
    assert!(after < 0.3 * before, "weights {after} of {before}");
    let image = &q["accuracy"][0];
    assert_eq!(image["output"], "image");
    // The PTQ issue's bound (30 dB) on the calibration data; the compiled model's own
    // figure over 64 held-out latents is checked by `edgec-testsuite quant-int8`.
    assert!(image["snr_db"].as_f64().unwrap() > 30.0, "{image}");
    assert!(image["cosine"].as_f64().unwrap() > 0.999, "{image}");

    // --test-data replaces the calibration sets in the report.
    let test = root().join("testsuite/models/digits_vae_decoder/test_data_set_0");
    let out = tempfile::tempdir().unwrap();
    let o = edgec(&["compile", s(&model), "--target", "host", "--quantize", "int8", "--calibration", s(&calib), "--test-data", s(&test), "-o", s(out.path())]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let q = manifest_quantization(out.path(), "model");
    assert!(q["accuracy_inputs"].as_str().unwrap().contains("test_data_set_0"), "{q}");
}

#[test]
fn test_data_without_quantize_is_a_usage_error() {
    let model = root().join("testsuite/models/digits_vae_decoder/model.onnx");
    let out = tempfile::tempdir().unwrap();
    let o = edgec(&["compile", s(&model), "--target", "host", "--test-data", s(out.path()), "-o", s(out.path())]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none(), "nothing is written");
}

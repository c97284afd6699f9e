//! The shared generative models through the `edgec` command line, as users and the
//! contract see it: `verify` on every Cranelift target; a plain C program around the
//! compiled header, object and weight blob reproduces the reference outputs; compiles
//! are reproducible; a wrong weight blob gives the documented error code; the arena
//! stays within 1.10× of the liveness lower bound.
//!
//! Cross targets run under qemu-user with the cross gcc (scripts/setup.sh installs
//! them); a missing tool fails these tests, it never skips them.

use std::path::{Path, PathBuf};
use std::process::Command;

use edgec::emit::bytes::from_le_bytes;
use edgec::emit::toolchain;
use edgec::testdata::{compare, read_numbered, CONTRACT};

const MODELS: &[&str] = &["chargpt", "dcgan_generator", "digits_vae_decoder", "gpt2_prefill", "hifigan_tiny", "gpt2_decode_kv"];
const TARGETS: &[&str] = &["host", "cortex-a53", "riscv64"];

fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testsuite/models").join(name)
}

/// Flags that fix a model's open dimensions at its test data's shapes.
fn dims(name: &str) -> Vec<&'static str> {
    match name {
        "gpt2_decode_kv" => vec!["--dim", "batch=1", "--dim", "past_sequence_length=16", "--dim", "total_sequence_length=17"],
        _ => vec![],
    }
}

fn edgec(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgec")).args(args).output().expect("run edgec")
}

fn compile(name: &str, target: &str, out: &Path) -> serde_json::Value {
    let model = model_dir(name).join("model.onnx");
    let mut args = vec!["compile", model.to_str().unwrap(), "--target", target, "--name", "net", "-o", out.to_str().unwrap()];
    args.extend(dims(name));
    let o = edgec(&args);
    assert!(o.status.success(), "edgec compile {name} --target {target}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&std::fs::read(out.join("net.json")).unwrap()).unwrap()
}

#[test]
fn verify_passes_on_every_cranelift_target() {
    for name in MODELS {
        for target in TARGETS {
            let model = model_dir(name).join("model.onnx");
            let mut args = vec!["verify", model.to_str().unwrap(), "--target", target];
            // Open dimensions not given by --dim are bound from the test data.
            if *name == "gpt2_decode_kv" {
                args.extend(["--dim", "past_sequence_length=16"]);
            }
            let o = edgec(&args);
            assert_eq!(
                o.status.code(),
                Some(0),
                "edgec verify {name} --target {target}:\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        }
    }
}

/// Builds tests/c/run_model.c against the compiled `net` for `target`; returns the
/// command prefix that runs it (an emulator for cross targets) and the binary.
fn build_plain_program(target: &str, dir: &Path) -> (Vec<String>, PathBuf) {
    let tc = toolchain::find(target).expect("toolchain");
    let exe = dir.join("run_model");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/run_model.c");
    let o = Command::new(tc.cc)
        .args(["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic", "-I"])
        .arg(dir)
        .arg(&src)
        .arg(dir.join("net.o"))
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("{} is needed for this test (scripts/setup.sh installs it): {e}", tc.cc));
    assert!(o.status.success(), "{} run_model.c: {}", tc.cc, String::from_utf8_lossy(&o.stderr));
    (tc.run_prefix.iter().map(|s| s.to_string()).collect(), exe)
}

/// Runs the plain program; returns net_run's code.
fn run_plain(prefix: &[String], exe: &Path, weights: &Path, inputs: &[PathBuf], outputs: &[PathBuf]) -> i32 {
    let mut cmd = match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let o = cmd.arg(weights).args(inputs).args(outputs).output().expect("run the plain program (is QEMU installed?)");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "run_model exited with {:?}: {stdout}{}", o.status, String::from_utf8_lossy(&o.stderr));
    stdout.trim().strip_prefix("net_run: ").and_then(|c| c.parse().ok()).unwrap_or_else(|| panic!("unexpected output: {stdout}"))
}

#[test]
fn a_plain_c_program_reproduces_the_reference_outputs() {
    for target in TARGETS {
        for name in MODELS {
            let dir = tempfile::tempdir().unwrap();
            let manifest = compile(name, target, dir.path());
            let (prefix, exe) = build_plain_program(target, dir.path());
            let set = model_dir(name).join("test_data_set_0");
            let inputs: Vec<PathBuf> = read_numbered(&set, "input")
                .unwrap()
                .iter()
                .enumerate()
                .map(|(k, t)| {
                    let p = dir.path().join(format!("in{k}"));
                    std::fs::write(&p, edgec::emit::bytes::to_le_bytes(t).unwrap()).unwrap();
                    p
                })
                .collect();
            let want = read_numbered(&set, "output").unwrap();
            let outputs: Vec<PathBuf> = (0..want.len()).map(|k| dir.path().join(format!("out{k}"))).collect();
            let code = run_plain(&prefix, &exe, &dir.path().join("net.weights"), &inputs, &outputs);
            assert_eq!(code, 0, "{name} on {target}: net_run returned {code}");
            for (k, w) in want.iter().enumerate() {
                let spec = &manifest["outputs"][k];
                assert_eq!(spec["dtype"].as_str(), Some(w.dtype().name()), "{name}: output {k} type");
                let shape: Vec<usize> = spec["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
                assert_eq!(shape, w.shape(), "{name}: output {k} shape");
                let got = from_le_bytes(w.dtype(), &shape, &std::fs::read(&outputs[k]).unwrap()).unwrap();
                if let Err(why) = compare(&got, w, CONTRACT) {
                    panic!("{name} on {target}: output {k} differs from the reference: {why}");
                }
            }
        }
    }
}

#[test]
fn a_wrong_weight_blob_returns_the_documented_code() {
    let dir = tempfile::tempdir().unwrap();
    compile("digits_vae_decoder", "host", dir.path());
    let other = tempfile::tempdir().unwrap();
    compile("dcgan_generator", "host", other.path());
    let (prefix, exe) = build_plain_program("host", dir.path());
    let set = model_dir("digits_vae_decoder").join("test_data_set_0");
    let input = dir.path().join("in0");
    std::fs::write(&input, edgec::emit::bytes::to_le_bytes(&read_numbered(&set, "input").unwrap()[0]).unwrap()).unwrap();
    let out = [dir.path().join("out0")];
    let good = std::fs::read(dir.path().join("net.weights")).unwrap();
    let bad = dir.path().join("bad.weights");
    let mut cases: Vec<(&str, Vec<u8>, i32)> = Vec::new();
    let mut magic = good.clone();
    magic[0] ^= 0xff;
    cases.push(("corrupt magic", magic, 2));
    let mut version = good.clone();
    version[8] ^= 0x01;
    cases.push(("other format version", version, 3));
    cases.push(("another model's blob", std::fs::read(other.path().join("net.weights")).unwrap(), 4));
    cases.push(("truncated", good[..good.len() - 16].to_vec(), 5));
    cases.push(("header only", good[..32].to_vec(), 5));
    for (what, bytes, code) in cases {
        std::fs::write(&bad, bytes).unwrap();
        assert_eq!(run_plain(&prefix, &exe, &bad, std::slice::from_ref(&input), &out), code, "{what}");
    }
    assert_eq!(run_plain(&prefix, &exe, &dir.path().join("net.weights"), &[input], &out), 0);
}

#[test]
fn compiling_twice_gives_identical_files() {
    for target in ["host", "cortex-a53", "riscv64", "cortex-m7"] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        compile("gpt2_prefill", target, a.path());
        compile("gpt2_prefill", target, b.path());
        let mut files: Vec<_> = std::fs::read_dir(a.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        files.sort();
        assert!(files.len() >= 3, "{target}: {files:?}");
        for f in files {
            let (x, y) = (std::fs::read(a.path().join(&f)).unwrap(), std::fs::read(b.path().join(&f)).unwrap());
            assert!(x == y, "{target}: {f:?} differs between two compiles");
        }
    }
}

#[test]
fn arena_is_within_ten_percent_of_the_lower_bound() {
    for name in MODELS {
        let dir = tempfile::tempdir().unwrap();
        let m = compile(name, "host", dir.path());
        let (arena, bound) = (m["arena_size"].as_u64().unwrap(), m["arena_lower_bound"].as_u64().unwrap());
        assert!(arena as f64 <= 1.10 * bound as f64, "{name}: arena {arena} bytes, lower bound {bound}");
    }
}

//! Greedy decoding with a KV cache: `gpt2_decode_kv` compiled as a shape family over
//! `past_sequence_length` (examples/gpt2-kv/main.c, the C loop users write) generates
//! the same 32 tokens as the same loop over ONNX Runtime on the exported model with its
//! growing cache (examples/gpt2-kv/ort_greedy.py), on the host and on cortex-a53 under
//! qemu-user. The logit of each chosen token matches within the contract's tolerance.
//!
//! Needs the project's `.venv` (onnxruntime) and, for cortex-a53, the cross gcc and
//! qemu-aarch64 (scripts/setup.sh): a missing tool fails the test, never skips it.

use std::path::{Path, PathBuf};
use std::process::Command;

use edgec::emit::toolchain;

const PROMPT: &[&str] = &["11", "222", "33", "444"];
const NEW_TOKENS: &str = "32";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model() -> PathBuf {
    root().join("testsuite/models/gpt2_decode_kv/model.onnx")
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed:\n{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The `tokens:` and `top:` lines of a run.
fn parse(out: &str) -> (Vec<i64>, Vec<f64>) {
    let line = |key: &str| -> Vec<String> {
        let l = out.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no '{key}' line in:\n{out}"));
        l[key.len()..].split_whitespace().map(str::to_string).collect()
    };
    let tokens = line("tokens:").iter().map(|t| t.parse().unwrap()).collect();
    let top = line("top:").iter().map(|t| t.parse().unwrap()).collect();
    (tokens, top)
}

fn ort_reference() -> (Vec<i64>, Vec<f64>) {
    let python = root().join(".venv/bin/python");
    let script = root().join("examples/gpt2-kv/ort_greedy.py");
    parse(&run(Command::new(python).arg(script).arg(model()).arg(NEW_TOKENS).args(PROMPT)))
}

fn compiled(target: &str) -> (Vec<i64>, Vec<f64>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(Command::new(env!("CARGO_BIN_EXE_edgec"))
        .args(["compile"])
        .arg(model())
        .args(["--target", target, "--name", "gpt2", "-o"])
        .arg(d)
        .args(["--dim", "batch=1", "--dim", "past_sequence_length=0..48", "--dim", "total_sequence_length=past_sequence_length+1"]));
    let tc = toolchain::find(target).unwrap_or_else(|| panic!("no toolchain for {target}"));
    let exe = d.join("gpt2_kv");
    run(Command::new(tc.cc)
        .args(tc.cflags)
        .arg("-I")
        .arg(d)
        .arg(root().join("examples/gpt2-kv/main.c"))
        .arg(d.join("gpt2.o"))
        .arg("-o")
        .arg(&exe)
        .arg("-lm"));
    let mut cmd = match tc.run_prefix.split_first() {
        Some((emu, rest)) => {
            let mut c = Command::new(emu);
            c.args(rest).arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    parse(&run(cmd.arg(d.join("gpt2.weights")).arg(NEW_TOKENS).args(PROMPT)))
}

fn check(target: &str) {
    let (want_tokens, want_top) = ort_reference();
    let (got_tokens, got_top) = compiled(target);
    assert_eq!(want_tokens.len(), 32);
    assert_eq!(got_tokens, want_tokens, "{target}: tokens differ from ONNX Runtime's");
    for (i, (g, w)) in got_top.iter().zip(&want_top).enumerate() {
        assert!((g - w).abs() <= 1e-4 + 1e-3 * w.abs(), "{target}: logit of token {i}: {g} vs ONNX Runtime {w}");
    }
}

#[test]
fn greedy_tokens_match_onnx_runtime_on_host() {
    check("host");
}

#[test]
fn greedy_tokens_match_onnx_runtime_on_cortex_a53() {
    check("cortex-a53");
}

#[test]
fn a_value_outside_the_family_returns_dim_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(Command::new(env!("CARGO_BIN_EXE_edgec"))
        .arg("compile")
        .arg(model())
        .args(["--target", "host", "--name", "gpt2", "-o"])
        .arg(d)
        .args(["--dim", "batch=1", "--dim", "past_sequence_length=3..=5", "--dim", "total_sequence_length=past_sequence_length+1"]));
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("gpt2.json")).unwrap()).unwrap();
    assert_eq!(manifest["family"]["min"], 3);
    assert_eq!(manifest["family"]["max"], 5);
    assert_eq!(manifest["family"]["members"].as_array().unwrap().len(), 3);
    let src = d.join("probe.c");
    std::fs::write(
        &src,
        "#include <stdio.h>\n#include \"gpt2.h\"\nint main(void) {\n    static unsigned char arena[gpt2_ARENA_SIZE + 16];\n    \
         const void *in[6] = {0};\n    void *out[5] = {0};\n    printf(\"%d %d %d\\n\", gpt2_run_at(2, 0, arena, in, out), gpt2_run_at(6, 0, arena, in, out), gpt2_run_at(4, 0, arena, in, out));\n    return 0;\n}\n",
    )
    .unwrap();
    let exe = d.join("probe");
    run(Command::new("cc").args(["-std=c99", "-Wall", "-Werror", "-I"]).arg(d).arg(&src).arg(d.join("gpt2.o")).arg("-o").arg(&exe));
    // Outside the family: 9; inside, the member runs and finds the NULL weights: 1.
    assert_eq!(run(&mut Command::new(&exe)).trim(), "9 9 1");
}

#[test]
fn families_need_a_cranelift_target() {
    let o = Command::new(env!("CARGO_BIN_EXE_edgec"))
        .arg("compile")
        .arg(model())
        .args(["--target", "cortex-m7", "-o", "/nonexistent-dir"])
        .args(["--dim", "batch=1", "--dim", "past_sequence_length=0..4", "--dim", "total_sequence_length=past_sequence_length+1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shape family"), "{}", String::from_utf8_lossy(&o.stderr));
}

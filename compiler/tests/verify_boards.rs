//! `edgec verify --target cortex-m4|cortex-m7|cortex-m55|riscv32`: every reference model
//! as firmware under QEMU system emulation (docs/microcontrollers.md), and the
//! contract's exit code 4 when the emulator is missing. Needs the cross toolchains of scripts/setup.sh: fails without.

use std::path::PathBuf;
use std::process::Command;

const MODELS: &[&str] = &["chargpt", "dcgan_generator", "digits_vae_decoder", "gpt2_prefill", "hifigan_tiny", "gpt2_decode_kv"];

fn model(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testsuite/models").join(name).join("model.onnx")
}

fn verify(name: &str, target: &str, path: Option<&str>) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgec"));
    c.args(["verify"]).arg(model(name)).args(["--target", target]);
    if name == "gpt2_decode_kv" {
        // The other open dimensions are bound from the test data.
        c.args(["--dim", "past_sequence_length=16"]);
    }
    if let Some(p) = path {
        c.env("PATH", p);
    }
    let out = c.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn verify_runs_on_the_boards() {
    for target in ["cortex-m4", "cortex-m7", "cortex-m55", "riscv32"] {
        for name in MODELS {
            let (code, text) = verify(name, target, None);
            assert_eq!(code, 0, "{name} on {target}: {text}");
            assert!(text.contains(": ok") && !text.contains("MISMATCH"), "{name} on {target}: {text}");
        }
    }
}

#[test]
fn a_missing_emulator_is_exit_code_4() {
    // The cross compiler and `timeout` stay reachable; QEMU does not.
    let dir = tempfile::tempdir().unwrap();
    for tool in ["arm-none-eabi-gcc", "timeout"] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap()).map(|d| d.join(tool)).find(|p| p.is_file());
        std::os::unix::fs::symlink(found.unwrap_or_else(|| panic!("{tool} is not installed")), dir.path().join(tool)).unwrap();
    }
    let (code, text) = verify("digits_vae_decoder", "cortex-m7", dir.path().to_str());
    assert_eq!(code, 4, "{text}");
    assert!(text.contains("qemu-system-arm"), "{text}");
}

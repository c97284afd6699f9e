//! The MCU side of `edgec compile` (Cortex-M with arm-none-eabi-gcc): weights in their
//! own flash section through `.incbin`, flash/RAM accounting checked against
//! `arm-none-eabi-size` on a linked image, budgets, and the generated C's strictness
//! and float-only code on the reference models. The cross compiler must be installed
//! (scripts/setup.sh): without it these tests fail, never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EDGEC: &str = env!("CARGO_BIN_EXE_edgec");
const M4: &[&str] = &["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"];
const M7: &[&str] = &["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"];
const M55: &[&str] = &["-mcpu=cortex-m55+nomve", "-mthumb", "-mfloat-abi=hard"];

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testsuite/models")
}

fn run(cmd: &mut Command) -> Output {
    let what = format!("{cmd:?}");
    cmd.output().unwrap_or_else(|e| panic!("{what}: {e} (arm-none-eabi-gcc and binutils must be installed)"))
}

fn ok(cmd: &mut Command) -> String {
    let what = format!("{cmd:?}");
    let out = run(cmd);
    assert!(out.status.success(), "{what} failed:\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn edgec(model: &Path, out: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(EDGEC);
    c.arg("compile").arg(model).arg("-o").arg(out).args(args);
    c
}

fn manifest(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `text data bss` of an ELF file, from `arm-none-eabi-size` (Berkeley format).
fn size(file: &Path) -> [usize; 3] {
    let out = ok(Command::new("arm-none-eabi-size").arg(file));
    let v: Vec<usize> = out.lines().nth(1).unwrap().split_whitespace().take(3).map(|x| x.parse().unwrap()).collect();
    [v[0], v[1], v[2]]
}

// ------------------------------------------------- a minimal ONNX writer (protobuf)

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_varint(field: u32, v: u64, out: &mut Vec<u8>) {
    varint((field as u64) << 3, out);
    varint(v, out);
}

fn field_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(((field as u64) << 3) | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

/// ValueInfoProto of a float tensor.
fn value_info(name: &str, shape: &[u64]) -> Vec<u8> {
    let mut dims = Vec::new();
    for &d in shape {
        let mut dim = Vec::new();
        field_varint(1, d, &mut dim);
        field_bytes(1, &dim, &mut dims);
    }
    let mut tensor = Vec::new();
    field_varint(1, 1, &mut tensor); // elem_type FLOAT
    field_bytes(2, &dims, &mut tensor);
    let mut ty = Vec::new();
    field_bytes(1, &tensor, &mut ty);
    let mut v = Vec::new();
    field_bytes(1, name.as_bytes(), &mut v);
    field_bytes(2, &ty, &mut v);
    v
}

/// `y = x @ W`, x: [1, n], W: [n, n] f32 initializer (4 n² bytes), opset 17.
fn matmul_model(n: u64) -> Vec<u8> {
    let mut node = Vec::new();
    field_bytes(1, b"x", &mut node);
    field_bytes(1, b"W", &mut node);
    field_bytes(2, b"y", &mut node);
    field_bytes(3, b"matmul", &mut node);
    field_bytes(4, b"MatMul", &mut node);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut raw = Vec::with_capacity((4 * n * n) as usize);
    for _ in 0..n * n {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let v = ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1;
        raw.extend_from_slice(&v.to_le_bytes());
    }
    let mut w = Vec::new();
    field_varint(1, n, &mut w);
    field_varint(1, n, &mut w);
    field_varint(2, 1, &mut w);
    field_bytes(8, b"W", &mut w);
    field_bytes(9, &raw, &mut w);
    let mut graph = Vec::new();
    field_bytes(1, &node, &mut graph);
    field_bytes(2, b"big", &mut graph);
    field_bytes(5, &w, &mut graph);
    field_bytes(11, &value_info("x", &[1, n]), &mut graph);
    field_bytes(12, &value_info("y", &[1, n]), &mut graph);
    let mut opset = Vec::new();
    field_bytes(1, b"", &mut opset);
    field_varint(2, 17, &mut opset);
    let mut model = Vec::new();
    field_varint(1, 8, &mut model);
    field_bytes(8, &opset, &mut model);
    field_bytes(7, &graph, &mut model);
    model
}

// ------------------------------------------------------------------------ tests

/// 4 MiB of weights: `.incbin` keeps NAME.c small, the whole build (edgec + the cross
/// compiler on every output) stays far below 30 s (measured in docs/c-backend.md, not
/// here), the object has the weights in their section, and the default 2 MiB flash
/// budget of cortex-m7 rejects it writing nothing.
#[test]
fn four_megabytes_of_weights_build_for_cortex_m7() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = d.join("big.onnx");
    std::fs::write(&model, matmul_model(1024)).unwrap();
    let blob_min: usize = 4 << 20;

    let src = d.join("src");
    ok(&mut edgec(&model, &src, &["--target", "cortex-m7", "--embed-weights", "--flash-budget", "8M"]));
    let c_len = std::fs::metadata(src.join("big.c")).unwrap().len();
    assert!(c_len < 200_000, "NAME.c holds no weights ({c_len} bytes)");
    assert!(std::fs::metadata(src.join("big_weights.bin")).unwrap().len() as usize >= blob_min);
    assert!(!src.join("big.weights").exists());
    ok(Command::new("arm-none-eabi-gcc").current_dir(&src).args(M7).args(["-std=c99", "-O2", "-I", ".", "-c", "big.c", "big_weights.S"]));
    let sections = ok(Command::new("arm-none-eabi-size").current_dir(&src).args(["-A", "big_weights.o"]));
    let sec: usize = sections.lines().find(|l| l.starts_with(".edgec_weights")).expect("section .edgec_weights").split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(sec >= blob_min);
    assert_eq!(ok(Command::new("arm-none-eabi-nm").current_dir(&src).arg("big_weights.o")).trim_end(), "00000000 R big_weights");

    let obj = d.join("obj");
    ok(&mut edgec(&model, &obj, &["--target", "cortex-m7", "--embed-weights", "--flash-budget", "8M", "--emit", "obj", "--weights-section", ".ext_flash"]));
    let files: Vec<String> = std::fs::read_dir(&obj).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert!(files.iter().all(|f| !f.ends_with(".S") && !f.ends_with(".bin") && !f.ends_with(".c")), "{files:?}");
    let a = ok(Command::new("arm-none-eabi-size").arg("-A").arg(obj.join("big.o")));
    assert!(a.lines().any(|l| l.starts_with(".ext_flash ") && l.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() >= blob_min), "{a}");
    let syms = ok(Command::new("arm-none-eabi-nm").arg(obj.join("big.o")));
    assert!(syms.contains(" R big_weights") && syms.contains(" T big_run"), "{syms}");
    let m = manifest(&obj.join("big.json"));
    assert_eq!(m["code_size"], "measured");
    assert!(m["flash_bytes"].as_u64().unwrap() as usize > blob_min);

    // The default budget (2 MiB) does not hold 4 MiB: exit 1, a message with the
    // overshoot, and no file at all.
    let none = d.join("none");
    let out = run(&mut edgec(&model, &none, &["--target", "cortex-m7", "--embed-weights"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not fit the cortex-m7 budget") && err.contains("flash:") && err.contains("over"), "{err}");
    assert!(!err.contains("RAM:"), "{err}");
    assert!(!none.exists() || std::fs::read_dir(&none).unwrap().next().is_none());

    // Budgets are MCU-only, parse K/M suffixes, and reject nonsense with a usage error.
    let out = run(&mut edgec(&model, &none, &["--target", "cortex-m7", "--ram-budget", "12Q"]));
    assert_eq!(out.status.code(), Some(2));
    let out = run(&mut edgec(&model, &none, &["--target", "host", "--flash-budget", "1M"]));
    assert_eq!(out.status.code(), Some(2));
    let out = run(&mut edgec(&model, &none, &["--target", "cortex-m7", "--ram-budget", "1K", "--flash-budget", "8M"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("RAM:"));
}

/// The reported flash and RAM of digits_vae_decoder on cortex-m7 agree within 5% with
/// `arm-none-eabi-size` on an image linked from NAME.o, a main with the arena and the
/// inputs/outputs in .bss, and a bare linker script (no C library).
#[test]
fn digits_vae_footprint_matches_a_linked_image() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = models().join("digits_vae_decoder/model.onnx");
    ok(&mut edgec(&model, d, &["--target", "cortex-m7", "--name", "vae", "--emit", "obj", "--embed-weights"]));
    let m = manifest(&d.join("vae.json"));
    assert_eq!(m["code_size"], "measured");
    assert!(m["ram_stack_bytes"].as_u64().unwrap() > 0);
    let main = "#include \"vae.h\"\n\
static unsigned char arena[vae_ARENA_SIZE] __attribute__((aligned(16)));\n\
static unsigned char in0[vae_INPUT_0_SIZE] __attribute__((aligned(16)));\n\
static unsigned char out0[vae_OUTPUT_0_SIZE] __attribute__((aligned(16)));\n\
int main(void);\n\
int main(void)\n{\n    const void *in[1];\n    void *out[1];\n    in[0] = in0;\n    out[0] = out0;\n    return vae_run(0, arena, in, out);\n}\n";
    std::fs::write(d.join("main.c"), main).unwrap();
    let ld = "MEMORY { FLASH (rx) : ORIGIN = 0x00000000, LENGTH = 4M\n RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 4M }\n\
ENTRY(main)\nSECTIONS {\n .text : { *(.text*) *(.rodata*) } > FLASH\n\
 .edgec_weights : { . = ALIGN(16); KEEP(*(.edgec_weights)) } > FLASH\n\
 .data : { *(.data*) } > RAM AT > FLASH\n .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM\n}\n";
    std::fs::write(d.join("link.ld"), ld).unwrap();
    ok(Command::new("arm-none-eabi-gcc").current_dir(d).args(M7).args(["-std=c99", "-O2", "-nostdlib", "-T", "link.ld", "main.c", "vae.o", "-lgcc", "-o", "image.elf"]));
    let [text, data, bss] = size(&d.join("image.elf"));
    let (flash, ram) = (m["flash_bytes"].as_u64().unwrap() as f64, m["ram_bytes"].as_u64().unwrap() as f64);
    // The bare image reserves no stack, so its RAM is what the report counts without the
    // measured stack (-fstack-usage, checked above to be there).
    let stack = m["ram_stack_bytes"].as_u64().unwrap() as f64;
    let ram = ram - stack;
    let (img_flash, img_ram) = ((text + data) as f64, (data + bss) as f64);
    eprintln!("reported flash {flash} RAM {ram} (+ stack {stack}); image flash {img_flash} (text {text} + data {data}), RAM {img_ram} (bss {bss})");
    assert!((flash - img_flash).abs() <= 0.05 * img_flash, "flash: reported {flash}, image {img_flash}");
    assert!((ram - img_ram).abs() <= 0.05 * img_ram, "RAM: reported {ram}, image {img_ram}");
}

/// The six reference models' C: strict C99 on Cortex-M4, M7 and M55, no double
/// arithmetic on the single-precision M4 (-Wdouble-promotion, and no `__aeabi_d*`
/// soft-double call in the object), restrict and alignment hints present.
#[test]
fn reference_models_make_strict_float_only_c_for_cortex_m() {
    let dir = tempfile::tempdir().unwrap();
    let kv = ["--dim", "batch=1", "--dim", "past_sequence_length=16", "--dim", "total_sequence_length=17"];
    let cases: [(&str, &[&str]); 6] = [
        ("gpt2_prefill", &[]),
        ("gpt2_decode_kv", &kv),
        ("chargpt", &[]),
        ("dcgan_generator", &[]),
        ("hifigan_tiny", &[]),
        ("digits_vae_decoder", &[]),
    ];
    let strict = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wdouble-promotion", "-c"];
    for (m, extra) in cases {
        let out = dir.path().join(m);
        let mut cmd = edgec(&models().join(m).join("model.onnx"), &out, &["--target", "cortex-m4", "--name", "model", "--flash-budget", "64M", "--ram-budget", "64M"]);
        ok(cmd.args(extra));
        let c = std::fs::read_to_string(out.join("model.c")).unwrap();
        assert!(c.contains("EC_RESTRICT b") && c.contains("EC_ASSUME_ALIGNED(arena)"), "{m}: no restrict/alignment hints");
        for (cpu, flags) in [("m4", M4), ("m7", M7), ("m55", M55)] {
            let obj = format!("model_{cpu}.o");
            ok(Command::new("arm-none-eabi-gcc").current_dir(&out).args(flags).args(strict).args(["model.c", "-o", &obj]));
        }
        let dis = ok(Command::new("arm-none-eabi-objdump").current_dir(&out).args(["-dr", "model_m4.o"]));
        let calls: Vec<&str> = dis.lines().filter(|l| l.contains("__aeabi_d")).collect();
        assert!(calls.is_empty(), "{m}: double arithmetic on cortex-m4: {:?}", &calls[..calls.len().min(5)]);
    }
}

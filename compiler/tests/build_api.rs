//! `edgec::Build` outside a build script: the files, the typed module's interface, and
//! for a C target the static library the `cc` crate makes with the cross compiler (the
//! examples compile and run the modules: examples/rust-host, chargpt-host, vocoder,
//! firmware-cortex-m7 in scripts/examples.sh).

use std::path::Path;

fn model() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testsuite/models/digits_vae_decoder/model.onnx")
}

fn manifest_field(dir: &Path, name: &str, field: &str) -> u64 {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
    m[field].as_u64().unwrap()
}

#[test]
fn host_build_writes_object_blob_and_typed_module() {
    let dir = tempfile::tempdir().unwrap();
    // The name defaults to the file stem (model.onnx → model).
    let built = edgec::Build::new(model()).target("host").out_dir(dir.path()).cargo_metadata(false).compile().unwrap();
    assert_eq!((built.name.as_str(), built.target.name), ("model", "host"));
    for f in ["model.o", "model.h", "model.weights", "model.json", "model.rs"] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    let rs = std::fs::read_to_string(&built.rust_module).unwrap();
    let arena = manifest_field(dir.path(), "model", "arena_size");
    let weights = manifest_field(dir.path(), "model", "weights_size");
    assert!(rs.contains("pub mod model {"));
    assert!(rs.contains(&format!("pub const ARENA_SIZE: usize = {arena};")), "{rs}");
    assert!(rs.contains(&format!("pub const WEIGHTS_SIZE: usize = {weights};")), "{rs}");
    assert!(rs.contains("pub z: &'a [f32; 8],") && rs.contains("pub image: &'a mut [f32; 64],"), "{rs}");
    assert!(rs.contains("#[repr(C, align(16))]\n    pub struct Arena(pub [u8; ARENA_SIZE]);"));
    assert!(rs.contains(&format!("include_bytes!({:?})", dir.path().join("model.weights").display().to_string())));
    assert!(rs.contains("fn model_run("));
    let lib = std::fs::read(dir.path().join("libmodel.a")).unwrap();
    assert!(lib.starts_with(b"!<arch>\n") && lib.windows(9).any(|w| w == b"model_run"), "the object archived");
}

#[test]
fn embedded_c_build_makes_a_static_library() {
    let dir = tempfile::tempdir().unwrap();
    let built = edgec::Build::new(model())
        .target("cortex-m7")
        .name("vae")
        .embed_weights(true)
        .out_dir(dir.path())
        .cargo_metadata(false)
        .compile()
        .unwrap();
    let lib = dir.path().join("libvae.a");
    assert!(built.files.contains(&lib));
    let bytes = std::fs::read(&lib).unwrap();
    assert!(bytes.starts_with(b"!<arch>\n"));
    let has = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
    assert!(has("vae_run") && has("vae_weights"), "the library defines the model and its weights");
    let rs = std::fs::read_to_string(&built.rust_module).unwrap();
    assert!(rs.contains("pub const WEIGHTS_SIZE: usize = 0;") && rs.contains("pub const EMBEDDED_WEIGHTS: bool = true;"));
    assert!(!rs.contains("include_bytes!"));
}

#[test]
fn errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let e = edgec::Build::new(model()).target("z80").out_dir(dir.path()).compile().unwrap_err();
    assert!(e.to_string().contains("unknown target 'z80'"), "{e}");
    let e = edgec::Build::new("missing.onnx").target("host").out_dir(dir.path()).cargo_metadata(false).compile().unwrap_err();
    assert!(e.to_string().contains("missing.onnx"), "{e}");
    let e = edgec::Build::new(model()).target("host").name("match").out_dir(dir.path()).compile().unwrap_err();
    assert!(e.to_string().contains("Rust keyword"), "{e}");
}

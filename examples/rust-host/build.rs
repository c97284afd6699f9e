//! Compiles the VAE decoder at build time, as a firmware's build.rs would: `edgec::Build`
//! picks the target from Cargo, writes the object, weight blob and the typed module
//! `vae.rs` into OUT_DIR, and links the object into this crate.

use std::path::Path;

fn main() -> Result<(), edgec::BuildError> {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testsuite/models/digits_vae_decoder/model.onnx");
    edgec::Build::new(model).target_from_cargo().name("vae").compile()?;
    Ok(())
}

//! Compiles chargpt and the digits VAE decoder for this firmware with `edgec::Build`:
//! the target comes from Cargo (thumbv7em-none-eabihf → cortex-m7, the C path), the C
//! is built by the `cc` crate with arm-none-eabi-gcc, and the weights are embedded in
//! flash. Also hands the linker link.ld and the firmware the VAE's reference
//! latent vector (testsuite/models/digits_vae_decoder/test_data_set_0), whose image CI
//! compares with the reference output.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let models = root.join("../../testsuite/models");
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // A host build (the root workspace's `cargo test --workspace`) is only main.rs's stub.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return Ok(());
    }

    edgec::Build::new(models.join("chargpt/model.onnx")).target_from_cargo().name("chargpt").embed_weights(true).compile()?;
    edgec::Build::new(models.join("digits_vae_decoder/model.onnx")).target_from_cargo().name("vae").embed_weights(true).compile()?;

    let set = models.join("digits_vae_decoder/test_data_set_0");
    println!("cargo:rerun-if-changed={}", set.display());
    let z = edgec::testdata::read_numbered(&set, "input")?.remove(0).to_f64_vec();
    let mut s = String::from("/// The reference latent vector of digits_vae_decoder/test_data_set_0.\npub const REF_Z: [f32; 8] = [");
    for v in z {
        write!(s, "{:?}, ", v as f32)?;
    }
    s.push_str("];\n");
    std::fs::write(out.join("ref_z.rs"), s)?;

    // link.ld: the memory map, sections and the symbols the firmware prints.
    println!("cargo:rustc-link-search={}", root.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.ld");
    println!("cargo:rerun-if-changed=link.ld");
    Ok(())
}

//! Compiles chargpt for the crate's target with `edgec::Build` (weights in a blob that
//! the generated `chargpt.rs` includes).

use std::path::Path;

fn main() -> Result<(), edgec::BuildError> {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testsuite/models/chargpt/model.onnx");
    edgec::Build::new(model).target_from_cargo().name("chargpt").compile()?;
    Ok(())
}

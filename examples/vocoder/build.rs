//! Compiles hifigan_tiny for the crate's target with `edgec::Build`.

use std::path::Path;

fn main() -> Result<(), edgec::BuildError> {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testsuite/models/hifigan_tiny/model.onnx");
    edgec::Build::new(model).target_from_cargo().name("hifigan").compile()?;
    Ok(())
}

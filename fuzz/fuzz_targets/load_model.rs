//! Fuzzes model loading and shape inference: any byte string must give a model or an
//! error, never a panic, an abort or an allocation sized by a header's claim.
#![no_main]

use edgec::front::onnx::{load_bytes, DataDir};
use edgec::pipeline::{prepare, Bindings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // No directory: external data references fail cleanly instead of reading files.
    let Ok(model) = load_bytes(data, &DataDir(None)) else { return };
    if model.check_supported().is_err() {
        return;
    }
    let _ = prepare(model.graph, &Bindings::default());
});

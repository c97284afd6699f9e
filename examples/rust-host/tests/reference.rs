//! The model called from Rust reproduces the reference outputs; wrong buffers are refused.

use std::path::Path;

use edgec::testdata::{compare, read_numbered, CONTRACT};
use edgec::ir::Tensor;

#[test]
fn decode_matches_the_reference_outputs() {
    let set = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testsuite/models/digits_vae_decoder/test_data_set_0");
    let input = read_numbered(&set, "input").unwrap().remove(0);
    let want = read_numbered(&set, "output").unwrap().remove(0);
    let z: [f32; 8] = input.to_f64_vec().iter().map(|&x| x as f32).collect::<Vec<_>>().try_into().unwrap();
    let image = edgec_example_host::decode(&z).unwrap();
    let got = Tensor::from_vec(want.shape(), image.to_vec());
    compare(&got, &want, CONTRACT).unwrap();
}

#[test]
fn a_wrongly_typed_input_is_refused() {
    assert!(matches!(edgec_example_host::decode_f64(&[0.0; 8]), Err(edgec_example_host::Error::Type { outputs: false, index: 0, .. })));
}

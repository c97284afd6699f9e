//! One forward pass reproduces the reference logits of testsuite/models/chargpt.

use std::path::Path;

use edgec::ir::Tensor;
use edgec::testdata::{compare, read_numbered, CONTRACT};

#[test]
fn logits_match_the_reference_outputs() {
    let set = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testsuite/models/chargpt/test_data_set_0");
    let input = read_numbered(&set, "input").unwrap().remove(0);
    let want = read_numbered(&set, "output").unwrap().remove(0);
    let ids: [i64; 64] = input.to_f64_vec().iter().map(|&x| x as i64).collect::<Vec<_>>().try_into().unwrap();
    let mut g = edgec_example_chargpt::Generator::new();
    let logits = g.forward(&ids).unwrap().to_vec();
    compare(&Tensor::from_vec(want.shape(), logits), &want, CONTRACT).unwrap();
}

#[test]
fn an_unknown_character_is_an_error() {
    let mut g = edgec_example_chargpt::Generator::new();
    assert!(g.generate("é", 1, edgec_example_chargpt::Choice::Greedy).is_err());
}

//! The reference generative models (testsuite/models, copied from ../shared/models) load,
//! fold and evaluate to their reference outputs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use edgec::pipeline::{prepare, Bindings};

mod common;

fn model_dir(name: &str) -> PathBuf {
    common::testsuite_dir().join("models").join(name)
}

fn dims(pairs: &[(&str, usize)]) -> Bindings {
    Bindings { dims: pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(), input_shapes: BTreeMap::new() }
}

fn check_model(name: &str, bindings: Bindings) -> BTreeMap<String, usize> {
    common::check_model_dir(&model_dir(name), &bindings)
}

#[test]
fn gpt2_prefill() {
    let h = check_model("gpt2_prefill", Bindings::default());
    for op in ["Shape", "ConstantOfShape", "Range"] {
        assert!(!h.contains_key(op), "folded gpt2_prefill still has {op}: {h:?}");
    }
}

#[test]
fn gpt2_decode_kv() {
    check_model(
        "gpt2_decode_kv",
        dims(&[("batch", 1), ("past_sequence_length", 16), ("total_sequence_length", 17)]),
    );
}

#[test]
fn chargpt() {
    check_model("chargpt", Bindings::default());
}

#[test]
fn dcgan_generator() {
    check_model("dcgan_generator", Bindings::default());
}

#[test]
fn hifigan_tiny() {
    check_model("hifigan_tiny", Bindings::default());
}

#[test]
fn digits_vae_decoder() {
    check_model("digits_vae_decoder", Bindings::default());
}

#[test]
fn unresolved_dim_names_input_symbol_and_flag() {
    let model = edgec::front::onnx::load(&model_dir("gpt2_decode_kv").join("model.onnx")).unwrap();
    let e = prepare(model.graph, &Bindings::default()).unwrap_err().to_string();
    assert!(e.contains("input 'input_ids'") && e.contains("'batch'") && e.contains("--dim batch="), "{e}");
}

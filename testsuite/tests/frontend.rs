//! Frontend features on small models made by testsuite/frontend/make_cases.py: local
//! functions, external data, float16 and typed-field initializers, inputs with an
//! initializer, and Constant in every value_* form.

mod common;

use edgec::pipeline::Bindings;

fn case(name: &str) {
    common::check_model_dir(&common::testsuite_dir().join("frontend").join(name), &Bindings::default());
}

#[test]
fn local_functions_are_inlined_with_attribute_references() {
    case("local_function");
}

#[test]
fn external_data_float16_and_typed_initializers() {
    case("external_data");
}

#[test]
fn constant_in_every_form() {
    case("constants");
}

/// A Llama-style block (RMSNorm, rotary, grouped-query attention, SiLU MLP) with
/// symbolic batch and sequence and run-time shape arithmetic: with the dims fixed, every
/// shape chain folds away and the result matches onnxruntime.
#[test]
fn llama_style_block_folds_and_matches_onnxruntime() {
    let bindings = Bindings {
        dims: [("batch".to_string(), 1), ("sequence".to_string(), 6)].into_iter().collect(),
        input_shapes: Default::default(),
    };
    let h = common::check_model_dir(&common::testsuite_dir().join("frontend").join("llama_block"), &bindings);
    for op in ["Shape", "ConstantOfShape", "Range", "Trilu", "Gather", "Cast"] {
        assert!(!h.contains_key(op), "{op} left after folding: {h:?}");
    }
}

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

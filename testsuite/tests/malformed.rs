//! Bad input gets a clear error, never a panic: each model of testsuite/malformed
//! (written by make_corpus.py) with the message it must produce.

use std::path::PathBuf;

use edgec::pipeline::{prepare, Bindings};

/// Loads, checks and prepares a model; the error text, or "ok".
fn outcome(file: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("malformed").join(file);
    let result = std::panic::catch_unwind(|| {
        let model = edgec::front::onnx::load(&path)?;
        model.check_supported()?;
        prepare(model.graph, &Bindings::default()).map(|_| ())
    });
    match result {
        Err(_) => panic!("{file}: edgec panicked"),
        Ok(Ok(())) => "ok".into(),
        Ok(Err(e)) => e.to_string(),
    }
}

fn expect(file: &str, parts: &[&str]) {
    let msg = outcome(file);
    for p in parts {
        assert!(msg.contains(p), "{file}: message lacks '{p}':\n{msg}");
    }
}

#[test]
fn truncated_file() {
    expect("truncated.onnx", &["imports no opset", "truncated"]);
    expect("truncated_half.onnx", &["not a valid ONNX model", "truncated"]);
}

#[test]
fn not_protobuf_or_empty() {
    expect("not_protobuf.onnx", &["not a valid ONNX model", "protobuf decoding failed"]);
    expect("empty.onnx", &["not a valid ONNX model", "empty"]);
}

#[test]
fn dangling_input_names_node_and_value() {
    expect("dangling_input.onnx", &["node 'relu' (Relu)", "reads 'nope'"]);
}

#[test]
fn cycle_names_a_node() {
    expect("cycle.onnx", &["cycle through node"]);
}

#[test]
fn initializer_of_wrong_byte_size() {
    expect("initializer_wrong_size.onnx", &["initializer 'w'", "8 bytes", "need 16"]);
}

#[test]
fn unknown_op_names_node_op_domain_and_opset() {
    expect("unknown_op.onnx", &["node 'mystery'", "FooBar", "ai.onnx", "opset 17", "no implementation"]);
}

#[test]
fn unknown_opset() {
    expect("opset99.onnx", &["opset 99", "supports opsets"]);
    expect("ir_version_2.onnx", &["IR version 2"]);
}

#[test]
fn negative_dims() {
    expect("negative_dim.onnx", &["initializer 'w'", "negative dimension -3"]);
    expect("negative_input_dim.onnx", &["input 'x'", "negative dimension -2"]);
}

#[test]
fn overflowing_and_huge_claims_allocate_nothing() {
    expect("dims_overflow.onnx", &["initializer 'w'", "more elements than this machine can address"]);
    // 2^40 floats claimed, one present: rejected before any buffer of that size exists.
    expect("huge_claim.onnx", &["initializer 'w'", "float_data has 1 values", "1099511627776"]);
}

#[test]
fn names_defined_twice_or_never() {
    expect("duplicate_name.onnx", &["'y' is defined twice", "node 'neg'"]);
    expect("output_undefined.onnx", &["graph output 'y' is not produced"]);
}

#[test]
fn unsupported_value_types() {
    expect("string_input.onnx", &["input 'x'", "STRING"]);
}

#[test]
fn external_data_stays_inside_the_model_directory() {
    expect("external_escape.onnx", &["'../../etc/passwd'", "inside the model's directory"]);
    expect("external_missing.onnx", &["missing.bin"]);
}

#[test]
fn bad_attribute_names_the_node() {
    expect("bad_attribute.onnx", &["node 'softmax' (Softmax", "axis 7"]);
}

#[test]
fn wrong_input_size_is_a_usage_error() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/digits_vae_decoder/model.onnx");
    let model = edgec::front::onnx::load(&path).unwrap();
    let graph = prepare(model.graph, &Bindings::default()).unwrap();
    let wrong = edgec::ir::Tensor::from_vec(&[1, 7], vec![0f32; 7]);
    let e = edgec::eval::run(&graph, &[wrong]).unwrap_err().to_string();
    assert!(e.contains("input 'z'") && e.contains("float32[1, 8]"), "{e}");
}

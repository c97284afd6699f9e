//! Shared by the integration tests: run a model directory against its reference data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgec::pipeline::{prepare, Bindings};
use edgec::testdata::{compare, data_sets, read_numbered, CONTRACT};

pub fn testsuite_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Loads, folds and evaluates `dir/model.onnx` on each of its data sets, asserting
/// every output within the contract's tolerance; returns the folded graph's histogram.
pub fn check_model_dir(dir: &Path, bindings: &Bindings) -> BTreeMap<String, usize> {
    let name = dir.display();
    let model = edgec::front::onnx::load(&dir.join("model.onnx")).unwrap_or_else(|e| panic!("{name}: {e}"));
    model.check_supported().unwrap_or_else(|e| panic!("{name}: {e}"));
    let graph = prepare(model.graph, bindings).unwrap_or_else(|e| panic!("{name}: {e}"));
    let sets = data_sets(dir);
    assert!(!sets.is_empty(), "{name} has reference data");
    for set in sets {
        let inputs = read_numbered(&set, "input").unwrap();
        let expected = read_numbered(&set, "output").unwrap();
        let outputs = edgec::eval::run(&graph, &inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(outputs.len(), expected.len());
        for (k, (got, want)) in outputs.iter().zip(&expected).enumerate() {
            if let Err(e) = compare(got, want, CONTRACT) {
                panic!("{name} output {k}: {e}");
            }
        }
    }
    graph.op_histogram()
}

//! Instruction counts under QEMU (emit/icount.rs, targets/qemu-plugin): the plugin
//! builds with the host `cc`, and one small model counted twice gives the same nonzero
//! count, nearly all of it inside the model's own code: on cortex-a53 in user mode
//! (Cranelift object and C backend) and on cortex-m7 as a firmware image under
//! `qemu-system-arm -icount shift=0`. Needs `cc`, `aarch64-linux-gnu-gcc`,
//! `qemu-aarch64`, `arm-none-eabi-gcc` and `qemu-system-arm`: without them the tests
//! fail, never skip.

use edgec::emit::driver::{Job, SetResult};
use edgec::emit::{icount, toolchain, CodeKind, CompileOptions};
use edgec::pipeline::prepare;
use edgec::testdata::{compare, data_sets, read_numbered, CONTRACT};

#[test]
fn counts_are_reproducible_on_cortex_a53() {
    check_reproducible("cortex-a53", CodeKind::Object);
}

/// The C backend's code, with its static helpers counted as the model's own.
#[test]
fn counts_are_reproducible_for_c_on_cortex_a53() {
    check_reproducible("c-cortex-a53", CodeKind::C);
}

/// The C backend's code in a Cortex-M7 firmware image (board driver, semihosting I/O),
/// counted in QEMU system mode.
#[test]
fn counts_are_reproducible_on_cortex_m7() {
    check_reproducible("cortex-m7", CodeKind::C);
}

fn check_reproducible(runner: &str, code: CodeKind) {
    let tc = toolchain::find(runner).unwrap();
    assert_eq!(tc.code, code, "{runner}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/gpt2_decode_kv");
    let model = edgec::front::onnx::load(&dir.join("model.onnx")).unwrap();
    let ops_before = model.graph.op_histogram().values().sum();
    let set = &data_sets(&dir)[0];
    let (inputs, expected) = (read_numbered(set, "input").unwrap(), read_numbered(set, "output").unwrap());
    let bindings = edgec::pipeline::Bindings::default().completed_from(&model.graph, &inputs);
    let graph = prepare(model.graph, &bindings).unwrap();
    let target = edgec::targets::find(tc.target).unwrap();
    let opts = CompileOptions { name: "kv", target, code, embed_weights: false };
    let job = Job { artifacts: edgec::emit::compile(&graph, ops_before, &opts).unwrap(), sets: vec![inputs] };

    let tmp = tempfile::tempdir().unwrap();
    let plugin = icount::build_plugin(&tmp.path().join("plugin")).unwrap_or_else(|e| panic!("{e}"));
    let mut counts = Vec::new();
    for run in 0..2 {
        let (results, c) = icount::count(tc, &job, &tmp.path().join(format!("run{run}")), &plugin).unwrap_or_else(|e| panic!("{e}"));
        // The counted code computed the right thing.
        let [SetResult::Outputs(got)] = &results[..] else { panic!("{results:?}") };
        for (g, w) in got.iter().zip(&expected) {
            compare(g, w, CONTRACT).unwrap();
        }
        counts.extend(c);
    }
    assert_eq!(counts.len(), 2);
    assert_eq!(counts[0], counts[1], "instruction counts differ between identical runs");
    let c = counts[0];
    assert!(c.model_code > 0 && c.model_code <= c.inference, "{c:?}");
    // Between the markers only the calls themselves run outside the model's code.
    assert!(c.inference - c.model_code < 64, "{c:?}");
}

//! Weight-only quantization (`--quantize int4` / `int8-weights`) through the compile
//! path: the quantized graph lowered to KIR and run on the interpreter (the oracle)
//! agrees with the reference evaluator of the same quantized graph, and the generated
//! code for host, cortex-a53, c-host and cortex-m7 agrees with the interpreter within
//! the float tolerance. Tied embeddings (one table used by a Gather, a Gemm with
//! transB and a MatMul on its transpose) are packed once. Needs `cc`, the aarch64
//! cross compiler, the Arm embedded toolchain and QEMU: without them the tests fail.

use std::path::{Path, PathBuf};

use edgec::emit::driver::{run_batch, Job, SetResult};
use edgec::emit::{toolchain, CompileOptions};
use edgec::ir::{DType, Graph, Tensor};
use edgec::pipeline::prepare;
use edgec::quantize::QuantizeMode;
use edgec::testdata::{compare, data_sets, read_numbered, CONTRACT};

fn testsuite() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn quantized(model: &Path, mode: QuantizeMode) -> (Graph, edgec::passes::quantize_weights::Summary) {
    let m = edgec::front::onnx::load(model).unwrap();
    let mut g = prepare(m.graph, &Default::default()).unwrap();
    let s = edgec::quantize::apply(&mut g, mode).unwrap();
    (g, s)
}

/// Runs `g` on the interpreter and checks it against the reference evaluator.
fn oracle(g: &Graph, inputs: &[Tensor]) -> Vec<Tensor> {
    let (prog, _) = edgec::emit::lower(g).unwrap();
    let kir = edgec::kir::interp::run(&prog, inputs).unwrap();
    let reference = edgec::eval::run(g, inputs).unwrap();
    for (k, (a, b)) in kir.iter().zip(&reference).enumerate() {
        compare(a, b, CONTRACT).unwrap_or_else(|e| panic!("interpreter vs reference, output {k}: {e}"));
    }
    kir
}

fn on_targets(g: &Graph, name: &str, inputs: Vec<Tensor>, want: &[Tensor]) {
    for tc_name in ["host", "cortex-a53", "c-host", "cortex-m7"] {
        let tc = toolchain::find(tc_name).unwrap();
        let target = edgec::targets::find(tc.target).unwrap();
        let opts = CompileOptions { name, target, code: tc.code, embed_weights: false };
        let artifacts = edgec::emit::compile(g, 0, &opts).unwrap_or_else(|e| panic!("{name} for {tc_name}: {e}"));
        let tmp = tempfile::tempdir().unwrap();
        let job = Job { artifacts, sets: vec![inputs.clone()] };
        let ran = run_batch(tc, &[job], tmp.path()).unwrap_or_else(|e| panic!("{tc_name}: {e}"));
        let SetResult::Outputs(got) = ran.into_iter().next().unwrap().into_iter().next().unwrap() else {
            panic!("{name} on {tc_name} did not produce outputs")
        };
        for (k, (a, b)) in got.iter().zip(want).enumerate() {
            compare(a, b, CONTRACT).unwrap_or_else(|e| panic!("{name} on {tc_name}, output {k}: {e}"));
        }
    }
}

#[test]
fn chargpt_quantized_code_matches_the_interpreter_on_every_path() {
    let dir = testsuite().join("models/chargpt");
    let set = data_sets(&dir).into_iter().next().unwrap();
    let inputs = read_numbered(&set, "input").unwrap();
    for mode in [QuantizeMode::Int4, QuantizeMode::Int8Weights] {
        let (g, summary) = quantized(&dir.join("model.onnx"), mode);
        // Nine MatMul weights and the token table; the position table is folded away.
        assert_eq!(summary.quantized(), 10, "{summary:?}");
        assert!(summary.weight_bytes_after * 100 < summary.weight_bytes_before * 32, "{summary:?}");
        let want = oracle(&g, &inputs);
        on_targets(&g, &format!("chargpt_{}", mode.name().replace('-', "_")), inputs.clone(), &want);
    }
}

#[test]
fn tied_embedding_is_packed_once_and_runs() {
    let model = testsuite().join("quantize/tied_embedding.onnx");
    let ids = Tensor::from_vec(&[1, 8], vec![0i64, 95, 3, -1, 40, 41, 7, 64]);
    for mode in [QuantizeMode::Int4, QuantizeMode::Int8Weights] {
        let (g, summary) = quantized(&model, mode);
        assert_eq!(summary.quantized(), 4, "{summary:?}");
        let packed: Vec<_> = g.used_constants().into_iter().filter(|&v| g.value(v).constant.as_ref().unwrap().dtype() == DType::U8).collect();
        // W (Gather, Gemm transB, MatMul on W^T) once, and B.
        assert_eq!(packed.len(), 2, "packed constants: {:?}", packed.iter().map(|&v| g.value(v).name.clone()).collect::<Vec<_>>());
        let want = oracle(&g, std::slice::from_ref(&ids));
        // The tied head gives the same logits both ways.
        compare(&want[0], &want[1], CONTRACT).unwrap();
        on_targets(&g, &format!("tied_{}", mode.name().replace('-', "_")), vec![ids.clone()], &want);
    }
}

/// Static int8 (PTQ) hifigan_tiny, calibrated on its test set: 28 integer kernels, 13
/// with an absorbed LeakyRelu (inputs 5 and 6, the negative side's multipliers). The
/// interpreter agrees with the reference evaluator and the generated code (Cranelift,
/// portable C, Cortex-M7 with SXTB16/SMLAD) with the interpreter.
#[test]
fn hifigan_int8_code_matches_the_interpreter_on_every_path() {
    use edgec::passes::quantize_int8::{quantize, Int8Options, RangeMethod};
    let dir = testsuite().join("models/hifigan_tiny");
    let set = data_sets(&dir).into_iter().next().unwrap();
    let inputs = read_numbered(&set, "input").unwrap();
    let m = edgec::front::onnx::load(&dir.join("model.onnx")).unwrap();
    let g = prepare(m.graph, &Default::default()).unwrap();
    let sets = edgec::passes::calibration::read_sets(&dir).unwrap();
    let opts = Int8Options { method: RangeMethod::MinMax, keep_float: vec![] };
    let (g, report) = quantize(g, &sets, &opts).unwrap();
    assert_eq!(report.int8_kernels, 28, "{report:?}");
    let leaky = g.nodes.node_weights().filter(|n| n.op_type == "Int8Kernel" && n.inputs.len() == 7).count();
    assert_eq!(leaky, 13);
    let want = oracle(&g, &inputs);
    on_targets(&g, "hifigan_int8", inputs, &want);
}

//! The shape and index lowerings on ONNX node tests whose shape-giving inputs (shapes,
//! axes, pads, repeats, starts ...) are graph inputs there, which makes the conformance
//! runner report them data-dependent. Here those inputs become constants, as a real
//! model's initializers would be, so the nodes compile; the KIR interpreter's outputs
//! are compared with the expected ones.

use std::path::PathBuf;
use std::sync::Arc;

use crate::front::onnx::load;
use crate::kir::interp::{self, Stop};
use crate::pipeline::{prepare, Bindings};
use crate::testdata::{compare, data_sets, read_numbered, CONTRACT};

/// The node tests of the project's venv, `None` when it is not installed.
fn data_dir() -> Option<PathBuf> {
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/lib");
    std::fs::read_dir(lib).ok()?.flatten().map(|e| e.path().join("site-packages/onnx/backend/test/data/node")).find(|p| p.is_dir())
}

/// Runs node test `case` with graph inputs `frozen` made constants; `patch` may alter
/// the runtime inputs. Returns the interpreter's outcome on the first data set.
fn run(case: &str, frozen: &[usize], patch: impl Fn(&mut Vec<crate::ir::Tensor>)) -> Result<(), String> {
    let Some(dir) = data_dir() else {
        eprintln!("no ONNX node-test data: {case} skipped");
        return Ok(());
    };
    let dir = dir.join(case);
    let model = load(&dir.join("model.onnx")).map_err(|e| e.to_string())?;
    for set in data_sets(&dir) {
        let inputs = read_numbered(&set, "input").map_err(|e| e.to_string())?;
        let expected = read_numbered(&set, "output").map_err(|e| e.to_string())?;
        let mut g = model.graph.clone();
        let (mut kept, mut runtime) = (Vec::new(), Vec::new());
        for (k, (&v, t)) in model.graph.inputs.iter().zip(inputs).enumerate() {
            if frozen.contains(&k) {
                g.set_constant(v, Arc::new(t));
            } else {
                kept.push(v);
                runtime.push(t);
            }
        }
        g.inputs = kept;
        let input_shapes = g.inputs.iter().zip(&runtime).map(|(&v, t)| (g.value(v).name.clone(), t.shape().to_vec())).collect();
        let g = prepare(g, &Bindings { dims: Default::default(), input_shapes }).map_err(|e| e.to_string())?;
        let prog = crate::lower::lower(&g).map_err(|e| e.to_string())?;
        patch(&mut runtime);
        let got = interp::run(&prog, &runtime).map_err(|s| match s {
            Stop::Fail(code) => format!("fail {code}"),
            Stop::Bug(why) => format!("malformed KIR: {why}"),
        })?;
        for (k, (g, w)) in got.iter().zip(&expected).enumerate() {
            compare(g, w, CONTRACT).map_err(|e| format!("{case} output {k}: {e}"))?;
        }
    }
    Ok(())
}

fn check(cases: &[&str], frozen: &[usize]) {
    for case in cases {
        run(case, frozen, |_| {}).unwrap_or_else(|e| panic!("{case}: {e}"));
    }
}

const ALL_BUT_DATA: &[usize] = &[1, 2, 3, 4];

#[test]
fn reshapes_are_aliases() {
    check(
        &[
            "test_reshape_allowzero_reordered",
            "test_reshape_extended_dims",
            "test_reshape_negative_dim",
            "test_reshape_negative_extended_dims",
            "test_reshape_one_dim",
            "test_reshape_reduced_dims",
            "test_reshape_reordered_all_dims",
            "test_reshape_reordered_last_dims",
            "test_reshape_zero_and_negative_dim",
            "test_reshape_zero_dim",
            "test_squeeze",
            "test_squeeze_negative_axes",
            "test_unsqueeze_axis_0",
            "test_unsqueeze_axis_1",
            "test_unsqueeze_axis_2",
            "test_unsqueeze_negative_axes",
            "test_unsqueeze_three_axes",
            "test_unsqueeze_two_axes",
            "test_unsqueeze_unsorted_axes",
        ],
        ALL_BUT_DATA,
    );
}

#[test]
fn expand_tile_split() {
    check(
        &[
            "test_expand_dim_changed",
            "test_expand_dim_unchanged",
            "test_tile",
            "test_tile_precomputed",
            "test_split_variable_parts_1d_opset13",
            "test_split_variable_parts_1d_opset18",
            "test_split_variable_parts_2d_opset13",
            "test_split_variable_parts_2d_opset18",
            "test_split_variable_parts_default_axis_opset13",
            "test_split_variable_parts_default_axis_opset18",
            "test_split_zero_size_splits_opset13",
            "test_split_zero_size_splits_opset18",
        ],
        ALL_BUT_DATA,
    );
}

#[test]
fn pads() {
    check(&["test_edge_pad", "test_reflect_pad", "test_wrap_pad"], ALL_BUT_DATA);
    // The constant stays a runtime input: loaded once by the kernel.
    check(&["test_constant_pad", "test_constant_pad_axes", "test_constant_pad_negative_axes"], &[1, 3]);
    check(
        &[
            "test_center_crop_pad_crop",
            "test_center_crop_pad_crop_and_pad",
            "test_center_crop_pad_crop_axes_chw",
            "test_center_crop_pad_crop_axes_hwc",
            "test_center_crop_pad_crop_negative_axes_hwc",
            "test_center_crop_pad_pad",
        ],
        ALL_BUT_DATA,
    );
}

#[test]
fn slices() {
    check(
        &[
            "test_slice",
            "test_slice_default_axes",
            "test_slice_default_steps",
            "test_slice_end_out_of_bounds",
            "test_slice_neg",
            "test_slice_neg_steps",
            "test_slice_negative_axes",
            "test_slice_start_out_of_bounds",
        ],
        ALL_BUT_DATA,
    );
}

#[test]
fn one_hot_with_runtime_indices_and_values() {
    check(
        &["test_onehot_negative_indices", "test_onehot_with_axis", "test_onehot_with_negative_axis", "test_onehot_without_axis"],
        &[1],
    );
}

#[test]
fn constant_indices_are_weights() {
    check(&["test_gather_0", "test_gather_1", "test_gather_negative_indices", "test_gathernd_example_int32_batch_dim1"], &[1]);
    check(&["test_scatter_elements_with_duplicate_indices", "test_scatternd_add"], &[1]);
}

#[test]
fn out_of_range_indices_fail_with_code_6() {
    if data_dir().is_none() {
        return;
    }
    let bad = |ins: &mut Vec<crate::ir::Tensor>| ins[1] = add_scalar(&ins[1], 1000);
    for case in ["test_gather_0", "test_gather_elements_0", "test_scatter_elements_with_axis", "test_scatternd"] {
        assert_eq!(run(case, &[], bad), Err("fail 6".to_string()), "{case}");
    }
}

/// `t + v` element-wise, for integer index tensors.
fn add_scalar(t: &crate::ir::Tensor, v: i64) -> crate::ir::Tensor {
    let vals: Vec<i64> = t.to_i64_vec().expect("integer indices").into_iter().map(|x| x + v).collect();
    crate::ir::Tensor::from_vec(t.shape(), vals).cast(t.dtype())
}

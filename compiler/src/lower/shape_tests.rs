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
    std::fs::read_dir(lib)
        .ok()?
        .flatten()
        .map(|e| e.path().join("site-packages/onnx/backend/test/data/node"))
        .find(|p| p.is_dir())
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
        let input_shapes =
            g.inputs.iter().zip(&runtime).map(|(&v, t)| (g.value(v).name.clone(), t.shape().to_vec())).collect();
        let g = prepare(g, &Bindings { dims: Default::default(), input_shapes }).map_err(|e| e.to_string())?;
        let prog = crate::lower::lower(&g).map_err(|e| e.to_string())?;
        print_if_asked(&prog);
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

/// Prints the program when `EDGEC_PRINT_KIR` is set (run with `--nocapture`).
fn print_if_asked(prog: &crate::kir::Program) {
    if std::env::var_os("EDGEC_PRINT_KIR").is_some() {
        println!("{prog}");
    }
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
        &[
            "test_onehot_negative_indices",
            "test_onehot_with_axis",
            "test_onehot_with_negative_axis",
            "test_onehot_without_axis",
        ],
        &[1],
    );
}

#[test]
fn constant_indices_are_weights() {
    check(
        &["test_gather_0", "test_gather_1", "test_gather_negative_indices", "test_gathernd_example_int32_batch_dim1"],
        &[1],
    );
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

// ---------------------------------------------------------------------------------
// Single ops lowered directly, against their reference evaluation: for ops the
// node tests only reach folded (all-constant) or with runtime shape inputs.

use crate::ir::{DType, Tensor};
use crate::kir::{BufKind, Program};
use crate::lower::{copy, LowerCx, Operand};
use crate::ops::index::{IndexOp, Reduction};
use crate::ops::shape::layout::IntsArg;
use crate::ops::shape::{PadMode, PadValue, ShapeOp};
use crate::ops::{Op, Semantics};

/// Lowers `op` on `ins` (`true`: a constant operand) and compares the interpreter's
/// outputs with the reference evaluation.
fn lower_vs_eval(op: Op, ins: &[(Tensor, bool)]) {
    let refs: Vec<Option<&Tensor>> = ins.iter().map(|(t, _)| Some(t)).collect();
    let want = match &op {
        Op::Shape(o) => o.eval(&refs),
        Op::Index(o) => o.eval(&refs),
        _ => unreachable!("shape and index ops only"),
    }
    .expect("the reference evaluates");
    let mut prog = Program::default();
    let mut runtime = Vec::new();
    let operands: Vec<Option<Operand>> = ins
        .iter()
        .map(|(t, konst)| {
            let kind = if *konst { BufKind::Weight(Arc::new(t.clone())) } else { BufKind::Input(runtime.len()) };
            if !konst {
                runtime.push(t.clone());
            }
            let buf = prog.add_buffer("in", t.dtype(), t.shape().to_vec(), kind);
            Some(Operand { buf, ty: t.type_info(), konst: konst.then(|| Arc::new(t.clone())) })
        })
        .collect();
    let outs: Vec<Option<Operand>> = want
        .iter()
        .enumerate()
        .map(|(k, t)| {
            let buf = prog.add_buffer("out", t.dtype(), t.shape().to_vec(), BufKind::Output(k));
            Some(Operand { buf, ty: t.type_info(), konst: None })
        })
        .collect();
    let mut cx = LowerCx { prog: &mut prog, name: "node".into(), aliases: Vec::new() };
    super::super::lower_op(&op, &mut cx, &operands, &outs).expect("lowers");
    for (o, i) in std::mem::take(&mut cx.aliases) {
        let (src, dst) = (operands[i].as_ref().unwrap(), outs[o].as_ref().unwrap());
        let k = copy::copy_kernel("alias", src.buf, dst.buf, dst.len());
        cx.emit(k);
    }
    print_if_asked(&prog);
    let got = interp::run(&prog, &runtime).expect("runs");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g.dtype(), w.dtype());
        compare(g, w, CONTRACT).unwrap_or_else(|e| panic!("{op:?}: {e}"));
    }
}

fn iota(shape: &[usize]) -> Tensor {
    let n = shape.iter().product::<usize>();
    Tensor::from_vec(shape, (0..n).map(|i| i as f32 * 0.5 - 3.0).collect::<Vec<f32>>())
}

#[test]
fn generated_tensors() {
    for (s, l, d) in [(1.0f32, 4.0f32, 0.5f32), (10.0, 1.0, -3.0)] {
        lower_vs_eval(
            Op::Shape(ShapeOp::Range),
            &[(Tensor::scalar(s), false), (Tensor::scalar(l), true), (Tensor::scalar(d), false)],
        );
    }
    lower_vs_eval(
        Op::Shape(ShapeOp::Range),
        &[(Tensor::scalar(7i32), false), (Tensor::scalar(-5i32), true), (Tensor::scalar(-3i32), false)],
    );
    for k in [-2, 0, 1, 5] {
        let op = Op::Shape(ShapeOp::EyeLike { k, dtype: Some(DType::I32) });
        lower_vs_eval(op, &[(iota(&[3, 4]), false)]);
    }
    let value = Arc::new(Tensor::from_vec(&[1], vec![-7i64]));
    lower_vs_eval(Op::Shape(ShapeOp::ConstantOfShape { value }), &[(Tensor::from_vec(&[2], vec![2i64, 3]), true)]);
}

#[test]
fn trilu_with_runtime_k() {
    for (upper, k) in [(true, -1i64), (false, 2), (true, 9)] {
        lower_vs_eval(Op::Shape(ShapeOp::Trilu { upper }), &[(iota(&[2, 3, 4]), false), (Tensor::scalar(k), false)]);
    }
}

#[test]
fn pads_beyond_one_period_and_cropping() {
    for mode in [PadMode::Reflect, PadMode::Edge, PadMode::Wrap, PadMode::Constant] {
        for pads in [vec![0i64, 7, 1, -1], vec![2, -1, 0, 5]] {
            let op = Op::Shape(ShapeOp::Pad {
                mode,
                pads: IntsArg::Input(1),
                value: PadValue::Input(2),
                axes: IntsArg::Attr(None),
            });
            let ins =
                [(iota(&[3, 4]), false), (Tensor::from_vec(&[4], pads.clone()), true), (Tensor::scalar(2.5f32), false)];
            lower_vs_eval(op, &ins);
        }
    }
}

#[test]
fn compress_runs() {
    let cond = Tensor::from_vec(&[5], vec![true, true, false, true, false]);
    for axis in [Some(1), None] {
        lower_vs_eval(Op::Index(IndexOp::Compress { axis }), &[(iota(&[2, 5]), false), (cond.clone(), true)]);
    }
}

#[test]
fn bitcasts() {
    let f = Tensor::from_vec(&[3], vec![1.5f32, -0.0, f32::MAX]);
    let u = Tensor::from_vec(&[3], vec![0u32, 0x8000_0000, 0x7f80_0001]);
    let b = Tensor::from_vec(&[2], vec![true, false]);
    let d = Tensor::from_vec(&[2], vec![-1i64, 0x3ff0_0000_0000_0000]);
    for (x, to) in [(f, DType::U32), (u.clone(), DType::F32), (u, DType::I32), (b, DType::U8), (d, DType::F64)] {
        lower_vs_eval(Op::Shape(ShapeOp::BitCast { to }), &[(x, false)]);
    }
}

#[test]
fn extreme_constants_do_not_overflow() {
    for k in [i64::MIN, i64::MAX] {
        lower_vs_eval(Op::Shape(ShapeOp::EyeLike { k, dtype: None }), &[(iota(&[2, 3]), false)]);
    }
    let slice = Op::Index(IndexOp::Slice {
        starts: IntsArg::Input(1),
        ends: IntsArg::Input(2),
        axes: IntsArg::Input(3),
        steps: IntsArg::Input(4),
    });
    let ints = |v: Vec<i64>| (Tensor::from_vec(&[v.len()], v), true);
    let ins = [
        (iota(&[3, 4]), false),
        ints(vec![-1, 1]),
        ints(vec![i64::MIN, i64::MAX]),
        ints(vec![0, 1]),
        ints(vec![-2, i64::MAX]),
    ];
    lower_vs_eval(slice, &ins);
    let pad = Op::Shape(ShapeOp::Pad {
        mode: PadMode::Constant,
        pads: IntsArg::Input(1),
        value: PadValue::Input(2),
        axes: IntsArg::Attr(None),
    });
    lower_vs_eval(pad, &[(iota(&[3, 4]), false), ints(vec![-3, 0, 2, 1])]);
}

/// A tiny deterministic generator for the randomised comparisons below.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    fn shape(&mut self, rank: usize) -> Vec<usize> {
        (0..rank).map(|_| 1 + self.below(4) as usize).collect()
    }
}

#[test]
fn random_data_movement_matches_the_evaluator() {
    let mut r = Rng(0x5eed);
    let ints = |v: Vec<i64>| (Tensor::from_vec(&[v.len()], v), true);
    for _ in 0..150 {
        let rank = 1 + r.below(4) as usize;
        let shape = r.shape(rank);
        let x = (iota(&shape), false);
        // Transpose by a random permutation.
        let mut perm: Vec<i64> = (0..rank as i64).collect();
        for i in (1..rank).rev() {
            perm.swap(i, r.below(i as u64 + 1) as usize);
        }
        lower_vs_eval(Op::Shape(ShapeOp::Transpose { perm: Some(perm) }), std::slice::from_ref(&x));
        // Slice every axis with random bounds and steps.
        let (mut starts, mut ends, mut steps) = (Vec::new(), Vec::new(), Vec::new());
        for &n in &shape {
            let n = n as i64;
            starts.push(r.range(-n - 2, n + 2));
            ends.push(r.range(-n - 2, n + 2));
            steps.push([-3, -2, -1, 1, 2, 3][r.below(6) as usize]);
        }
        let axes: Vec<i64> = (0..rank as i64).collect();
        let slice = Op::Index(IndexOp::Slice {
            starts: IntsArg::Input(1),
            ends: IntsArg::Input(2),
            axes: IntsArg::Input(3),
            steps: IntsArg::Input(4),
        });
        lower_vs_eval(slice, &[x.clone(), ints(starts), ints(ends), ints(axes), ints(steps)]);
        // Pad in every mode, with crops where the axis allows.
        let mode = [PadMode::Constant, PadMode::Reflect, PadMode::Edge, PadMode::Wrap][r.below(4) as usize];
        let pads: Vec<i64> = (0..2 * rank).map(|i| r.range(-(shape[i % rank] as i64 - 1) / 2, 5)).collect();
        let pad = Op::Shape(ShapeOp::Pad {
            mode,
            pads: IntsArg::Input(1),
            value: PadValue::Input(2),
            axes: IntsArg::Attr(None),
        });
        lower_vs_eval(pad, &[x.clone(), ints(pads), (Tensor::scalar(-9.0f32), false)]);
        // Tile, Expand, Gather, Split and Concat along a random axis.
        let reps: Vec<i64> = (0..rank).map(|_| r.range(1, 3)).collect();
        lower_vs_eval(Op::Shape(ShapeOp::Tile), &[x.clone(), ints(reps)]);
        let target: Vec<i64> = shape.iter().map(|&d| if d == 1 { r.range(1, 3) } else { d as i64 }).collect();
        lower_vs_eval(Op::Shape(ShapeOp::Expand), &[x.clone(), ints([vec![2], target].concat())]);
        let axis = r.below(rank as u64) as i64;
        let n = shape[axis as usize] as i64;
        let idx: Vec<i64> = (0..r.range(1, 5)).map(|_| r.range(-n, n - 1)).collect();
        let gather_ind = (Tensor::from_vec(&[idx.len()], idx), false);
        lower_vs_eval(Op::Index(IndexOp::Gather { axis }), &[x.clone(), gather_ind]);
        let split = Op::Shape(ShapeOp::Split { axis, split: IntsArg::Attr(None), num_outputs: Some(2), n_outputs: 2 });
        if n >= 2 {
            lower_vs_eval(split, std::slice::from_ref(&x));
        }
        lower_vs_eval(Op::Shape(ShapeOp::Concat { axis }), &[x.clone(), (iota(&shape), true), x.clone()]);
    }
}

#[test]
fn random_index_ops_match_the_evaluator() {
    let mut r = Rng(0xda7a);
    for _ in 0..100 {
        let rank = 1 + r.below(3) as usize;
        let shape = r.shape(rank);
        let x = (iota(&shape), false);
        let axis = r.below(rank as u64) as usize;
        let n = shape[axis] as i64;
        // Element-wise indices no larger than the data off the axis.
        let ishape: Vec<usize> = shape
            .iter()
            .enumerate()
            .map(|(d, &s)| if d == axis { 1 + r.below(4) as usize } else { 1 + r.below(s as u64) as usize })
            .collect();
        let count = ishape.iter().product::<usize>();
        let idx: Vec<i64> = (0..count).map(|_| r.range(-n, n - 1)).collect();
        let ind = (Tensor::from_vec(&ishape, idx), false);
        lower_vs_eval(Op::Index(IndexOp::GatherElements { axis: axis as i64 }), &[x.clone(), ind.clone()]);
        for reduction in [Reduction::None, Reduction::Add, Reduction::Mul, Reduction::Max, Reduction::Min] {
            let op = Op::Index(IndexOp::ScatterElements { axis: axis as i64, reduction });
            lower_vs_eval(op, &[x.clone(), ind.clone(), (iota(&ishape), false)]);
        }
        // Index tuples over the leading m axes.
        let m = 1 + r.below(rank as u64) as usize;
        let tuples = 1 + r.below(4) as usize;
        let raw: Vec<i64> = (0..tuples * m).map(|i| r.range(-(shape[i % m] as i64), shape[i % m] as i64 - 1)).collect();
        let tup = (Tensor::from_vec(&[tuples, m], raw), false);
        lower_vs_eval(Op::Index(IndexOp::GatherND { batch_dims: 0 }), &[x.clone(), tup.clone()]);
        let ushape = [&[tuples][..], &shape[m..]].concat();
        let op = Op::Index(IndexOp::ScatterND { reduction: Reduction::Add });
        lower_vs_eval(op, &[x.clone(), tup, (iota(&ushape), false)]);
        // OneHot of the element indices, on a random axis.
        let oh = Op::Index(IndexOp::OneHot { axis: r.range(-(rank as i64) - 1, rank as i64) });
        let values = (Tensor::from_vec(&[2], vec![0.5f32, 7.0]), false);
        lower_vs_eval(oh, &[ind, (Tensor::scalar(n + 1), true), values]);
    }
    for (b, crd) in [(1, false), (2, false), (2, true), (3, true)] {
        let x = (iota(&[2, 2 * b * b, 2, 3]), false);
        lower_vs_eval(Op::Shape(ShapeOp::DepthToSpace { block: b, crd }), std::slice::from_ref(&x));
        let y = (iota(&[2, 3, 2 * b, 3 * b]), false);
        lower_vs_eval(Op::Shape(ShapeOp::SpaceToDepth { block: b }), std::slice::from_ref(&y));
    }
}

#[test]
fn constant_indices_are_checked_at_compile_time() {
    let konst = |v: Vec<i64>| {
        let t = Tensor::from_vec(&[v.len()], v);
        Operand { buf: crate::kir::BufId(0), ty: t.type_info(), konst: Some(Arc::new(t)) }
    };
    assert_eq!(super::util::needs_check(&konst(vec![-3, 2]), 3), Ok(false));
    assert!(super::util::needs_check(&konst(vec![3]), 3).is_err());
    assert!(super::util::needs_check(&konst(vec![-4]), 3).is_err());
}

//! The attention fusion on hand-built chains: where it must fire, the fused graph's
//! outputs (KIR interpreter) match the unfused graph's; where it must not, the graph is
//! left as it was.

use super::run as fuse;
use crate::ir::{DType, Graph, Node, Tensor, TypeInfo, ValueId};
use crate::kir::interp;
use crate::ops::elementwise::{Binary, ElementwiseOp};
use crate::ops::linalg::LinalgOp;
use crate::ops::normalize::{NormalizeOp, SoftmaxKind};
use crate::ops::shape::layout::IntsArg;
use crate::ops::shape::ShapeOp;
use crate::ops::Op;
use crate::passes::{dce::dce, propagate::propagate};
use crate::testdata::{compare, CONTRACT};

/// A graph under construction: runtime inputs with their test data.
struct B {
    g: Graph,
    data: Vec<Tensor>,
    seed: u64,
}

impl B {
    fn new() -> B {
        let mut g = Graph::default();
        g.opsets.insert(String::new(), 17);
        B { g, data: Vec::new(), seed: 0x9e3779b97f4a7c15 }
    }
    fn next(&mut self) -> f64 {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        (self.seed >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A runtime f32 input of uniform values in [-1, 1).
    fn input(&mut self, name: &str, shape: &[usize]) -> ValueId {
        let n: usize = shape.iter().product();
        let vals: Vec<f32> = (0..n).map(|_| (self.next() * 2.0 - 1.0) as f32).collect();
        self.input_tensor(name, Tensor::from_vec(shape, vals))
    }
    fn input_tensor(&mut self, name: &str, t: Tensor) -> ValueId {
        let v = self.g.add_value(name);
        self.g.value_mut(v).ty = Some(TypeInfo::new(t.dtype(), t.shape().to_vec()));
        self.g.inputs.push(v);
        self.data.push(t);
        v
    }
    fn konst(&mut self, name: &str, t: Tensor) -> ValueId {
        self.g.add_constant(name, t)
    }
    fn f32(&mut self, x: f32) -> ValueId {
        let n = format!("c{}", self.g.values.len());
        self.konst(&n, Tensor::scalar(x))
    }
    fn node(&mut self, op: Op, op_type: &str, inputs: &[ValueId]) -> ValueId {
        let out = self.g.add_value(format!("{op_type}_{}", self.g.values.len()));
        self.g.add_node(Node {
            name: format!("{op_type}_{}", self.g.nodes.node_count()),
            op,
            op_type: op_type.into(),
            domain: String::new(),
            opset: 17,
            inputs: inputs.iter().map(|&v| Some(v)).collect(),
            outputs: vec![Some(out)],
        });
        out
    }
    fn bin(&mut self, b: Binary, x: ValueId, y: ValueId) -> ValueId {
        let name = format!("{b:?}");
        self.node(Op::Elementwise(ElementwiseOp::Binary(b)), &name, &[x, y])
    }
    fn matmul(&mut self, a: ValueId, b: ValueId) -> ValueId {
        self.node(Op::Linalg(LinalgOp::MatMul), "MatMul", &[a, b])
    }
    fn transpose(&mut self, x: ValueId, perm: &[i64]) -> ValueId {
        self.node(Op::Shape(ShapeOp::Transpose { perm: Some(perm.to_vec()) }), "Transpose", &[x])
    }
    fn softmax(&mut self, x: ValueId, axis: i64) -> ValueId {
        self.node(Op::Normalize(NormalizeOp::Softmax { kind: SoftmaxKind::Softmax, axis, legacy_2d: false }), "Softmax", &[x])
    }
    fn where_(&mut self, c: ValueId, x: ValueId, y: ValueId) -> ValueId {
        self.node(Op::Elementwise(ElementwiseOp::Where), "Where", &[c, x, y])
    }
    fn reshape(&mut self, x: ValueId, shape: &[i64]) -> ValueId {
        let s = self.konst("shape", Tensor::from_vec(&[shape.len()], shape.to_vec()));
        self.node(Op::Shape(ShapeOp::Reshape { shape: IntsArg::Input(1), allowzero: false }), "Reshape", &[x, s])
    }
    fn expand(&mut self, x: ValueId, shape: &[i64]) -> ValueId {
        let s = self.konst("shape", Tensor::from_vec(&[shape.len()], shape.to_vec()));
        self.node(Op::Shape(ShapeOp::Expand), "Expand", &[x, s])
    }
    fn finish(mut self, out: ValueId) -> (Graph, Vec<Tensor>) {
        self.g.outputs.push(out);
        propagate(&mut self.g).expect("types");
        (self.g, self.data)
    }
}

fn count(g: &Graph, op_type: &str) -> usize {
    g.nodes.node_weights().filter(|n| n.op_type == op_type).count()
}

fn run_graph(g: &Graph, data: &[Tensor]) -> Vec<Tensor> {
    let prog = crate::lower::lower(g).expect("lowers");
    interp::run(&prog, data).expect("runs")
}

/// Fuses `g`; asserts one Attention node replaced the chain (no Softmax left) and the
/// outputs match the unfused graph's.
fn assert_fuses(g: Graph, data: &[Tensor]) {
    let want = run_graph(&g, data);
    let mut f = g.clone();
    fuse(&mut f).unwrap();
    dce(&mut f).unwrap();
    crate::ir::validate::validate(&f, crate::ir::validate::Stage::Typed).unwrap();
    assert_eq!(count(&f, "Attention"), 1, "fused node missing");
    assert_eq!(count(&f, "Softmax"), 0);
    assert_eq!(count(&f, "MatMul"), 0);
    let got = run_graph(&f, data);
    for (g, w) in got.iter().zip(&want) {
        compare(g, w, CONTRACT).unwrap();
    }
}

fn assert_untouched(g: Graph) {
    let mut f = g.clone();
    fuse(&mut f).unwrap();
    assert_eq!(count(&f, "Attention"), 0);
    assert_eq!(f.nodes.node_count(), g.nodes.node_count());
}

const B_: usize = 2;
const H: usize = 3;
const Q: usize = 5;
const K: usize = 7;
const D: usize = 4;

/// MatMul(Q, Kᵀ) · 1/√d (+ `mask`) → Softmax → MatMul(·, V), Kᵀ given as its own input.
fn plain(mask: Option<&[usize]>) -> (Graph, Vec<Tensor>) {
    let mut b = B::new();
    let q = b.input("q", &[B_, H, Q, D]);
    let kt = b.input("kt", &[B_, H, D, K]);
    let v = b.input("v", &[B_, H, K, D]);
    let s = b.matmul(q, kt);
    let c = b.f32(0.5);
    let mut s = b.bin(Binary::Mul, s, c);
    if let Some(ms) = mask {
        let m = b.input("mask", ms);
        s = b.bin(Binary::Add, m, s);
    }
    let p = b.softmax(s, -1);
    let y = b.matmul(p, v);
    b.finish(y)
}

#[test]
fn fuses_the_plain_chain() {
    let (g, d) = plain(None);
    assert_fuses(g, &d);
}

#[test]
fn fuses_with_an_additive_mask() {
    let (g, d) = plain(Some(&[1, 1, Q, K]));
    assert_fuses(g, &d);
    let (g, d) = plain(Some(&[B_, H, Q, K]));
    assert_fuses(g, &d);
    let (g, d) = plain(Some(&[K]));
    assert_fuses(g, &d);
}

#[test]
fn leaves_a_mask_that_broadcasts_over_keys() {
    // A [.., 1] mask adds one value to every key; Attention would pad it with -inf.
    let (g, _) = plain(Some(&[1, 1, Q, 1]));
    assert_untouched(g);
}

/// GPT-2's export: the scale split over Q and Kᵀ, K transposed from [b, s, h, d], a
/// causal `Where(cond, scores, fill)` and the NaN guard after the softmax.
fn gpt2_like(fill: f32, guard_zero: f32, causal_const: bool) -> (Graph, Vec<Tensor>) {
    let mut b = B::new();
    let q = b.input("q", &[B_, H, Q, D]);
    let k = b.input("k", &[B_, K, H, D]);
    let v = b.input("v", &[B_, H, K, D]);
    let c1 = b.f32(0.7);
    let qs = b.bin(Binary::Mul, q, c1);
    let kt = b.transpose(k, &[0, 2, 3, 1]);
    let c2 = b.f32(0.7);
    let kts = b.bin(Binary::Mul, kt, c2);
    let s = b.matmul(qs, kts);
    let keep: Vec<bool> = (0..Q * K).map(|i| i % K <= i / K + 2).collect();
    let cond = Tensor::from_vec(&[1, 1, Q, K], keep);
    let cond = if causal_const { b.konst("causal", cond) } else { b.input_tensor("causal", cond) };
    let f = b.f32(fill);
    let s = b.where_(cond, s, f);
    let p = b.softmax(s, 3);
    let nan = b.node(Op::Elementwise(ElementwiseOp::IsNaN), "IsNaN", &[p]);
    let z = b.f32(guard_zero);
    let p = b.where_(nan, z, p);
    let y = b.matmul(p, v);
    b.finish(y)
}

#[test]
fn fuses_a_transposed_k_causal_where_and_nan_guard() {
    for fill in [f32::NEG_INFINITY, f32::MIN, -1e4] {
        let (g, d) = gpt2_like(fill, 0.0, true);
        assert_fuses(g, &d);
        let (g, d) = gpt2_like(fill, 0.0, false);
        assert_fuses(g, &d);
    }
}

#[test]
fn leaves_a_guard_that_is_not_zero() {
    let (g, _) = gpt2_like(f32::NEG_INFINITY, 1.0, true);
    assert_untouched(g);
}

#[test]
fn fully_masked_rows_match_the_chain() {
    // Every key masked: the chain's -inf row gives NaN, the guard makes it 0; a finite
    // fill gives a uniform row. The fused node must do the same.
    for fill in [f32::NEG_INFINITY, f32::MIN] {
        let mut b = B::new();
        let q = b.input("q", &[1, 2, 3, 4]);
        let kt = b.input("kt", &[1, 2, 4, 5]);
        let v = b.input("v", &[1, 2, 5, 4]);
        let s = b.matmul(q, kt);
        let cond = b.input_tensor("keep", Tensor::from_vec(&[3, 5], (0..15).map(|i| i >= 5).collect::<Vec<bool>>()));
        let f = b.f32(fill);
        let s = b.where_(cond, s, f);
        let p = b.softmax(s, -1);
        let nan = b.node(Op::Elementwise(ElementwiseOp::IsNaN), "IsNaN", &[p]);
        let z = b.f32(0.0);
        let p = b.where_(nan, z, p);
        let y = b.matmul(p, v);
        let (g, d) = b.finish(y);
        assert_fuses(g, &d);
    }
}

#[test]
fn fuses_a_div_scale_and_inverted_where() {
    let mut b = B::new();
    let q = b.input("q", &[B_, H, Q, D]);
    let k = b.input("k", &[B_, H, K, D]);
    let v = b.input("v", &[B_, H, K, D]);
    let kt = b.transpose(k, &[0, 1, 3, 2]);
    let s = b.matmul(q, kt);
    let c = b.f32(2.0);
    let s = b.bin(Binary::Div, s, c);
    // Where(masked, fill, scores): true means masked out.
    let masked = b.konst("masked", Tensor::from_vec(&[Q, K], (0..Q * K).map(|i| i % K > i / K).collect::<Vec<bool>>()));
    let f = b.f32(f32::NEG_INFINITY);
    let s = b.where_(masked, f, s);
    let p = b.softmax(s, -1);
    let y = b.matmul(p, v);
    let (g, d) = b.finish(y);
    assert_fuses(g.clone(), &d);
    // K is read in place: the fused graph has no Transpose left.
    let mut f = g;
    fuse(&mut f).unwrap();
    dce(&mut f).unwrap();
    assert_eq!(count(&f, "Transpose"), 0);
}

/// GQA as HF's `repeat_kv` exports it: K/V `[b, kvh, s, d]` → Reshape to
/// `[b, kvh, 1, s, d]` → Expand `[b, kvh, g, s, d]` → Reshape `[b, kvh·g, s, d]`.
#[test]
fn fuses_gqa_and_reads_the_unrepeated_kv() {
    let (kvh, grp) = (2usize, 3usize);
    let h = kvh * grp;
    let mut b = B::new();
    let q = b.input("q", &[1, h, Q, D]);
    let k = b.input("k", &[1, kvh, K, D]);
    let v = b.input("v", &[1, kvh, K, D]);
    let rep = |b: &mut B, x: ValueId| {
        let u = b.reshape(x, &[1, kvh as i64, 1, K as i64, D as i64]);
        let e = b.expand(u, &[1, kvh as i64, grp as i64, K as i64, D as i64]);
        b.reshape(e, &[1, h as i64, K as i64, D as i64])
    };
    let kr = rep(&mut b, k);
    let vr = rep(&mut b, v);
    let kt = b.transpose(kr, &[0, 1, 3, 2]);
    let s = b.matmul(q, kt);
    let c = b.f32(0.5);
    let s = b.bin(Binary::Mul, s, c);
    let p = b.softmax(s, -1);
    let y = b.matmul(p, vr);
    let (g, d) = b.finish(y);
    assert_fuses(g.clone(), &d);
    let mut f = g;
    fuse(&mut f).unwrap();
    dce(&mut f).unwrap();
    assert_eq!(count(&f, "Expand"), 0, "the repeat is read through the head grouping");
}

#[test]
fn fuses_mqa_by_matmul_broadcast() {
    let mut b = B::new();
    let q = b.input("q", &[1, H, Q, D]);
    let kt = b.input("kt", &[1, 1, D, K]);
    let v = b.input("v", &[1, 1, K, D]);
    let s = b.matmul(q, kt);
    let p = b.softmax(s, -1);
    let y = b.matmul(p, v);
    let (g, d) = b.finish(y);
    assert_fuses(g, &d);
}

#[test]
fn leaves_chains_that_are_not_attention() {
    // Softmax over another axis.
    let mut b = B::new();
    let q = b.input("q", &[1, H, Q, D]);
    let kt = b.input("kt", &[1, H, D, K]);
    let v = b.input("v", &[1, H, Q, D]);
    let s = b.matmul(q, kt);
    let p = b.softmax(s, 2);
    let pt = b.transpose(p, &[0, 1, 3, 2]);
    let y = b.matmul(pt, v);
    assert_untouched(b.finish(y).0);

    // The scores are read elsewhere too (a second output).
    let mut b = B::new();
    let q = b.input("q", &[1, H, Q, D]);
    let kt = b.input("kt", &[1, H, D, K]);
    let v = b.input("v", &[1, H, K, D]);
    let s = b.matmul(q, kt);
    let p = b.softmax(s, -1);
    let y = b.matmul(p, v);
    b.g.outputs.push(s);
    assert_untouched(b.finish(y).0);

    // The scale is a tensor, not a scalar.
    let mut b = B::new();
    let q = b.input("q", &[1, H, Q, D]);
    let kt = b.input("kt", &[1, H, D, K]);
    let v = b.input("v", &[1, H, K, D]);
    let s = b.matmul(q, kt);
    let c = b.konst("scales", Tensor::from_vec(&[K], vec![0.5f32; K]));
    let s = b.bin(Binary::Mul, s, c);
    let p = b.softmax(s, -1);
    let y = b.matmul(p, v);
    assert_untouched(b.finish(y).0);

    // The mask is added before the scale: (s + m)·c is not s·c + m.
    let mut b = B::new();
    let q = b.input("q", &[1, H, Q, D]);
    let kt = b.input("kt", &[1, H, D, K]);
    let v = b.input("v", &[1, H, K, D]);
    let m = b.input("m", &[1, 1, Q, K]);
    let s = b.matmul(q, kt);
    let s = b.bin(Binary::Add, s, m);
    let c = b.f32(0.5);
    let s = b.bin(Binary::Mul, s, c);
    let p = b.softmax(s, -1);
    let y = b.matmul(p, v);
    assert_untouched(b.finish(y).0);

    // Probabilities on the right of the second MatMul.
    let mut b = B::new();
    let q = b.input("q", &[1, H, K, D]);
    let kt = b.input("kt", &[1, H, D, K]);
    let v = b.input("v", &[1, H, K, K]);
    let s = b.matmul(q, kt);
    let p = b.softmax(s, -1);
    let y = b.matmul(v, p);
    assert_untouched(b.finish(y).0);

    // Batch broadcast of K: Attention needs one batch.
    let mut b = B::new();
    let q = b.input("q", &[2, H, Q, D]);
    let kt = b.input("kt", &[1, H, D, K]);
    let v = b.input("v", &[2, H, K, D]);
    let s = b.matmul(q, kt);
    let p = b.softmax(s, -1);
    let y = b.matmul(p, v);
    assert_untouched(b.finish(y).0);
}

#[test]
fn leaves_f64_chains() {
    let mut b = B::new();
    let mk = |b: &mut B, name: &str, shape: &[usize]| {
        let n: usize = shape.iter().product();
        b.input_tensor(name, Tensor::from_vec(shape, vec![0.25f64; n]))
    };
    let q = mk(&mut b, "q", &[1, H, Q, D]);
    let kt = mk(&mut b, "kt", &[1, H, D, K]);
    let v = mk(&mut b, "v", &[1, H, K, D]);
    let s = b.matmul(q, kt);
    let p = b.softmax(s, -1);
    let y = b.matmul(p, v);
    let (g, _) = b.finish(y);
    assert_eq!(g.value(y).ty.as_ref().unwrap().dtype, DType::F64);
    assert_untouched(g);
}

//! Robustness test for the attention, image and rnn families: random (mostly malformed)
//! input shapes, values and attributes must give results or errors, never panics.

use onnx_protobuf::{attribute_proto::AttributeType, AttributeProto, NodeProto};

use crate::front::onnx::{DataDir, NodeCtx};
use crate::ir::{Tensor, TypeInfo};
use crate::ops::{parse, InferCtx, Semantics};

/// A tiny deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn tensor(&mut self) -> Tensor {
        let rank = self.below(5) as usize;
        let shape: Vec<usize> = (0..rank).map(|_| self.below(4) as usize).collect();
        let n: usize = shape.iter().product();
        if self.below(3) == 0 {
            Tensor::from_vec(&shape, (0..n).map(|_| self.below(12) as i64 - 3).collect())
        } else {
            let special = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -0.5, 0.0];
            Tensor::from_vec(&shape, (0..n).map(|_| if self.below(8) == 0 { special[self.below(6) as usize] } else { self.below(100) as f32 / 25.0 - 2.0 }).collect())
        }
    }
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::INT.into(), i: v, ..Default::default() }
}

fn float_attr(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::FLOAT.into(), f: v, ..Default::default() }
}

fn str_attr(name: &str, v: &str) -> AttributeProto {
    AttributeProto { name: name.into(), type_: AttributeType::STRING.into(), s: v.as_bytes().to_vec(), ..Default::default() }
}

/// Attributes drawn from the values each op understands (and a few it does not).
fn attrs(rng: &mut Rng) -> Vec<AttributeProto> {
    let pick = |rng: &mut Rng, opts: &[&str]| opts[rng.below(opts.len() as u64) as usize].to_string();
    let mut a = Vec::new();
    for name in ["q_num_heads", "kv_num_heads", "num_heads", "rotary_embedding_dim", "hidden_size", "output_height", "output_width", "sampling_ratio"] {
        if rng.below(2) == 0 {
            a.push(int_attr(name, rng.below(5) as i64 - 1));
        }
    }
    for name in ["is_causal", "interleaved", "layout", "align_corners", "antialias", "exclude_outside", "center_point_box", "linear_before_reset", "qk_matmul_output_mode"] {
        if rng.below(2) == 0 {
            a.push(int_attr(name, rng.below(4) as i64));
        }
    }
    for name in ["scale", "softcap", "clip", "spatial_scale", "extrapolation_value"] {
        if rng.below(3) == 0 {
            a.push(float_attr(name, rng.below(8) as f32 / 4.0 - 0.5));
        }
    }
    if rng.below(2) == 0 {
        a.push(str_attr("mode", &pick(rng, &["nearest", "linear", "cubic", "bilinear", "avg", "max", "bad"])));
    }
    if rng.below(2) == 0 {
        a.push(str_attr("coordinate_transformation_mode", &pick(rng, &["half_pixel", "align_corners", "tf_crop_and_resize", "asymmetric", "output_half_pixel"])));
    }
    if rng.below(2) == 0 {
        a.push(str_attr("padding_mode", &pick(rng, &["zeros", "border", "reflection"])));
    }
    if rng.below(2) == 0 {
        a.push(str_attr("direction", &pick(rng, &["forward", "reverse", "bidirectional"])));
    }
    if rng.below(2) == 0 {
        a.push(str_attr("update_rule", &pick(rng, &["linear", "gated", "delta", "gated_delta"])));
    }
    a
}

#[test]
fn random_inputs_never_panic() {
    let ops: &[(&str, &str, i64)] = &[
        ("Attention", "", 24),
        ("RotaryEmbedding", "", 23),
        ("LinearAttention", "", 27),
        ("FlexAttention", "ai.onnx.preview", 1),
        ("Resize", "", 19),
        ("Resize", "", 11),
        ("Resize", "", 10),
        ("Upsample", "", 9),
        ("GridSample", "", 20),
        ("AffineGrid", "", 20),
        ("RoiAlign", "", 16),
        ("NonMaxSuppression", "", 11),
        ("RNN", "", 22),
        ("GRU", "", 22),
        ("LSTM", "", 22),
        ("CausalConvWithState", "", 27),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let proto = NodeProto::default();
    let dir = DataDir(None);
    for &(op, domain, opset) in ops {
        for _ in 0..3000 {
            let attrs = attrs(&mut rng);
            let n_in = 1 + rng.below(8) as usize;
            let inputs: Vec<Option<Tensor>> = (0..n_in).map(|_| (rng.below(5) != 0).then(|| rng.tensor())).collect();
            let ctx = NodeCtx {
                name: "fuzz",
                op_type: op,
                domain,
                opset,
                inputs_present: inputs.iter().map(Option::is_some).collect(),
                outputs_present: vec![true; 4],
                attrs: &attrs,
                data_dir: &dir,
                proto: &proto,
                outer: None,
                opsets: None,
            };
            let Ok(parsed) = parse(&ctx) else { continue };
            let types: Vec<Option<TypeInfo>> = inputs.iter().map(|t| t.as_ref().map(Tensor::type_info)).collect();
            let consts: Vec<Option<&Tensor>> = inputs.iter().map(|t| t.as_ref().filter(|_| rng.below(2) == 0)).collect();
            let _ = parsed.infer(&InferCtx { inputs: &types, consts: &consts, n_outputs: 4 });
            let refs: Vec<Option<&Tensor>> = inputs.iter().map(Option::as_ref).collect();
            let _ = parsed.eval(&refs);
        }
    }
}

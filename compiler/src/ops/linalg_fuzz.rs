//! A no-panic property test: ops of these families fed random shapes, types and window
//! attributes (past what the parsers admit) must return errors, never panic.
use super::super::conv::{AutoPad, Col2Im, ConvOp, ConvTranspose, WindowAttrs};
use super::super::pool::{Pool, PoolOp};
use super::super::quant::{Dequantize, QuantOp, Quantize};
use super::super::{InferCtx, Op, Semantics};
use super::{Gemm, LinalgOp};
use crate::ir::{DType, Tensor, TypeInfo};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn r(&mut self, n: u64) -> usize {
        (self.next() % n) as usize
    }
    fn shape(&mut self) -> Vec<usize> {
        let r = self.r(6);
        (0..r).map(|_| self.r(7)).collect()
    }
    fn list(&mut self) -> Vec<usize> {
        let r = self.r(5);
        (0..r).map(|_| self.r(6)).collect()
    }
}

fn tensor(rng: &mut Rng, dt: DType) -> Tensor {
    let s = rng.shape();
    let n: usize = s.iter().product();
    Tensor::from_vec(&s, (0..n).map(|i| (i % 7) as f64 - 3.0).collect::<Vec<f64>>()).cast(dt)
}

#[test]
fn fuzz_no_panics() {
    let mut rng = Rng(0x1234567);
    let dts = [DType::F32, DType::I64, DType::U8, DType::I8, DType::I32, DType::F16, DType::Bool, DType::I4];
    for it in 0..20000 {
        let w = |rng: &mut Rng| WindowAttrs {
            auto_pad: [AutoPad::NotSet, AutoPad::SameUpper, AutoPad::SameLower, AutoPad::Valid][rng.r(4)],
            kernel_shape: if rng.r(2) == 0 { None } else { Some(rng.list()) },
            strides: rng.list(),
            dilations: rng.list(),
            pads: rng.list(),
            group: 1 + rng.r(3),
        };
        let op = match rng.r(17) {
            0 => Op::Linalg(LinalgOp::MatMul),
            1 => Op::Linalg(LinalgOp::Gemm(Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: rng.r(2) == 0,
                trans_b: rng.r(2) == 0,
            })),
            2 => Op::Linalg(LinalgOp::MatMulInteger),
            3 => Op::Linalg(LinalgOp::Det),
            4 => Op::Conv(ConvOp::Conv(w(&mut rng))),
            5 => Op::Conv(ConvOp::ConvTranspose(ConvTranspose {
                window: w(&mut rng),
                output_padding: rng.list(),
                output_shape: if rng.r(2) == 0 { None } else { Some(rng.list()) },
            })),
            6 => Op::Conv(ConvOp::ConvInteger(w(&mut rng))),
            7 => Op::Conv(ConvOp::QLinearConv(w(&mut rng))),
            8 => Op::Conv(ConvOp::Col2Im(Col2Im { window: w(&mut rng) })),
            9 => Op::Pool(PoolOp::AveragePool(Pool {
                window: w(&mut rng),
                ceil_mode: rng.r(2) == 0,
                count_include_pad: rng.r(2) == 0,
                storage_order: 0,
                p: 2,
            })),
            10 => Op::Pool(PoolOp::MaxPool(Pool {
                window: w(&mut rng),
                ceil_mode: rng.r(2) == 0,
                count_include_pad: false,
                storage_order: rng.r(2) as i64,
                p: 2,
            })),
            11 => Op::Pool(PoolOp::LpPool(Pool {
                window: w(&mut rng),
                ceil_mode: rng.r(2) == 0,
                count_include_pad: false,
                storage_order: 0,
                p: 2,
            })),
            12 => Op::Pool(PoolOp::GlobalAveragePool),
            13 => Op::Pool(PoolOp::MaxUnpool(w(&mut rng))),
            14 => Op::Quant(QuantOp::QuantizeLinear(Quantize {
                axis: rng.r(5) as i64 - 2,
                block_size: rng.r(3),
                saturate: true,
                output_dtype: None,
                precision: None,
            })),
            15 => Op::Quant(QuantOp::DequantizeLinear(Dequantize {
                axis: rng.r(5) as i64 - 2,
                block_size: rng.r(3),
                output_dtype: None,
            })),
            _ => Op::Quant(QuantOp::QLinearMatMul),
        };
        let n_in = 1 + rng.r(9);
        let same = dts[rng.r(dts.len() as u64)];
        let mut ts: Vec<Option<Tensor>> = Vec::new();
        for _ in 0..n_in {
            if rng.r(8) == 0 {
                ts.push(None);
                continue;
            }
            let dt = if rng.r(3) == 0 { dts[rng.r(dts.len() as u64)] } else { same };
            ts.push(Some(tensor(&mut rng, dt)));
        }
        let refs: Vec<Option<&Tensor>> = ts.iter().map(|t| t.as_ref()).collect();
        let types: Vec<Option<TypeInfo>> = ts.iter().map(|t| t.as_ref().map(|t| t.type_info())).collect();
        let ctx = InferCtx { inputs: &types, consts: &refs, n_outputs: 2 };
        let r = std::panic::catch_unwind(|| {
            let _ = op.infer(&ctx);
            let _ = op.eval(&refs);
        });
        if r.is_err() {
            panic!("iteration {it}: {op:?} with {types:?}");
        }
    }
}

//! The paths the host's ISA does not exercise: rounding without SSE4.1 and f32 fma
//! without FMA, forced on x86_64 and compared with the interpreter.

use std::fmt::Write as _;
use std::process::Command;

use super::{emit_with, isa, Caps};
use crate::back::{EmitOptions, Input};
use crate::ir::{DType, Tensor};
use crate::kir::build::KernelBuilder;
use crate::kir::{e, interp, BufKind, Program, UnOp};
use crate::plan::layout::layout;

fn program(dtype: DType, n: usize) -> Program {
    let mut p = Program::default();
    let a = p.add_buffer("a", dtype, vec![n], BufKind::Input(0));
    let ops = [UnOp::Floor, UnOp::Ceil, UnOp::Round, UnOp::Trunc];
    for (k, op) in ops.into_iter().enumerate() {
        let o = p.add_buffer(format!("{op:?}"), dtype, vec![n], BufKind::Output(k));
        let mut kb = KernelBuilder::new(format!("{op:?}"));
        kb.for_(n, |kb, i| kb.store(o, i.clone(), e::un(op, e::load(a, i))));
        p.kernels.push(kb.finish());
    }
    if dtype == DType::F32 {
        let o = p.add_buffer("fma", dtype, vec![n], BufKind::Output(ops.len()));
        let mut kb = KernelBuilder::new("fma");
        kb.for_(n, |kb, i| kb.store(o, i.clone(), e::fma(e::load(a, i.clone()), e::f32(1.0 / 3.0), e::load(a, i))));
        p.kernels.push(kb.finish());
    }
    p
}

fn values() -> Vec<f64> {
    let mut v = vec![0.0, -0.0, 0.5, -0.5, 1.5, 2.5, -2.5, -3.5, 0.49999997, 4503599627370495.5, 8388607.5, -8388607.5, 1e20, -1e20, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-40, -7.0];
    v.extend((0..45).map(|i| (i as f64 - 22.0) * 0.37));
    v
}

#[test]
fn emulated_rounding_and_fma_match_the_interpreter() {
    let target = crate::targets::find("host").unwrap();
    for dtype in [DType::F32, DType::F64] {
        let n = values().len();
        let input = match dtype {
            DType::F32 => Tensor::from_vec(&[n], values().into_iter().map(|x| x as f32).collect()),
            _ => Tensor::from_vec(&[n], values()),
        };
        let p = program(dtype, n);
        let l = layout(&p);
        let opts = EmitOptions { name: "m", target, model_hash: 7, embedded_weights: None };
        let (isa, caps) = isa::for_target(target).unwrap();
        let caps = Caps { rounding: false, fma: false, ..caps };
        let obj = emit_with(&Input { program: &p, layout: &l, options: opts }, isa, caps).unwrap();

        let dir = std::env::temp_dir().join(format!("edgec-cranelift-unit-{}-{dtype}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bytes: Vec<u8> = match &input {
            Tensor::F32(a) => a.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Tensor::F64(a) => a.iter().flat_map(|x| x.to_le_bytes()).collect(),
            _ => unreachable!(),
        };
        let outs = p.outputs().len();
        let size = bytes.len();
        let mut c = String::from("#include <stdio.h>\nint m_run(const void *, void *, const void *const[], void *const[]);\n");
        let blob = crate::emit::blob::build(&p, &l, 7).unwrap();
        writeln!(c, "static const unsigned char blob[{}] __attribute__((aligned(16))) = {{{}}};", blob.len(), blob.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",")).unwrap();
        writeln!(c, "static const unsigned char in0[{size}] __attribute__((aligned(16))) = {{{}}};", bytes.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",")).unwrap();
        writeln!(c, "static unsigned char out[{outs}][{size}] __attribute__((aligned(16)));").unwrap();
        let list = (0..outs).map(|k| format!("out[{k}]")).collect::<Vec<_>>().join(",");
        writeln!(c, "int main(void) {{ const void *ins[] = {{in0}}; void *outs[] = {{{list}}};").unwrap();
        writeln!(c, "  printf(\"%d\\n\", m_run(blob, 0, ins, outs));").unwrap();
        writeln!(c, "  for (int k = 0; k < {outs}; k++) {{ for (int i = 0; i < {size}; i++) printf(\"%02x\", out[k][i]); printf(\"\\n\"); }}\n  return 0;\n}}").unwrap();
        std::fs::write(dir.join("m.o"), obj).unwrap();
        std::fs::write(dir.join("main.c"), c).unwrap();
        let cc = Command::new("cc").arg("-o").arg(dir.join("main")).arg(dir.join("main.c")).arg(dir.join("m.o")).status().unwrap();
        assert!(cc.success());
        let out = String::from_utf8(Command::new(dir.join("main")).output().unwrap().stdout).unwrap();
        std::fs::remove_dir_all(&dir).ok();

        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("0"));
        let want = interp::run(&p, std::slice::from_ref(&input)).unwrap();
        for (k, (line, w)) in lines.zip(&want).enumerate() {
            let got: Vec<u8> = (0..line.len() / 2).map(|i| u8::from_str_radix(&line[2 * i..2 * i + 2], 16).unwrap()).collect();
            let (got, want): (Vec<f64>, Vec<f64>) = match w {
                Tensor::F32(a) => (got.chunks(4).map(|b| f32::from_le_bytes(b.try_into().unwrap()) as f64).collect(), a.iter().map(|&x| x as f64).collect()),
                Tensor::F64(a) => (got.chunks(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect(), a.iter().copied().collect()),
                _ => unreachable!(),
            };
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()), "{dtype} output {k} element {i} ({}): got {g}, want {w}", values()[i]);
            }
        }
    }
}

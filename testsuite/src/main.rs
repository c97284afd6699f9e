//! `edgec-testsuite`: conformance and model tests of edgec against reference outputs.

mod bench;
mod bench_host;
mod compiled;
mod eval_text;
mod node_tests;
mod generated;
mod quant;
mod scale;
mod specialize;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "edgec-testsuite", about = "Conformance tests of edgec against reference outputs")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Runs the ONNX backend node tests (onnx==1.22.0's onnx/backend/test/data/node).
    OnnxNode(node_tests::Args),
    /// Counts guest instructions per inference of the reference models under QEMU
    /// (deterministic; docs/benchmarks.md).
    Bench(bench::Args),
    /// The int8 checks: QDQ dcgan vs ONNX Runtime, digits_vae_decoder PTQ figures
    /// (docs/quantization.md).
    QuantInt8(quant::Args),
    /// Cross-entropy of chargpt on its validation text, float32 vs --quantize MODE,
    /// compiled for the host (docs/quantization.md); fails above the bounds.
    EvalText(eval_text::Args),
    /// Host latency of edgec against ONNX Runtime, tract and the core's FMA peak
    /// (docs/performance.md).
    BenchHost(bench_host::Args),
    /// Compiles the generated ~100M-parameter decoder and checks time and peak memory
    /// (docs/performance.md).
    Scale(scale::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Each command returns whether its checks passed: exit 1 when one failed (an error
    // that stopped it is anyhow's exit 1 too, with the message).
    let ok = match cli.cmd {
        Cmd::OnnxNode(args) => node_tests::run(&args)?,
        Cmd::Bench(args) => bench::run(&args)?,
        Cmd::QuantInt8(args) => quant::run(&args)?,
        Cmd::EvalText(args) => eval_text::run(&args)?,
        Cmd::BenchHost(args) => bench_host::run(&args)?,
        Cmd::Scale(args) => scale::run(&args)?,
    };
    std::process::exit(if ok { 0 } else { 1 });
}

//! `edgec-testsuite eval-text`: the cross-entropy of the character-level GPT
//! (`chargpt`) on its validation text, float32 and quantized, both compiled for the host
//! and run as native code — the acceptance test of `--quantize int4` /
//! `--quantize int8-weights` (docs/quantization.md).
//!
//! The validation text is what the model was validated on: the regular files of the
//! corpus directory (/usr/share/common-licenses; symlinks skipped) in sorted name
//! order, each read as UTF-8 with replacement, joined with "\n\n"; the last 5% of its
//! characters are scored. Each scored character is predicted from exactly the 64
//! characters before it: the logits of the last position of a [1, 64] window. One
//! inference per scored character, in a generated C driver that links both models'
//! objects and computes the log-softmax itself, so only two numbers come back.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use edgec::emit::{toolchain, Artifacts, CodeKind, CompileOptions};
use edgec::pipeline::prepare;
use edgec::quantize::QuantizeMode;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Mode {
    Int4,
    #[value(name = "int8-weights")]
    Int8Weights,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model folder (model.onnx, vocab.json); default the testsuite's chargpt.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Quantization modes to score against float32 (repeatable; float32 runs once).
    #[arg(long, value_enum, required = true)]
    quantize: Vec<Mode>,
    /// The corpus directory.
    #[arg(long, default_value = "/usr/share/common-licenses")]
    corpus: PathBuf,
    /// Work directory for the driver (default: a temporary one).
    #[arg(long)]
    work: Option<PathBuf>,
}

/// The bounds: nats/char over float32, and the int4 weight-bytes ratio.
fn max_delta(mode: QuantizeMode) -> f64 {
    match mode {
        QuantizeMode::Int4 => 0.05,
        QuantizeMode::Int8Weights => 0.02,
    }
}
const INT4_MAX_WEIGHT_RATIO: f64 = 0.20;

/// The context length.
const CONTEXT: usize = 64;
/// Calibration windows taken from the training part of the text.
const CALIBRATION_WINDOWS: usize = 32;

/// The validation text: regular files of `dir` in sorted name order, joined.
pub fn validation_text(dir: &Path) -> anyhow::Result<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::symlink_metadata(p).map(|m| m.file_type().is_file()).unwrap_or(false))
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    let texts: Vec<String> = files
        .iter()
        .map(|p| std::fs::read(p).map(|b| String::from_utf8_lossy(&b).into_owned()))
        .collect::<Result<_, _>>()?;
    Ok(texts.join("\n\n"))
}

/// The vocabulary's characters, in id order (vocab.json's "chars").
fn vocab(path: &Path) -> anyhow::Result<Vec<char>> {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)?;
    let chars = v["chars"].as_array().context("vocab.json has no \"chars\" list")?;
    chars
        .iter()
        .map(|c| {
            let s = c.as_str().context("a vocab entry is not a string")?;
            let mut it = s.chars();
            match (it.next(), it.next()) {
                (Some(ch), None) => Ok(ch),
                _ => bail!("vocab entry {s:?} is not one character"),
            }
        })
        .collect()
}

fn compile(graph: &edgec::ir::Graph, name: &str) -> anyhow::Result<Artifacts> {
    let target = edgec::targets::find("host").context("no host target")?;
    let opts = CompileOptions { name, target, code: CodeKind::Object, embed_weights: false };
    Ok(edgec::emit::compile(graph, 0, &opts)?)
}

/// The C driver: for each scored position, runs both models on the window before it and
/// adds `logsumexp(logits) - logits[target]` of the last position, in double.
fn driver_source(names: &[&str], vocab: usize, start: usize, total: usize) -> String {
    let mut s = String::from("#include <stdio.h>\n#include <stdlib.h>\n#include <stdint.h>\n#include <math.h>\n");
    for n in names {
        writeln!(s, "#include \"{n}.h\"").unwrap();
    }
    s.push_str(
        "static void *load(const char *path, size_t size)\n{\n    FILE *f = fopen(path, \"rb\");\n    void *p = malloc(size ? size : 1);\n\
         if (!f || !p || fread(p, 1, size, f) != size) { fprintf(stderr, \"cannot read %s\\n\", path); exit(2); }\n    fclose(f);\n    return p;\n}\n\n",
    );
    writeln!(s, "#define VOCAB {vocab}\n#define CONTEXT {CONTEXT}\n#define START {start}\n#define TOTAL {total}").unwrap();
    s.push_str(
        "static double nll(const float *logits, int64_t target)\n{\n    const float *l = logits + (CONTEXT - 1) * VOCAB;\n    double m = l[0], sum = 0.0;\n\
         for (int v = 1; v < VOCAB; v++) if (l[v] > m) m = l[v];\n    for (int v = 0; v < VOCAB; v++) sum += exp((double)l[v] - m);\n\
         return m + log(sum) - (double)l[target];\n}\n\n",
    );
    s.push_str("int main(void)\n{\n    int64_t *ids = load(\"ids.bin\", sizeof(int64_t) * TOTAL);\n");
    for n in names {
        writeln!(
            s,
            "    void *w_{n} = load(\"{n}.weights\", {n}_WEIGHTS_SIZE);\n    char *raw_{n} = malloc({n}_ARENA_SIZE + {n}_ARENA_ALIGN);\n\
             void *a_{n} = (void *)(((uintptr_t)raw_{n} + {n}_ARENA_ALIGN - 1) & ~(uintptr_t)({n}_ARENA_ALIGN - 1));\n\
             float *o_{n} = malloc(sizeof(float) * CONTEXT * VOCAB);\n    double t_{n} = 0.0;"
        )
        .unwrap();
    }
    s.push_str("    for (long p = START; p < TOTAL; p++) {\n        const void *in[1] = { ids + p - CONTEXT };\n");
    for n in names {
        writeln!(
            s,
            "        void *out_{n}[1] = {{ o_{n} }};\n        int rc_{n} = {n}_run(w_{n}, a_{n}, in, out_{n});\n\
             if (rc_{n}) {{ printf(\"{n} error %d\\n\", rc_{n}); return 1; }}\n        t_{n} += nll(o_{n}, ids[p]);"
        )
        .unwrap();
    }
    s.push_str("    }\n");
    for n in names {
        writeln!(s, "    printf(\"{n} %.17g %ld\\n\", t_{n}, (long)(TOTAL - START));").unwrap();
    }
    s.push_str("    return 0;\n}\n");
    s
}

pub fn run(args: &Args) -> anyhow::Result<bool> {
    let modes: Vec<QuantizeMode> = args
        .quantize
        .iter()
        .map(|m| match m {
            Mode::Int4 => QuantizeMode::Int4,
            Mode::Int8Weights => QuantizeMode::Int8Weights,
        })
        .collect();
    let dir = args.model.clone().unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/chargpt"));
    let chars = vocab(&dir.join("vocab.json"))?;
    let text: Vec<char> = validation_text(&args.corpus)?.chars().collect();
    let ids: Vec<i64> = text
        .iter()
        .map(|c| chars.iter().position(|v| v == c).map(|i| i as i64).with_context(|| format!("character {c:?} is not in the vocabulary")))
        .collect::<anyhow::Result<_>>()?;
    // The last 5% of the characters: from floor(0.95 n), as the training split.
    let start = text.len() * 95 / 100;
    if start < CONTEXT {
        bail!("the text has {} characters, too few for a {CONTEXT}-character context", text.len());
    }

    let model = edgec::front::onnx::load(&dir.join("model.onnx"))?;
    model.check_supported()?;
    let float = prepare(model.graph, &Default::default())?;
    // Calibration for GPTQ rounding: windows of the training part (before the scored
    // characters), evenly spaced; never the validation text.
    let calibration: Vec<Vec<edgec::ir::Tensor>> = (0..CALIBRATION_WINDOWS)
        .map(|i| {
            let p = CONTEXT + i * (start - 2 * CONTEXT) / CALIBRATION_WINDOWS;
            vec![edgec::ir::Tensor::from_vec(&[1, CONTEXT], ids[p - CONTEXT..p].to_vec())]
        })
        .collect();
    let mut arts = vec![compile(&float, "float32")?];
    let mut summaries = Vec::new();
    for &mode in &modes {
        let mut quant = float.clone();
        summaries.push(edgec::quantize::apply_calibrated(&mut quant, mode, &calibration)?);
        arts.push(compile(&quant, &mode.name().replace('-', "_"))?);
    }
    let names: Vec<String> = arts.iter().map(|a| a.name.clone()).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();

    let tmp;
    let work = match &args.work {
        Some(w) => w.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&work)?;
    let mut sources = vec![work.join("driver.c")];
    for a in &arts {
        for (file, data) in a.files() {
            std::fs::write(work.join(&file), data)?;
            if file.ends_with(".o") {
                sources.push(work.join(&file));
            }
        }
    }
    let bytes: Vec<u8> = ids.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(work.join("ids.bin"), bytes)?;
    std::fs::write(&sources[0], driver_source(&names, chars.len(), start, ids.len()))?;
    let tc = toolchain::find("host").context("no host toolchain")?;
    let exe = work.join("eval_text");
    // The toolchain's flags, with libm after the objects (the driver's exp/log).
    let built = std::process::Command::new(tc.cc).args(tc.cflags).arg("-I").arg(&work).args(&sources).arg("-o").arg(&exe).arg("-lm").output()?;
    if !built.status.success() {
        bail!("{} failed: {}", tc.cc, String::from_utf8_lossy(&built.stderr));
    }
    let t0 = std::time::Instant::now();
    // Native code: run it directly, in the work directory (its files are relative).
    let out = std::process::Command::new(&exe).current_dir(&work).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        bail!("the driver failed ({}): {stdout}{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let nats = |name: &str| -> anyhow::Result<f64> {
        let line = stdout.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).with_context(|| format!("no result for {name}: {stdout}"))?;
        let mut it = line.split_whitespace();
        let total: f64 = it.next().context("no total")?.parse()?;
        let count: f64 = it.next().context("no count")?.parse()?;
        Ok(total / count)
    };
    println!(
        "validation text: {} characters, {} scored with a {CONTEXT}-character context ({:.1} s for {} models)",
        text.len(),
        text.len() - start,
        t0.elapsed().as_secs_f64(),
        arts.len()
    );
    let nf = nats("float32")?;
    let fw = arts[0].report.weights_bytes;
    println!("{:<14} {nf:.4} nats/char, weights {fw} bytes", "float32:");
    let mut ok = true;
    for ((mode, art), summary) in modes.iter().zip(&arts[1..]).zip(&summaries) {
        let nq = nats(&art.name)?;
        let delta = nq - nf;
        let qw = art.report.weights_bytes;
        let ratio = qw as f64 / fw as f64;
        println!(
            "{:<14} {nq:.4} nats/char (delta {delta:+.4}, bound +{:.2}), weights {qw} bytes ({:.1}% of float32; {} weight use(s) quantized, {} with GPTQ)",
            format!("{}:", mode.name()),
            max_delta(*mode),
            100.0 * ratio,
            summary.quantized(),
            summary.gptq
        );
        if delta > max_delta(*mode) {
            println!("FAIL: {}: the cross-entropy rose by {delta:.4} nats/char, more than {}", mode.name(), max_delta(*mode));
            ok = false;
        }
        if *mode == QuantizeMode::Int4 && ratio > INT4_MAX_WEIGHT_RATIO {
            println!("FAIL: int4 weights are {:.1}% of float32, more than {:.0}%", 100.0 * ratio, 100.0 * INT4_MAX_WEIGHT_RATIO);
            ok = false;
        }
    }
    Ok(ok)
}

//! Test drivers: a C `main` that runs several compiled models on raw input files and
//! writes raw output files, and [`run_batch`], which writes a batch of compiled models
//! and their inputs to a directory, builds one driver binary (or firmware image) for
//! all of them (one compiler invocation) and reads the results back.
//!
//! Files in the batch directory, per model `NAME` and data set `s`:
//! `NAME.weights`, `NAME.s{s}.in{k}` (inputs), `NAME.s{s}.out{k}` (outputs, written by
//! the driver), in the little-endian form of [`super::bytes`]. The driver prints one
//! line `NAME s CODE` per run (`NAME s missing-input` when an input file could not be
//! read), and calls the markers [`MARK_BEGIN`] / [`MARK_END`] right around each
//! `NAME_run`, which the instruction counter (emit/icount.rs) keys on.
//!
//! The driver comes in two flavours with one body: *hosted* (stdio and malloc; the
//! directory is its argument) and *board* (a firmware image for a Cortex-M or RV32
//! board under QEMU system mode: the board support of `targets/` gives semihosting
//! file I/O relative to QEMU's working directory, which is the batch directory, and a
//! heap; see [`super::board`]).

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::bytes::{from_le_bytes, to_le_bytes};
use super::toolchain::{RunConfig, ToolError, Toolchain};
use super::Artifacts;
use crate::ir::Tensor;

/// A compiled model and the input sets to run it on.
#[derive(Clone)]
pub struct Job {
    pub artifacts: Artifacts,
    pub sets: Vec<Vec<Tensor>>,
}

/// The outcome of one data set.
#[derive(Debug)]
pub enum SetResult {
    Outputs(Vec<Tensor>),
    /// `NAME_run` returned this nonzero code.
    Code(i32),
    /// The model does not fit the board (its memory, its code region): unsupported
    /// there, not wrong.
    Unsupported(String),
    /// The batch could not be built or run, or the outputs are missing.
    Error(String),
}

/// The driver's marker functions: empty, but never inlined or dropped (the `asm`
/// makes them impure), so each inference runs between their first instructions.
pub const MARK_BEGIN: &str = "edgec_bench_begin";
pub const MARK_END: &str = "edgec_bench_end";

/// What a counted run adds to a batch: flags for linking the driver, and the
/// emulator arguments, which depend on the linked binary's addresses.
pub struct Instrument<'a> {
    pub link_flags: &'a [&'a str],
    pub run_config: &'a dyn Fn(&Path) -> Result<RunConfig, ToolError>,
}

/// stdio, malloc, the directory from argv[1].
const HOSTED_PRELUDE: &str = "#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <stdint.h>\n";
const HOSTED_IO: &str = "\nstatic const char *dir;\n\n\
static void *ec_alloc(size_t size) { return calloc(size ? size : 1, 1); }\n\
static void ec_free(void *p) { free(p); }\n\
static void emit(const char *s) { fputs(s, stdout); }\n\n\
/* size 0: the file's size. */\n\
static void *load(const char *file, size_t size, int *ok)\n{\n\
    char path[4096];\n    FILE *f;\n    void *p;\n    long got;\n\
    sprintf(path, \"%s/%s\", dir, file);\n    f = fopen(path, \"rb\");\n\
    if (!f) { *ok = 0; return ec_alloc(size); }\n\
    if (size == 0) {\n        fseek(f, 0, SEEK_END);\n        got = ftell(f);\n        fseek(f, 0, SEEK_SET);\n        size = got > 0 ? (size_t)got : 0;\n    }\n\
    p = ec_alloc(size);\n    if (!p || fread(p, 1, size, f) != size) *ok = 0;\n    fclose(f);\n    return p;\n}\n\n\
static void save(const char *file, const void *p, size_t size)\n{\n\
    char path[4096];\n    FILE *f;\n    sprintf(path, \"%s/%s\", dir, file);\n    f = fopen(path, \"wb\");\n\
    if (f) { fwrite(p, 1, size, f); fclose(f); }\n}\n";
const HOSTED_MAIN: &str = "int main(int argc, char **argv)\n{\n    char file[512];\n    int ok = 1, ok_weights = 1;\n    if (argc < 2) return 2;\n    dir = argv[1];\n";

/// The board support's heap and semihosting files (targets/board.h).
const BOARD_PRELUDE: &str = "#include <stdint.h>\n#include \"board.h\"\n";
const BOARD_IO: &str = "\n\
static void *ec_alloc(size_t size) { return board_alloc(size); }\n\
static void ec_free(void *p) { board_free(p); }\n\
static void emit(const char *s) { board_puts(s); }\n\n\
/* size 0: the file's size. */\n\
static void *load(const char *file, size_t size, int *ok)\n{\n\
    void *p;\n\
    if (size == 0) {\n        long n = board_file_size(file);\n        if (n < 0) { *ok = 0; n = 0; }\n        size = (size_t)n;\n    }\n\
    p = board_alloc(size);\n    if (board_read_file(file, p, size) != 0) *ok = 0;\n    return p;\n}\n\n\
static void save(const char *file, const void *p, size_t size) { (void)board_write_file(file, p, size); }\n";
const BOARD_MAIN: &str = "int main(void)\n{\n    char file[512];\n    int ok = 1, ok_weights = 1;\n";

/// File names and report lines without printf (the board has none).
const COMMON: &str = "\n\
static char *put_str(char *d, const char *s) { while (*s) *d++ = *s++; *d = 0; return d; }\n\n\
static char *put_int(char *d, int v)\n{\n\
    char t[12];\n    int n = 0;\n    unsigned u = v < 0 ? 0u - (unsigned)v : (unsigned)v;\n\
    if (v < 0) *d++ = '-';\n    do { t[n++] = (char)('0' + u % 10u); u /= 10u; } while (u);\n\
    while (n) *d++ = t[--n];\n    *d = 0;\n    return d;\n}\n\n\
/* NAME.s{set}{suffix} */\n\
static void fname(char *buf, const char *name, int set, const char *suffix)\n{\n\
    put_str(put_int(put_str(put_str(buf, name), \".s\"), set), suffix);\n}\n\n\
static void report(const char *name, int set, int ok, int rc)\n{\n\
    char line[256];\n    char *p = put_str(put_int(put_str(put_str(line, name), \" \"), set), \" \");\n\
    p = ok ? put_int(p, rc) : put_str(p, \"missing-input\");\n    put_str(p, \"\\n\");\n    emit(line);\n}\n\n";

/// The driver's C source for `jobs`: hosted, or for a board's firmware image.
pub fn driver_source(jobs: &[Job], board: bool) -> String {
    let mut s = String::from("/* Test driver generated by edgec: runs models on raw files. */\n");
    s.push_str(if board { BOARD_PRELUDE } else { HOSTED_PRELUDE });
    for j in jobs {
        let _ = writeln!(s, "#include \"{}.h\"", j.artifacts.name);
    }
    s.push_str(if board { BOARD_IO } else { HOSTED_IO });
    s.push_str(COMMON);
    let _ = write!(
        s,
        "void {MARK_BEGIN}(void);\nvoid {MARK_END}(void);\n\
__attribute__((noinline)) void {MARK_BEGIN}(void) {{ __asm__ volatile(\"\"); }}\n\
__attribute__((noinline)) void {MARK_END}(void) {{ __asm__ volatile(\"\"); }}\n\n"
    );
    s.push_str(if board { BOARD_MAIN } else { HOSTED_MAIN });
    s.push_str("    (void)file; (void)ok; (void)ok_weights;\n");
    for j in jobs {
        let a = &j.artifacts;
        let n = &a.name;
        let size = |t: &super::TensorInfo| t.dtype.storage_bytes(t.shape.iter().product::<usize>());
        let _ = writeln!(s, "    {{ /* {n} */");
        let _ = writeln!(s, "        int set, rc;");
        let _ = writeln!(s, "        void *raw = ec_alloc({n}_ARENA_SIZE + 16);");
        let _ = writeln!(s, "        void *arena = (void *)(((uintptr_t)raw + 15) & ~(uintptr_t)15);");
        if a.weights.is_some() {
            let _ = writeln!(s, "        void *weights = load(\"{n}.weights\", 0, &ok_weights);");
        } else {
            let _ = writeln!(s, "        void *weights = NULL;");
        }
        let _ = writeln!(s, "        const void *in[{}];\n        void *out[{}];", a.inputs.len().max(1), a.outputs.len().max(1));
        let _ = writeln!(s, "        for (set = 0; set < {}; set++) {{", j.sets.len());
        s.push_str("            ok = ok_weights;\n");
        for (k, t) in a.inputs.iter().enumerate() {
            let _ = writeln!(s, "            fname(file, \"{n}\", set, \".in{k}\");\n            in[{k}] = load(file, {}u, &ok);", size(t));
        }
        for (k, t) in a.outputs.iter().enumerate() {
            let _ = writeln!(s, "            out[{k}] = ec_alloc({}u);", size(t));
        }
        let _ = writeln!(s, "            if (ok) {{\n                {MARK_BEGIN}();\n                rc = {n}_run(weights, arena, in, out);\n                {MARK_END}();\n            }} else rc = -1;\n            report(\"{n}\", set, ok, rc);");
        for (k, t) in a.outputs.iter().enumerate() {
            let _ = writeln!(s, "            fname(file, \"{n}\", set, \".out{k}\");\n            if (ok && rc == 0) save(file, out[{k}], {}u);", size(t));
        }
        // Newest first: the board's heap frees last-in first-out.
        for k in (0..a.outputs.len()).rev() {
            let _ = writeln!(s, "            ec_free(out[{k}]);");
        }
        for k in (0..a.inputs.len()).rev() {
            let _ = writeln!(s, "            ec_free((void *)in[{k}]);");
        }
        s.push_str("        }\n        (void)in; (void)out;\n");
        if a.weights.is_some() {
            s.push_str("        ec_free(weights);\n");
        }
        s.push_str("        ec_free(raw);\n    }\n");
    }
    s.push_str("    return 0;\n}\n");
    s
}

fn io(e: std::io::Error) -> ToolError {
    ToolError::Failed(e.to_string())
}

/// Bytes of one data set's inputs and outputs.
fn io_bytes(a: &Artifacts) -> usize {
    a.inputs.iter().chain(&a.outputs).map(|t| t.dtype.storage_bytes(t.shape.iter().product::<usize>())).sum()
}

/// Writes, builds and runs `jobs` in `dir`; one result list per job (one per set).
/// Jobs too big for the board's memory are unsupported without building. When the
/// batch does not build, it is split in halves, so one bad model fails only itself.
/// A missing tool is an error for the whole batch.
pub fn run_batch(tc: &Toolchain, jobs: &[Job], dir: &Path) -> Result<Vec<Vec<SetResult>>, ToolError> {
    run_batch_with(tc, jobs, dir, None)
}

/// [`run_batch`], optionally instrumented (the instruction counter).
pub fn run_batch_with(
    tc: &Toolchain,
    jobs: &[Job],
    dir: &Path,
    instrument: Option<&Instrument>,
) -> Result<Vec<Vec<SetResult>>, ToolError> {
    let mut results: Vec<Option<Vec<SetResult>>> = jobs
        .iter()
        .map(|j| {
            let a = &j.artifacts;
            let weights = a.weights.as_ref().map_or(0, |w| w.len());
            tc.fits(weights, a.report.arena_bytes, io_bytes(a))
                .err()
                .map(|why| (0..j.sets.len()).map(|_| SetResult::Unsupported(why.clone())).collect())
        })
        .collect();
    let runnable: Vec<Job> = jobs.iter().zip(&results).filter(|(_, r)| r.is_none()).map(|(j, _)| j.clone()).collect();
    let mut ran = if runnable.is_empty() { Vec::new() } else { build_and_run(tc, &runnable, dir, instrument)? }.into_iter();
    for r in results.iter_mut().filter(|r| r.is_none()) {
        *r = ran.next();
    }
    Ok(results.into_iter().map(|r| r.unwrap_or_default()).collect())
}

fn build_and_run(tc: &Toolchain, jobs: &[Job], dir: &Path, instrument: Option<&Instrument>) -> Result<Vec<Vec<SetResult>>, ToolError> {
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut sources: Vec<PathBuf> = Vec::new();
    for j in jobs {
        for (file, data) in j.artifacts.files() {
            let p = dir.join(&file);
            std::fs::write(&p, data).map_err(io)?;
            if file.ends_with(".c") || file.ends_with(".o") || file.ends_with(".S") {
                sources.push(p);
            }
        }
        for (s, inputs) in j.sets.iter().enumerate() {
            for (k, t) in inputs.iter().enumerate() {
                let bytes = to_le_bytes(t).ok_or_else(|| ToolError::Failed(format!("input {k} of type {}", t.dtype())))?;
                std::fs::write(dir.join(format!("{}.s{s}.in{k}", j.artifacts.name)), bytes).map_err(io)?;
            }
        }
    }
    if let Some(b) = tc.board {
        for (file, text) in b.files() {
            std::fs::write(dir.join(file), text).map_err(io)?;
        }
    }
    let driver = dir.join("driver.c");
    std::fs::write(&driver, driver_source(jobs, tc.board.is_some())).map_err(io)?;
    sources.insert(0, driver);
    let exe = dir.join("driver");
    match tc.build_with(&sources, dir, &exe, instrument.map_or(&[], |i| i.link_flags)) {
        Ok(()) => {}
        Err(ToolError::Failed(why)) if jobs.len() == 1 => {
            return Ok(vec![(0..jobs[0].sets.len()).map(|_| SetResult::Error(why.clone())).collect()]);
        }
        Err(ToolError::TooBig(why)) if jobs.len() == 1 => {
            return Ok(vec![(0..jobs[0].sets.len()).map(|_| SetResult::Unsupported(why.clone())).collect()]);
        }
        Err(ToolError::Failed(_) | ToolError::TooBig(_)) => {
            let (a, b) = jobs.split_at(jobs.len() / 2);
            let mut all = build_and_run(tc, a, &dir.join("half0"), instrument)?;
            all.extend(build_and_run(tc, b, &dir.join("half1"), instrument)?);
            return Ok(all);
        }
        Err(e) => return Err(e),
    }
    let (stdout, failure) = match instrument {
        None => tc.run(&exe, dir)?,
        Some(i) => tc.run_with(&exe, dir, &(i.run_config)(&exe)?)?,
    };
    let mut results = Vec::new();
    for j in jobs {
        let n = &j.artifacts.name;
        let mut per_set = Vec::new();
        for s in 0..j.sets.len() {
            let prefix = format!("{n} {s} ");
            let line = stdout.lines().find_map(|l| l.strip_prefix(&prefix));
            per_set.push(match line.map(|c| c.trim().parse::<i32>()) {
                Some(Ok(0)) => read_outputs(j, s, dir),
                Some(Ok(c)) => SetResult::Code(c),
                Some(Err(_)) => SetResult::Error(format!("the driver could not read the inputs of {n} set {s}")),
                None => SetResult::Error(format!(
                    "the driver did not run {n} set {s}: {}",
                    failure.as_deref().unwrap_or("it stopped early")
                )),
            });
        }
        results.push(per_set);
    }
    Ok(results)
}

fn read_outputs(j: &Job, s: usize, dir: &Path) -> SetResult {
    let mut outs = Vec::new();
    for (k, t) in j.artifacts.outputs.iter().enumerate() {
        let p = dir.join(format!("{}.s{s}.out{k}", j.artifacts.name));
        let Ok(bytes) = std::fs::read(&p) else { return SetResult::Error(format!("no output file {}", p.display())) };
        match from_le_bytes(t.dtype, &t.shape, &bytes) {
            Some(t) => outs.push(t),
            None => return SetResult::Error(format!("{} has {} bytes", p.display(), bytes.len())),
        }
    }
    SetResult::Outputs(outs)
}

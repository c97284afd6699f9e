//! `edgec profile --target host --time RUNS`: the kernels timed natively on the host's
//! clock. The compiled object's kernels (`model_kI`, local symbols) are made global
//! with `objcopy --globalize-symbol`, and a small C harness calls `model_run` once
//! (argument and blob checks, warm-up), then, RUNS times, `model_run` whole and every
//! kernel one by one with the same arguments `model_run` passes them, each between two
//! `clock_gettime(CLOCK_MONOTONIC)` reads; it prints the medians. The generated code is
//! the code `edgec compile` writes, unchanged.

use std::fmt::Write;
use std::path::Path;
use std::process::Command;

use edgec::emit::bytes::to_le_bytes;
use edgec::emit::{Artifacts, Code};
use edgec::ir::Tensor;

/// Median nanoseconds: of a whole `model_run`, and of each kernel.
pub struct Timing {
    pub run_ns: u64,
    pub per_kernel: Vec<u64>,
}

fn tool(cmd: &mut Command) -> Result<String, String> {
    let prog = cmd.get_program().to_string_lossy().to_string();
    let o = cmd.output().map_err(|e| format!("cannot run '{prog}' ({e}); scripts/setup.sh installs it"))?;
    if !o.status.success() {
        let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        return Err(format!("{prog} failed ({}): {}", o.status, said.chars().take(2000).collect::<String>()));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

pub fn time_kernels(art: &Artifacts, inputs: &[Tensor], kernels: usize, runs: usize, dir: &Path) -> Result<Timing, String> {
    let Code::Object(object) = &art.code else { return Err("the host target gives an object".into()) };
    let io = |e: std::io::Error| e.to_string();
    let name = &art.name;
    std::fs::write(dir.join(format!("{name}.o")), object).map_err(io)?;
    std::fs::write(dir.join(format!("{name}.h")), &art.header).map_err(io)?;
    std::fs::write(dir.join(format!("{name}.weights")), art.weights.as_deref().unwrap_or_default()).map_err(io)?;
    for (k, t) in inputs.iter().enumerate() {
        let bytes = to_le_bytes(t).ok_or_else(|| format!("input {k} has no byte form"))?;
        std::fs::write(dir.join(format!("in{k}")), bytes).map_err(io)?;
    }
    let mut objcopy = Command::new("objcopy");
    for i in 0..kernels {
        objcopy.arg(format!("--globalize-symbol={name}_k{i}"));
    }
    tool(objcopy.arg(dir.join(format!("{name}.o"))))?;
    std::fs::write(dir.join("harness.c"), harness(art, kernels)).map_err(io)?;
    let exe = dir.join("harness");
    tool(Command::new("cc").args(["-std=c99", "-O2", "-Wall", "-Werror", "-I"]).arg(dir).arg(dir.join("harness.c")).arg(dir.join(format!("{name}.o"))).arg("-o").arg(&exe))?;
    let out = tool(Command::new(&exe).arg(dir).arg(runs.max(1).to_string()))?;
    let mut timing = Timing { run_ns: 0, per_kernel: vec![0; kernels] };
    for l in out.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f[..] {
            ["run", ns] => timing.run_ns = ns.parse().unwrap_or(0),
            ["kernel", i, ns] => {
                if let (Ok(i), Ok(ns)) = (i.parse::<usize>(), ns.parse()) {
                    if i < kernels {
                        timing.per_kernel[i] = ns;
                    }
                }
            }
            ["error", ..] => return Err(l.to_string()),
            _ => {}
        }
    }
    Ok(timing)
}

fn harness(art: &Artifacts, kernels: usize) -> String {
    let n = &art.name;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "#define _POSIX_C_SOURCE 200112L\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <time.h>\n#include \"{n}.h\"\n"
    );
    let _ = writeln!(s, "typedef int (*kernel_fn)(const void *, void *, const void *const *, void *const *);");
    for i in 0..kernels {
        let _ = writeln!(s, "int {n}_k{i}(const void *, void *, const void *const *, void *const *);");
    }
    let list: Vec<String> = (0..kernels).map(|i| format!("{n}_k{i}")).collect();
    let _ = writeln!(s, "static kernel_fn kernels[] = {{ {} }};\n", if list.is_empty() { "0".into() } else { list.join(", ") });
    let _ = writeln!(
        s,
        "static void *load(const char *dir, const char *file, size_t size) {{\n\
    char path[4096];\n    void *p = calloc(size + 16, 1);\n    FILE *f;\n\
    snprintf(path, sizeof path, \"%s/%s\", dir, file);\n    f = fopen(path, \"rb\");\n\
    if (!f || !p || fread(p, 1, size, f) != size) {{ printf(\"error cannot read %s\\n\", path); exit(1); }}\n\
    fclose(f);\n    return p;\n}}\n\n\
static unsigned long long now(void) {{\n    struct timespec t;\n    clock_gettime(CLOCK_MONOTONIC, &t);\n\
    return (unsigned long long)t.tv_sec * 1000000000ull + (unsigned long long)t.tv_nsec;\n}}\n\n\
static int cmp(const void *a, const void *b) {{\n    unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;\n    return x < y ? -1 : x > y;\n}}\n\n\
static unsigned long long median(unsigned long long *v, int n) {{ qsort(v, (size_t)n, sizeof *v, cmp); return v[n / 2]; }}\n"
    );
    let _ = writeln!(s, "int main(int argc, char **argv) {{\n    const char *dir = argv[1];\n    int runs = atoi(argv[2]), r, k, rc;");
    let _ = writeln!(s, "    void *weights = load(dir, \"{n}.weights\", {n}_WEIGHTS_SIZE);");
    let _ = writeln!(s, "    void *arena = NULL;\n    if (posix_memalign(&arena, 64, {n}_ARENA_SIZE + 16) != 0) return 1;");
    let _ = writeln!(s, "    const void *in[{}];\n    void *out[{}];", art.inputs.len().max(1), art.outputs.len().max(1));
    for k in 0..art.inputs.len() {
        let _ = writeln!(s, "    in[{k}] = load(dir, \"in{k}\", {n}_INPUT_{k}_SIZE);");
    }
    for k in 0..art.outputs.len() {
        let _ = writeln!(s, "    out[{k}] = calloc({n}_OUTPUT_{k}_SIZE + 16, 1);");
    }
    let _ = writeln!(
        s,
        "    unsigned long long *t = malloc(sizeof *t * (size_t)runs), *tk = malloc(sizeof *tk * (size_t)runs * {kn});\n\
    if ((rc = {n}_run(weights, arena, in, out)) != 0) {{ printf(\"error {n}_run returned %d\\n\", rc); return 1; }}\n\
    for (r = 0; r < runs; r++) {{\n\
        unsigned long long t0 = now();\n        {n}_run(weights, arena, in, out);\n        t[r] = now() - t0;\n\
        for (k = 0; k < {kernels}; k++) {{\n            unsigned long long a = now();\n            kernels[k](weights, arena, in, out);\n            tk[(size_t)k * (size_t)runs + (size_t)r] = now() - a;\n        }}\n    }}\n\
    printf(\"run %llu\\n\", median(t, runs));\n\
    for (k = 0; k < {kernels}; k++) printf(\"kernel %d %llu\\n\", k, median(tk + (size_t)k * (size_t)runs, runs));\n\
    return 0;\n}}",
        kn = kernels.max(1)
    );
    s
}

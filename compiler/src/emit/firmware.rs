//! The C targets' code through their cross compiler, at `edgec compile` time: the
//! object for `--emit obj` (with embedded weights assembled and linked into it, so
//! NAME.o is the only code file), and the measured code size and stack estimate of the
//! flash/RAM report ([`super::footprint`]).
//!
//! Flags: the target's ISA/FPU/ABI (`toolchain::firmware_compiler`) plus
//! `-std=c99 -O2 -ffreestanding`; the figures are those of that build.

use std::path::Path;
use std::process::Command;

use super::footprint::CodeSize;
use super::toolchain::{firmware_compiler, ToolError};
use super::{Artifacts, Code};
use crate::targets::Target;

/// What the cross compiler made of the artifacts.
pub struct Build {
    /// The relocatable object: the C code, and the weights when embedded.
    pub object: Vec<u8>,
    /// Sections of the C code alone (weights excluded).
    pub code: CodeSize,
    /// Deepest stack use of `NAME_run`, bytes (see [`stack_estimate`]).
    pub stack: Option<usize>,
}

fn failed(e: impl std::fmt::Display) -> ToolError {
    ToolError::Failed(e.to_string())
}

fn run(cmd: &mut Command) -> Result<String, ToolError> {
    let prog = cmd.get_program().to_string_lossy().to_string();
    let out = cmd.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ToolError::Missing(prog.clone()),
        _ => ToolError::Failed(format!("cannot run '{prog}': {e}")),
    })?;
    if !out.status.success() {
        let err: String = String::from_utf8_lossy(&out.stderr).chars().take(4000).collect();
        return Err(ToolError::Failed(format!("{prog} failed: {err}")));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Compiles `art` (C code) for `target` with its cross compiler; with embedded weights
/// in an assembler file, assembles it and links both into one relocatable object.
pub fn build(target: &Target, art: &Artifacts) -> Result<Build, ToolError> {
    let (cc, flags) = firmware_compiler(target.name).ok_or_else(|| failed(format!("no cross compiler known for '{}'", target.name)))?;
    let Code::C(source) = &art.code else {
        return Err(failed("the C backend returned no source"));
    };
    let dir = tempfile::tempdir().map_err(failed)?;
    let d = dir.path();
    let n = &art.name;
    std::fs::write(d.join(format!("{n}.c")), source).map_err(failed)?;
    run(Command::new(cc)
        .current_dir(d)
        .args(flags)
        .args(["-std=c99", "-O2", "-ffreestanding", "-fstack-usage", "-c"])
        .arg(format!("{n}.c"))
        .arg("-o")
        .arg(format!("{n}.o")))?;
    let code = section_sizes(&size_tool(cc), &d.join(format!("{n}.o")))?;
    let stack = std::fs::read_to_string(d.join(format!("{n}.su"))).ok().and_then(|su| stack_estimate(&su, n));
    let object = match &art.weights_asm {
        Some(w) => {
            std::fs::write(d.join(format!("{n}_weights.S")), &w.source).map_err(failed)?;
            std::fs::write(d.join(format!("{n}_weights.bin")), &w.blob).map_err(failed)?;
            run(Command::new(cc).current_dir(d).args(flags).args(["-I", ".", "-c"]).arg(format!("{n}_weights.S")).arg("-o").arg("weights.o"))?;
            run(Command::new(cc)
                .current_dir(d)
                .args(flags)
                .args(["-nostdlib", "-r"])
                .arg(format!("{n}.o"))
                .arg("weights.o")
                .arg("-o")
                .arg("linked.o"))?;
            std::fs::read(d.join("linked.o")).map_err(failed)?
        }
        None => std::fs::read(d.join(format!("{n}.o"))).map_err(failed)?,
    };
    Ok(Build { object, code, stack })
}

/// `arm-none-eabi-gcc` → `arm-none-eabi-size`.
fn size_tool(cc: &str) -> String {
    format!("{}size", cc.strip_suffix("gcc").unwrap_or(cc))
}

/// `text data bss` of an object, from binutils' `size` (Berkeley format: text counts
/// code and read-only data).
fn section_sizes(size: &str, obj: &Path) -> Result<CodeSize, ToolError> {
    let out = run(Command::new(size).arg(obj))?;
    let line = out.lines().nth(1).ok_or_else(|| failed(format!("{size} printed nothing")))?;
    let v: Vec<usize> = line.split_whitespace().take(3).filter_map(|x| x.parse().ok()).collect();
    match v[..] {
        [text, data, bss] => Ok(CodeSize { text, data, bss, measured: true }),
        _ => Err(failed(format!("cannot read {size}'s output: {line}"))),
    }
}

/// The stack `NAME_run` needs, from GCC's `-fstack-usage` lines
/// (`file:line:col:function<TAB>bytes<TAB>static|dynamic|bounded`): `NAME_run`'s frame +
/// the largest kernel frame (`NAME_kI`, when not inlined) + the largest helper frame
/// (the deepest call chain edgec generates is run → kernel → helper; helpers' own
/// callees are leaf bit casts, inlined). `None` if `NAME_run` is missing.
pub fn stack_estimate(su: &str, name: &str) -> Option<usize> {
    let (mut run, mut kernel, mut helper) = (None, 0, 0);
    let kprefix = format!("{name}_k");
    for line in su.lines() {
        let mut parts = line.split('\t');
        let (Some(loc), Some(bytes)) = (parts.next(), parts.next()) else { continue };
        let Ok(bytes) = bytes.trim().parse::<usize>() else { continue };
        let func = loc.rsplit(':').next().unwrap_or("");
        if func == format!("{name}_run") {
            run = Some(bytes);
        } else if func.strip_prefix(&kprefix).is_some_and(|r| r.chars().all(|c| c.is_ascii_digit())) {
            kernel = kernel.max(bytes);
        } else {
            helper = helper.max(bytes);
        }
    }
    run.map(|r| r + kernel + helper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_from_su() {
        let su = "m.c:10:1:ec_sqrtf\t8\tstatic\nm.c:20:1:m_k0\t40\tstatic\nm.c:30:1:m_k12\t72\tstatic\nm.c:40:5:m_run\t24\tstatic\n";
        assert_eq!(stack_estimate(su, "m"), Some(24 + 72 + 8));
        assert_eq!(stack_estimate("m.c:1:1:ec_x\t8\tstatic\n", "m"), None);
        assert_eq!(size_tool("riscv64-unknown-elf-gcc"), "riscv64-unknown-elf-size");
    }
}

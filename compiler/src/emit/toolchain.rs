//! How tests build and run generated code per target: a C compiler (host or cross),
//! its flags, and the command prefix that runs the binary (nothing natively, QEMU user
//! mode for Cortex-A and RV64). One table, so a new target (Cortex-M under
//! `qemu-system-arm`, RV32) is one more row plus its startup code.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::CodeKind;

/// A test target: how to build a driver with the generated code and run it.
#[derive(Clone, Copy, Debug)]
pub struct Toolchain {
    /// The runner's target name (`c-host`, `host`, `cortex-a53`, ...).
    pub name: &'static str,
    /// The `edgec` target the code is generated for.
    pub target: &'static str,
    pub code: CodeKind,
    pub cc: &'static str,
    pub cflags: &'static [&'static str],
    /// Prepended to the binary's command line (an emulator), empty to run natively.
    pub run_prefix: &'static [&'static str],
}

const HOST_FLAGS: &[&str] = &["-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic"];

pub const TOOLCHAINS: &[Toolchain] = &[
    Toolchain { name: "c-host", target: "host", code: CodeKind::C, cc: "cc", cflags: HOST_FLAGS, run_prefix: &[] },
    Toolchain { name: "host", target: "host", code: CodeKind::Object, cc: "cc", cflags: HOST_FLAGS, run_prefix: &[] },
    Toolchain {
        name: "cortex-a53",
        target: "cortex-a53",
        code: CodeKind::Object,
        cc: "aarch64-linux-gnu-gcc",
        cflags: HOST_FLAGS,
        run_prefix: &["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"],
    },
    Toolchain {
        name: "c-cortex-a53",
        target: "cortex-a53",
        code: CodeKind::C,
        cc: "aarch64-linux-gnu-gcc",
        cflags: HOST_FLAGS,
        run_prefix: &["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"],
    },
    Toolchain {
        name: "riscv64",
        target: "riscv64",
        code: CodeKind::Object,
        cc: "riscv64-linux-gnu-gcc",
        cflags: HOST_FLAGS,
        run_prefix: &["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu"],
    },
    Toolchain {
        name: "c-riscv64",
        target: "riscv64",
        code: CodeKind::C,
        cc: "riscv64-linux-gnu-gcc",
        cflags: HOST_FLAGS,
        run_prefix: &["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu"],
    },
    Toolchain {
        name: "riscv64-v",
        target: "riscv64-v",
        code: CodeKind::Object,
        cc: "riscv64-linux-gnu-gcc",
        cflags: HOST_FLAGS,
        run_prefix: &["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu", "-cpu", "rv64,v=true,vlen=128"],
    },
];

pub fn find(name: &str) -> Option<&'static Toolchain> {
    TOOLCHAINS.iter().find(|t| t.name == name)
}

/// Why building or running failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// A compiler or emulator is not installed (the contract's exit code 4).
    #[error("'{0}' is not installed or not on PATH (scripts/setup.sh installs it)")]
    Missing(String),
    #[error("{0}")]
    Failed(String),
}

/// How to run a built binary beyond the toolchain's own prefix: the instruction
/// counter (emit/icount.rs) adds its plugin and needs a fixed environment and argv.
#[derive(Clone, Debug, Default)]
pub struct RunConfig {
    /// Inserted right after the emulator's name, before the prefix's own arguments
    /// (`-plugin ...`; `-icount shift=0` in system mode).
    pub emulator_args: Vec<String>,
    /// Run with an empty environment (`env -i`), in the binary's directory, as
    /// `./NAME`, so the guest sees the same stack every time.
    pub deterministic: bool,
}

/// `prog` as found on PATH (a cleared environment has no PATH to search).
fn which(prog: &str) -> Result<PathBuf, ToolError> {
    if prog.contains('/') {
        return Ok(PathBuf::from(prog));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join(prog)).find(|p| p.is_file()).ok_or_else(|| ToolError::Missing(prog.into()))
}

fn spawn(cmd: &mut Command) -> Result<std::process::Output, ToolError> {
    let prog = cmd.get_program().to_string_lossy().to_string();
    cmd.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ToolError::Missing(prog),
        _ => ToolError::Failed(format!("cannot run '{prog}': {e}")),
    })
}

impl Toolchain {
    /// Compiles and links `inputs` (C sources and objects) into `exe`.
    pub fn build(&self, inputs: &[PathBuf], include: &Path, exe: &Path) -> Result<(), ToolError> {
        self.build_with(inputs, include, exe, &[])
    }

    /// [`Self::build`] with extra compiler/linker flags (`-no-pie` for counted runs).
    pub fn build_with(&self, inputs: &[PathBuf], include: &Path, exe: &Path, extra: &[&str]) -> Result<(), ToolError> {
        let mut cmd = Command::new(self.cc);
        cmd.args(self.cflags).args(extra).arg("-I").arg(include).args(inputs).arg("-o").arg(exe);
        let out = spawn(&mut cmd)?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let err: String = err.chars().take(4000).collect();
            return Err(ToolError::Failed(format!("{} failed: {err}", self.cc)));
        }
        Ok(())
    }

    /// Runs `exe args...` (under the emulator, if any); returns its stdout.
    pub fn run(&self, exe: &Path, args: &[&Path]) -> Result<String, ToolError> {
        self.run_with(exe, args, &RunConfig::default())
    }

    /// [`Self::run`] with emulator arguments and, if asked, a fixed environment and argv.
    pub fn run_with(&self, exe: &Path, args: &[&Path], cfg: &RunConfig) -> Result<String, ToolError> {
        let exe_arg = match (cfg.deterministic, exe.file_name()) {
            (true, Some(file)) => Path::new(".").join(file),
            _ => exe.to_path_buf(),
        };
        let mut cmd = match self.run_prefix.split_first() {
            Some((emu, rest)) => {
                let mut c = Command::new(which(emu)?);
                c.args(&cfg.emulator_args).args(rest).arg(&exe_arg);
                c
            }
            None => Command::new(&exe_arg),
        };
        if cfg.deterministic {
            cmd.env_clear().current_dir(exe.parent().unwrap_or(Path::new(".")));
        }
        let out = spawn(cmd.args(args))?;
        if !out.status.success() {
            return Err(ToolError::Failed(format!(
                "the driver failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).chars().take(2000).collect::<String>()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    }
}

/// The firmware compiler of a C target and its flags (ISA, FPU, ABI), for
/// `edgec compile --emit obj` on Cortex-M and RV32; `None` for other targets.
pub fn firmware_compiler(target: &str) -> Option<(&'static str, &'static [&'static str])> {
    Some(match target {
        "cortex-m4" => ("arm-none-eabi-gcc", &["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]),
        "cortex-m7" => ("arm-none-eabi-gcc", &["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"]),
        // GCC 12 with MVE emits code its assembler rejects (../shared/TOOLCHAINS.md).
        "cortex-m55" => ("arm-none-eabi-gcc", &["-mcpu=cortex-m55+nomve", "-mthumb", "-mfloat-abi=hard"]),
        "riscv32" => ("riscv64-unknown-elf-gcc", &["-march=rv32imac", "-mabi=ilp32"]),
        _ => return None,
    })
}

/// Compiles C source to a relocatable object with `cc flags -std=c99 -O2 -ffreestanding`.
pub fn compile_object(cc: &str, flags: &[&str], source: &str) -> Result<Vec<u8>, ToolError> {
    let dir = tempfile::tempdir().map_err(|e| ToolError::Failed(e.to_string()))?;
    let (src, obj) = (dir.path().join("model.c"), dir.path().join("model.o"));
    std::fs::write(&src, source).map_err(|e| ToolError::Failed(e.to_string()))?;
    let out = spawn(Command::new(cc).args(flags).args(["-std=c99", "-O2", "-ffreestanding", "-c"]).arg(&src).arg("-o").arg(&obj))?;
    if !out.status.success() {
        return Err(ToolError::Failed(format!("{cc} failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    std::fs::read(&obj).map_err(|e| ToolError::Failed(e.to_string()))
}

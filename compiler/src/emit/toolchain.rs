//! How tests build and run generated code per target: a C compiler (host or cross),
//! its flags, and the command prefix that runs the binary (nothing natively, QEMU user
//! mode for Cortex-A and RV64). One table, so a new target (Cortex-M under
//! `qemu-system-arm`, RV32) is one more row plus its startup code.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::board::{self, Board};
use super::CodeKind;

/// A test target: how to build a driver with the generated code and run it.
#[derive(Clone, Copy, Debug)]
pub struct Toolchain {
    /// The runner's target name (`c-host`, `host`, `cortex-a53`, `cortex-m7`, ...).
    pub name: &'static str,
    /// The `edgec` target the code is generated for.
    pub target: &'static str,
    pub code: CodeKind,
    pub cc: &'static str,
    pub cflags: &'static [&'static str],
    /// ISA, FPU and ABI options (also part of `cflags`): what `--emit obj` uses.
    pub arch_flags: &'static [&'static str],
    /// Prepended to the binary's command line (an emulator), empty to run natively.
    /// Unused for boards.
    pub run_prefix: &'static [&'static str],
    /// A bare-metal board (QEMU system mode): the driver is linked into a firmware
    /// image with the board support of `targets/`, and runs with semihosting I/O.
    pub board: Option<&'static Board>,
}

const HOST_FLAGS: &[&str] = &["-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic"];

/// The ISA options of a microcontroller target (`NAME`, what `--emit obj` uses) and
/// its test build flags (`NAME_ALL`: host flags, freestanding, the ISA's), from one list
/// (../shared/TOOLCHAINS.md). No libc: the board support brings the little the
/// driver needs.
macro_rules! mcu_flags {
    ($isa:ident, $all:ident, [$($f:literal),*]) => {
        const $isa: &[&str] = &[$($f),*];
        const $all: &[&str] = &["-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffreestanding", $($f),*];
    };
}
mcu_flags!(M4, M4_ALL, ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]);
mcu_flags!(M7, M7_ALL, ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-d16", "-mfloat-abi=hard"]);
// GCC 12 with MVE emits code its assembler rejects (../shared/TOOLCHAINS.md).
mcu_flags!(M55, M55_ALL, ["-mcpu=cortex-m55+nomve", "-mthumb", "-mfloat-abi=hard"]);
mcu_flags!(RV32, RV32_ALL, ["-march=rv32imac", "-mabi=ilp32"]);

pub const TOOLCHAINS: &[Toolchain] = &[
    Toolchain { name: "c-host", target: "host", code: CodeKind::C, cc: "cc", cflags: HOST_FLAGS, arch_flags: &[], run_prefix: &[], board: None },
    Toolchain { name: "host", target: "host", code: CodeKind::Object, cc: "cc", cflags: HOST_FLAGS, arch_flags: &[], run_prefix: &[], board: None },
    Toolchain {
        name: "cortex-a53",
        target: "cortex-a53",
        code: CodeKind::Object,
        cc: "aarch64-linux-gnu-gcc",
        cflags: HOST_FLAGS,
        arch_flags: &[],
        run_prefix: &["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"],
        board: None,
    },
    Toolchain {
        name: "c-cortex-a53",
        target: "cortex-a53",
        code: CodeKind::C,
        cc: "aarch64-linux-gnu-gcc",
        cflags: HOST_FLAGS,
        arch_flags: &[],
        run_prefix: &["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"],
        board: None,
    },
    Toolchain {
        name: "riscv64",
        target: "riscv64",
        code: CodeKind::Object,
        cc: "riscv64-linux-gnu-gcc",
        cflags: HOST_FLAGS,
        arch_flags: &[],
        run_prefix: &["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu"],
        board: None,
    },
    Toolchain {
        name: "c-riscv64",
        target: "riscv64",
        code: CodeKind::C,
        cc: "riscv64-linux-gnu-gcc",
        cflags: HOST_FLAGS,
        arch_flags: &[],
        run_prefix: &["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu"],
        board: None,
    },
    Toolchain {
        name: "cortex-m4",
        target: "cortex-m4",
        code: CodeKind::C,
        cc: "arm-none-eabi-gcc",
        cflags: M4_ALL,
        arch_flags: M4,
        run_prefix: &[],
        board: Some(&board::MPS2_AN386),
    },
    Toolchain {
        name: "cortex-m7",
        target: "cortex-m7",
        code: CodeKind::C,
        cc: "arm-none-eabi-gcc",
        cflags: M7_ALL,
        arch_flags: M7,
        run_prefix: &[],
        board: Some(&board::MPS2_AN500),
    },
    Toolchain {
        name: "cortex-m55",
        target: "cortex-m55",
        code: CodeKind::C,
        cc: "arm-none-eabi-gcc",
        cflags: M55_ALL,
        arch_flags: M55,
        run_prefix: &[],
        board: Some(&board::MPS3_AN547),
    },
    Toolchain {
        name: "riscv32",
        target: "riscv32",
        code: CodeKind::C,
        cc: "riscv64-unknown-elf-gcc",
        cflags: RV32_ALL,
        arch_flags: RV32,
        run_prefix: &[],
        board: Some(&board::RISCV32_VIRT),
    },
    Toolchain {
        name: "riscv64-v",
        target: "riscv64-v",
        code: CodeKind::Object,
        cc: "riscv64-linux-gnu-gcc",
        cflags: HOST_FLAGS,
        arch_flags: &[],
        run_prefix: &["qemu-riscv64", "-L", "/usr/riscv64-linux-gnu", "-cpu", "rv64,v=true,vlen=128"],
        board: None,
    },
];

/// How long one firmware run may take before it counts as hung (a locked-up core
/// never exits by itself).
pub const BOARD_TIMEOUT_SECS: u32 = 300;

/// The host toolchain with its binaries run under qemu-x86_64: what instruction counts
/// and `edgec profile --target host` use (native runs cannot be counted).
pub const HOST_EMULATED: Toolchain = Toolchain {
    name: "host",
    target: "host",
    code: CodeKind::Object,
    cc: "cc",
    cflags: HOST_FLAGS,
    arch_flags: &[],
    run_prefix: &["qemu-x86_64"],
    board: None,
};

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
    /// The image does not fit the board's memory (its code region overflowed): the
    /// model is unsupported on that board, not broken.
    #[error("{0}")]
    TooBig(String),
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
    /// Compiles and links `inputs` (C sources and objects) into `exe`. For a board,
    /// `include` also holds the board support files (see [`super::driver`]) and the
    /// image is linked freestanding with the board's linker script.
    pub fn build(&self, inputs: &[PathBuf], include: &Path, exe: &Path) -> Result<(), ToolError> {
        self.build_with(inputs, include, exe, &[])
    }

    /// [`Self::build`] with extra compiler/linker flags (`-no-pie` for counted runs).
    pub fn build_with(&self, inputs: &[PathBuf], include: &Path, exe: &Path, extra: &[&str]) -> Result<(), ToolError> {
        let mut cmd = Command::new(self.cc);
        cmd.args(self.cflags).args(extra).arg("-I").arg(include).args(inputs);
        if let Some(b) = self.board {
            cmd.args(b.sources().iter().map(|s| include.join(s)));
            cmd.arg("-nostdlib").arg("-L").arg(include).arg("-T").arg(include.join(b.linker_script));
            cmd.args(["-Wl,--gc-sections", "-lgcc"]);
        }
        let out = spawn(cmd.arg("-o").arg(exe))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            if let (Some(b), Some(region)) = (self.board, overflowed_region(&err)) {
                let detail = err.lines().find(|l| l.contains("overflowed")).unwrap_or("").trim();
                return Err(ToolError::TooBig(format!(
                    "the image does not fit the {region} region of {} ({} KiB code, {} KiB RAM): {detail}",
                    b.name,
                    b.code_bytes >> 10,
                    b.ram_bytes >> 10
                )));
            }
            let err: String = err.chars().take(4000).collect();
            return Err(ToolError::Failed(format!("{} failed: {err}", self.cc)));
        }
        Ok(())
    }

    /// Runs `exe` on the batch directory `dir` (natively, under QEMU user mode, or as
    /// a firmware image under QEMU system mode with `dir` as its working directory);
    /// returns its stdout, and why it failed if it did (a crash, a nonzero status, a
    /// timeout): the lines printed before a failure still count.
    pub fn run(&self, exe: &Path, dir: &Path) -> Result<(String, Option<String>), ToolError> {
        self.run_with(exe, dir, &RunConfig::default())
    }

    /// [`Self::run`] with emulator arguments (right after the emulator's name) and, if
    /// asked, a fixed environment and argv: an empty environment, `dir` as the working
    /// directory, the driver as `./driver .` in user mode.
    pub fn run_with(&self, exe: &Path, dir: &Path, cfg: &RunConfig) -> Result<(String, Option<String>), ToolError> {
        let out = match self.board {
            Some(b) => {
                // Under `timeout`, a missing emulator would look like a failed run; and
                // with a cleared environment there is no PATH to search.
                let (timeout, qemu) = (which("timeout")?, which(b.qemu[0])?);
                // QEMU runs in `dir` (semihosting paths are relative to it).
                let exe = std::path::absolute(exe).map_err(|e| ToolError::Failed(e.to_string()))?;
                let mut c = Command::new(timeout);
                c.arg(BOARD_TIMEOUT_SECS.to_string()).arg(qemu).args(&cfg.emulator_args).args(&b.qemu[1..]);
                c.args(board::QEMU_COMMON).arg("-kernel").arg(&exe);
                if cfg.deterministic {
                    c.env_clear();
                }
                spawn(c.current_dir(dir).stdin(std::process::Stdio::null()))?
            }
            None => {
                // Deterministic: `./driver .` from inside `dir`, so argv and the paths the
                // driver builds are the same in every batch directory.
                let in_dir = cfg.deterministic && exe.parent() == Some(dir);
                let (exe_arg, dir_arg) = match exe.file_name() {
                    Some(file) if in_dir => (Path::new(".").join(file), Path::new(".")),
                    _ => (exe.to_path_buf(), dir),
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
                    cmd.env_clear().current_dir(dir);
                }
                spawn(cmd.arg(dir_arg))?
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            return Ok((stdout, None));
        }
        let why = match (self.board, out.status.code()) {
            (Some(_), Some(124)) => format!("the firmware did not finish within {BOARD_TIMEOUT_SECS} s (hung?)"),
            (Some(_), Some(70)) => "the firmware faulted (an exception or trap)".to_string(),
            _ => format!(
                "the driver failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).chars().take(2000).collect::<String>()
            ),
        };
        Ok((stdout, Some(why)))
    }

    /// Whether a model with these buffers fits the board's test-data memory (always
    /// true off boards): `Err` says what it needs and what the board has.
    pub fn fits(&self, weights: usize, arena: usize, io: usize) -> Result<(), String> {
        let Some(b) = self.board else { return Ok(()) };
        // Each heap block carries a 16-byte header and rounds up to 16 bytes.
        let need = weights + arena + io + 64 * 16;
        if need > b.heap_bytes {
            return Err(format!(
                "does not fit {}: weights {weights} + arena {arena} + inputs/outputs {io} bytes exceed its {} MiB of RAM for test data",
                b.name,
                b.heap_bytes >> 20
            ));
        }
        Ok(())
    }
}

/// The memory region a GNU ld error says overflowed ("region `FLASH' overflowed").
fn overflowed_region(stderr: &str) -> Option<String> {
    let l = stderr.lines().find(|l| l.contains("overflowed by") || l.contains("will not fit in region"))?;
    let start = l.find("region `").map(|i| i + 8)?;
    let len = l[start..].find('\'')?;
    Some(l[start..start + len].to_string())
}

/// The firmware compiler of a C target and its flags (ISA, FPU, ABI), for
/// `edgec compile --emit obj` on Cortex-M and RV32; `None` for other targets.
pub fn firmware_compiler(target: &str) -> Option<(&'static str, &'static [&'static str])> {
    TOOLCHAINS.iter().find(|t| t.board.is_some() && t.target == target).map(|t| (t.cc, t.arch_flags))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_microcontroller_target_has_a_board() {
        for t in ["cortex-m4", "cortex-m7", "cortex-m55", "riscv32"] {
            let tc = find(t).unwrap();
            assert!(tc.board.is_some() && tc.target == t, "{t}");
            assert_eq!(firmware_compiler(t).map(|(_, f)| f), Some(tc.arch_flags), "{t}");
        }
        assert!(firmware_compiler("cortex-a53").is_none());
    }

    #[test]
    fn models_too_big_for_the_board_are_refused_with_the_reason() {
        let m7 = find("cortex-m7").unwrap();
        assert!(m7.fits(1 << 20, 1 << 20, 1 << 10).is_ok());
        let why = m7.fits(12 << 20, 6 << 20, 0).unwrap_err();
        assert!(why.contains("mps2-an500") && why.contains("16 MiB"), "{why}");
        assert!(find("c-host").unwrap().fits(1 << 40, 0, 0).is_ok());
    }

    #[test]
    fn linker_overflow_names_the_region() {
        let err = "/usr/bin/ld: driver section `.text' will not fit in region `ITCM'\n/usr/bin/ld: region `ITCM' overflowed by 1234 bytes";
        assert_eq!(overflowed_region(err).as_deref(), Some("ITCM"));
        assert_eq!(overflowed_region("undefined reference to `foo'"), None);
    }
}

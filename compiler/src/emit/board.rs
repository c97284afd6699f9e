//! Bare-metal boards the Cortex-M and RV32 targets run on under QEMU system emulation.
//!
//! The board support is real source in the top-level `targets/` folder (start-up code
//! with its own vector table, linker scripts per memory map, semihosting I/O; see
//! targets/README.md); it is embedded here so the `edgec` binary carries it. A test
//! firmware image is the generated C, the test driver ([`super::driver`]) and these
//! files, linked with `-nostdlib` (and libgcc for 64-bit and soft-float helpers).

/// The instruction set family of a board (which start-up file it links).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    CortexM,
    Riscv32,
}

/// A QEMU machine with a memory map and the command that runs an image on it.
#[derive(Debug)]
pub struct Board {
    /// QEMU's machine name (`mps2-an500`, `virt`, ...); also names the linker script.
    pub name: &'static str,
    pub arch: Arch,
    /// The linker script's file name in `targets/`.
    pub linker_script: &'static str,
    /// The emulator and its machine options (before the common options and `-kernel`).
    pub qemu: &'static [&'static str],
    /// Bytes of the image region (code and read-only data), of RAM (.data, .bss, the
    /// stack) and of the heap that holds test data (weights, arenas, inputs, outputs);
    /// the linker script is the authority, these are for checks and messages.
    pub code_bytes: usize,
    pub ram_bytes: usize,
    pub heap_bytes: usize,
}

const MIB: usize = 1 << 20;

pub const MPS2_AN386: Board = Board {
    name: "mps2-an386",
    arch: Arch::CortexM,
    linker_script: "mps2-an386.ld",
    qemu: &["qemu-system-arm", "-M", "mps2-an386"],
    code_bytes: 4 * MIB,
    ram_bytes: 4 * MIB,
    heap_bytes: 16 * MIB,
};

pub const MPS2_AN500: Board = Board {
    name: "mps2-an500",
    arch: Arch::CortexM,
    linker_script: "mps2-an500.ld",
    qemu: &["qemu-system-arm", "-M", "mps2-an500"],
    code_bytes: 4 * MIB,
    ram_bytes: 4 * MIB,
    heap_bytes: 16 * MIB,
};

pub const MPS3_AN547: Board = Board {
    name: "mps3-an547",
    arch: Arch::CortexM,
    linker_script: "mps3-an547.ld",
    qemu: &["qemu-system-arm", "-M", "mps3-an547"],
    code_bytes: 512 << 10,
    ram_bytes: 512 << 10,
    heap_bytes: 16 * MIB,
};

pub const RISCV32_VIRT: Board = Board {
    name: "riscv32-virt",
    arch: Arch::Riscv32,
    linker_script: "riscv32-virt.ld",
    qemu: &["qemu-system-riscv32", "-M", "virt", "-m", "128M", "-bios", "none"],
    code_bytes: 4 * MIB,
    ram_bytes: 4 * MIB,
    heap_bytes: 16 * MIB,
};

/// Options every board run shares: no display or monitor, semihosting on (files
/// relative to QEMU's working directory), and its console on stdout (QEMU 7.2 prints
/// it on stderr without the chardev).
pub const QEMU_COMMON: &[&str] = &[
    "-display",
    "none",
    "-monitor",
    "none",
    "-serial",
    "none",
    "-chardev",
    "stdio,id=s0",
    "-semihosting-config",
    "enable=on,target=native,chardev=s0",
];

/// The board support files, `(file name, contents)`, for every board.
const COMMON_FILES: &[(&str, &str)] = &[
    ("board.h", include_str!("../../../targets/board.h")),
    ("board.c", include_str!("../../../targets/board.c")),
    ("sections.ld", include_str!("../../../targets/sections.ld")),
];
const CORTEX_M_START: (&str, &str) = ("cortex-m.S", include_str!("../../../targets/cortex-m.S"));
const RISCV32_START: (&str, &str) = ("riscv32.S", include_str!("../../../targets/riscv32.S"));
const LINKER_SCRIPTS: &[(&str, &str)] = &[
    ("mps2-an386.ld", include_str!("../../../targets/mps2-an386.ld")),
    ("mps2-an500.ld", include_str!("../../../targets/mps2-an500.ld")),
    ("mps3-an547.ld", include_str!("../../../targets/mps3-an547.ld")),
    ("riscv32-virt.ld", include_str!("../../../targets/riscv32-virt.ld")),
];

impl Board {
    /// The files to write beside the driver: header, C and start-up sources, linker
    /// scripts (this board's and the shared section layout).
    pub fn files(&self) -> Vec<(&'static str, &'static str)> {
        let mut v = COMMON_FILES.to_vec();
        v.push(match self.arch {
            Arch::CortexM => CORTEX_M_START,
            Arch::Riscv32 => RISCV32_START,
        });
        v.extend(LINKER_SCRIPTS.iter().filter(|(n, _)| *n == self.linker_script));
        v
    }

    /// The sources to compile (of [`Board::files`]).
    pub fn sources(&self) -> [&'static str; 2] {
        match self.arch {
            Arch::CortexM => ["board.c", "cortex-m.S"],
            Arch::Riscv32 => ["board.c", "riscv32.S"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_board_has_its_files() {
        for b in [&MPS2_AN386, &MPS2_AN500, &MPS3_AN547, &RISCV32_VIRT] {
            let files = b.files();
            assert!(files.iter().any(|(n, _)| *n == b.linker_script), "{}", b.name);
            for s in b.sources() {
                assert!(files.iter().any(|(n, _)| *n == s), "{} {s}", b.name);
            }
        }
    }
}

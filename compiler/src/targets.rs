//! The targets of the contract: name, ISA and code path, and how tests run their code.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodePath {
    /// Native code through Cranelift (ELF objects).
    Cranelift,
    /// Portable C99 compiled by the firmware's own toolchain.
    C,
}

#[derive(Clone, Copy, Debug)]
pub struct Target {
    pub name: &'static str,
    pub triple: &'static str,
    pub isa: &'static str,
    pub path: CodePath,
    pub emulator: &'static str,
    /// Width of the target's pointers (and so of KIR's `Index` in the C backend): 32 on
    /// the microcontrollers, whose address arithmetic would otherwise be 64-bit pairs.
    pub pointer_bits: u32,
}

pub const TARGETS: &[Target] = &[
    Target { name: "host", triple: "x86_64-unknown-linux-gnu", isa: "the machine's own (x86_64 here)", path: CodePath::Cranelift, emulator: "native", pointer_bits: 64 },
    Target { name: "cortex-a53", triple: "aarch64-unknown-linux-gnu", isa: "aarch64 + NEON", path: CodePath::Cranelift, emulator: "qemu-aarch64", pointer_bits: 64 },
    Target { name: "cortex-a55", triple: "aarch64-unknown-linux-gnu", isa: "aarch64 + NEON", path: CodePath::Cranelift, emulator: "qemu-aarch64", pointer_bits: 64 },
    Target { name: "cortex-a72", triple: "aarch64-unknown-linux-gnu", isa: "aarch64 + NEON", path: CodePath::Cranelift, emulator: "qemu-aarch64", pointer_bits: 64 },
    Target { name: "cortex-a76", triple: "aarch64-unknown-linux-gnu", isa: "aarch64 + NEON", path: CodePath::Cranelift, emulator: "qemu-aarch64", pointer_bits: 64 },
    Target { name: "riscv64", triple: "riscv64gc-unknown-linux-gnu", isa: "rv64gc", path: CodePath::Cranelift, emulator: "qemu-riscv64", pointer_bits: 64 },
    Target { name: "riscv64-v", triple: "riscv64gc-unknown-linux-gnu", isa: "rv64gcv (VLEN >= 128)", path: CodePath::Cranelift, emulator: "qemu-riscv64 -cpu rv64,v=true,vlen=128", pointer_bits: 64 },
    Target { name: "cortex-m4", triple: "thumbv7em-none-eabihf", isa: "Thumb-2 + FPv4-SP + DSP", path: CodePath::C, emulator: "qemu-system-arm -M mps2-an386", pointer_bits: 32 },
    Target { name: "cortex-m7", triple: "thumbv7em-none-eabihf", isa: "Thumb-2 + FPv5-D16 + DSP", path: CodePath::C, emulator: "qemu-system-arm -M mps2-an500", pointer_bits: 32 },
    Target { name: "cortex-m55", triple: "thumbv8.1m.main-none-eabihf", isa: "Armv8.1-M + FPU (+MVE)", path: CodePath::C, emulator: "qemu-system-arm -M mps3-an547", pointer_bits: 32 },
    Target { name: "riscv32", triple: "riscv32imac-unknown-none-elf", isa: "rv32imac", path: CodePath::C, emulator: "qemu-system-riscv32", pointer_bits: 32 },
];

/// Looks a target up by contract name or by a full triple (the first target with it).
pub fn find(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name).or_else(|| TARGETS.iter().find(|t| t.triple == name))
}

//! Flash and RAM of the MCU targets (Cortex-M, RV32): what the compile report prints,
//! what the manifest records, and what `--flash-budget` / `--ram-budget` check.
//!
//! - flash = code + weights. Code is the `text + data` of the C source compiled by the
//!   target's cross compiler at `-O2` (measured with its `size`, see [`super::firmware`])
//!   or, without the cross compiler, an estimate from the C source's length, labelled
//!   as such. Weights are the whole blob, embedded or not (it lives in flash either way
//!   on these parts).
//! - RAM = arena + the inputs and outputs + the code's own `data + bss` (0 for edgec's
//!   code) + the stack, estimated from `-fstack-usage` when the cross compiler ran.
//!
//! The default budgets are those of a typical part per target (docs/compile.md).

use serde::Serialize;

use crate::targets::{CodePath, Target};

/// True for the targets whose report has flash and RAM figures.
pub fn is_mcu(target: &Target) -> bool {
    target.path == CodePath::C
}

/// Flash and RAM available, bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub flash: usize,
    pub ram: usize,
}

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// The default budget of an MCU target, after a common part of its class.
pub fn default_budget(target: &Target) -> Option<Budget> {
    Some(match target.name {
        // nRF52840-class (1 MiB flash, 256 KiB RAM).
        "cortex-m4" => Budget { flash: MIB, ram: 256 * KIB },
        // STM32H743-class (2 MiB flash, 1 MiB RAM).
        "cortex-m7" => Budget { flash: 2 * MIB, ram: MIB },
        // A mid-range Armv8.1-M part (2 MiB flash, 1 MiB RAM).
        "cortex-m55" => Budget { flash: 2 * MIB, ram: MIB },
        // ESP32-C3-class (4 MiB flash, 400 KiB RAM).
        "riscv32" => Budget { flash: 4 * MIB, ram: 400 * KIB },
        _ if is_mcu(target) => Budget { flash: MIB, ram: 256 * KIB },
        _ => return None,
    })
}

/// The code's own sections, from the cross compiler or estimated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeSize {
    /// Machine code and read-only data.
    pub text: usize,
    /// Initialised data (in flash, copied to RAM).
    pub data: usize,
    pub bss: usize,
    pub measured: bool,
}

impl CodeSize {
    /// Without a cross compiler: the C source's length / 10, the ratio of the `-O2`
    /// Cortex-M7 text to the source measured on the reference models (0.08 to 0.10).
    pub fn estimate(c_source_len: usize) -> CodeSize {
        CodeSize { text: c_source_len.div_ceil(10), data: 0, bss: 0, measured: false }
    }
}

/// The figures of the report and the manifest (flattened into `NAME.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Footprint {
    pub flash_bytes: usize,
    pub flash_code_bytes: usize,
    pub flash_weights_bytes: usize,
    pub ram_bytes: usize,
    pub ram_arena_bytes: usize,
    pub ram_io_bytes: usize,
    pub ram_static_bytes: usize,
    /// `null` when the cross compiler did not run.
    pub ram_stack_bytes: Option<usize>,
    /// `"measured"` (the cross compiler's object) or `"estimated"`.
    pub code_size: &'static str,
    pub flash_budget: usize,
    pub ram_budget: usize,
}

impl Footprint {
    pub fn new(code: CodeSize, weights: usize, arena: usize, io: usize, stack: Option<usize>, budget: Budget) -> Footprint {
        let code_bytes = code.text + code.data;
        let statics = code.data + code.bss;
        Footprint {
            flash_bytes: code_bytes + weights,
            flash_code_bytes: code_bytes,
            flash_weights_bytes: weights,
            ram_bytes: arena + io + statics + stack.unwrap_or(0),
            ram_arena_bytes: arena,
            ram_io_bytes: io,
            ram_static_bytes: statics,
            ram_stack_bytes: stack,
            code_size: if code.measured { "measured" } else { "estimated" },
            flash_budget: budget.flash,
            ram_budget: budget.ram,
        }
    }

    /// The report's two lines.
    pub fn report_lines(&self) -> [String; 2] {
        let code = if self.code_size == "measured" { "code" } else { "code, estimated: no cross compiler" };
        let stack = match self.ram_stack_bytes {
            Some(s) => format!(" + {s} (stack, -fstack-usage)"),
            None => " + the stack (not estimated: no cross compiler)".into(),
        };
        let statics = if self.ram_static_bytes > 0 { format!(" + {} (static data)", self.ram_static_bytes) } else { String::new() };
        [
            format!(
                "flash:   {} bytes = {} ({code}) + {} (weights); budget {} ({:.1}%)",
                self.flash_bytes,
                self.flash_code_bytes,
                self.flash_weights_bytes,
                self.flash_budget,
                percent(self.flash_bytes, self.flash_budget)
            ),
            format!(
                "RAM:     {} bytes = {} (arena) + {} (inputs and outputs){statics}{stack}; budget {} ({:.1}%)",
                self.ram_bytes,
                self.ram_arena_bytes,
                self.ram_io_bytes,
                self.ram_budget,
                percent(self.ram_bytes, self.ram_budget)
            ),
        ]
    }

    /// `Err` naming what does not fit and by how much.
    pub fn check(&self, target: &str) -> Result<(), String> {
        let mut over = Vec::new();
        if self.flash_bytes > self.flash_budget {
            let est = if self.code_size == "measured" { "" } else { ", code size estimated" };
            over.push(format!(
                "flash: {} bytes needed ({} code{est} + {} weights) but the flash budget is {} bytes: {} bytes ({:.1}%) over; \
                 raise --flash-budget if the part has more",
                self.flash_bytes,
                self.flash_code_bytes,
                self.flash_weights_bytes,
                self.flash_budget,
                self.flash_bytes - self.flash_budget,
                percent(self.flash_bytes - self.flash_budget, self.flash_budget)
            ));
        }
        if self.ram_bytes > self.ram_budget {
            over.push(format!(
                "RAM: {} bytes needed ({} arena + {} inputs and outputs + {} static + {} stack) but the RAM budget is {} bytes: \
                 {} bytes ({:.1}%) over; raise --ram-budget if the part has more",
                self.ram_bytes,
                self.ram_arena_bytes,
                self.ram_io_bytes,
                self.ram_static_bytes,
                self.ram_stack_bytes.unwrap_or(0),
                self.ram_budget,
                self.ram_bytes - self.ram_budget,
                percent(self.ram_bytes - self.ram_budget, self.ram_budget)
            ));
        }
        if over.is_empty() {
            Ok(())
        } else {
            Err(format!("the model does not fit the {target} budget (nothing was written):\n  {}", over.join("\n  ")))
        }
    }
}

fn percent(a: usize, b: usize) -> f64 {
    if b == 0 {
        f64::INFINITY
    } else {
        a as f64 * 100.0 / b as f64
    }
}

/// `123`, `512K`, `2M`, `1MiB`, `64KB` (K = 1024, M = 1024²): bytes.
pub fn parse_bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("'{s}' is not a byte count (e.g. 262144, 256K, 2M)"))?;
    let mul = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB,
        "m" | "mb" | "mib" => MIB,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use K or M, 1024-based)")),
    };
    n.checked_mul(mul).ok_or_else(|| format!("'{s}' is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts() {
        assert_eq!(parse_bytes("123"), Ok(123));
        assert_eq!(parse_bytes("256K"), Ok(256 * 1024));
        assert_eq!(parse_bytes("2M"), Ok(2 << 20));
        assert_eq!(parse_bytes("1MiB"), Ok(1 << 20));
        assert_eq!(parse_bytes("64kb"), Ok(64 << 10));
        for bad in ["", "K", "1.5M", "2G", "-1"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sums_and_budget_messages() {
        let code = CodeSize { text: 1000, data: 8, bss: 4, measured: true };
        let f = Footprint::new(code, 5000, 800, 100, Some(64), Budget { flash: 6000, ram: 900 });
        assert_eq!(f.flash_bytes, 6008);
        assert_eq!(f.ram_bytes, 800 + 100 + 12 + 64);
        let e = f.check("cortex-m7").unwrap_err();
        assert!(e.contains("flash: 6008 bytes needed") && e.contains("8 bytes (0.1%) over"), "{e}");
        assert!(e.contains("RAM: 976 bytes needed") && e.contains("76 bytes"), "{e}");
        let ok = Footprint::new(code, 10, 10, 10, None, Budget { flash: 1 << 20, ram: 1 << 20 });
        assert!(ok.check("cortex-m7").is_ok());
        assert_eq!(ok.code_size, "measured");
    }

    #[test]
    fn every_mcu_target_has_a_budget() {
        for t in crate::targets::TARGETS {
            assert_eq!(default_budget(t).is_some(), is_mcu(t), "{}", t.name);
        }
    }
}

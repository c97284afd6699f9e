//! Contract target name → Cranelift ISA, with the features code generation relies on.
//!
//! Every target is 64-bit and little-endian, so KIR's `Index` is `I64` everywhere.
//! What the ISA can do without a libcall is summarised in [`Caps`]: the generated code
//! must link against nothing, so operations Cranelift would turn into calls to libm
//! (`floorf`, `fmaf` ...) are emulated instead when the ISA lacks them.

use std::str::FromStr;

use cranelift_codegen::isa::{self, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use target_lexicon::{Architecture, Triple};

use crate::back::BackendError;
use crate::targets::Target;

/// What the selected ISA implements inline.
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    /// `floor`, `ceil`, `trunc`, `nearest` (x86_64 needs SSE4.1).
    pub rounding: bool,
    /// Fused multiply-add (x86_64 needs FMA).
    pub fma: bool,
    /// 128-bit SIMD (`f32x4`) for the vectoriser.
    pub simd128: bool,
    /// A vector fma can take one lane of a register as the splatted factor (aarch64's
    /// `fmla` by element): four consecutive A factors are loaded as one vector.
    pub lane_fma: bool,
    /// The vector fma writes its result over one of the two factors (x86_64: Cranelift
    /// only selects `vfmadd213ps`/`vfmadd132ps`, never the accumulator-tied
    /// `vfmadd231ps`): a register block broadcasts the A factor from memory for each fma,
    /// so the register overwritten is one that dies there rather than a copy of a factor
    /// that is still live (see `block::KernelCx::block_loop`).
    pub fma_overwrites_factor: bool,
}

fn failed(what: impl std::fmt::Display) -> BackendError {
    BackendError::Failed { backend: "cranelift", what: what.to_string() }
}

fn unsupported(what: impl Into<String>) -> BackendError {
    BackendError::Unsupported { backend: "cranelift", what: what.into() }
}

/// Builds the ISA for a contract target. `host` detects the machine's own features.
pub fn for_target(target: &Target) -> Result<(OwnedTargetIsa, Caps), BackendError> {
    let mut flags = settings::builder();
    for (k, v) in [("opt_level", "speed"), ("is_pic", "true"), ("enable_verifier", "true"), ("preserve_frame_pointers", "false")] {
        flags.set(k, v).map_err(failed)?;
    }
    let flags = settings::Flags::new(flags);
    let (builder, caps) = match target.name {
        "host" => {
            let b = cranelift_native::builder().map_err(|e| unsupported(format!("host ISA: {e}")))?;
            let simd128 = matches!(b.triple().architecture, Architecture::X86_64 | Architecture::Aarch64(_));
            // x86_64's optional features are read back from the finished ISA below.
            let lane_fma = matches!(b.triple().architecture, Architecture::Aarch64(_));
            (b, Caps { rounding: true, fma: true, simd128, lane_fma, fma_overwrites_factor: false })
        }
        "cortex-a53" | "cortex-a55" | "cortex-a72" | "cortex-a76" => {
            (lookup("aarch64-unknown-linux-gnu")?, Caps { rounding: true, fma: true, simd128: true, lane_fma: true, fma_overwrites_factor: false })
        }
        "riscv64" | "riscv64-v" => {
            let mut b = lookup("riscv64gc-unknown-linux-gnu")?;
            // `has_c` is a preset (it implies Zca/Zcd), hence `enable`, not `set`.
            b.enable("has_c").map_err(failed)?;
            let v = target.name == "riscv64-v";
            if v {
                b.enable("has_v").map_err(failed)?;
            }
            // The vectoriser only emits f32x4; on riscv64 it stays scalar (Cranelift's
            // RVV support is partial), so `has_v` only lets Cranelift use it itself.
            (b, Caps { rounding: true, fma: true, simd128: false, lane_fma: false, fma_overwrites_factor: false })
        }
        other => return Err(unsupported(format!("target '{other}' (Cranelift generates x86_64, aarch64 and riscv64 only)"))),
    };
    let isa = builder.finish(flags).map_err(failed)?;
    let caps = match isa.triple().architecture {
        Architecture::X86_64 => {
            Caps { rounding: isa_flag(&*isa, "has_sse41"), fma: isa_flag(&*isa, "has_fma"), fma_overwrites_factor: true, ..caps }
        }
        _ => caps,
    };
    if isa.pointer_bits() != 64 {
        return Err(unsupported(format!("{}-bit pointers", isa.pointer_bits())));
    }
    Ok((isa, caps))
}

fn lookup(triple: &str) -> Result<isa::Builder, BackendError> {
    let t = Triple::from_str(triple).map_err(failed)?;
    isa::lookup(t).map_err(failed)
}

/// A boolean ISA setting (false when absent).
fn isa_flag(isa: &dyn isa::TargetIsa, name: &str) -> bool {
    isa.isa_flags().iter().any(|v| v.name == name && v.as_bool() == Some(true))
}

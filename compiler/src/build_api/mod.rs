//! The library API for build scripts: compile an ONNX model from `build.rs`.
//!
//! ```ignore
//! // build.rs
//! fn main() -> Result<(), edgec::BuildError> {
//!     edgec::Build::new("models/net.onnx").target_from_cargo().name("net").compile()?;
//!     Ok(())
//! }
//! // src/main.rs
//! include!(concat!(env!("OUT_DIR"), "/net.rs"));
//! let mut arena = net::Arena::take().unwrap();
//! net::run(net::weights(), arena, &net::Inputs { x: &x }, &mut net::Outputs { y: &mut y })?;
//! ```
//!
//! [`Build::compile`] runs the same pipeline as `edgec compile`, writes the artifacts
//! into `OUT_DIR`, makes them part of the crate as a static library `libNAME.a` (the
//! Cranelift object archived, or the C code of the MCU targets compiled by the `cc` crate
//! with the target's cross compiler), prints `cargo:rerun-if-changed` for the model, and
//! writes `NAME.rs` ([`rust_module`]): a typed module over `edgec-runtime`.
//! docs/integration-rust.md is the guide.

pub mod rust_module;

use std::path::{Path, PathBuf};

use crate::emit::{self, CodeKind, CompileOptions};
use crate::pipeline::{prepare, Bindings};
use crate::targets::{self, CodePath, Target};

/// Why a build-script compile failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// No target given, and Cargo's `TARGET` is missing or maps to no edgec target.
    #[error("{0}")]
    Target(String),
    /// The model does not compile (invalid, unsupported, does not fit ...).
    #[error("{path}: {source}")]
    Compile {
        path: String,
        #[source]
        source: crate::Error,
    },
    /// The model's interface has no typed Rust form (e.g. float16 inputs).
    #[error("{0}")]
    Interface(String),
    /// A required environment variable (OUT_DIR outside a build script) is missing.
    #[error("{0}")]
    Env(String),
    /// The C compiler failed on the generated code.
    #[error("compiling the generated C: {0}")]
    CCompile(String),
    #[error("cannot write '{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The edgec target for a Rust target triple (Cargo's `TARGET`): the first fit; a
/// `thumbv7em-none-eabihf` build is a Cortex-M7 unless [`Build::target`] says
/// `cortex-m4`.
pub fn target_for_triple(triple: &str) -> Option<&'static str> {
    let arch = triple.split('-').next().unwrap_or("");
    Some(match arch {
        "x86_64" if cfg!(target_arch = "x86_64") => "host",
        "aarch64" if cfg!(target_arch = "aarch64") && triple.contains("linux") => "host",
        "aarch64" => "cortex-a53",
        "riscv64gc" | "riscv64" => "riscv64",
        "thumbv7em" if triple.ends_with("eabihf") => "cortex-m7",
        "thumbv8m.main" | "thumbv8.1m.main" if triple.ends_with("eabihf") => "cortex-m55",
        a if a.starts_with("riscv32") => "riscv32",
        _ => return None,
    })
}

/// What [`Build::compile`] made.
#[derive(Debug, Clone)]
pub struct Built {
    pub name: String,
    pub target: &'static Target,
    pub out_dir: PathBuf,
    /// `OUT_DIR/NAME.rs`, the typed module.
    pub rust_module: PathBuf,
    /// Every file written.
    pub files: Vec<PathBuf>,
    pub arena_bytes: usize,
    pub weights_bytes: usize,
    pub code_bytes: usize,
}

/// A model compile from a build script; see the module docs.
#[derive(Clone, Debug)]
pub struct Build {
    model: PathBuf,
    target: Option<String>,
    from_cargo: bool,
    name: Option<String>,
    bindings: Bindings,
    embed_weights: bool,
    weights_section: String,
    out_dir: Option<PathBuf>,
    cargo_metadata: Option<bool>,
    link: bool,
}

/// The section of embedded weights in C builds: a `.rodata.*` name, so any linker
/// script that keeps read-only data in flash (cortex-m-rt's `link.x`, targets/sections.ld)
/// places them without changes.
pub const DEFAULT_WEIGHTS_SECTION: &str = ".rodata.edgec_weights";

impl Build {
    pub fn new(model: impl AsRef<Path>) -> Build {
        Build {
            model: model.as_ref().to_path_buf(),
            target: None,
            from_cargo: false,
            name: None,
            bindings: Bindings::default(),
            embed_weights: false,
            weights_section: DEFAULT_WEIGHTS_SECTION.to_string(),
            out_dir: None,
            cargo_metadata: None,
            link: true,
        }
    }

    /// The edgec target (`host`, `cortex-m4`, ... or a triple); wins over
    /// [`Build::target_from_cargo`] whatever the order of the calls.
    pub fn target(mut self, target: &str) -> Build {
        self.target = Some(target.to_string());
        self
    }

    /// Takes the target from Cargo's `TARGET` ([`target_for_triple`]).
    pub fn target_from_cargo(mut self) -> Build {
        self.from_cargo = true;
        self
    }

    /// The prefix of every symbol and file (default: the model's stem as a C identifier).
    pub fn name(mut self, name: &str) -> Build {
        self.name = Some(name.to_string());
        self
    }

    /// Fixes a symbolic dimension (`--dim SYMBOL=VALUE`).
    pub fn dim(mut self, symbol: &str, value: usize) -> Build {
        self.bindings.dims.insert(symbol.to_string(), value);
        self
    }

    /// Fixes an input's whole shape (`--input-shape`).
    pub fn input_shape(mut self, input: &str, shape: &[usize]) -> Build {
        self.bindings.input_shapes.insert(input.to_string(), shape.to_vec());
        self
    }

    /// Puts the weights into the code (flash) instead of `NAME.weights` (default false).
    pub fn embed_weights(mut self, embed: bool) -> Build {
        self.embed_weights = embed;
        self
    }

    /// The section of embedded weights on C targets (default [`DEFAULT_WEIGHTS_SECTION`]).
    pub fn weights_section(mut self, section: &str) -> Build {
        self.weights_section = section.to_string();
        self
    }

    /// Where the files go (default: Cargo's `OUT_DIR`).
    pub fn out_dir(mut self, dir: impl AsRef<Path>) -> Build {
        self.out_dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Whether to print `cargo:` lines (default: when `OUT_DIR` is set, i.e. in build.rs).
    pub fn cargo_metadata(mut self, on: bool) -> Build {
        self.cargo_metadata = Some(on);
        self
    }

    /// Whether to link the code into the crate (default true); false only writes files.
    pub fn link(mut self, on: bool) -> Build {
        self.link = on;
        self
    }

    fn resolve_target(&self) -> Result<&'static Target, BuildError> {
        let name = match (&self.target, self.from_cargo) {
            (Some(t), _) => t.clone(),
            (None, true) => {
                let triple = std::env::var("TARGET").map_err(|_| BuildError::Target("target_from_cargo(): TARGET is not set (not in a build script?); use .target(..)".into()))?;
                target_for_triple(&triple)
                    .ok_or_else(|| BuildError::Target(format!("no edgec target for the Rust target '{triple}'; choose one with .target(..) (edgec targets)")))?
                    .to_string()
            }
            (None, false) => "host".to_string(),
        };
        targets::find(&name).ok_or_else(|| BuildError::Target(format!("unknown target '{name}' (edgec targets lists them)")))
    }

    /// Compiles the model; see the module docs.
    pub fn compile(&self) -> Result<Built, BuildError> {
        let target = self.resolve_target()?;
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => PathBuf::from(std::env::var_os("OUT_DIR").ok_or_else(|| BuildError::Env("OUT_DIR is not set (not in a build script?); use .out_dir(..)".into()))?),
        };
        let cargo = self.cargo_metadata.unwrap_or_else(|| std::env::var_os("OUT_DIR").is_some());
        if cargo {
            println!("cargo:rerun-if-changed={}", self.model.display());
        }
        let name = match &self.name {
            Some(n) => n.clone(),
            None => c_identifier(&self.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()),
        };
        if c_identifier(&name) != name {
            return Err(BuildError::Interface(format!("the name '{name}' is not a C identifier")));
        }
        rust_module::check_module_name(&name)?;
        emit::weights_asm::check_section_name(&self.weights_section).map_err(BuildError::Interface)?;
        let failed = |source| BuildError::Compile { path: self.model.display().to_string(), source };
        let model = crate::front::onnx::load(&self.model).map_err(failed)?;
        model.check_supported().map_err(failed)?;
        let ops_before = model.graph.op_histogram().values().sum();
        let graph = prepare(model.graph, &self.bindings).map_err(failed)?;
        let opts = CompileOptions { name: &name, target, code: CodeKind::default_for(target), embed_weights: self.embed_weights };
        let mut art = emit::compile(&graph, ops_before, &opts).map_err(failed)?;
        art.set_weights_section(&self.weights_section);
        let mut files = emit::write::write_all(&out_dir, &art.files()).map_err(failed)?;
        let weights_file = art.weights.as_ref().map(|_| out_dir.join(format!("{name}.weights")));
        let module = rust_module::module(&art, &self.model, weights_file.as_deref())?;
        let rs = out_dir.join(format!("{name}.rs"));
        std::fs::write(&rs, module).map_err(|source| BuildError::Io { path: rs.display().to_string(), source })?;
        files.push(rs.clone());
        if self.link {
            match target.path {
                CodePath::Cranelift => files.push(self.archive(target, &name, &out_dir, cargo)?),
                CodePath::C => files.push(self.compile_c(target, &name, &out_dir, art.weights_asm.is_some(), cargo)?),
            }
        }
        Ok(Built {
            name,
            target,
            out_dir,
            rust_module: rs,
            files,
            arena_bytes: art.report.arena_bytes,
            weights_bytes: art.report.weights_bytes,
            code_bytes: art.report.code_bytes,
        })
    }

    /// A `cc` build for `target`: Cargo's TARGET when it is this target's triple (it may
    /// be a variant cc knows better), else the target's own triple.
    fn cc_build(&self, target: &'static Target, out_dir: &Path, cargo: bool) -> (cc::Build, String) {
        let triple = std::env::var("TARGET").ok().filter(|t| target_for_triple(t).and_then(targets::find).map(|x| x.triple) == Some(target.triple)).unwrap_or_else(|| target.triple.to_string());
        let host = std::env::var("HOST").unwrap_or_else(|_| targets::find("host").map_or("x86_64-unknown-linux-gnu", |t| t.triple).to_string());
        let mut b = cc::Build::new();
        b.target(&triple).host(&host).opt_level(2).debug(false).out_dir(out_dir).cargo_metadata(cargo).warnings(false);
        (b, triple)
    }

    /// NAME.o (Cranelift) → `libNAME.a` with the target's archiver, linked as a static
    /// library: unlike a link argument, it travels inside the rlib to every crate that
    /// depends on this one.
    fn archive(&self, target: &'static Target, name: &str, out_dir: &Path, cargo: bool) -> Result<PathBuf, BuildError> {
        let (mut b, _) = self.cc_build(target, out_dir, cargo);
        b.object(out_dir.join(format!("{name}.o")));
        b.try_compile(name).map_err(|e| BuildError::CCompile(e.to_string()))?;
        Ok(out_dir.join(format!("lib{name}.a")))
    }

    /// NAME.c (and NAME_weights.S) → `libNAME.a` through the `cc` crate. The compiler is
    /// `CC_<triple>`/`TARGET_CC`/`CC` when set, else the target's cross GCC; the flags are
    /// the target's ISA/FPU/ABI ones (as `edgec compile --emit obj` uses).
    fn compile_c(&self, target: &'static Target, name: &str, out_dir: &Path, asm_weights: bool, cargo: bool) -> Result<PathBuf, BuildError> {
        let (mut b, triple) = self.cc_build(target, out_dir, cargo);
        let env_cc = ["CC_".to_string() + &triple.replace('-', "_"), format!("CC_{triple}"), "TARGET_CC".into()]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        if let Some((cc, flags)) = emit::toolchain::firmware_compiler(target.name) {
            if !env_cc {
                b.compiler(cc);
            }
            for f in flags {
                b.flag(f);
            }
        }
        b.flag("-std=c99").flag("-ffreestanding").include(out_dir).file(out_dir.join(format!("{name}.c")));
        if asm_weights {
            b.file(out_dir.join(format!("{name}_weights.S")));
        }
        b.try_compile(name).map_err(|e| BuildError::CCompile(e.to_string()))?;
        Ok(out_dir.join(format!("lib{name}.a")))
    }
}

/// A file stem as a C identifier (as `edgec compile` names a model by default).
fn c_identifier(stem: &str) -> String {
    let mut s: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triples_map_to_targets() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(target_for_triple("aarch64-unknown-linux-gnu"), Some("cortex-a53"));
        assert_eq!(target_for_triple("riscv64gc-unknown-linux-gnu"), Some("riscv64"));
        assert_eq!(target_for_triple("thumbv7em-none-eabihf"), Some("cortex-m7"));
        assert_eq!(target_for_triple("thumbv8m.main-none-eabihf"), Some("cortex-m55"));
        assert_eq!(target_for_triple("riscv32imac-unknown-none-elf"), Some("riscv32"));
        assert_eq!(target_for_triple("thumbv6m-none-eabi"), None);
        assert_eq!(target_for_triple("x86_64-unknown-linux-gnu"), Some("host"));
    }

    #[test]
    fn explicit_target_wins() {
        let b = Build::new("m.onnx").target_from_cargo().target("cortex-m4");
        assert_eq!(b.resolve_target().unwrap().name, "cortex-m4");
        assert!(Build::new("m.onnx").target("nope").resolve_target().is_err());
    }
}

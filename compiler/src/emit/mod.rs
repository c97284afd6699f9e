//! The compile path after the graph passes, and its output files.
//!
//! [`compile`] takes a prepared graph through lowering, math expansion, layout and a
//! backend, and returns every artifact in memory: `NAME.h` ([`header`]), the code
//! (`NAME.c` or `NAME.o`), `NAME.weights` ([`blob`]) and `NAME.json` ([`manifest`]).
//! Nothing touches the disk until [`write::write_all`], so a failure anywhere leaves
//! no partial output. [`toolchain`] and [`driver`] build and run generated code for
//! tests (`edgec verify`, the node-test runner). For the MCU targets, [`footprint`]
//! accounts flash and RAM, [`firmware`] runs the cross compiler at compile time, and
//! [`weights_asm`] places embedded weights in a section of their own.

pub mod blob;
pub mod board;
pub mod bytes;
pub mod driver;
pub mod family;
pub mod firmware;
pub mod footprint;
pub mod header;
pub mod html;
pub mod icount;
pub mod manifest;
pub mod toolchain;
pub mod weights_asm;
pub mod write;

use crate::back::{self, BackendError, EmitOptions};
use crate::error::{Error, Result};
use crate::ir::{DType, Graph};
use crate::kir::Program;
use crate::plan::layout::{self, Layout, ARENA_ALIGN};
use crate::targets::{CodePath, Target};

/// Which backend generates the code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeKind {
    /// C99 source (`NAME.c`).
    C,
    /// A relocatable ELF object (`NAME.o`) from Cranelift.
    Object,
}

impl CodeKind {
    /// The target's default: C for the C targets (Cortex-M, RV32), objects otherwise.
    pub fn default_for(target: &Target) -> CodeKind {
        match target.path {
            CodePath::C => CodeKind::C,
            CodePath::Cranelift => CodeKind::Object,
        }
    }
}

#[derive(Clone, Debug)]
pub struct CompileOptions<'a> {
    pub name: &'a str,
    pub target: &'static Target,
    pub code: CodeKind,
    pub embed_weights: bool,
}

/// A graph input or output as the header and manifest describe it.
#[derive(Clone, Debug)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<usize>,
}

/// What the header and manifest describe.
pub struct Interface<'a> {
    pub name: &'a str,
    pub target: &'a str,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    pub weights_size: usize,
    pub arena_size: usize,
    pub arena_align: usize,
    pub embedded: bool,
}

/// The compile report's figures (also in the manifest).
#[derive(Clone, Debug)]
pub struct Report {
    pub ops_before: usize,
    pub ops_after: usize,
    pub kernels: usize,
    pub weights_bytes: usize,
    pub arena_bytes: usize,
    pub arena_lower_bound: usize,
    pub code_kind: &'static str,
    pub code_bytes: usize,
    pub model_hash: u64,
    /// Flash and RAM (MCU targets only).
    pub footprint: Option<footprint::Footprint>,
}

/// The generated code.
#[derive(Clone)]
pub enum Code {
    C(String),
    Object(Vec<u8>),
}

/// Embedded weights on an MCU target: `NAME_weights.S` (`source`, placing the blob in
/// `section`) and `NAME_weights.bin` (`blob`), beside a `NAME.c` that declares them.
#[derive(Clone)]
pub struct WeightsAsm {
    pub section: String,
    pub source: String,
    pub blob: Vec<u8>,
}

/// Everything a compilation produces, not yet written.
#[derive(Clone)]
pub struct Artifacts {
    pub name: String,
    pub target: &'static Target,
    pub header: String,
    pub code: Code,
    /// `None` with embedded weights.
    pub weights: Option<Vec<u8>>,
    /// Embedded weights of C code for an MCU target (see [`weights_asm`]).
    pub weights_asm: Option<WeightsAsm>,
    pub manifest: String,
    pub report: Report,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
    /// The schedule and memory plan, for `--report FILE.html`.
    pub timeline: html::Timeline,
}

impl Artifacts {
    /// `(file name, contents)` of every file to write.
    pub fn files(&self) -> Vec<(String, &[u8])> {
        let n = &self.name;
        let mut v: Vec<(String, &[u8])> = vec![(format!("{n}.h"), self.header.as_bytes())];
        match &self.code {
            Code::C(s) => v.push((format!("{n}.c"), s.as_bytes())),
            Code::Object(o) => v.push((format!("{n}.o"), o.as_slice())),
        }
        if let Some(w) = &self.weights {
            v.push((format!("{n}.weights"), w.as_slice()));
        }
        if let Some(w) = &self.weights_asm {
            v.push((format!("{n}_weights.S"), w.source.as_bytes()));
            v.push((format!("{n}_weights.bin"), w.blob.as_slice()));
        }
        v.push((format!("{n}.json"), self.manifest.as_bytes()));
        v
    }

    /// Puts embedded weights (MCU targets) in `section` instead of the default.
    pub fn set_weights_section(&mut self, section: &str) {
        if let Some(w) = &mut self.weights_asm {
            w.section = section.to_string();
            w.source = weights_asm::source(&self.name, section, w.blob.len());
        }
    }

    /// Replaces the C code by the cross compiler's object (embedded weights linked in).
    pub fn set_object(&mut self, object: Vec<u8>) {
        self.report.code_bytes = object.len();
        self.report.code_kind = "obj";
        self.code = Code::Object(object);
        self.weights_asm = None;
        self.refresh_manifest();
    }

    /// Replaces the flash/RAM figures (measured by [`firmware::build`]).
    pub fn set_footprint(&mut self, f: footprint::Footprint) {
        self.report.footprint = Some(f);
        self.refresh_manifest();
    }

    fn refresh_manifest(&mut self) {
        let iface = self.interface();
        self.manifest = manifest::manifest(&iface, &self.report);
    }

    fn interface(&self) -> Interface<'_> {
        let embedded = self.weights.is_none();
        Interface {
            name: &self.name,
            target: self.target.name,
            inputs: self.inputs.clone(),
            outputs: self.outputs.clone(),
            weights_size: if embedded { 0 } else { self.report.weights_bytes },
            arena_size: self.report.arena_bytes,
            arena_align: ARENA_ALIGN,
            embedded,
        }
    }
}

/// Bytes of the inputs and outputs together.
fn io_bytes(list: &[TensorInfo]) -> usize {
    list.iter().map(|t| t.dtype.storage_bytes(t.shape.iter().product::<usize>())).sum()
}

/// A backend failure as a compiler error: unsupported stays unsupported (exit 1, and
/// "unsupported" in the test runners), anything else is an internal error.
fn backend_error(e: BackendError) -> Error {
    match e {
        BackendError::Unsupported { .. } => Error::UnsupportedModel(e.to_string()),
        BackendError::Failed { .. } => Error::Internal(e.to_string()),
    }
}

/// The KIR program and its layout for a prepared graph (transcendentals expanded), with
/// the default GEMM tiles (the interpreter's and the C backend's).
pub fn lower(graph: &Graph) -> Result<(Program, Layout)> {
    lower_with(graph, crate::kir::GemmTiles::default())
}

/// [`lower`] for the code `opts` asks for: the GEMM tiles suit its backend.
pub fn lower_for(graph: &Graph, opts: &CompileOptions) -> Result<(Program, Layout)> {
    let tiles = match opts.code {
        // Packing B into panels makes a second copy of every GEMM weight while the
        // original is alive: past PANEL_PACKING_MAX_BYTES of constants that would break
        // the compile's memory bound (`edgec-testsuite scale`: peak RSS ≤ 1.5× the
        // weights; with panels 1.9× on the 100M-parameter decoder), so large models keep
        // the row passes, which read the weights as they are.
        CodeKind::Object if crate::passes::quantize_weights::constant_bytes(graph) <= PANEL_PACKING_MAX_BYTES => back::cranelift::gemm_tiles(opts.target),
        CodeKind::Object | CodeKind::C => crate::kir::GemmTiles::default(),
    };
    lower_with(graph, tiles)
}

/// Constant bytes up to which Cranelift targets get weights packed into GEMM panels
/// (see [`lower_for`]).
pub const PANEL_PACKING_MAX_BYTES: usize = 64 << 20;

fn lower_with(graph: &Graph, tiles: crate::kir::GemmTiles) -> Result<(Program, Layout)> {
    let mut program = crate::lower::lower_with(graph, tiles)?;
    crate::kir::math::expand(&mut program);
    let layout = layout::layout(&program);
    Ok((program, layout))
}

/// Compiles a prepared graph; `ops_before` is the node count before the graph passes.
pub fn compile(graph: &Graph, ops_before: usize, opts: &CompileOptions) -> Result<Artifacts> {
    let (program, layout) = lower_for(graph, opts)?;
    compile_program(&program, &layout, (ops_before, graph.op_histogram().values().sum()), opts)
}

/// The inputs or outputs of a program, in the caller's order.
fn interface(program: &Program, bufs: Vec<crate::kir::BufId>) -> Vec<TensorInfo> {
    bufs.into_iter()
        .map(|b| {
            let b = program.buffer(b);
            // Packed types are bytes inside the program; the caller sees their own type.
            let (dtype, shape) = b.packed.as_ref().map_or((b.dtype, &b.shape), |p| (p.dtype, &p.shape));
            TensorInfo { name: b.name.clone(), dtype, shape: shape.clone() }
        })
        .collect()
}

/// [`compile`] for a graph that is not needed afterwards (the CLI's compile): the graph
/// is dropped after lowering and each weight is released as soon as it is in the blob,
/// so a large model's weights are held about once at the peak, not twice (see
/// docs/performance.md, the scale test).
pub fn compile_owned(graph: Graph, ops_before: usize, opts: &CompileOptions) -> Result<Artifacts> {
    let ops = (ops_before, graph.op_histogram().values().sum());
    let (mut program, layout) = lower_for(&graph, opts)?;
    drop(graph);
    if opts.embed_weights {
        // The backend embeds the blob in the code: it must exist before the code.
        return compile_program(&program, &layout, ops, opts);
    }
    let model_hash = model_hash(&program, &layout, opts)?;
    let mut art = compile_code(&program, &layout, ops, opts, model_hash, None)?;
    art.weights = Some(blob::build_consuming(&mut program, &layout, model_hash).map_err(backend_error)?);
    Ok(art)
}

fn model_hash(program: &Program, layout: &Layout, opts: &CompileOptions) -> Result<u64> {
    let salt = format!("{}\0{}\0{:?}\0{}", opts.name, opts.target.name, opts.code, opts.embed_weights);
    blob::model_hash(program, layout, &salt).map_err(backend_error)
}

/// Compiles a KIR program (transcendentals expanded) with its layout; `ops` is the
/// node count before and after the graph passes, for the report.
pub fn compile_program(program: &Program, layout: &Layout, ops: (usize, usize), opts: &CompileOptions) -> Result<Artifacts> {
    let model_hash = model_hash(program, layout, opts)?;
    let blob = blob::build(program, layout, model_hash).map_err(backend_error)?;
    let mut art = compile_code(program, layout, ops, opts, model_hash, opts.embed_weights.then_some(blob.as_slice()))?;
    let asm_weights = opts.embed_weights && opts.code == CodeKind::C && back::c::embeds_by_reference(opts.target);
    art.weights_asm = asm_weights.then(|| WeightsAsm {
        section: weights_asm::DEFAULT_SECTION.to_string(),
        source: weights_asm::source(opts.name, weights_asm::DEFAULT_SECTION, blob.len()),
        blob: blob.clone(),
    });
    art.weights = (!opts.embed_weights).then_some(blob);
    Ok(art)
}

/// Everything but the weight blob (`weights` and `weights_asm` are left `None`);
/// `embedded` is the blob when the code embeds it.
fn compile_code(
    program: &Program,
    layout: &Layout,
    ops: (usize, usize),
    opts: &CompileOptions,
    model_hash: u64,
    embedded: Option<&[u8]>,
) -> Result<Artifacts> {
    let blob_len = blob::size(layout);
    let inputs = interface(program, program.inputs());
    let outputs = interface(program, program.outputs());
    let input = back::Input {
        program,
        layout,
        options: EmitOptions { name: opts.name, target: opts.target, model_hash, embedded_weights: embedded },
    };
    let code = match opts.code {
        CodeKind::C => Code::C(back::c::emit_source(&input).map_err(backend_error)?),
        CodeKind::Object => Code::Object(back::cranelift::emit_object(&input).map_err(backend_error)?),
    };
    let code_bytes = match &code {
        Code::C(s) => s.len(),
        Code::Object(o) => o.len(),
    };
    // MCU targets: flash and RAM with the code size estimated; `edgec compile` replaces
    // it by the cross compiler's figures when it can (firmware::build).
    let footprint = footprint::default_budget(opts.target).map(|budget| {
        let code = match &code {
            Code::C(s) => footprint::CodeSize::estimate(s.len()),
            Code::Object(o) => footprint::CodeSize { text: o.len(), data: 0, bss: 0, measured: false },
        };
        let io = io_bytes(&inputs) + io_bytes(&outputs);
        footprint::Footprint::new(code, blob_len, layout.arena_size, io, None, budget)
    });
    let iface = Interface {
        name: opts.name,
        target: opts.target.name,
        inputs: inputs.clone(),
        outputs: outputs.clone(),
        weights_size: if opts.embed_weights { 0 } else { blob_len },
        arena_size: layout.arena_size,
        arena_align: ARENA_ALIGN,
        embedded: opts.embed_weights,
    };
    let report = Report {
        ops_before: ops.0,
        ops_after: ops.1,
        kernels: program.kernels.len(),
        weights_bytes: blob_len,
        arena_bytes: layout.arena_size,
        arena_lower_bound: layout.arena_lower_bound,
        code_kind: match opts.code {
            CodeKind::C => "c",
            CodeKind::Object => "obj",
        },
        code_bytes,
        model_hash,
        footprint,
    };
    Ok(Artifacts {
        name: opts.name.to_string(),
        header: header::header(&iface),
        manifest: manifest::manifest(&iface, &report),
        code,
        target: opts.target,
        weights_asm: None,
        weights: None,
        report,
        inputs,
        outputs,
        timeline: html::Timeline::new(program, layout),
    })
}

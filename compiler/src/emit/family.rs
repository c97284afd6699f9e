//! Shape families: one model compiled for every value of one symbolic dimension in a
//! range, as one object, one header and one weight blob.
//!
//! Why: a decoder exported with a growing KV cache (`past_sequence_length`) computes its
//! position ids and causal mask from the cache's *shape*, so a generation loop needs a
//! different static shape at every step. Compiling each length separately would repeat
//! the weights once per length. A family compiles one specialisation per value (each
//! fully static: exact arena, bounds-free loops) and lays the weights out once: every
//! member's weight buffers are deduplicated by content into a single blob, and each
//! member's code addresses that blob. The header adds a dispatcher,
//! `NAME_run_at(value, weights, arena, inputs, outputs)`, returning
//! `EDGEC_ERR_DIM_OUT_OF_RANGE` outside the range; `NAME_ARENA_SIZE` is the largest
//! member's arena. Members are also callable directly as `NAME_<symbol><value>_run`.
//!
//! Only object code (the Cranelift targets) for now: C members would each repeat the C
//! backend's static helpers in one translation unit.

use std::collections::HashMap;
use std::fmt::Write;

use edgec_runtime::{BLOB_ALIGN, BLOB_HEADER_SIZE, BLOB_TRAILER_SIZE};
use serde::Serialize;

use super::bytes::to_le_bytes;
use super::{backend_error, header, interface, manifest, Artifacts, Code, CodeKind, CompileOptions, Interface, Report};
use crate::back::{self, BackendError, EmitOptions};
use crate::error::{Error, Result};
use crate::ir::Graph;
use crate::kir::{BufKind, Program};
use crate::plan::layout::{Layout, Place, ARENA_ALIGN};

/// One value of the family's dimension and its prepared graph.
pub struct Member {
    pub value: usize,
    pub graph: Graph,
}

/// The C name of a member: `NAME_<symbol><value>` with the symbol made an identifier.
pub fn member_name(name: &str, symbol: &str, value: usize) -> String {
    let sym: String = symbol.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("{name}_{sym}{value}")
}

/// Compiles every member (in the given order, values distinct) into one set of artifacts.
pub fn compile_family(symbol: &str, members: Vec<Member>, ops_before: usize, opts: &CompileOptions) -> Result<Artifacts> {
    if members.is_empty() {
        return Err(Error::Usage(format!("the range of --dim {symbol} is empty")));
    }
    if opts.code != CodeKind::Object || opts.target.path != crate::targets::CodePath::Cranelift {
        return Err(Error::Usage(format!(
            "a range in --dim {symbol}=LO..HI (a shape family) needs object code from a Cranelift target (host, cortex-a*, riscv64*), not '{}'; compile each value separately with --dim {symbol}=VALUE for C targets",
            opts.target.name
        )));
    }
    if opts.embed_weights {
        return Err(Error::Usage("a shape family keeps its weights in NAME.weights; drop --embed-weights".into()));
    }
    let mut lowered = Vec::with_capacity(members.len());
    for m in &members {
        let (program, layout) = super::lower_for(&m.graph, opts).map_err(|e| in_member(e, symbol, m.value))?;
        let ops_after: usize = m.graph.op_histogram().values().sum();
        lowered.push((m.value, program, layout, ops_after));
    }
    let mut pool = WeightPool::default();
    for (_, program, layout, _) in &mut lowered {
        pool.relocate(program, layout).map_err(backend_error)?;
    }
    // Every member checks the blob's size: the pool's final one.
    for (_, _, layout, _) in &mut lowered {
        layout.weights_size = pool.size();
    }
    let salt = format!("{}\0{}\0family {symbol}", opts.name, opts.target.name);
    let model_hash = pool.hash(&salt, lowered.iter().map(|(_, p, _, _)| p));
    let blob = pool.blob(model_hash);
    let names: Vec<String> = lowered.iter().map(|(v, ..)| member_name(opts.name, symbol, *v)).collect();
    let inputs: Vec<back::Input> = lowered
        .iter()
        .zip(&names)
        .map(|((_, program, layout, _), name)| back::Input {
            program,
            layout,
            options: EmitOptions { name, target: opts.target, model_hash, embedded_weights: None },
        })
        .collect();
    let object = back::cranelift::emit_objects(&inputs).map_err(backend_error)?;

    let ifaces: Vec<(usize, Interface)> = lowered
        .iter()
        .zip(&names)
        .map(|((v, program, layout, _), name)| {
            let iface = Interface {
                name,
                target: opts.target.name,
                inputs: interface(program, program.inputs()),
                outputs: interface(program, program.outputs()),
                weights_size: blob.len(),
                arena_size: layout.arena_size,
                arena_align: ARENA_ALIGN,
                embedded: false,
            };
            (*v, iface)
        })
        .collect();
    // The family's own interface: the largest member's tensors, the largest arena.
    let largest = lowered.iter().enumerate().max_by_key(|(_, (v, ..))| *v).map(|(i, _)| i).unwrap_or(0);
    let (_, big_program, big_layout, big_ops) = &lowered[largest];
    let arena_size = lowered.iter().map(|(_, _, l, _)| l.arena_size).max().unwrap_or(0);
    let arena_lower_bound = lowered.iter().map(|(_, _, l, _)| l.arena_lower_bound).max().unwrap_or(0);
    let family_iface = Interface {
        name: opts.name,
        target: opts.target.name,
        inputs: ifaces[largest].1.inputs.clone(),
        outputs: ifaces[largest].1.outputs.clone(),
        weights_size: blob.len(),
        arena_size,
        arena_align: ARENA_ALIGN,
        embedded: false,
    };
    let report = Report {
        ops_before,
        ops_after: *big_ops,
        kernels: lowered.iter().map(|(_, p, _, _)| p.kernels.len()).sum(),
        weights_bytes: blob.len(),
        arena_bytes: arena_size,
        arena_lower_bound,
        code_kind: "obj",
        code_bytes: object.len(),
        model_hash,
        footprint: None,
    };
    let info = FamilyInfo {
        symbol,
        min: ifaces.iter().map(|(v, _)| *v).min().unwrap_or(0),
        max: ifaces.iter().map(|(v, _)| *v).max().unwrap_or(0),
        members: ifaces
            .iter()
            .zip(&lowered)
            .map(|((v, i), (_, _, l, _))| MemberInfo {
                value: *v,
                run: format!("{}_run", i.name),
                arena_size: l.arena_size,
                inputs: manifest::tensors(&i.inputs),
                outputs: manifest::tensors(&i.outputs),
            })
            .collect(),
    };
    let extra = serde_json::to_value(&info).map_err(|e| Error::Internal(format!("family manifest: {e}")))?;
    Ok(Artifacts {
        name: opts.name.to_string(),
        target: opts.target,
        header: family_header(&family_iface, symbol, &ifaces),
        manifest: manifest::manifest_with(&family_iface, &report, Some(("family", extra))),
        code: Code::Object(object),
        weights: Some(blob),
        weights_asm: None,
        inputs: family_iface.inputs.clone(),
        outputs: family_iface.outputs.clone(),
        timeline: super::html::Timeline::new(big_program, big_layout),
        report,
    })
}

fn in_member(e: Error, symbol: &str, value: usize) -> Error {
    match e {
        Error::UnsupportedModel(m) => Error::UnsupportedModel(format!("{m} (at {symbol}={value})")),
        Error::InvalidModel(m) => Error::InvalidModel(format!("{m} (at {symbol}={value})")),
        other => other,
    }
}

#[derive(Serialize)]
struct FamilyInfo<'a> {
    symbol: &'a str,
    min: usize,
    max: usize,
    members: Vec<MemberInfo<'a>>,
}

#[derive(Serialize)]
struct MemberInfo<'a> {
    value: usize,
    run: String,
    arena_size: usize,
    inputs: Vec<manifest::Tensor<'a>>,
    outputs: Vec<manifest::Tensor<'a>>,
}

/// The weights of every member, each distinct tensor once.
#[derive(Default)]
struct WeightPool {
    /// Content (type, shape, bytes) → offset in the blob.
    offsets: HashMap<(String, Vec<usize>, Vec<u8>), usize>,
    /// (offset, bytes) in placement order.
    placed: Vec<(usize, Vec<u8>)>,
    end: Option<usize>,
}

impl WeightPool {
    /// Places the program's weights in the pool and points its layout at them.
    fn relocate(&mut self, program: &Program, layout: &mut Layout) -> std::result::Result<(), BackendError> {
        for (i, b) in program.buffers.iter().enumerate() {
            let (BufKind::Weight(t), Place::Weight(_)) = (&b.kind, layout.places[i]) else { continue };
            let bytes = to_le_bytes(t).ok_or_else(|| BackendError::Unsupported {
                backend: "weights",
                what: format!("weight '{}' of type {}", b.name, b.dtype),
            })?;
            let key = (b.dtype.name().to_string(), b.shape.clone(), bytes);
            let off = match self.offsets.get(&key) {
                Some(&off) => off,
                None => {
                    let end = self.end.unwrap_or(BLOB_HEADER_SIZE);
                    let at = end.div_ceil(BLOB_ALIGN) * BLOB_ALIGN;
                    self.end = Some(at + key.2.len());
                    self.placed.push((at, key.2.clone()));
                    self.offsets.insert(key, at);
                    at
                }
            };
            layout.places[i] = Place::Weight(off);
        }
        Ok(())
    }

    /// Bytes of the blob: header, weights, trailer (as `plan::layout` sizes one).
    fn size(&self) -> usize {
        let end = self.end.unwrap_or(BLOB_HEADER_SIZE);
        end.div_ceil(BLOB_ALIGN) * BLOB_ALIGN + BLOB_TRAILER_SIZE
    }

    fn payload(&self) -> Vec<u8> {
        let mut blob = vec![0u8; self.size()];
        for (at, bytes) in &self.placed {
            blob[*at..*at + bytes.len()].copy_from_slice(bytes);
        }
        blob
    }

    /// Like `blob::model_hash`: the members' programs and the shared payload.
    fn hash<'p>(&self, salt: &str, programs: impl Iterator<Item = &'p Program>) -> u64 {
        super::blob::hash_of(salt, programs, &self.payload())
    }

    fn blob(&self, model_hash: u64) -> Vec<u8> {
        let mut blob = self.payload();
        super::blob::seal(&mut blob, model_hash);
        blob
    }
}

/// `NAME.h` of a family: every member's own header (each guarded by its own macro, the
/// runtime definitions once), then the family's sizes and the dispatcher.
fn family_header(fam: &Interface, symbol: &str, members: &[(usize, Interface)]) -> String {
    let n = fam.name;
    let up = n.to_ascii_uppercase();
    let mut h = String::new();
    let min = members.iter().map(|(v, _)| *v).min().unwrap_or(0);
    let max = members.iter().map(|(v, _)| *v).max().unwrap_or(0);
    let _ = writeln!(
        h,
        "/* {n}.h: generated by edgec {} for target {}: a shape family over {symbol} = {min}..={max}. Do not edit. */",
        env!("CARGO_PKG_VERSION"),
        fam.target
    );
    let _ = writeln!(h, "#ifndef EDGEC_FAMILY_{up}_H\n#define EDGEC_FAMILY_{up}_H\n");
    h.push_str(header::RUNTIME_H);
    for (_, m) in members {
        // The runtime definitions once, above, not once per member.
        h.push_str(&header::header(m).replacen(header::RUNTIME_H, "", 1));
        h.push_str("\n\n");
    }
    let _ = writeln!(h, "/* The family: one weight blob ({n}.weights) and one arena serve every member. */");
    let _ = writeln!(h, "#define {n}_WEIGHTS_SIZE {}u /* bytes of {n}.weights */", fam.weights_size);
    let _ = writeln!(h, "#define {n}_ARENA_SIZE {}u /* the largest member's arena */", fam.arena_size);
    let _ = writeln!(h, "#define {n}_ARENA_ALIGN {}u", fam.arena_align);
    let _ = writeln!(h, "#define {n}_NUM_INPUTS {}u", fam.inputs.len());
    let _ = writeln!(h, "#define {n}_NUM_OUTPUTS {}u", fam.outputs.len());
    let _ = writeln!(h, "#define {n}_DIM_NAME \"{symbol}\"");
    let _ = writeln!(h, "#define {n}_DIM_MIN {min}u");
    let _ = writeln!(h, "#define {n}_DIM_MAX {max}u\n");
    let _ = writeln!(
        h,
        "/* Runs the member compiled for {symbol} = value (shapes in its section above).\n\
 * Returns EDGEC_ERR_DIM_OUT_OF_RANGE for a value the family lacks. */\n\
static inline int {n}_run_at(long long value, const void *weights, void *arena,\n        const void *const inputs[], void *const outputs[]) {{\n    switch (value) {{"
    );
    for (v, m) in members {
        let _ = writeln!(h, "    case {v}: return {}_run(weights, arena, inputs, outputs);", m.name);
    }
    let _ = writeln!(h, "    default: return EDGEC_ERR_DIM_OUT_OF_RANGE;\n    }}\n}}\n\n#endif /* EDGEC_FAMILY_{up}_H */");
    h
}

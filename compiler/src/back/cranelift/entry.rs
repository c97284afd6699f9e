//! `NAME_run`: argument and weight-blob checks, then the kernels in order.
//!
//! Checks run in the order of the `EDGEC_ERR_*` codes: the blob (NULL 1, magic 2,
//! version or header size 3, model hash 4, recorded size 5 — skipped with embedded
//! weights, where `NAME_weights` is used and the argument ignored), then the arena
//! (NULL 8, misaligned 7; only when the arena is not empty), then the `inputs` and
//! `outputs` arrays and each of their pointers (NULL 8).

use cranelift_codegen::ir::{condcodes::IntCC, types, InstBuilder, MemFlagsData, Signature, Value};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{DataId, FuncId, Linkage, Module};
use cranelift_object::ObjectModule;
use edgec_runtime::{Status, BLOB_END_MAGIC, BLOB_HEADER_SIZE, BLOB_MAGIC, BLOB_VERSION};

use super::failed;
use crate::back::{BackendError, Input};
use crate::plan::layout::ARENA_ALIGN;

pub fn define(module: &mut ObjectModule, sig: &Signature, input: &Input, weights: Option<DataId>, kernels: &[FuncId]) -> Result<(), BackendError> {
    let name = format!("{}_run", input.options.name);
    let id = module.declare_function(&name, Linkage::Export, sig).map_err(failed)?;
    let mut ctx = Context::new();
    ctx.func.signature = sig.clone();
    let mut fctx = FunctionBuilderContext::new();
    let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
    let entry = b.create_block();
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let (arena, inputs, outputs) = (params[1], params[2], params[3]);
    let mut ck = Checker { b };

    let blob = match weights {
        Some(data) => {
            let gv = module.declare_data_in_func(data, ck.b.func);
            ck.b.ins().symbol_value(types::I64, gv)
        }
        None => {
            let blob = params[0];
            ck.fail_if_null(blob, Status::WeightsNull);
            let flags = MemFlagsData::new().with_notrap();
            let magic = ck.b.ins().load(types::I64, flags, blob, 0);
            ck.fail_if_ne(magic, i64::from_le_bytes(BLOB_MAGIC), Status::WeightsMagic);
            let version = ck.b.ins().load(types::I32, flags, blob, 8);
            ck.fail_if_ne(version, BLOB_VERSION as i64, Status::WeightsVersion);
            let header_size = ck.b.ins().load(types::I32, flags, blob, 12);
            ck.fail_if_ne(header_size, BLOB_HEADER_SIZE as i64, Status::WeightsVersion);
            let hash = ck.b.ins().load(types::I64, flags, blob, 16);
            ck.fail_if_ne(hash, input.options.model_hash as i64, Status::WeightsHash);
            let size = ck.b.ins().load(types::I64, flags, blob, 24);
            ck.fail_if_ne(size, input.layout.weights_size as i64, Status::WeightsSize);
            // The trailer (runtime/src/blob.rs): catches a blob read short into a
            // buffer of NAME_WEIGHTS_SIZE bytes.
            let end = i32::try_from(input.layout.weights_size)
                .map_err(|_| BackendError::Unsupported { backend: "cranelift", what: "a weight blob of 2 GiB or more".into() })?;
            let end_magic = ck.b.ins().load(types::I64, flags, blob, end - 16);
            ck.fail_if_ne(end_magic, i64::from_le_bytes(BLOB_END_MAGIC), Status::WeightsSize);
            let end_hash = ck.b.ins().load(types::I64, flags, blob, end - 8);
            ck.fail_if_ne(end_hash, input.options.model_hash as i64, Status::WeightsSize);
            blob
        }
    };
    if input.layout.arena_size > 0 {
        ck.fail_if_null(arena, Status::NullArgument);
        let low = ck.b.ins().band_imm_u(arena, ARENA_ALIGN as i64 - 1);
        ck.fail_if_ne(low, 0, Status::ArenaAlign);
    }
    for (array, count) in [(inputs, input.program.inputs().len()), (outputs, input.program.outputs().len())] {
        if count == 0 {
            continue;
        }
        ck.fail_if_null(array, Status::NullArgument);
        for k in 0..count {
            let p = ck.b.ins().load(types::I64, MemFlagsData::new().with_notrap(), array, (k * 8) as i32);
            ck.fail_if_null(p, Status::NullArgument);
        }
    }
    for &k in kernels {
        let f = module.declare_func_in_func(k, ck.b.func);
        let call = ck.b.ins().call(f, &[blob, arena, inputs, outputs]);
        let code = ck.b.inst_results(call)[0];
        ck.return_if_nonzero(code);
    }
    let zero = ck.b.ins().iconst(types::I32, 0);
    ck.b.ins().return_(&[zero]);
    ck.b.seal_all_blocks();
    ck.b.finalize(module.target_config());
    module.define_function(id, &mut ctx).map_err(|e| failed(format!("{name}: {e:?}")))?;
    Ok(())
}

/// Early returns on failed checks.
struct Checker<'a> {
    b: FunctionBuilder<'a>,
}

impl Checker<'_> {
    fn fail_if_null(&mut self, p: Value, code: Status) {
        let c = self.b.ins().icmp_imm_u(IntCC::Equal, p, 0);
        self.fail_if(c, code);
    }

    fn fail_if_ne(&mut self, v: Value, expected: i64, code: Status) {
        let c = self.b.ins().icmp_imm_s(IntCC::NotEqual, v, expected);
        self.fail_if(c, code);
    }

    fn fail_if(&mut self, cond: Value, code: Status) {
        let code = self.b.ins().iconst(types::I32, code as i64);
        self.return_if(cond, code);
    }

    fn return_if_nonzero(&mut self, code: Value) {
        self.return_if(code, code);
    }

    fn return_if(&mut self, cond: Value, code: Value) {
        let fail = self.b.create_block();
        let next = self.b.create_block();
        self.b.set_cold_block(fail);
        self.b.ins().brif(cond, fail, &[], next, &[]);
        self.b.switch_to_block(fail);
        self.b.ins().return_(&[code]);
        self.b.switch_to_block(next);
    }
}

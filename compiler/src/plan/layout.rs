//! Where every KIR buffer lives: the caller's input/output buffers, an offset in the
//! weight blob, or an offset in the arena (planned by [`super::memory`] from the
//! buffers' lifetimes over the kernel schedule).

use edgec_runtime::{BLOB_ALIGN, BLOB_HEADER_SIZE, BLOB_TRAILER_SIZE};

use super::memory::{self, Buffer};
use crate::kir::{BufId, BufKind, Expr, Program, Stmt};

/// Alignment of every arena buffer, and of the arena itself (`NAME_ARENA_ALIGN`).
pub const ARENA_ALIGN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    Input(usize),
    Output(usize),
    /// Byte offset from the start of the weight blob (header included).
    Weight(usize),
    /// Byte offset in the arena.
    Arena(usize),
    /// No kernel touches the buffer.
    Unused,
}

#[derive(Clone, Debug)]
pub struct Layout {
    /// Indexed by `BufId`.
    pub places: Vec<Place>,
    pub arena_size: usize,
    /// The largest sum of simultaneously live temporaries: the arena cannot be smaller.
    pub arena_lower_bound: usize,
    /// Bytes of the weight blob, header included.
    pub weights_size: usize,
}

impl Layout {
    pub fn place(&self, b: BufId) -> Place {
        self.places[b.0 as usize]
    }
}

fn align_up(x: usize, a: usize) -> usize {
    x.div_ceil(a) * a
}

/// The buffers a statement list reads or writes.
fn touched(stmts: &[Stmt], out: &mut Vec<BufId>) {
    fn expr(e: &Expr, out: &mut Vec<BufId>) {
        match e {
            Expr::Lit(_) | Expr::Var(_) => {}
            Expr::Load { buf, index } => {
                out.push(*buf);
                expr(index, out);
            }
            Expr::Unary(_, a) | Expr::Cast(_, a) | Expr::Bitcast(_, a) => expr(a, out),
            Expr::Binary(_, a, b) => {
                expr(a, out);
                expr(b, out);
            }
            Expr::Select(a, b, c) | Expr::Fma(a, b, c) => {
                expr(a, out);
                expr(b, out);
                expr(c, out);
            }
        }
    }
    for s in stmts {
        match s {
            Stmt::Loop { body, .. } => touched(body, out),
            Stmt::Set { value, .. } => expr(value, out),
            Stmt::Store { buf, index, value } => {
                out.push(*buf);
                expr(index, out);
                expr(value, out);
            }
            Stmt::If { cond, then, els } => {
                expr(cond, out);
                touched(then, out);
                touched(els, out);
            }
            Stmt::Fail(_) => {}
        }
    }
}

/// The buffers a kernel reads or writes (with repeats).
pub fn kernel_buffers(k: &crate::kir::Kernel) -> Vec<BufId> {
    let mut bufs = Vec::new();
    touched(&k.body, &mut bufs);
    bufs
}

/// Each buffer's first and last kernel (schedule step) that touches it, indexed by
/// `BufId`; `None` for a buffer no kernel touches.
pub fn live_ranges(prog: &Program) -> Vec<Option<(usize, usize)>> {
    let mut live: Vec<Option<(usize, usize)>> = vec![None; prog.buffers.len()];
    for (step, k) in prog.kernels.iter().enumerate() {
        for b in kernel_buffers(k) {
            let r = &mut live[b.0 as usize];
            *r = Some(r.map_or((step, step), |(f, l)| (f.min(step), l.max(step))));
        }
    }
    live
}

pub fn layout(prog: &Program) -> Layout {
    let n = prog.buffers.len();
    let live = live_ranges(prog);
    let first: Vec<usize> = live.iter().map(|r| r.map_or(usize::MAX, |r| r.0)).collect();
    let last: Vec<usize> = live.iter().map(|r| r.map_or(0, |r| r.1)).collect();
    let mut places = vec![Place::Unused; n];
    let mut weight_end = BLOB_HEADER_SIZE;
    let mut temps: Vec<(usize, Buffer)> = Vec::new();
    for (i, b) in prog.buffers.iter().enumerate() {
        let used = first[i] != usize::MAX;
        let bytes = b.len() * b.dtype.size();
        places[i] = match &b.kind {
            BufKind::Input(k) => Place::Input(*k),
            BufKind::Output(k) => Place::Output(*k),
            BufKind::Weight(_) if used => {
                let at = align_up(weight_end, BLOB_ALIGN);
                weight_end = at + bytes;
                Place::Weight(at)
            }
            BufKind::Temp if used => {
                temps.push((i, Buffer { size: bytes, align: ARENA_ALIGN, first: first[i], last: last[i] }));
                Place::Unused
            }
            _ => Place::Unused,
        };
    }
    let bufs: Vec<Buffer> = temps.iter().map(|(_, b)| *b).collect();
    let plan = memory::plan(&bufs);
    for ((i, _), off) in temps.iter().zip(&plan.offsets) {
        places[*i] = Place::Arena(*off);
    }
    Layout {
        places,
        arena_size: align_up(plan.arena_size, ARENA_ALIGN),
        arena_lower_bound: plan.lower_bound,
        // The trailer closes the blob (runtime/src/blob.rs).
        weights_size: align_up(weight_end, BLOB_ALIGN) + BLOB_TRAILER_SIZE,
    }
}

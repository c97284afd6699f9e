//! Where every KIR buffer lives: the caller's input/output buffers, an offset in the
//! weight blob, or an offset in the arena (planned by [`super::memory`] from the
//! buffers' lifetimes over the kernel schedule).

use edgec_runtime::{BLOB_ALIGN, BLOB_HEADER_SIZE};

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

pub fn layout(prog: &Program) -> Layout {
    let n = prog.buffers.len();
    let mut first = vec![usize::MAX; n];
    let mut last = vec![0usize; n];
    for (step, k) in prog.kernels.iter().enumerate() {
        let mut bufs = Vec::new();
        touched(&k.body, &mut bufs);
        for b in bufs {
            let i = b.0 as usize;
            first[i] = first[i].min(step);
            last[i] = last[i].max(step);
        }
    }
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
        weights_size: align_up(weight_end, BLOB_ALIGN),
    }
}

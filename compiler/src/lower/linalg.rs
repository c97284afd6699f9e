//! Lowering of the linalg family: MatMul, Gemm, MatMulInteger and Det (Einsum lives in
//! `lower/einsum.rs`).
//!
//! Products are loop nests `(batch, i, k, j)` with `j` innermost, so the innermost loop
//! walks a row of B and a row of the output contiguously. When the output buffer holds
//! the accumulator type exactly (f32, f64, i32, i64) the sum accumulates in the output
//! row; otherwise (f16/bf16, 8/16-bit integers) a store would round every partial sum,
//! so each element accumulates in a variable over `k` instead ([`MatMulDims::emit`]).
//!
//! The float tiles come in two KIR layouts ([`GemmTiles`], chosen per backend) that sum
//! every element in the same order: row passes for scalar code, and output blocks over
//! the whole `k` loop with constant B packed into panels for the SIMD Cranelift targets.

use std::sync::Arc;

use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::{DType, Tensor};
use crate::kir::build::{broadcast, iadd, imul, linear, KernelBuilder};
use crate::kir::{e, BinOp, BufId, BufKind, Expr, GemmTiles, Ty, UnOp, Var};
use crate::ops::linalg::{Gemm, LinalgOp};

pub fn lower(
    op: &LinalgOp,
    cx: &mut LowerCx,
    ins: &[Option<Operand>],
    outs: &[Option<Operand>],
) -> Result<(), OpError> {
    let y = output(outs, 0)?;
    match op {
        LinalgOp::MatMul => {
            let (a, b) = (input(ins, 0)?, input(ins, 1)?);
            let ty = a.kty()?;
            let mut s = MatMulDims::new(a.shape(), b.shape())?;
            if holds_exactly(y.ty.dtype, ty) {
                s.layout = TileLayout::plan(cx, ty, b, false, s.k, s.n);
            }
            let mut k = cx.kernel("");
            s.emit(&mut k, ty, y, None, |_, ai, bi| (e::load(a.buf, ai), e::load(b.buf, bi)));
            cx.emit(k.finish());
            Ok(())
        }
        LinalgOp::MatMulInteger => {
            let (a, b) = (input(ins, 0)?, input(ins, 1)?);
            let s = MatMulDims::new(a.shape(), b.shape())?;
            let a_zp = ZeroPointArg::new(ins.get(2), s.m, "a_zero_point")?;
            let b_zp = ZeroPointArg::new(ins.get(3), s.n, "b_zero_point")?;
            let mut k = cx.kernel("");
            s.emit(&mut k, Ty::I32, y, None, |ix, ai, bi| {
                (e::sub(e::load(a.buf, ai), a_zp.at(ix.i.clone())), e::sub(e::load(b.buf, bi), b_zp.at(ix.j.clone())))
            });
            cx.emit(k.finish());
            Ok(())
        }
        LinalgOp::Gemm(g) => lower_gemm(g, cx, ins, y),
        LinalgOp::Einsum(e) => super::einsum::lower(e, cx, ins, outs),
        LinalgOp::Det => lower_det(cx, input(ins, 0)?, y),
    }
}

pub(super) fn input(ins: &[Option<Operand>], i: usize) -> Result<&Operand, OpError> {
    ins.get(i).and_then(Option::as_ref).ok_or_else(|| OpError::invalid(format!("input {i} is missing")))
}

pub(super) fn output(outs: &[Option<Operand>], i: usize) -> Result<&Operand, OpError> {
    outs.get(i).and_then(Option::as_ref).ok_or_else(|| OpError::invalid(format!("output {i} is missing")))
}

/// The additive identity of `ty`.
pub(super) fn zero(ty: Ty) -> Expr {
    match ty {
        Ty::F32 => e::f32(0.0),
        Ty::F64 => e::f64(0.0),
        Ty::I32 => e::i32(0),
        Ty::I64 => e::i64(0),
        Ty::Index => e::idx(0),
        Ty::Bool => e::bool(false),
    }
}

/// A float constant of `ty` (F32 or F64).
pub(super) fn flit(ty: Ty, v: f64) -> Expr {
    if ty == Ty::F64 {
        e::f64(v)
    } else {
        e::f32(v as f32)
    }
}

/// `acc + a * b`: fused for floats (one rounding), wrapping for integers.
pub(super) fn mac(ty: Ty, acc: Expr, a: Expr, b: Expr) -> Expr {
    if ty.is_float() {
        e::fma(a, b, acc)
    } else {
        e::add(acc, e::mul(a, b))
    }
}

/// True when a buffer of `dtype` stores values of `ty` unchanged, so partial sums can
/// live in it.
pub(super) fn holds_exactly(dtype: DType, ty: Ty) -> bool {
    matches!((dtype, ty), (DType::F32, Ty::F32) | (DType::F64, Ty::F64) | (DType::I32, Ty::I32) | (DType::I64, Ty::I64))
}

/// A zero point of the integer products: absent, one value, or one per row (A) or
/// column (B), loaded at run time.
pub(super) enum ZeroPointArg {
    None,
    Scalar(BufId),
    PerIndex(BufId),
}

impl ZeroPointArg {
    /// From the optional operand `op`; `per` is the count of a per-row/column one.
    pub fn new(op: Option<&Option<Operand>>, per: usize, what: &str) -> Result<Self, OpError> {
        match op.and_then(Option::as_ref) {
            None => Ok(ZeroPointArg::None),
            Some(z) if Ty::of_storage(z.ty.dtype) != Some(Ty::I32) => {
                Err(OpError::unsupported(format!("{what} of type {}", z.ty.dtype)))
            }
            Some(z) if z.len() == 1 => Ok(ZeroPointArg::Scalar(z.buf)),
            Some(z) if z.len() == per => Ok(ZeroPointArg::PerIndex(z.buf)),
            Some(z) => Err(OpError::invalid(format!("{what} has {} values; 1 or {per} expected", z.len()))),
        }
    }

    /// The zero point of row/column `i`.
    pub fn at(&self, i: Expr) -> Expr {
        match self {
            ZeroPointArg::None => e::i32(0),
            ZeroPointArg::Scalar(b) => e::load(*b, e::idx(0)),
            ZeroPointArg::PerIndex(b) => e::load(*b, i),
        }
    }
}

/// The loop indices of one product term, for operand loaders.
pub(super) struct MatIx {
    pub i: Expr,
    pub j: Expr,
}

/// numpy `matmul` shapes: 1-D operands promoted, batch axes broadcast.
pub(super) struct MatMulDims {
    pub batch: Vec<usize>,
    a_batch: Vec<usize>,
    b_batch: Vec<usize>,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    /// The layout of the float tiles (row passes unless the caller plans otherwise).
    pub layout: TileLayout,
}

impl MatMulDims {
    pub fn new(a: &[usize], b: &[usize]) -> Result<Self, OpError> {
        if a.is_empty() || b.is_empty() {
            return Err(OpError::invalid("MatMul operands must have rank >= 1"));
        }
        let (m, ka) = if a.len() == 1 { (1, a[0]) } else { (a[a.len() - 2], a[a.len() - 1]) };
        let (kb, n) = if b.len() == 1 { (b[0], 1) } else { (b[b.len() - 2], b[b.len() - 1]) };
        if ka != kb {
            return Err(OpError::invalid(format!("MatMul inner dimensions differ: {a:?} x {b:?}")));
        }
        let ab = &a[..a.len().saturating_sub(2)];
        let bb = &b[..b.len().saturating_sub(2)];
        let rank = ab.len().max(bb.len());
        let align = |s: &[usize]| [vec![1; rank - s.len()], s.to_vec()].concat();
        let (a_batch, b_batch) = (align(ab), align(bb));
        let mut batch = Vec::with_capacity(rank);
        for (&x, &y) in a_batch.iter().zip(&b_batch) {
            batch.push(match (x, y) {
                (x, y) if x == y => x,
                (1, y) => y,
                (x, 1) => x,
                _ => return Err(OpError::invalid(format!("MatMul batch axes do not broadcast: {a:?} x {b:?}"))),
            });
        }
        Ok(MatMulDims { batch, a_batch, b_batch, m, k: ka, n, layout: TileLayout::default() })
    }

    /// `y[batch, i, j] = finish(sum_p A'[i, p] * B'[p, j])` in `ty`, where `load(ix,
    /// a_index, b_index)` gives the two factors (so callers can subtract zero points)
    /// and `finish` (default: identity) maps the sum to the stored value.
    pub fn emit(
        &self,
        kb: &mut KernelBuilder,
        ty: Ty,
        y: &Operand,
        finish: Option<&dyn Fn(Expr) -> Expr>,
        load: impl Fn(&MatIx, Expr, Expr) -> (Expr, Expr),
    ) {
        let (m, k, n) = (self.m, self.k, self.n);
        let in_place = finish.is_none() && holds_exactly(y.ty.dtype, ty);
        kb.for_shape(&self.batch, |kb, bix| {
            let a0 = imul(broadcast(&self.a_batch, bix), (m * k) as i64);
            let b0 = imul(broadcast(&self.b_batch, bix), (k * n) as i64);
            let y0 = imul(linear(&self.batch, bix), (m * n) as i64);
            let a_at = |i: Expr, p: Expr| iadd(a0.clone(), iadd(imul(i, k as i64), p));
            let b_at = |p: Expr, j: Expr| iadd(b0.clone(), iadd(imul(p, n as i64), j));
            let y_at = |i: Expr, j: Expr| iadd(y0.clone(), iadd(imul(i, n as i64), j));
            if in_place {
                kb.for_(m * n, |kb, t| kb.store(y.buf, iadd(y0.clone(), t), zero(ty)));
                let tile = Tile { ty, m, k, n, y: y.buf, layout: self.layout };
                tile.accumulate(
                    kb,
                    &y_at,
                    &|i, p| load(&MatIx { i: i.clone(), j: e::idx(0) }, a_at(i, p.clone()), b_at(p, e::idx(0))).0,
                    &|p, j| {
                        let ix = MatIx { i: e::idx(0), j: j.clone() };
                        load(&ix, a_at(e::idx(0), p.clone()), b_at(p, j)).1
                    },
                );
                return;
            }
            kb.for_(m, |kb, i| {
                kb.for_(n, |kb, j| {
                    let acc = kb.let_(ty, zero(ty));
                    kb.for_(k, |kb, p| {
                        let ix = MatIx { i: i.clone(), j: j.clone() };
                        let (a_val, b_val) = load(&ix, a_at(i.clone(), p.clone()), b_at(p, j.clone()));
                        kb.set(acc, mac(ty, e::var(acc), a_val, b_val));
                    });
                    let v = finish.map_or(e::var(acc), |f| f(e::var(acc)));
                    kb.store(y.buf, y_at(i.clone(), j), v);
                });
            });
        });
    }
}

/// Rows of A per register tile: each B element loaded feeds this many accumulations.
pub(super) const TILE_ROWS: usize = 4;
/// Terms of the sum per pass over an output row: each partial sum loaded from Y takes
/// this many fused multiply-adds before it is stored back.
pub(super) const TILE_DEPTH: usize = 4;

/// The register-blocked micro-kernel of the products whose output holds the
/// accumulator exactly: `Y[i, j] += sum_p A[i, p] * B[p, j]` on an `m x k x n`
/// product, Y already holding the initial values.
///
/// Rows are taken [`TILE_ROWS`] at a time and the sum [`TILE_DEPTH`] terms at a time:
/// the `TILE_ROWS x TILE_DEPTH` factors of A are loaded into variables, then one loop
/// over `j` updates the `TILE_ROWS` output rows, each element by a chain of
/// `TILE_DEPTH` fused multiply-adds over the same B row elements. Per element of Y the
/// terms still come in increasing `p`, one rounding each, so the result is bit for bit
/// the one of the plain `(i, p, j)` nest; only loads and stores of Y and B are saved
/// (the Cranelift backend runs the `j` loop as f32x4 with the A factors splatted, the C
/// compiler keeps them in registers: `vfma` with one load of B per `TILE_ROWS` MACs).
/// Leftover rows and terms are unrolled at compile time.
///
/// `b(p, j)` is the only place B is read: a packed or quantised B operand plugs in there.
///
/// Under [`GemmTiles::Panels`] the same sums are laid out as blocks instead
/// ([`Tile::panels`]).
pub(super) struct Tile {
    pub ty: Ty,
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub y: BufId,
    pub layout: TileLayout,
}

/// Output rows of a [`GemmTiles::Panels`] block.
pub(super) const PANEL_ROWS: usize = 6;
/// Output columns of a [`GemmTiles::Panels`] block, and the width of a packed B panel:
/// 6 x 8 is twelve f32x4 accumulators, which with two B vectors and one splat of A fits
/// x86_64's sixteen vector registers (aarch64 has 32).
pub(super) const PANEL_COLS: usize = 8;

/// Which KIR layout a float tile takes, and where B comes from.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct TileLayout {
    pub tiles: GemmTiles,
    /// Under [`GemmTiles::Panels`]: B packed at compile time ([`pack_panels`]).
    pub b_panels: Option<BufId>,
}

impl TileLayout {
    /// The layout of an `ty` product whose B operand is `b` (`[k, n]`, or `[n, k]` when
    /// `trans_b`): the program's choice for f32 (other types keep row passes), with a
    /// constant f32 B packed into panels under [`GemmTiles::Panels`].
    pub fn plan(cx: &mut LowerCx, ty: Ty, b: &Operand, trans_b: bool, k: usize, n: usize) -> TileLayout {
        let tiles = if ty == Ty::F32 { cx.prog.gemm_tiles } else { GemmTiles::RowPasses };
        let b_panels = if tiles != GemmTiles::RowPasses { pack_panels(cx, b, trans_b, k, n) } else { None };
        TileLayout { tiles, b_panels }
    }
}

/// A constant 2-D f32 B (`[k, n]`, `[n, k]` when `trans_b`) as a new weight in the order
/// [`Tile::block`] reads it: column panels of [`PANEL_COLS`] (the last one narrower),
/// each `k` rows of its width, so the panel of columns `j0..j0 + w` starts at `j0 * k`
/// and every step of the sum reads `w` consecutive values. `None` (B read in place) for
/// anything else.
fn pack_panels(cx: &mut LowerCx, b: &Operand, trans_b: bool, k: usize, n: usize) -> Option<BufId> {
    let t = b.konst.as_ref()?;
    // Any rank holding exactly `k x n` values (a ConvTranspose weight read as a matrix).
    if b.ty.dtype != DType::F32 || k * n == 0 || b.len() != k * n {
        return None;
    }
    let src: Vec<f32> = t.as_array::<f32>()?.iter().copied().collect();
    let at = |p: usize, j: usize| if trans_b { src[j * k + p] } else { src[p * n + j] };
    let mut packed = Vec::with_capacity(k * n);
    for j0 in (0..n).step_by(PANEL_COLS) {
        let w = PANEL_COLS.min(n - j0);
        for p in 0..k {
            packed.extend((j0..j0 + w).map(|j| at(p, j)));
        }
    }
    let name = format!("{}.panels", cx.prog.buffer(b.buf).name);
    let weight = BufKind::Weight(Arc::new(Tensor::from_vec(&[k * n], packed)));
    Some(cx.prog.add_buffer(name, DType::F32, vec![k * n], weight))
}

impl Tile {
    pub fn accumulate(
        &self,
        kb: &mut KernelBuilder,
        y_at: &dyn Fn(Expr, Expr) -> Expr,
        a: &dyn Fn(Expr, Expr) -> Expr,
        b: &dyn Fn(Expr, Expr) -> Expr,
    ) {
        if let GemmTiles::Panels { depth } = self.layout.tiles {
            return self.panels(kb, depth.max(1), y_at, a, b);
        }
        let (m, k) = (self.m, self.k);
        let factors: Vec<Var> = (0..TILE_ROWS.min(m) * TILE_DEPTH.min(k)).map(|_| kb.var(self.ty)).collect();
        let full_rows = m / TILE_ROWS * TILE_ROWS;
        kb.for_(m / TILE_ROWS, |kb, ib| {
            let i0 = imul(ib, TILE_ROWS as i64);
            self.rows(kb, &factors, i0, TILE_ROWS, y_at, a, b);
        });
        if m > full_rows {
            self.rows(kb, &factors, e::idx(full_rows as i64), m - full_rows, y_at, a, b);
        }
    }

    /// Rows `i0 .. i0 + rows` over the whole sum.
    #[allow(clippy::too_many_arguments)]
    fn rows(
        &self,
        kb: &mut KernelBuilder,
        factors: &[Var],
        i0: Expr,
        rows: usize,
        y_at: &dyn Fn(Expr, Expr) -> Expr,
        a: &dyn Fn(Expr, Expr) -> Expr,
        b: &dyn Fn(Expr, Expr) -> Expr,
    ) {
        let k = self.k;
        let full = k / TILE_DEPTH * TILE_DEPTH;
        kb.for_(k / TILE_DEPTH, |kb, pb| {
            let p0 = imul(pb, TILE_DEPTH as i64);
            self.pass(kb, factors, i0.clone(), rows, p0, TILE_DEPTH, y_at, a, b);
        });
        if k > full {
            self.pass(kb, factors, i0, rows, e::idx(full as i64), k - full, y_at, a, b);
        }
    }

    /// Terms `p0 .. p0 + depth` of rows `i0 .. i0 + rows`: the factors of A into
    /// variables, then one loop over the output rows.
    #[allow(clippy::too_many_arguments)]
    fn pass(
        &self,
        kb: &mut KernelBuilder,
        factors: &[Var],
        i0: Expr,
        rows: usize,
        p0: Expr,
        depth: usize,
        y_at: &dyn Fn(Expr, Expr) -> Expr,
        a: &dyn Fn(Expr, Expr) -> Expr,
        b: &dyn Fn(Expr, Expr) -> Expr,
    ) {
        let at = |base: &Expr, d: usize| iadd(base.clone(), e::idx(d as i64));
        let factor = |r: usize, q: usize| factors[r * TILE_DEPTH.min(self.k) + q];
        for r in 0..rows {
            for q in 0..depth {
                kb.set(factor(r, q), a(at(&i0, r), at(&p0, q)));
            }
        }
        kb.for_(self.n, |kb, j| {
            for r in 0..rows {
                let idx = y_at(at(&i0, r), j.clone());
                let mut v = e::load(self.y, idx.clone());
                for q in 0..depth {
                    v = mac(self.ty, v, e::var(factor(r, q)), b(at(&p0, q), j.clone()));
                }
                kb.store(self.y, idx, v);
            }
        });
    }

    /// The [`GemmTiles::Panels`] layout: [`PANEL_ROWS`] x [`PANEL_COLS`] output blocks
    /// (narrower ones at the bottom and right edges), each over the whole sum.
    fn panels(
        &self,
        kb: &mut KernelBuilder,
        depth: usize,
        y_at: &dyn Fn(Expr, Expr) -> Expr,
        a: &dyn Fn(Expr, Expr) -> Expr,
        b: &dyn Fn(Expr, Expr) -> Expr,
    ) {
        let m = self.m;
        let full = m / PANEL_ROWS * PANEL_ROWS;
        let sh = Shape { depth, y_at, a, b };
        kb.for_(m / PANEL_ROWS, |kb, ib| self.panel_row(kb, &sh, imul(ib, PANEL_ROWS as i64), PANEL_ROWS));
        if m > full {
            self.panel_row(kb, &sh, e::idx(full as i64), m - full);
        }
    }

    /// The blocks of rows `i0 .. i0 + rows`, left to right.
    fn panel_row(&self, kb: &mut KernelBuilder, sh: &Shape, i0: Expr, rows: usize) {
        let n = self.n;
        let full = n / PANEL_COLS * PANEL_COLS;
        kb.for_(n / PANEL_COLS, |kb, jb| self.block(kb, sh, i0.clone(), rows, imul(jb, PANEL_COLS as i64), PANEL_COLS));
        if n > full {
            self.block(kb, sh, i0, rows, e::idx(full as i64), n - full);
        }
    }

    /// `Y[i0 + r, j0 + jj] += sum_p A[i0 + r, p] * B[p, j0 + jj]` for `r < rows`,
    /// `jj < w`: the `p` loop outside (`depth` terms per iteration, the leftover terms in
    /// a second loop), one fma per element and term inside, in increasing `p`. The stores
    /// do not move with `p`, so the Cranelift backend keeps the block in vector registers
    /// for the whole sum (loaded before the `p` loop, stored after it: this is where the
    /// block is complete); B comes from its panel when packed.
    fn block(&self, kb: &mut KernelBuilder, sh: &Shape, i0: Expr, rows: usize, j0: Expr, w: usize) {
        let k = self.k;
        let full = k / sh.depth * sh.depth;
        let terms = |kb: &mut KernelBuilder, p0: Expr, depth: usize| {
            kb.for_(w, |kb, jj| {
                let j = iadd(j0.clone(), jj.clone());
                for q in 0..depth {
                    let p = iadd(p0.clone(), e::idx(q as i64));
                    let bv = match self.layout.b_panels {
                        Some(panels) => {
                            e::load(panels, iadd(imul(j0.clone(), k as i64), iadd(imul(p.clone(), w as i64), jj.clone())))
                        }
                        None => (sh.b)(p.clone(), j.clone()),
                    };
                    for r in 0..rows {
                        let i = iadd(i0.clone(), e::idx(r as i64));
                        let idx = (sh.y_at)(i.clone(), j.clone());
                        let v = mac(self.ty, e::load(self.y, idx.clone()), (sh.a)(i, p.clone()), bv.clone());
                        kb.store(self.y, idx, v);
                    }
                }
            });
        };
        kb.for_(k / sh.depth, |kb, pb| terms(kb, imul(pb, sh.depth as i64), sh.depth));
        if k > full {
            kb.for_(1, |kb, _| terms(kb, e::idx(full as i64), k - full));
        }
    }
}

/// The operand accessors and depth of a [`GemmTiles::Panels`] tile.
struct Shape<'a> {
    depth: usize,
    y_at: &'a dyn Fn(Expr, Expr) -> Expr,
    a: &'a dyn Fn(Expr, Expr) -> Expr,
    b: &'a dyn Fn(Expr, Expr) -> Expr,
}

/// Gemm: `alpha * A' @ B' + beta * C`, C broadcast to `[M, N]`. Float data is computed
/// in F32 (F64 for f64 tensors); integer data exactly with wrapping, which needs
/// integral alpha and beta (the reference switches to floats otherwise).
fn lower_gemm(g: &Gemm, cx: &mut LowerCx, ins: &[Option<Operand>], y: &Operand) -> Result<(), OpError> {
    let (a, b) = (input(ins, 0)?, input(ins, 1)?);
    let c = ins.get(2).and_then(Option::as_ref);
    let ty = a.kty()?;
    let (&[m, n], [ar, ac], [_, _]) = (y.shape(), a.shape(), b.shape()) else {
        return Err(OpError::invalid("Gemm operands must be 2-D"));
    };
    let k = if g.trans_a { *ar } else { *ac };
    let (alpha, beta) = if ty.is_float() {
        (flit(ty, g.alpha), flit(ty, g.beta))
    } else if g.alpha.fract() == 0.0 && g.beta.fract() == 0.0 && g.alpha.abs() < 2e9 && g.beta.abs() < 2e9 {
        let lit = |v: f64| if ty == Ty::I64 { e::i64(v as i64) } else { e::i32(v as i32) };
        (lit(g.alpha), lit(g.beta))
    } else {
        return Err(OpError::unsupported("integer Gemm with a fractional alpha or beta"));
    };
    let a_at = |i: Expr, p: Expr| if g.trans_a { iadd(imul(p, m as i64), i) } else { iadd(imul(i, k as i64), p) };
    let b_at = |p: Expr, j: Expr| if g.trans_b { iadd(imul(j, k as i64), p) } else { iadd(imul(p, n as i64), j) };
    // `alpha * dot + beta * C[i, j]`.
    let finish = |dot: Expr, i: Expr, j: Expr| {
        let mut v = e::mul(dot, alpha.clone());
        if let Some(c) = c.filter(|_| g.beta != 0.0) {
            let cv = e::load(c.buf, broadcast(c.shape(), &[i, j]));
            v = e::add(v, e::mul(cv, beta.clone()));
        }
        v
    };
    let y_at = |i: Expr, j: Expr| iadd(imul(i, n as i64), j);
    let exact = holds_exactly(y.ty.dtype, ty);
    let layout = if exact { TileLayout::plan(cx, ty, b, g.trans_b, k, n) } else { TileLayout::default() };
    let mut kb = cx.kernel("");
    if exact {
        kb.for_(m * n, |kb, t| kb.store(y.buf, t, zero(ty)));
        let tile = Tile { ty, m, k, n, y: y.buf, layout };
        tile.accumulate(
            &mut kb,
            &y_at,
            &|i, p| e::load(a.buf, a_at(i, p)),
            &|p, j| e::load(b.buf, b_at(p, j)),
        );
        kb.for_(m, |kb, i| {
            kb.for_(n, |kb, j| {
                let at = y_at(i.clone(), j.clone());
                kb.store(y.buf, at.clone(), finish(e::load(y.buf, at), i.clone(), j));
            });
        });
    } else {
        kb.for_(m, |kb, i| {
            kb.for_(n, |kb, j| {
                let acc = kb.let_(ty, zero(ty));
                kb.for_(k, |kb, p| {
                    let v = mac(
                        ty,
                        e::var(acc),
                        e::load(a.buf, a_at(i.clone(), p.clone())),
                        e::load(b.buf, b_at(p, j.clone())),
                    );
                    kb.set(acc, v);
                });
                kb.store(y.buf, y_at(i.clone(), j.clone()), finish(e::var(acc), i.clone(), j));
            });
        });
    }
    cx.emit(kb.finish());
    Ok(())
}

/// Det: LU decomposition with partial pivoting of each matrix, in a scratch copy (the
/// input must stay intact). Singular matrices (a zero pivot) give 0.
fn lower_det(cx: &mut LowerCx, x: &Operand, y: &Operand) -> Result<(), OpError> {
    let ty = x.kty()?;
    if !ty.is_float() {
        return Err(OpError::unsupported(format!("Det of {}", x.ty.dtype)));
    }
    let n = match x.shape() {
        [.., r, c] if r == c => *c,
        s => return Err(OpError::invalid(format!("Det needs [..., n, n], got {s:?}"))),
    };
    let count = y.len();
    let work_dtype = if ty == Ty::F64 { DType::F64 } else { DType::F32 };
    let lu = cx.scratch("lu", work_dtype, vec![n * n]);
    let mut kb = cx.kernel("");
    let nn = n as i64;
    kb.for_(count, |kb, bi| {
        let base = imul(bi.clone(), nn * nn);
        kb.for_(n * n, |kb, t| kb.store(lu, t.clone(), e::load(x.buf, iadd(base.clone(), t))));
        let det = kb.let_(ty, flit(ty, 1.0));
        let at = |row: Expr, col: Expr| iadd(imul(row, nn), col);
        kb.for_(n, |kb, c| {
            // Pivot: the first row with the largest |a[row, c]| at or below c.
            let piv = kb.let_(Ty::Index, c.clone());
            let best = kb.let_(ty, e::un(UnOp::Abs, e::load(lu, at(c.clone(), c.clone()))));
            kb.for_(n, |kb, rr| {
                let v = e::un(UnOp::Abs, e::load(lu, at(rr.clone(), c.clone())));
                let cond = e::bin(
                    BinOp::And,
                    e::bin(BinOp::Gt, rr.clone(), c.clone()),
                    e::bin(BinOp::Gt, v.clone(), e::var(best)),
                );
                kb.if_(
                    cond,
                    |kb| {
                        kb.set(piv, rr.clone());
                        kb.set(best, v);
                    },
                    |_| {},
                );
            });
            kb.if_(
                e::bin(BinOp::Ne, e::var(piv), c.clone()),
                |kb| {
                    kb.for_(n, |kb, j| {
                        let t = kb.let_(ty, e::load(lu, at(c.clone(), j.clone())));
                        kb.store(lu, at(c.clone(), j.clone()), e::load(lu, at(e::var(piv), j.clone())));
                        kb.store(lu, at(e::var(piv), j), e::var(t));
                    });
                    kb.set(det, e::un(UnOp::Neg, e::var(det)));
                },
                |_| {},
            );
            let p = kb.let_(ty, e::load(lu, at(c.clone(), c.clone())));
            kb.set(det, e::mul(e::var(det), e::var(p)));
            kb.if_(
                e::bin(BinOp::Ne, e::var(p), zero(ty)),
                |kb| {
                    kb.for_(n, |kb, rr| {
                        kb.if_(
                            e::bin(BinOp::Gt, rr.clone(), c.clone()),
                            |kb| {
                                let f = kb.let_(ty, e::div(e::load(lu, at(rr.clone(), c.clone())), e::var(p)));
                                kb.for_(n, |kb, j| {
                                    let v = e::sub(
                                        e::load(lu, at(rr.clone(), j.clone())),
                                        e::mul(e::var(f), e::load(lu, at(c.clone(), j.clone()))),
                                    );
                                    kb.store(lu, at(rr.clone(), j), v);
                                });
                            },
                            |_| {},
                        );
                    });
                },
                |_| {},
            );
        });
        kb.store(y.buf, bi, e::var(det));
    });
    cx.emit(kb.finish());
    Ok(())
}

#[cfg(test)]
#[path = "linalg_testkit.rs"]
pub(super) mod testkit;

#[cfg(test)]
mod tests {
    use super::testkit::{run_op, run_op_with};
    use super::*;
    use crate::ir::{Tensor, TypeInfo};

    #[test]
    fn matmul_broadcasts_batch_axes() {
        let a: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let b: Vec<f32> = (0..6).map(|v| (v as f32) - 2.0).collect();
        let ins = [Tensor::from_vec(&[2, 2, 3], a.clone()), Tensor::from_vec(&[1, 3, 2], b.clone())];
        let y =
            run_op(&ins, &[TypeInfo::new(DType::F32, vec![2, 2, 2])], |cx, i, o| lower(&LinalgOp::MatMul, cx, i, o));
        let mut want = Vec::new();
        for bi in 0..2 {
            for i in 0..2 {
                for j in 0..2 {
                    want.push((0..3).map(|p| a[bi * 6 + i * 3 + p] * b[p * 2 + j]).sum::<f32>());
                }
            }
        }
        assert_eq!(y[0], Tensor::from_vec(&[2, 2, 2], want));
    }

    /// Deterministic, non-integral data so that a change of summation order would show.
    fn wobble(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|v| ((v as u32).wrapping_mul(2654435761u32).wrapping_add(seed) >> 8) as f32 / 16777216.0 - 0.5).collect()
    }

    /// The register-blocked tiles (full and leftover rows and terms, batch offsets) give
    /// bit for bit the plain `(i, p, j)` sum: one fma per term, in increasing `p`.
    #[test]
    fn tiled_matmul_keeps_the_summation_order() {
        for (m, k, n) in [(6, 7, 5), (4, 4, 9), (1, 3, 2), (9, 13, 4)] {
            let (a, b) = (wobble(2 * m * k, 1), wobble(k * n, 2));
            let ins = [Tensor::from_vec(&[2, m, k], a.clone()), Tensor::from_vec(&[k, n], b.clone())];
            let y = run_op(&ins, &[TypeInfo::new(DType::F32, vec![2, m, n])], |cx, i, o| {
                lower(&LinalgOp::MatMul, cx, i, o)
            });
            let mut want = Vec::new();
            for bi in 0..2 {
                for i in 0..m {
                    for j in 0..n {
                        want.push((0..k).fold(0.0f32, |acc, p| a[(bi * m + i) * k + p].mul_add(b[p * n + j], acc)));
                    }
                }
            }
            assert_eq!(y[0], Tensor::from_vec(&[2, m, n], want), "{m}x{k}x{n}");
        }
    }

    /// Gemm's tiles with both operands transposed, then `alpha * dot + beta * C`.
    #[test]
    fn tiled_gemm_folds_transposes_and_bias() {
        let (m, k, n) = (5, 6, 7);
        let (a, b, c) = (wobble(k * m, 3), wobble(n * k, 4), wobble(n, 5));
        let ins = [Tensor::from_vec(&[k, m], a.clone()), Tensor::from_vec(&[n, k], b.clone()), Tensor::from_vec(&[n], c.clone())];
        let g = Gemm { alpha: 0.5, beta: 2.0, trans_a: true, trans_b: true };
        let y = run_op(&ins, &[TypeInfo::new(DType::F32, vec![m, n])], |cx, i, o| lower(&LinalgOp::Gemm(g), cx, i, o));
        let mut want = Vec::new();
        for i in 0..m {
            for j in 0..n {
                let dot = (0..k).fold(0.0f32, |acc, p| a[p * m + i].mul_add(b[j * k + p], acc));
                want.push(dot * 0.5 + c[j] * 2.0);
            }
        }
        assert_eq!(y[0], Tensor::from_vec(&[m, n], want));
    }

    /// The panel layout (edge blocks of every width, B packed or read in place, Gemm's
    /// transposes folded into the packing) gives bit for bit the row passes' results.
    #[test]
    fn panel_tiles_match_row_passes() {
        for (m, k, n) in [(13, 9, 21), (6, 5, 8), (2, 3, 3), (7, 1, 17)] {
            for b_const in [false, true] {
                let (a, b) = (wobble(m * k, 6), wobble(k * n, 7));
                let ins = [Tensor::from_vec(&[m, k], a), Tensor::from_vec(&[k, n], b)];
                let out = [TypeInfo::new(DType::F32, vec![m, n])];
                let run = |tiles| {
                    run_op_with(tiles, &ins, &[false, b_const], &out, |cx, i, o| lower(&LinalgOp::MatMul, cx, i, o))
                };
                for depth in [1, 4] {
                    assert_eq!(run(GemmTiles::Panels { depth }), run(GemmTiles::RowPasses), "MatMul {m}x{k}x{n} const B {b_const}");
                }
                let (at, bt, c) = (wobble(k * m, 8), wobble(n * k, 9), wobble(n, 10));
                let ins = [Tensor::from_vec(&[k, m], at), Tensor::from_vec(&[n, k], bt), Tensor::from_vec(&[n], c)];
                let gemm = || LinalgOp::Gemm(Gemm { alpha: 0.5, beta: 2.0, trans_a: true, trans_b: true });
                let run = |tiles| {
                    run_op_with(tiles, &ins, &[false, b_const, true], &out, |cx, i, o| lower(&gemm(), cx, i, o))
                };
                for depth in [1, 4] {
                    assert_eq!(run(GemmTiles::Panels { depth }), run(GemmTiles::RowPasses), "Gemm {m}x{k}x{n} const B {b_const}");
                }
            }
        }
    }

    #[test]
    fn matmul_integer_subtracts_per_column_zero_points() {
        let ins = [
            Tensor::from_vec(&[2, 2], vec![1u8, 2, 3, 4]),
            Tensor::from_vec(&[2, 2], vec![5u8, 6, 7, 8]),
            Tensor::from_vec(&[1], vec![1u8]),
            Tensor::from_vec(&[2], vec![5u8, 6]),
        ];
        let y = run_op(&ins, &[TypeInfo::new(DType::I32, vec![2, 2])], |cx, i, o| {
            lower(&LinalgOp::MatMulInteger, cx, i, o)
        });
        // (A - 1) = [[0, 1], [2, 3]], (B - [5, 6]) = [[0, 0], [2, 2]].
        assert_eq!(y[0], Tensor::from_vec(&[2, 2], vec![2i32, 2, 6, 6]));
    }

    #[test]
    fn det_pivots_rows() {
        let ins = [Tensor::from_vec(&[2, 2, 2], vec![0.0f32, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.5])];
        let y = run_op(&ins, &[TypeInfo::new(DType::F32, vec![2])], |cx, i, o| lower(&LinalgOp::Det, cx, i, o));
        assert_eq!(y[0], Tensor::from_vec(&[2], vec![-2.0f32, 2.0]));
    }
}

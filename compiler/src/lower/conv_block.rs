//! Register-blocked f32 Conv and ConvTranspose for the SIMD Cranelift targets (the
//! programs lowered with [`GemmTiles::Panels`], like the GEMM panels of `lower/linalg.rs`).
//!
//! Both ops are rewritten as stride-1 correlations: `Z[oc, j] += W'[oc, ic, t] *
//! Xp[ic, j + off(t)]`, summed over the input channels and the taps `t` in kernel order,
//! which is a GEMM whose B operand is a shifted window of the input. Three pieces make
//! that hold for every output element without a bounds test:
//! - `Xp` is the input copied into a zero-padded scratch plane per channel (padding
//!   materialised once per run, a copy of the input's size), so every tap reads inside it;
//! - the output positions of a plane are flattened with the padded input's row pitch:
//!   output `u` (per axis) sits at `j = sum u[a] * pitch[a]`, so a tap's read index is
//!   `j + off(t)` across row ends too. The columns past a row's end are computed and
//!   never copied out (they read padding or the next row: finite values, discarded);
//! - ConvTranspose is split by output phase (`y = u * stride + phase` per axis): each
//!   phase is a stride-1 correlation over `u` with only the kernel positions that land
//!   on it, so no zero tap of the strided scatter is ever multiplied.
//!
//! Output channel blocks of up to [`PANEL_ROWS`] times `4 * parts` flattened positions are
//! one register block (`back::cranelift::block`): the loop over input channels outside,
//! one unrolled body over the taps and rows inside, whose stores do not move with the
//! input channel, so the block lives in f32x4 registers for the whole sum. The weights
//! are packed at compile time in the order the body reads them (`[block][phase][ic][tap]
//! [row]`: consecutive, so aarch64 reads four factors per vector load). The positions go
//! to a scratch `Z` (bias first), copied to Y in one pass at the end; a conv whose
//! flattened plane is Y's own layout (1-D, or no padding on the inner axes) accumulates
//! in Y directly.
//!
//! Each output element still receives `bias`, then its terms in (input channel, kernel
//! position) order, one fused multiply-add each, as in `lower/conv.rs`; the only extra
//! terms are products with the zero padding, which leave a finite sum unchanged.
//! Anything else (integer or 16-bit types, runtime weights, a strided Conv, huge kernels)
//! returns `false` and keeps the loop nests of `lower/conv.rs`.

use std::sync::Arc;

use super::linalg::{mac, zero, PANEL_ROWS};
use super::{LowerCx, Operand};
use crate::error::OpError;
use crate::ir::{DType, Tensor};
use crate::kir::build::{iadd, imul, linear, KernelBuilder};
use crate::kir::{e, BinOp, BufKind, Expr, GemmTiles, Ty};

/// Accumulator vectors per block: twelve f32x4 leave x86_64's sixteen registers room
/// for an input vector and a splatted weight (as the GEMM panels do).
const BLOCK_VECTORS: usize = 12;
/// The widest block in positions (the register block limit of the Cranelift backend).
const MAX_PARTS: usize = 8;
/// Phases with more taps than this keep the loop nests (the unrolled body grows with
/// taps x rows x parts).
const MAX_TAPS: usize = 64;
const LANES: usize = 4;

/// A grouped Conv (`transpose == false`: X `[N, C, in...]`, W `[M, C/group, k...]`) or
/// ConvTranspose (W `[C, M/group, k...]`) with its geometry resolved (pads after auto_pad).
pub(super) struct Problem<'a> {
    pub n: usize,
    pub c: usize,
    pub m: usize,
    pub group: usize,
    pub input: &'a [usize],
    pub out: &'a [usize],
    pub kernel: &'a [usize],
    pub strides: &'a [usize],
    pub dilations: &'a [usize],
    pub pad_head: &'a [usize],
    pub transpose: bool,
}

/// One axis as a correlation: per output phase, the taps `(kernel position, c)` that
/// read input `u + c` for output `u * phases + phase`.
struct Axis {
    phases: Vec<Vec<(usize, i64)>>,
    /// Output positions per phase (the longest phase).
    umax: usize,
    /// Zeros before the input in the padded plane, and the plane's extent.
    lpad: usize,
    extent: usize,
}

impl Axis {
    fn new(p: &Problem, a: usize) -> Option<Axis> {
        let (k, s, d, ph, len, out) =
            (p.kernel[a], p.strides[a], p.dilations[a], p.pad_head[a] as i64, p.input[a] as i64, p.out[a]);
        let (nph, umax) = if p.transpose { (s, out.div_ceil(s)) } else { (1, out) };
        if s == 0 || umax == 0 || len == 0 || (!p.transpose && s != 1) {
            return None;
        }
        let u_hi = umax as i64 - 1;
        // A tap none of whose reads lands in the input only ever multiplies padding.
        let useful = |c: i64| c + u_hi >= 0 && c < len;
        let phases: Vec<Vec<(usize, i64)>> = (0..nph as i64)
            .map(|phase| {
                (0..k)
                    .filter_map(|kk| {
                        let t = (kk * d) as i64;
                        let c = if p.transpose {
                            let q = phase + ph - t;
                            (q.rem_euclid(s as i64) == 0).then(|| q.div_euclid(s as i64))?
                        } else {
                            t - ph
                        };
                        useful(c).then_some((kk, c))
                    })
                    .collect()
            })
            .collect();
        let cs = phases.iter().flatten().map(|&(_, c)| c);
        let lpad = cs.clone().map(|c| -c).max().unwrap_or(0).max(0);
        let reach = cs.map(|c| u_hi + c + lpad + 1).max().unwrap_or(0);
        let extent = (lpad + len).max(reach) as usize;
        Some(Axis { phases, umax, lpad: lpad as usize, extent })
    }
}

/// A tap of one phase: its kernel position and read offset in the flattened plane.
struct Tap {
    k: Vec<usize>,
    off: usize,
}

/// Lowers `p` as described in the module doc when it applies (returns `false` otherwise,
/// having emitted nothing).
pub(super) fn lower(
    cx: &mut LowerCx,
    p: &Problem,
    x: &Operand,
    w: &Operand,
    bias: Option<&Operand>,
    y: &Operand,
) -> Result<bool, OpError> {
    let ns = p.input.len();
    let float = |o: &Operand| o.ty.dtype == DType::F32;
    if !matches!(cx.prog.gemm_tiles, GemmTiles::Panels { .. })
        || !float(x)
        || !float(y)
        || !bias.is_none_or(float)
        || ns == 0
        || [p.out.len(), p.kernel.len(), p.strides.len(), p.dilations.len(), p.pad_head.len()].iter().any(|&l| l != ns)
        || p.group == 0
        || p.n * p.c * p.m == 0
        || p.c % p.group != 0
        || p.m % p.group != 0
    {
        return Ok(false);
    }
    let Some(wv) = w.konst.as_ref().filter(|_| float(w)).and_then(|t| t.as_array::<f32>()) else { return Ok(false) };
    if lower_as_gemm(cx, p, x, w, bias, y) {
        return Ok(true);
    }
    let wv: Vec<f32> = wv.iter().copied().collect();
    let Some(axes) = (0..ns).map(|a| Axis::new(p, a)).collect::<Option<Vec<Axis>>>() else { return Ok(false) };
    let (cg, mg) = (p.c / p.group, p.m / p.group);
    let kn: usize = p.kernel.iter().product();
    if wv.len() != if p.transpose { p.c * mg * kn } else { p.m * cg * kn } {
        return Ok(false);
    }

    // The padded plane: row-major over the axes' extents; `pitch[a]` is axis a's stride.
    let extents: Vec<usize> = axes.iter().map(|ax| ax.extent).collect();
    let pitch: Vec<usize> = (0..ns).map(|a| extents[a + 1..].iter().product()).collect();
    let plane: usize = extents.iter().product();
    let phase_counts: Vec<usize> = axes.iter().map(|ax| ax.phases.len()).collect();
    let nph: usize = phase_counts.iter().product();
    let phases: Vec<Vec<Tap>> = cartesian(&phase_counts)
        .into_iter()
        .map(|phi| {
            let lists: Vec<&Vec<(usize, i64)>> = (0..ns).map(|a| &axes[a].phases[phi[a]]).collect();
            cartesian(&lists.iter().map(|l| l.len()).collect::<Vec<_>>())
                .into_iter()
                .map(|pick| {
                    let k = (0..ns).map(|a| lists[a][pick[a]].0).collect();
                    let off = (0..ns).map(|a| (lists[a][pick[a]].1 + axes[a].lpad as i64) as usize * pitch[a]).sum();
                    Tap { k, off }
                })
                .collect()
        })
        .collect();
    if phases.iter().any(|t| t.len() > MAX_TAPS) {
        return Ok(false);
    }
    // Flattened output positions of a plane, and the block shape.
    let span = (0..ns).map(|a| (axes[a].umax - 1) * pitch[a]).sum::<usize>() + 1;
    let rows = PANEL_ROWS.min(mg);
    let mut parts = (BLOCK_VECTORS / rows).clamp(2, MAX_PARTS).min(span.div_ceil(LANES));
    let sp_out: usize = p.out.iter().product();
    // Y's own layout: one phase, and the plane's inner extents are Y's.
    let direct = nph == 1 && (1..ns).all(|a| extents[a] == p.out[a]) && span % LANES == 0;
    if direct {
        parts = (1..=parts).rev().find(|q| span % (q * LANES) == 0).unwrap_or(1);
    }
    let width = parts * LANES;
    let jb = span.div_ceil(width) * width;
    // Products with real inputs against those computed: the padding, the columns past
    // each row's end and the last block's rounding are computed too. Below a quarter (a
    // small input under a large kernel) the loop nests, which skip them, win: they take
    // about three times the instructions per product (digits' first transpose, at 28%,
    // is still faster blocked).
    let useful: usize = cartesian(&phase_counts)
        .iter()
        .map(|phi| {
            (0..ns)
                .map(|a| {
                    let len = p.input[a] as i64;
                    let valid = |c: i64| (0..axes[a].umax as i64).filter(|u| (0..len).contains(&(u + c))).count();
                    axes[a].phases[phi[a]].iter().map(|&(_, c)| valid(c)).sum::<usize>()
                })
                .product::<usize>()
        })
        .sum();
    let computed: usize = phases.iter().map(|t| t.len() * jb).sum();
    if useful * 4 < computed {
        return Ok(false);
    }
    debug_assert!(!direct || jb == sp_out);
    let max_off = phases.iter().flatten().map(|t| t.off).max().unwrap_or(0);
    let pitch_c = plane.max(jb + max_off);
    let sp_in: usize = p.input.iter().product();
    let x_direct = axes.iter().all(|ax| ax.lpad == 0) && extents == p.input && pitch_c == plane;

    // Weights packed per group, block (full blocks, then the leftover), phase, input
    // channel, tap and row.
    let taps_total: usize = phases.iter().map(Vec::len).sum();
    let full = mg / rows;
    let blocks: Vec<(usize, usize)> =
        (0..full).map(|b| (b * rows, rows)).chain((mg % rows != 0).then_some((full * rows, mg % rows))).collect();
    let mut packed = Vec::with_capacity(p.group * mg * cg * taps_total);
    for g in 0..p.group {
        for &(om0, r_n) in &blocks {
            for taps in &phases {
                for icl in 0..cg {
                    for t in taps {
                        let kl = linear_usize(p.kernel, &t.k);
                        for r in 0..r_n {
                            let om = om0 + r;
                            let at = if p.transpose {
                                ((g * cg + icl) * mg + om) * kn + kl
                            } else {
                                ((g * mg + om) * cg + icl) * kn + kl
                            };
                            packed.push(wv[at]);
                        }
                    }
                }
            }
        }
    }
    let wname = format!("{}.blocks", cx.prog.buffer(w.buf).name);
    let wlen = packed.len();
    let wp = cx.prog.add_buffer(wname, DType::F32, vec![wlen], BufKind::Weight(Arc::new(Tensor::from_vec(&[wlen], packed))));
    let xp = if x_direct { x.buf } else { cx.scratch("padded", DType::F32, vec![p.n * p.c * pitch_c]) };
    let z = if direct { y.buf } else { cx.scratch("phases", DType::F32, vec![p.n * p.m * nph * jb]) };

    let ty = Ty::F32;
    let mut kb = cx.kernel("");
    if !x_direct {
        kb.for_(p.n * p.c * pitch_c, |kb, t| kb.store(xp, t, zero(ty)));
        kb.for_(p.n * p.c, |kb, bc| {
            kb.for_shape(p.input, |kb, i| {
                let pos: Vec<Expr> = (0..ns).map(|a| iadd(i[a].clone(), e::idx(axes[a].lpad as i64))).collect();
                let to = iadd(imul(bc.clone(), pitch_c as i64), linear(&extents, &pos));
                kb.store(xp, to, e::load(x.buf, iadd(imul(bc.clone(), sp_in as i64), linear(p.input, i))));
            });
        });
    }
    kb.for_shape(&[p.n, p.m, nph * jb], |kb, ix| {
        let at = iadd(imul(iadd(imul(ix[0].clone(), p.m as i64), ix[1].clone()), (nph * jb) as i64), ix[2].clone());
        kb.store(z, at, bias.map_or(zero(ty), |b| e::load(b.buf, ix[1].clone())));
    });
    let group_stride = mg * cg * taps_total;
    kb.for_shape(&[p.n, p.group], |kb, ix| {
        let (b, g) = (&ix[0], &ix[1]);
        let block = |kb: &mut KernelBuilder, om0: Expr, wbase: Expr, r_n: usize| {
            let mut before = 0;
            for (ph, taps) in phases.iter().enumerate() {
                let first = before;
                before += taps.len();
                if taps.is_empty() {
                    continue;
                }
                let oc0 = iadd(imul(g.clone(), mg as i64), om0.clone());
                let zrow = imul(iadd(imul(iadd(imul(b.clone(), p.m as i64), oc0), nph as i64), e::idx(ph as i64)), jb as i64);
                kb.for_(jb / width, |kb, jblk| {
                    let j0 = iadd(zrow.clone(), imul(jblk.clone(), width as i64));
                    let xj0 = imul(jblk, width as i64);
                    // Measured on x86_64, a body over all taps beats one register block
                    // per tap (fewer accumulator round trips) although Cranelift then
                    // spills some accumulators: dcgan 358 against 427 µs.
                    let wt = iadd(wbase.clone(), e::idx((cg * r_n * first) as i64));
                    kb.for_(cg, |kb, icl| {
                        let ic = iadd(imul(g.clone(), cg as i64), icl.clone());
                        let x0 = iadd(imul(iadd(imul(b.clone(), p.c as i64), ic), pitch_c as i64), xj0.clone());
                        let w0 = iadd(wt.clone(), imul(icl, (taps.len() * r_n) as i64));
                        kb.for_(width, |kb, jj| {
                            for (ti, t) in taps.iter().enumerate() {
                                // Constant terms last: they become address displacements.
                                let xv = e::load(xp, iadd(iadd(x0.clone(), jj.clone()), e::idx(t.off as i64)));
                                for r in 0..r_n {
                                    let wv = e::load(wp, iadd(w0.clone(), e::idx((ti * r_n + r) as i64)));
                                    let at = iadd(iadd(j0.clone(), jj.clone()), e::idx((r * nph * jb) as i64));
                                    kb.store(z, at.clone(), mac(ty, e::load(z, at), xv.clone(), wv));
                                }
                            }
                        });
                    });
                });
            }
        };
        let gbase = imul(g.clone(), group_stride as i64);
        let block_stride = cg * taps_total * rows;
        if full > 0 {
            kb.for_(full, |kb, ob| {
                block(kb, imul(ob.clone(), rows as i64), iadd(gbase.clone(), imul(ob, block_stride as i64)), rows)
            });
        }
        if mg % rows != 0 {
            block(kb, e::idx((full * rows) as i64), iadd(gbase.clone(), e::idx((full * block_stride) as i64)), mg % rows);
        }
    });
    if !direct {
        // Z to Y: output `u * phases + phase` per axis, when inside Y.
        kb.for_shape(&[p.n, p.m], |kb, ix| {
            let bm = iadd(imul(ix[0].clone(), p.m as i64), ix[1].clone());
            kb.for_shape(&phase_counts, |kb, phi| {
                let umax: Vec<usize> = axes.iter().map(|ax| ax.umax).collect();
                kb.for_shape(&umax, |kb, u| {
                    let mut cond: Option<Expr> = None;
                    let mut yp = Vec::with_capacity(ns);
                    for a in 0..ns {
                        let s = phase_counts[a];
                        let v = iadd(imul(u[a].clone(), s as i64), phi[a].clone());
                        if umax[a] * s > p.out[a] {
                            super::conv::and_into(&mut cond, e::bin(BinOp::Lt, v.clone(), e::idx(p.out[a] as i64)));
                        }
                        yp.push(v);
                    }
                    let zj: Expr = (0..ns).fold(e::idx(0), |acc, a| iadd(acc, imul(u[a].clone(), pitch[a] as i64)));
                    let zi = iadd(imul(iadd(imul(bm.clone(), nph as i64), linear(&phase_counts, phi)), jb as i64), zj);
                    let yi = iadd(imul(bm.clone(), sp_out as i64), linear(p.out, &yp));
                    super::conv::guarded(kb, cond, |kb| kb.store(y.buf, yi, e::load(z, zi)));
                });
            });
        });
    }
    cx.emit(kb.finish());
    Ok(true)
}

/// A ConvTranspose of a single input position (every spatial axis 1, no padding or
/// dilation, Y the kernel's extent: DCGAN's first layer) is a product: `y[b, oc * kn + q]
/// = bias[oc] + sum_ic x[b, ic] * w[ic, oc * kn + q]`. As a phase-split correlation all
/// but one of its taps would multiply padding, so it takes the GEMM panels instead (W
/// packed as the B panels). Returns `false`, having emitted nothing, for anything else.
fn lower_as_gemm(cx: &mut LowerCx, p: &Problem, x: &Operand, w: &Operand, bias: Option<&Operand>, y: &Operand) -> bool {
    let single = p.input.iter().all(|&l| l == 1) && p.pad_head.iter().all(|&h| h == 0);
    let dense = p.out == p.kernel && p.kernel.iter().zip(p.dilations).all(|(&k, &d)| k == 1 || d == 1);
    if !p.transpose || p.group != 1 || !single || !dense || w.konst.is_none() {
        return false;
    }
    let (ty, kn) = (Ty::F32, p.kernel.iter().product::<usize>());
    let (rows, depth, cols) = (p.n, p.c, p.m * kn);
    if w.len() != depth * cols || y.len() != rows * cols {
        return false;
    }
    let layout = super::linalg::TileLayout::plan(cx, ty, w, false, depth, cols);
    let mut kb = cx.kernel("");
    kb.for_shape(&[rows, p.m, kn], |kb, ix| {
        let at = iadd(imul(iadd(imul(ix[0].clone(), p.m as i64), ix[1].clone()), kn as i64), ix[2].clone());
        kb.store(y.buf, at, bias.map_or(zero(ty), |b| e::load(b.buf, ix[1].clone())));
    });
    let tile = super::linalg::Tile { ty, m: rows, k: depth, n: cols, y: y.buf, layout };
    tile.accumulate(
        &mut kb,
        &|i, j| iadd(imul(i, cols as i64), j),
        &|i, q| e::load(x.buf, iadd(imul(i, depth as i64), q)),
        &|q, j| e::load(w.buf, iadd(imul(q, cols as i64), j)),
    );
    cx.emit(kb.finish());
    true
}

/// Every index tuple of `shape`, row-major.
fn cartesian(shape: &[usize]) -> Vec<Vec<usize>> {
    let mut all = vec![Vec::new()];
    for &d in shape {
        all = all.into_iter().flat_map(|p: Vec<usize>| (0..d).map(move |i| [p.clone(), vec![i]].concat())).collect();
    }
    all
}

fn linear_usize(shape: &[usize], ix: &[usize]) -> usize {
    shape.iter().zip(ix).fold(0, |acc, (&d, &i)| acc * d + i)
}

#[cfg(test)]
mod tests {
    use super::super::linalg::testkit::run_op_with;
    use crate::ir::Tensor;
    use crate::kir::GemmTiles;
    use crate::ops::conv::{AutoPad, ConvOp, ConvTranspose, WindowAttrs};
    use crate::ops::Semantics;

    /// Integer-valued data, so every summation order gives the same floats.
    fn ramp(shape: &[usize], seed: usize) -> Tensor {
        let n: usize = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|i| ((i * 7 + seed) % 11) as f32 - 5.0).collect())
    }

    /// The blocked form (constant weights, panel tiles) agrees with the reference on
    /// padded, dilated, grouped, strided-transpose 1-D, 2-D and 3-D geometries, with and
    /// without bias, including leftover channel blocks and phases without taps.
    #[test]
    fn blocked_convs_match_the_reference() {
        // (x shape, w shape as Conv's [M, C/group, k...], strides, dilations, pads, group, output_padding)
        type Case = (Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>, usize, Vec<usize>);
        let cases: Vec<Case> = vec![
            (vec![1, 2, 7], vec![4, 2, 3], vec![1], vec![1], vec![1, 1], 1, vec![]),
            (vec![1, 32, 24], vec![13, 32, 7], vec![1], vec![3], vec![9, 9], 1, vec![]),
            (vec![1, 2, 9], vec![2, 1, 3], vec![2], vec![2], vec![3, 0], 2, vec![1]),
            (vec![2, 2, 5, 6], vec![2, 2, 3, 2], vec![2, 1], vec![1, 2], vec![1, 0, 2, 3], 1, vec![1, 0]),
            (vec![1, 4, 4, 4], vec![4, 1, 4, 4], vec![2, 3], vec![1, 1], vec![1, 2, 1, 0], 2, vec![0, 2]),
            (vec![1, 3, 8], vec![6, 3, 3], vec![1], vec![2], vec![2, 1], 1, vec![]),
            (vec![1, 5, 4, 4], vec![7, 5, 4, 4], vec![2, 2], vec![1, 1], vec![1, 1, 1, 1], 1, vec![]),
            (vec![1, 8, 12], vec![3, 8, 8], vec![4], vec![1], vec![2, 2], 1, vec![]),
            (vec![1, 2, 3, 4, 5], vec![3, 2, 2, 3, 2], vec![1, 2, 1], vec![1, 1, 2], vec![0, 1, 1, 1, 0, 2], 1, vec![]),
            (vec![1, 3, 5], vec![2, 3, 2], vec![5], vec![1], vec![0, 0], 1, vec![]),
            // One input position: the transpose is a product (the conv stays a correlation).
            (vec![2, 9, 1, 1], vec![7, 9, 4, 4], vec![1, 1], vec![1, 1], vec![0, 0, 0, 0], 1, vec![]),
            (vec![1, 5, 1], vec![3, 5, 3], vec![2], vec![1], vec![0, 0], 1, vec![]),
        ];
        for (xs, ws, strides, dilations, pads, group, output_padding) in cases {
            let window =
                WindowAttrs { auto_pad: AutoPad::NotSet, kernel_shape: None, strides, dilations, pads, group };
            let conv_w: Vec<usize> = [vec![ws[0], xs[1] / group], ws[2..].to_vec()].concat();
            let tr_w: Vec<usize> = [vec![xs[1], ws[1]], ws[2..].to_vec()].concat();
            let conv_ok = window.strides.iter().all(|&s| s == 1);
            let mut ops = vec![(ConvOp::ConvTranspose(ConvTranspose { window: window.clone(), output_padding, output_shape: None }), tr_w)];
            if conv_ok {
                ops.push((ConvOp::Conv(window), conv_w));
            }
            for (op, w_shape) in ops {
                let m = if matches!(op, ConvOp::Conv(_)) { w_shape[0] } else { w_shape[1] * group };
                for with_bias in [false, true] {
                    let mut ins = vec![ramp(&xs, 1), ramp(&w_shape, 3)];
                    if with_bias {
                        ins.push(ramp(&[m], 5));
                    }
                    let refs: Vec<Option<&Tensor>> = ins.iter().map(Some).collect();
                    // A kernel wider than its input is no Conv.
                    let Ok(want) = op.eval(&refs) else { continue };
                    let mut blocked = false;
                    let got = run_op_with(GemmTiles::Panels { depth: 1 }, &ins, &[false, true], &[want[0].type_info()], |cx, i, o| {
                        let kernels = cx.prog.buffers.len();
                        super::super::conv::lower(&op, cx, i, o)?;
                        blocked = cx.prog.buffers.iter().skip(kernels).any(|b| b.name.ends_with(".blocks") || b.name.ends_with(".panels"));
                        Ok(())
                    });
                    assert!(blocked, "{op:?} on X {xs:?} took the blocked form");
                    assert_eq!(got[0], want[0], "{op:?} on X {xs:?}");
                }
            }
        }
    }
}

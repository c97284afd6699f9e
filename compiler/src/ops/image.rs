//! The image family: `Resize`/`Upsample` (in `image_resize.rs`), `GridSample`,
//! `AffineGrid`, `RoiAlign` and `NonMaxSuppression`.
//!
//! Float math is done in f64 and cast back once; index selection follows the reference
//! implementation step by step, since a different rounding picks a different pixel.

use super::util::{alloc_numel as numel, expect_dtype, input, opt_input, strides, FLOATS};
use super::{InferCtx, Op, Semantics};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};

#[path = "image_resize.rs"]
mod resize;
pub use resize::{AxisTaps, CropAxis, Interp, NearestMode, Resize};

#[derive(Clone, Debug)]
pub enum ImageOp {
    Resize(Resize),
    GridSample(GridSample),
    AffineGrid(AffineGrid),
    RoiAlign(RoiAlign),
    NonMaxSuppression(Nms),
}

/// `Some` when this family knows `ctx.op_type` in `ctx.domain`.
pub fn parse(ctx: &NodeCtx) -> Option<Result<Op, OpError>> {
    let op = if ctx.is("Resize") {
        Resize::parse_resize(ctx).map(ImageOp::Resize)
    } else if ctx.is("Upsample") {
        Resize::parse_upsample(ctx).map(ImageOp::Resize)
    } else if ctx.is("GridSample") {
        GridSample::parse(ctx).map(ImageOp::GridSample)
    } else if ctx.is("AffineGrid") {
        AffineGrid::parse(ctx).map(ImageOp::AffineGrid)
    } else if ctx.is("RoiAlign") {
        RoiAlign::parse(ctx).map(ImageOp::RoiAlign)
    } else if ctx.is("NonMaxSuppression") {
        Nms::parse(ctx).map(ImageOp::NonMaxSuppression)
    } else {
        return None;
    };
    Some(op.map(Op::Image))
}

impl Semantics for ImageOp {
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        match self {
            ImageOp::Resize(o) => o.infer(ctx),
            ImageOp::GridSample(o) => o.infer(ctx),
            ImageOp::AffineGrid(o) => o.infer(ctx),
            ImageOp::RoiAlign(o) => o.infer(ctx),
            ImageOp::NonMaxSuppression(o) => o.infer(ctx),
        }
    }
    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        match self {
            ImageOp::Resize(o) => o.eval(inputs),
            ImageOp::GridSample(o) => o.eval(inputs),
            ImageOp::AffineGrid(o) => o.eval(inputs),
            ImageOp::RoiAlign(o) => o.eval(inputs),
            ImageOp::NonMaxSuppression(o) => o.eval(inputs),
        }
    }
}


// ---------------------------------------------------------------------------------
// GridSample
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GridMode {
    Nearest,
    Linear,
    Cubic,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GridPadding {
    Zeros,
    Border,
    Reflection,
}

#[derive(Clone, Debug)]
pub struct GridSample {
    pub mode: GridMode,
    pub padding: GridPadding,
    pub align_corners: bool,
}

impl GridSample {
    fn parse(ctx: &NodeCtx) -> Result<GridSample, OpError> {
        // Opset 16 names the modes bilinear/bicubic; opset 20 renamed them.
        let mode = match ctx.string_or("mode", if ctx.opset < 20 { "bilinear" } else { "linear" })?.as_str() {
            "nearest" => GridMode::Nearest,
            "bilinear" | "linear" => GridMode::Linear,
            "bicubic" | "cubic" => GridMode::Cubic,
            m => return Err(OpError::invalid(format!("GridSample: unknown mode '{m}'"))),
        };
        let padding = match ctx.string_or("padding_mode", "zeros")?.as_str() {
            "zeros" => GridPadding::Zeros,
            "border" => GridPadding::Border,
            "reflection" => GridPadding::Reflection,
            m => return Err(OpError::invalid(format!("GridSample: unknown padding_mode '{m}'"))),
        };
        Ok(GridSample { mode, padding, align_corners: ctx.int_or("align_corners", 0)? != 0 })
    }

    fn out_shape(x: &[usize], grid: &[usize]) -> Result<Vec<usize>, OpError> {
        let nd = x.len().saturating_sub(2);
        if x.len() < 3 || grid.len() != x.len() || grid[0] != x[0] || grid[grid.len() - 1] != nd {
            return Err(OpError::invalid(format!("GridSample: X {x:?} and grid {grid:?} do not match")));
        }
        if nd > 3 {
            return Err(OpError::unsupported("GridSample with more than 3 spatial dimensions"));
        }
        let mut out = vec![x[0], x[1]];
        out.extend_from_slice(&grid[1..grid.len() - 1]);
        Ok(out)
    }

    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let (x, grid) = (ctx.input(0)?, ctx.input(1)?);
        expect_dtype("GridSample X", x, FLOATS)?;
        expect_dtype("GridSample grid", grid, FLOATS)?;
        Ok(vec![TypeInfo::new(x.dtype, Self::out_shape(&x.shape, &grid.shape)?)])
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (x, grid) = (input(inputs, 0)?, input(inputs, 1)?);
        let out_shape = Self::out_shape(x.shape(), grid.shape())?;
        let dims = &x.shape()[2..];
        let nd = dims.len();
        let (xv, gv) = (x.to_f64_vec(), grid.to_f64_vec());
        let (n, c) = (x.shape()[0], x.shape()[1]);
        let points = numel(&out_shape[2..])?;
        let plane = numel(dims)?;
        let xs = strides(dims);
        let mut out = vec![0.0; numel(&out_shape)?];
        for b in 0..n {
            for p in 0..points {
                // Grid holds (x, y[, z]): innermost dimension first.
                let g = &gv[(b * points + p) * nd..][..nd];
                let taps = self.taps(g, dims);
                for ch in 0..c {
                    let base = (b * c + ch) * plane;
                    let v: f64 = taps
                        .iter()
                        .map(|(idx, w)| match idx {
                            Some(ix) => w * xv[base + ix.iter().zip(&xs).map(|(i, s)| i * s).sum::<usize>()],
                            None => 0.0,
                        })
                        .sum();
                    out[(b * c + ch) * points + p] = v;
                }
            }
        }
        Ok(vec![Tensor::from_vec(&out_shape, out).cast(x.dtype())])
    }

    /// Input positions (`None` = zero padding) and weights of one grid point.
    fn taps(&self, g: &[f64], dims: &[usize]) -> Vec<(Option<Vec<usize>>, f64)> {
        let nd = dims.len();
        // Per spatial dim: (index or None, weight) candidates.
        let per_dim: Vec<Vec<(Option<usize>, f64)>> = (0..nd)
            .map(|d| {
                let len = dims[d];
                let (lo, hi) = self.borders(len);
                let mut v = self.denormalize(g[nd - 1 - d], len);
                if self.mode == GridMode::Nearest {
                    v = v.round_ties_even();
                }
                if v < lo || v > hi {
                    v = match self.padding {
                        GridPadding::Border => v.clamp(0.0, (len as f64 - 1.0).max(0.0)),
                        GridPadding::Reflection => reflect(v, lo, hi),
                        GridPadding::Zeros => v,
                    };
                }
                match self.mode {
                    // The reference truncates toward zero after rounding.
                    GridMode::Nearest => vec![(self.pixel(v.trunc() as i64, len), 1.0)],
                    GridMode::Linear => {
                        let x0 = v.floor();
                        let t = v - x0;
                        let i0 = x0 as i64;
                        vec![(self.pixel(i0, len), 1.0 - t), (self.pixel(i0.saturating_add(1), len), t)]
                    }
                    GridMode::Cubic => {
                        let x0 = v.floor();
                        let w = cubic_coeffs(v - x0);
                        (0..4).map(|k| (self.pixel((x0 as i64).saturating_add(k as i64 - 1), len), w[k])).collect()
                    }
                }
            })
            .collect();
        let mut taps = vec![(Some(Vec::with_capacity(nd)), 1.0)];
        for cands in per_dim {
            taps = taps
                .into_iter()
                .flat_map(|(idx, w)| {
                    cands.iter().map(move |&(i, cw)| {
                        let idx = match (&idx, i) {
                            (Some(v), Some(i)) => Some([v.as_slice(), &[i]].concat()),
                            _ => None,
                        };
                        (idx, w * cw)
                    })
                })
                .collect();
        }
        taps
    }

    /// The valid coordinate range before padding applies.
    fn borders(&self, len: usize) -> (f64, f64) {
        if self.align_corners {
            (0.0, len as f64 - 1.0)
        } else {
            (-0.5, len as f64 - 0.5)
        }
    }

    /// Normalised [-1, 1] coordinate to pixel coordinate, rounded to f32 as the
    /// reference stores it.
    fn denormalize(&self, n: f64, len: usize) -> f64 {
        let (n, l) = (n as f32, len as f32);
        let x = if self.align_corners { (n + 1.0) / 2.0 * (l - 1.0) } else { ((n + 1.0) * l - 1.0) / 2.0 };
        x as f64
    }

    /// The pixel index read for integer position `i`, after padding.
    fn pixel(&self, i: i64, len: usize) -> Option<usize> {
        let last = len as i64 - 1;
        match self.padding {
            GridPadding::Zeros => (0..=last).contains(&i).then_some(i as usize),
            GridPadding::Border => (last >= 0).then(|| i.clamp(0, last) as usize),
            GridPadding::Reflection => {
                let (lo, hi) = self.borders(len);
                let r = reflect(i as f64, lo, hi) as i64;
                (0..=last).contains(&r).then_some(r as usize)
            }
        }
    }
}

/// Reflects `x` at the borders until it lies within `[lo, hi]`.
fn reflect(x: f64, lo: f64, hi: f64) -> f64 {
    let range = hi - lo;
    if range <= 0.0 {
        return lo;
    }
    if x < lo {
        let dx = lo - x;
        let n = (dx / range).trunc();
        let r = dx - n * range;
        if n % 2.0 == 0.0 { lo + r } else { hi - r }
    } else if x > hi {
        let dx = x - hi;
        let n = (dx / range).trunc();
        let r = dx - n * range;
        if n % 2.0 == 0.0 { hi - r } else { lo + r }
    } else {
        x
    }
}

/// Keys cubic weights (a = -0.75) for the four neighbours of fractional offset `x`.
fn cubic_coeffs(x: f64) -> [f64; 4] {
    let a = -0.75;
    let x = x.abs();
    [
        ((a * (x + 1.0) - 5.0 * a) * (x + 1.0) + 8.0 * a) * (x + 1.0) - 4.0 * a,
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
        ((a + 2.0) * (1.0 - x) - (a + 3.0)) * (1.0 - x) * (1.0 - x) + 1.0,
        ((a * (2.0 - x) - 5.0 * a) * (2.0 - x) + 8.0 * a) * (2.0 - x) - 4.0 * a,
    ]
}

// ---------------------------------------------------------------------------------
// AffineGrid
// ---------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct AffineGrid {
    pub align_corners: bool,
}

impl AffineGrid {
    fn parse(ctx: &NodeCtx) -> Result<AffineGrid, OpError> {
        Ok(AffineGrid { align_corners: ctx.int_or("align_corners", 0)? != 0 })
    }

    /// Spatial sizes (`[H, W]` or `[D, H, W]`) from `size = [N, C, ...]`, checked against theta.
    fn spatial(theta: &[usize], size: &[i64]) -> Result<Vec<usize>, OpError> {
        let nd = size.len().saturating_sub(2);
        let ok = (nd == 2 || nd == 3) && theta == [size[0].max(0) as usize, nd, nd + 1] && size.iter().all(|&v| v >= 0);
        if !ok {
            return Err(OpError::invalid(format!("AffineGrid: theta {theta:?} and size {size:?} do not match")));
        }
        Ok(size[2..].iter().map(|&v| v as usize).collect())
    }

    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let theta = ctx.input(0)?;
        expect_dtype("AffineGrid theta", theta, FLOATS)?;
        let size = ctx.const_ints(1, "size")?.ok_or_else(|| OpError::invalid("AffineGrid needs size"))?;
        let sp = Self::spatial(&theta.shape, &size)?;
        let mut shape = vec![theta.shape[0]];
        shape.extend(&sp);
        shape.push(sp.len());
        Ok(vec![TypeInfo::new(theta.dtype, shape)])
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let theta = input(inputs, 0)?;
        let size = super::util::input_ints(inputs, 1)?;
        let sp = Self::spatial(theta.shape(), &size)?;
        let nd = sp.len();
        let n = theta.shape()[0];
        let mut shape = vec![n];
        shape.extend(&sp);
        shape.push(nd);
        let total = numel(&shape)?;
        if total == 0 {
            return Ok(vec![Tensor::zeros(theta.dtype(), &shape)]);
        }
        let mut out = Vec::with_capacity(total);
        let th = theta.to_f64_vec();
        // Base coordinates per spatial dim, in [-1, 1].
        let base: Vec<Vec<f64>> = sp.iter().map(|&len| self.linspace(len)).collect();
        let points = numel(&sp)?;
        let st = strides(&sp);
        for b in 0..n {
            let m = &th[b * nd * (nd + 1)..][..nd * (nd + 1)];
            for p in 0..points {
                // Homogeneous point (x, y[, z], 1): innermost dimension first.
                let mut h: Vec<f64> = (0..nd).rev().map(|d| base[d][p / st[d] % sp[d]]).collect();
                h.push(1.0);
                for r in 0..nd {
                    out.push((0..=nd).map(|k| m[r * (nd + 1) + k] * h[k]).sum::<f64>());
                }
            }
        }
        Ok(vec![Tensor::from_vec(&shape, out).cast(theta.dtype())])
    }

    /// Pixel centres (or corners with align_corners) of `len` pixels in [-1, 1].
    fn linspace(&self, len: usize) -> Vec<f64> {
        let l = len as f64;
        (0..len)
            .map(|i| {
                let i = i as f64;
                if self.align_corners {
                    if len == 1 { -1.0 } else { -1.0 + i * 2.0 / (l - 1.0) }
                } else {
                    -1.0 + 1.0 / l + i * 2.0 / l
                }
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------
// RoiAlign
// ---------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct RoiAlign {
    /// Shift the ROI by half a pixel (opset 16 `half_pixel`; opset 10 behaves as `output_half_pixel`).
    pub half_pixel: bool,
    pub max_mode: bool,
    pub out_h: usize,
    pub out_w: usize,
    pub sampling_ratio: usize,
    pub spatial_scale: f64,
}

impl RoiAlign {
    fn parse(ctx: &NodeCtx) -> Result<RoiAlign, OpError> {
        let half_pixel = match ctx.string_or("coordinate_transformation_mode", if ctx.opset < 16 { "output_half_pixel" } else { "half_pixel" })?.as_str() {
            "half_pixel" => true,
            "output_half_pixel" => false,
            m => return Err(OpError::invalid(format!("RoiAlign: unknown coordinate_transformation_mode '{m}'"))),
        };
        let max_mode = match ctx.string_or("mode", "avg")?.as_str() {
            "avg" => false,
            "max" => true,
            m => return Err(OpError::invalid(format!("RoiAlign: unknown mode '{m}'"))),
        };
        let pos = |name: &str| -> Result<usize, OpError> {
            match ctx.int_or(name, 1)? {
                v if v > 0 => Ok(v as usize),
                v => Err(OpError::invalid(format!("RoiAlign: {name} must be positive, got {v}"))),
            }
        };
        let sr = ctx.int_or("sampling_ratio", 0)?;
        if sr < 0 {
            return Err(OpError::invalid("RoiAlign: sampling_ratio must not be negative"));
        }
        Ok(RoiAlign {
            half_pixel,
            max_mode,
            out_h: pos("output_height")?,
            out_w: pos("output_width")?,
            sampling_ratio: sr as usize,
            spatial_scale: ctx.float_or("spatial_scale", 1.0)? as f64,
        })
    }

    fn out_shape(&self, x: &[usize], rois: &[usize], idx: &[usize]) -> Result<Vec<usize>, OpError> {
        if x.len() != 4 || rois.len() != 2 || rois[1] != 4 || idx != [rois[0]] {
            return Err(OpError::invalid(format!("RoiAlign: X {x:?}, rois {rois:?}, batch_indices {idx:?} do not match")));
        }
        Ok(vec![rois[0], x[1], self.out_h, self.out_w])
    }

    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        expect_dtype("RoiAlign X", x, FLOATS)?;
        Ok(vec![TypeInfo::new(x.dtype, self.out_shape(&x.shape, &ctx.input(1)?.shape, &ctx.input(2)?.shape)?)])
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (x, rois, idx) = (input(inputs, 0)?, input(inputs, 1)?, input(inputs, 2)?);
        let shape = self.out_shape(x.shape(), rois.shape(), idx.shape())?;
        let (n, c, h, w) = (x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]);
        let (xv, rv) = (x.to_f64_vec(), rois.to_f64_vec());
        let batch = idx.to_i64_vec().ok_or_else(|| OpError::invalid("RoiAlign: batch_indices must be integers"))?;
        let mut out = Vec::with_capacity(numel(&shape)?);
        for (r, &bi) in batch.iter().enumerate() {
            if bi < 0 || bi as usize >= n {
                return Err(OpError::invalid(format!("RoiAlign: batch index {bi} is out of range 0..{n}")));
            }
            let samples = self.samples(&rv[r * 4..r * 4 + 4], h, w, rois.dtype() != DType::F64)?;
            for ch in 0..c {
                let plane = &xv[(bi as usize * c + ch) * h * w..][..h * w];
                for bin in &samples.bins {
                    out.push(self.pool(bin, plane, samples.count));
                }
            }
        }
        Ok(vec![Tensor::from_vec(&shape, out).cast(x.dtype())])
    }

    /// Pools one output bin: its bilinear samples, averaged or maxed.
    fn pool(&self, bin: &[[(usize, f64); 4]], plane: &[f64], count: usize) -> f64 {
        let vals = bin.iter().map(|taps| taps.map(|(p, wt)| wt * plane[p]));
        if self.max_mode {
            vals.map(|v| v.into_iter().fold(f64::NEG_INFINITY, f64::max)).fold(None, |acc: Option<f64>, v| Some(acc.map_or(v, |a| a.max(v)))).unwrap_or(0.0)
        } else {
            vals.map(|v| v.iter().sum::<f64>()).sum::<f64>() / count as f64
        }
    }

    /// For each output bin (row-major), the four bilinear taps of each sample point.
    /// `single`: the rois are float32 (or narrower), and the reference then does all the
    /// sampling geometry in float32 — which decides the adaptive grid size (a ceil) and
    /// which samples fall outside, so it is reproduced by rounding every step.
    fn samples(&self, roi: &[f64], h: usize, w: usize, single: bool) -> Result<RoiSamples, OpError> {
        let q = |v: f64| if single { v as f32 as f64 } else { v };
        let off = if self.half_pixel { 0.5 } else { 0.0 };
        let at = |k: usize| q(q(roi[k] * self.spatial_scale) - off);
        let (sw, sh, ew, eh) = (at(0), at(1), at(2), at(3));
        let (mut rw, mut rh) = (q(ew - sw), q(eh - sh));
        if !self.half_pixel {
            rw = rw.max(1.0);
            rh = rh.max(1.0);
        }
        let (bh, bw) = (q(rh / self.out_h as f64), q(rw / self.out_w as f64));
        let grid = |extent: f64, bins: usize| if self.sampling_ratio > 0 { self.sampling_ratio } else { q(extent / bins as f64).ceil().max(0.0) as usize };
        let (gh, gw) = (grid(rh, self.out_h), grid(rw, self.out_w));
        // Bounds the sample count (and so the work) of this roi.
        numel(&[self.out_h, self.out_w, gh, gw])?;
        let mut bins = Vec::with_capacity(self.out_h * self.out_w);
        for ph in 0..self.out_h {
            for pw in 0..self.out_w {
                let mut taps = Vec::with_capacity(gh * gw);
                for iy in 0..gh {
                    let y = q(q(sh + q(ph as f64 * bh)) + q(q((iy as f64 + 0.5) * bh) / gh as f64));
                    for ix in 0..gw {
                        let x = q(q(sw + q(pw as f64 * bw)) + q(q((ix as f64 + 0.5) * bw) / gw as f64));
                        taps.push(bilinear_taps(y, x, h, w));
                    }
                }
                bins.push(taps);
            }
        }
        Ok(RoiSamples { bins, count: (gh * gw).max(1) })
    }
}

struct RoiSamples {
    bins: Vec<Vec<[(usize, f64); 4]>>,
    count: usize,
}

/// The four (flat index, weight) taps of point (y, x); all-zero weights outside.
fn bilinear_taps(y: f64, x: f64, h: usize, w: usize) -> [(usize, f64); 4] {
    if y < -1.0 || y > h as f64 || x < -1.0 || x > w as f64 || h == 0 || w == 0 {
        return [(0, 0.0); 4];
    }
    let (mut y, mut x) = (y.max(0.0), x.max(0.0));
    let (mut yl, mut xl) = (y as usize, x as usize);
    let (yh, xh);
    if yl >= h - 1 {
        yl = h - 1;
        yh = yl;
        y = yl as f64;
    } else {
        yh = yl + 1;
    }
    if xl >= w - 1 {
        xl = w - 1;
        xh = xl;
        x = xl as f64;
    } else {
        xh = xl + 1;
    }
    let (ly, lx) = (y - yl as f64, x - xl as f64);
    let (hy, hx) = (1.0 - ly, 1.0 - lx);
    [(yl * w + xl, hy * hx), (yl * w + xh, hy * lx), (yh * w + xl, ly * hx), (yh * w + xh, ly * lx)]
}

// ---------------------------------------------------------------------------------
// NonMaxSuppression
// ---------------------------------------------------------------------------------

#[derive(Clone, Debug)]
pub struct Nms {
    /// Boxes are `[x_center, y_center, width, height]` rather than two corners.
    center_point_box: bool,
}

impl Nms {
    fn parse(ctx: &NodeCtx) -> Result<Nms, OpError> {
        match ctx.int_or("center_point_box", 0)? {
            0 => Ok(Nms { center_point_box: false }),
            1 => Ok(Nms { center_point_box: true }),
            v => Err(OpError::invalid(format!("NonMaxSuppression: center_point_box must be 0 or 1, got {v}"))),
        }
    }

    /// The output's length is the number of selected boxes: known only from values.
    fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let (boxes, scores) = (ctx.input(0)?, ctx.input(1)?);
        expect_dtype("NonMaxSuppression boxes", boxes, FLOATS)?;
        expect_dtype("NonMaxSuppression scores", scores, FLOATS)?;
        let consts: Option<Vec<Option<&Tensor>>> = (0..5)
            .map(|i| match (ctx.opt_input(i), ctx.konst(i)) {
                (None, _) => Some(None),
                (Some(_), Some(t)) => Some(Some(t)),
                (Some(_), None) => None,
            })
            .collect();
        match consts {
            Some(c) => Ok(self.eval(&c)?.iter().map(Tensor::type_info).collect()),
            None => Err(OpError::DataDependent("the boxes and scores (the number of selected boxes)".into())),
        }
    }

    fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let (boxes, scores) = (input(inputs, 0)?, input(inputs, 1)?);
        let (bs, ss) = (boxes.shape(), scores.shape());
        if bs.len() != 3 || bs[2] != 4 || ss.len() != 3 || ss[0] != bs[0] || ss[2] != bs[1] {
            return Err(OpError::invalid(format!("NonMaxSuppression: boxes {bs:?} and scores {ss:?} do not match")));
        }
        let first = |i: usize| opt_input(inputs, i).filter(|t| !t.is_empty());
        let max_out = match first(2) {
            Some(t) => t.to_i64_vec().ok_or_else(|| OpError::invalid("max_output_boxes_per_class must be int64"))?[0].max(0),
            None => 0,
        };
        // The reference computes IoU in the boxes' float32: boundary cases depend on it.
        let iou = first(3).map_or(0.0, |t| t.to_f64_vec()[0] as f32);
        let score_min = first(4).map(|t| t.to_f64_vec()[0]);
        let bv: Vec<f32> = boxes.to_f64_vec().into_iter().map(|v| v as f32).collect();
        let sv = scores.to_f64_vec();
        let (nb, nc, n) = (bs[0], ss[1], bs[1]);
        let mut selected: Vec<i64> = Vec::new();
        for b in 0..nb {
            let bx = |i: usize| -> [f32; 4] { std::array::from_fn(|k| bv[(b * n + i) * 4 + k]) };
            for c in 0..nc {
                let sc = &sv[(b * nc + c) * n..][..n];
                let mut cand: Vec<usize> = (0..n).filter(|&i| score_min.is_none_or(|m| sc[i] > m)).collect();
                // Highest score first; ties keep the lower index first.
                cand.sort_by(|&i, &j| sc[j].partial_cmp(&sc[i]).unwrap_or(std::cmp::Ordering::Equal).then(i.cmp(&j)));
                let mut kept: Vec<usize> = Vec::new();
                for i in cand {
                    if kept.len() as i64 >= max_out {
                        break;
                    }
                    if kept.iter().all(|&k| !self.suppresses(bx(i), bx(k), iou)) {
                        kept.push(i);
                        selected.extend([b as i64, c as i64, i as i64]);
                    }
                }
            }
        }
        Ok(vec![Tensor::from_vec(&[selected.len() / 3, 3], selected)])
    }

    /// Whether two boxes overlap by more than `threshold` (IoU).
    fn suppresses(&self, a: [f32; 4], b: [f32; 4], threshold: f32) -> bool {
        let corners = |v: [f32; 4]| -> (f32, f32, f32, f32) {
            if self.center_point_box {
                (v[0] - v[2] / 2.0, v[0] + v[2] / 2.0, v[1] - v[3] / 2.0, v[1] + v[3] / 2.0)
            } else {
                (v[1].min(v[3]), v[1].max(v[3]), v[0].min(v[2]), v[0].max(v[2]))
            }
        };
        let (ax0, ax1, ay0, ay1) = corners(a);
        let (bx0, bx1, by0, by1) = corners(b);
        let (ix0, ix1) = (ax0.max(bx0), ax1.min(bx1));
        let (iy0, iy1) = (ay0.max(by0), ay1.min(by1));
        if ix1 <= ix0 || iy1 <= iy0 {
            return false;
        }
        let inter = (ix1 - ix0) * (iy1 - iy0);
        let (area_a, area_b) = ((ax1 - ax0) * (ay1 - ay0), (bx1 - bx0) * (by1 - by0));
        let union = area_a + area_b - inter;
        if inter <= 0.0 || area_a <= 0.0 || area_b <= 0.0 || union <= 0.0 {
            return false;
        }
        inter / union > threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_folds_back_into_range() {
        assert_eq!(reflect(-1.0, -0.5, 3.5), 0.0);
        assert_eq!(reflect(4.5, -0.5, 3.5), 2.5);
        assert_eq!(reflect(8.5, -0.5, 3.5), -0.5 + 1.0);
    }

    #[test]
    fn nms_keeps_boxes_at_the_iou_threshold() {
        let nms = Nms { center_point_box: false };
        // Corner boxes [y1, x1, y2, x2] overlapping by half their width: IoU = 1/3.
        let (a, b) = ([0.0, 0.0, 1.0, 2.0], [0.0, 1.0, 1.0, 3.0]);
        let iou = 1.0 / 3.0;
        assert!(nms.suppresses(a, b, iou - 0.01));
        assert!(!nms.suppresses(a, b, iou + 0.01));
    }
}

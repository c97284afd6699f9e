//! `Resize` (opsets 10–19) and `Upsample` (7, 9): separable interpolation, one axis at a
//! time, in f64 — exactly the reference implementation's scheme, so the per-position
//! neighbour choice and coefficients (including their rounding) match it.

use super::super::util::{input, norm_axes, opt_input};
use crate::error::OpError;
use crate::front::onnx::NodeCtx;
use crate::ir::{DType, Tensor, TypeInfo};
use crate::ops::InferCtx;

/// How an output coordinate maps back to an input coordinate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CoordMode {
    HalfPixel,
    HalfPixelSymmetric,
    PytorchHalfPixel,
    AlignCorners,
    Asymmetric,
    TfHalfPixelForNn,
    TfCropAndResize,
}

/// How `nearest` rounds a fractional source coordinate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Interp {
    Nearest(NearestMode),
    Linear,
    /// Keys cubic with coefficient `a`. The reference holds `a` as a float32 scalar, so
    /// every coefficient expression involving it is evaluated in float32; that is
    /// reproduced, since integer outputs round and a last-bit difference can flip them.
    Cubic(f32),
}

/// `keep_aspect_ratio_policy`, used with `sizes`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AspectPolicy {
    Stretch,
    NotLarger,
    NotSmaller,
}

/// Where the target size comes from: the input layout changed across opsets.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// Upsample-7: the `scales` attribute.
    ScalesAttr(Vec<f32>),
    /// Resize-10, Upsample-9: scales are input 1.
    ScalesInput1,
    /// Resize-11+: `roi` is input 1, `scales` input 2, `sizes` input 3.
    RoiScalesSizes,
}

#[derive(Clone, Debug)]
pub struct Resize {
    interp: Interp,
    coord: CoordMode,
    exclude_outside: bool,
    extrapolation: f64,
    antialias: bool,
    axes: Option<Vec<i64>>,
    aspect: AspectPolicy,
    target: Target,
}

/// One separable pass of a resize: along `axis`, `in_len` → `out` positions, each
/// reading its `(input index, weight)` taps, or `None` for an output position outside
/// the crop (`tf_crop_and_resize`), which takes the extrapolation value.
#[derive(Clone, Debug)]
pub struct AxisTaps {
    pub axis: usize,
    pub in_len: usize,
    pub out: usize,
    pub taps: Vec<Option<Vec<(usize, f64)>>>,
}

/// One axis of a `tf_crop_and_resize` whose roi is only known at run time.
#[derive(Clone, Debug)]
pub struct CropAxis {
    pub axis: usize,
    pub in_len: usize,
    pub out: usize,
    pub scale: f64,
    /// Indices of this axis's crop start and end in the roi input.
    pub roi_start: usize,
    pub roi_end: usize,
}

/// Per resized axis: its scale factor and output length.
struct AxisPlan {
    axis: usize,
    scale: f64,
    out: usize,
}

impl Resize {
    pub(super) fn parse_resize(ctx: &NodeCtx) -> Result<Resize, OpError> {
        if ctx.opset < 11 {
            // Resize-10 is Upsample with an input for scales: asymmetric, nearest floors.
            return Self::upsample_like(ctx, Target::ScalesInput1);
        }
        let mode = ctx.string_or("mode", "nearest")?;
        let nearest = match ctx.string_or("nearest_mode", "round_prefer_floor")?.as_str() {
            "round_prefer_floor" => NearestMode::RoundPreferFloor,
            "round_prefer_ceil" => NearestMode::RoundPreferCeil,
            "floor" => NearestMode::Floor,
            "ceil" => NearestMode::Ceil,
            m => return Err(OpError::invalid(format!("Resize: unknown nearest_mode '{m}'"))),
        };
        let interp = match mode.as_str() {
            "nearest" => Interp::Nearest(nearest),
            "linear" => Interp::Linear,
            "cubic" => Interp::Cubic(ctx.float_or("cubic_coeff_a", -0.75)?),
            m => return Err(OpError::invalid(format!("Resize: unknown mode '{m}'"))),
        };
        let coord = match ctx.string_or("coordinate_transformation_mode", "half_pixel")?.as_str() {
            "half_pixel" => CoordMode::HalfPixel,
            "half_pixel_symmetric" => CoordMode::HalfPixelSymmetric,
            "pytorch_half_pixel" => CoordMode::PytorchHalfPixel,
            "align_corners" => CoordMode::AlignCorners,
            "asymmetric" => CoordMode::Asymmetric,
            "tf_half_pixel_for_nn" => CoordMode::TfHalfPixelForNn,
            "tf_crop_and_resize" => CoordMode::TfCropAndResize,
            m => return Err(OpError::invalid(format!("Resize: unknown coordinate_transformation_mode '{m}'"))),
        };
        let aspect = match ctx.string_or("keep_aspect_ratio_policy", "stretch")?.as_str() {
            "stretch" => AspectPolicy::Stretch,
            "not_larger" => AspectPolicy::NotLarger,
            "not_smaller" => AspectPolicy::NotSmaller,
            m => return Err(OpError::invalid(format!("Resize: unknown keep_aspect_ratio_policy '{m}'"))),
        };
        let antialias = ctx.int_or("antialias", 0)? != 0;
        if antialias && matches!(interp, Interp::Nearest(_)) {
            return Err(OpError::invalid("Resize: antialias is not defined for mode 'nearest'"));
        }
        Ok(Resize {
            interp,
            coord,
            exclude_outside: ctx.int_or("exclude_outside", 0)? != 0,
            extrapolation: ctx.float_or("extrapolation_value", 0.0)? as f64,
            antialias,
            axes: ctx.ints("axes")?,
            aspect,
            target: Target::RoiScalesSizes,
        })
    }

    pub(super) fn parse_upsample(ctx: &NodeCtx) -> Result<Resize, OpError> {
        if ctx.opset < 7 {
            return Err(OpError::unsupported("Upsample before opset 7 (experimental height_scale/width_scale form)"));
        }
        let target = if ctx.opset < 9 {
            Target::ScalesAttr(ctx.required("scales", ctx.floats("scales"))?)
        } else {
            Target::ScalesInput1
        };
        Self::upsample_like(ctx, target)
    }

    /// Upsample and Resize-10: `floor(in * scale)` outputs, asymmetric coordinates,
    /// nearest takes the floor (a plain repeat for integer scales).
    fn upsample_like(ctx: &NodeCtx, target: Target) -> Result<Resize, OpError> {
        let interp = match ctx.string_or("mode", "nearest")?.as_str() {
            "nearest" => Interp::Nearest(NearestMode::Floor),
            "linear" => Interp::Linear,
            m => return Err(OpError::invalid(format!("{}: unknown mode '{m}'", ctx.op_type))),
        };
        Ok(Resize {
            interp,
            coord: CoordMode::Asymmetric,
            exclude_outside: false,
            extrapolation: 0.0,
            antialias: false,
            axes: None,
            aspect: AspectPolicy::Stretch,
            target,
        })
    }

    /// Input indices of (roi, scales, sizes) under this op's layout.
    fn slots(&self) -> (Option<usize>, Option<usize>, Option<usize>) {
        match self.target {
            Target::ScalesAttr(_) => (None, None, None),
            Target::ScalesInput1 => (None, Some(1), None),
            Target::RoiScalesSizes => (Some(1), Some(2), Some(3)),
        }
    }

    /// Scales or sizes decide each resized axis's factor and length.
    fn plan(&self, shape: &[usize], scales: Option<Vec<f64>>, sizes: Option<Vec<i64>>) -> Result<Vec<AxisPlan>, OpError> {
        let r = shape.len();
        let axes = match &self.axes {
            Some(a) => norm_axes(a, r)?,
            None => (0..r).collect(),
        };
        let bad = |why: String| OpError::invalid(format!("Resize: {why}"));
        match (scales, sizes) {
            (Some(s), None) => {
                if s.len() != axes.len() {
                    return Err(bad(format!("{} scales for {} axes", s.len(), axes.len())));
                }
                axes.iter()
                    .zip(s)
                    .map(|(&axis, scale)| {
                        if !(scale > 0.0) || !scale.is_finite() {
                            return Err(bad(format!("scale {scale} must be positive")));
                        }
                        let out = (scale * shape[axis] as f64).floor();
                        if out > (1u64 << 40) as f64 {
                            return Err(bad(format!("output length {out} is too large")));
                        }
                        Ok(AxisPlan { axis, scale, out: out as usize })
                    })
                    .collect()
            }
            (None, Some(sz)) => {
                if sz.len() != axes.len() || sz.iter().any(|&v| v < 0) {
                    return Err(bad(format!("sizes {sz:?} must be {} non-negative values", axes.len())));
                }
                let ratios: Vec<f64> = axes.iter().zip(&sz).map(|(&a, &s)| s as f64 / shape[a] as f64).collect();
                let common = match self.aspect {
                    AspectPolicy::Stretch => None,
                    AspectPolicy::NotLarger => Some(ratios.iter().copied().fold(f64::INFINITY, f64::min)),
                    AspectPolicy::NotSmaller => Some(ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
                };
                Ok(axes
                    .iter()
                    .zip(sz.iter().zip(ratios))
                    .map(|(&axis, (&size, ratio))| match common {
                        None => AxisPlan { axis, scale: ratio, out: size as usize },
                        // The reference rounds half up: int(x + 0.5).
                        Some(c) => AxisPlan { axis, scale: c, out: (c * shape[axis] as f64 + 0.5) as usize },
                    })
                    .collect())
            }
            (Some(_), Some(_)) => Err(bad("only one of scales and sizes may be given".into())),
            (None, None) => Err(bad("one of scales and sizes is required".into())),
        }
    }

    /// The output shape; refuses shapes whose element count (ignoring empty axes, as
    /// array libraries do) overflows.
    fn out_shape(shape: &[usize], plan: &[AxisPlan]) -> Result<Vec<usize>, OpError> {
        let mut out = shape.to_vec();
        for p in plan {
            out[p.axis] = p.out;
        }
        let fits = out.iter().filter(|&&d| d != 0).try_fold(1usize, |acc, &d| acc.checked_mul(d)).is_some_and(|n| n <= isize::MAX as usize);
        if !fits {
            return Err(OpError::invalid(format!("Resize: output shape {out:?} is too large")));
        }
        Ok(out)
    }

    fn check_dtype(&self, dtype: DType) -> Result<(), OpError> {
        let ok = !dtype.is_packed() && (dtype != DType::Bool || matches!(self.interp, Interp::Nearest(_)));
        if ok {
            Ok(())
        } else {
            Err(OpError::unsupported(format!("Resize of {dtype} data in this mode")))
        }
    }

    /// An input that is present and non-empty (opsets 11–12 pass an empty tensor for
    /// "not given").
    fn given(inputs: &[Option<&TypeInfo>], slot: Option<usize>) -> Option<usize> {
        let i = slot?;
        inputs.get(i).copied().flatten().filter(|t| t.numel() != Some(0)).map(|_| i)
    }

    pub(super) fn infer(&self, ctx: &InferCtx) -> Result<Vec<TypeInfo>, OpError> {
        let x = ctx.input(0)?;
        self.check_dtype(x.dtype)?;
        let (_, scales_slot, sizes_slot) = self.slots();
        let types: Vec<Option<&TypeInfo>> = (0..4).map(|i| ctx.opt_input(i)).collect();
        let scales = match (&self.target, Self::given(&types, scales_slot)) {
            (Target::ScalesAttr(s), _) => Some(s.iter().map(|&v| v as f64).collect()),
            (_, Some(i)) => Some(ctx.konst(i).ok_or_else(|| OpError::DataDependent(format!("input {i} (scales)")))?.to_f64_vec()),
            _ => None,
        };
        let sizes = match Self::given(&types, sizes_slot) {
            Some(i) => ctx.const_ints(i, "sizes")?,
            None => None,
        };
        let plan = self.plan(&x.shape, scales, sizes)?;
        Ok(vec![TypeInfo::new(x.dtype, Self::out_shape(&x.shape, &plan)?)])
    }

    pub(super) fn eval(&self, inputs: &[Option<&Tensor>]) -> Result<Vec<Tensor>, OpError> {
        let x = input(inputs, 0)?;
        let mut data = x.to_f64_vec();
        let mut cur = x.shape().to_vec();
        for p in self.passes(x.dtype(), x.shape(), inputs)? {
            data = self.resize_axis(&data, &cur, &p);
            cur[p.axis] = p.out;
        }
        Ok(vec![to_dtype(&cur, data, x.dtype())])
    }

    /// Whether source coordinates depend on the `roi` input (`tf_crop_and_resize`).
    pub fn uses_roi(&self) -> bool {
        self.coord == CoordMode::TfCropAndResize
    }

    /// The value of output positions outside the crop (`tf_crop_and_resize`).
    pub fn extrapolation(&self) -> f64 {
        self.extrapolation
    }

    /// Input index of `roi` under this op's layout, if it has one.
    pub fn roi_slot(&self) -> Option<usize> {
        self.slots().0
    }

    /// The separable passes over input `x` (of `dtype`, `shape`): each non-identity
    /// axis in order, with every output position's taps. Everything here depends only
    /// on shapes, attributes and the scales/sizes/roi inputs, so lowering calls it with
    /// those as constants and bakes the taps into tables; `eval` applies them.
    pub fn passes(&self, dtype: DType, shape: &[usize], inputs: &[Option<&Tensor>]) -> Result<Vec<AxisTaps>, OpError> {
        self.check_dtype(dtype)?;
        let (roi_slot, scales_slot, sizes_slot) = self.slots();
        let nonempty = |slot: Option<usize>| slot.and_then(|i| opt_input(inputs, i)).filter(|t| !t.is_empty());
        let scales = match &self.target {
            Target::ScalesAttr(s) => Some(s.iter().map(|&v| v as f64).collect()),
            _ => nonempty(scales_slot).map(|t| t.to_f64_vec()),
        };
        let sizes = match nonempty(sizes_slot) {
            Some(t) => Some(t.to_i64_vec().ok_or_else(|| OpError::invalid("Resize: sizes must be int64"))?),
            None => None,
        };
        let roi = nonempty(roi_slot).map(|t| t.to_f64_vec());
        let plan = self.plan(shape, scales, sizes)?;
        Self::out_shape(shape, &plan)?;
        let roi_of = self.roi_per_axis(roi.as_deref(), &plan, shape.len())?;
        if self.coord == CoordMode::TfCropAndResize && roi.is_none() {
            return Err(OpError::invalid("Resize: tf_crop_and_resize needs roi"));
        }
        let mut cur = shape.to_vec();
        let mut passes = Vec::new();
        for (p, roi) in plan.iter().zip(roi_of) {
            let identity = (p.scale - 1.0).abs() <= 1e-9 && p.out == cur[p.axis] && roi.is_none_or(|(a, b)| a.abs() <= 1e-9 && (b - 1.0).abs() <= 1e-9);
            if identity {
                continue;
            }
            passes.push(self.axis_taps(&cur, p, roi)?);
            cur[p.axis] = p.out;
        }
        Ok(passes)
    }

    /// `tf_crop_and_resize` with a run-time roi: every planned axis in order (none can be
    /// skipped as an identity without the roi's values), with the positions of its crop
    /// start and end in the roi input (of `roi_len` values). Lowering computes the taps
    /// in the kernel; only linear and nearest interpolation without antialiasing are
    /// offered (their taps are a floor and a fraction).
    pub fn crop_axes(&self, dtype: DType, shape: &[usize], inputs: &[Option<&Tensor>], roi_len: usize) -> Result<Vec<CropAxis>, OpError> {
        self.check_dtype(dtype)?;
        if self.coord != CoordMode::TfCropAndResize || self.antialias || matches!(self.interp, Interp::Cubic(_)) {
            return Err(OpError::unsupported("Resize with a run-time roi other than tf_crop_and_resize in linear or nearest mode"));
        }
        let (_, scales_slot, sizes_slot) = self.slots();
        let nonempty = |slot: Option<usize>| slot.and_then(|i| opt_input(inputs, i)).filter(|t| !t.is_empty());
        let scales = nonempty(scales_slot).map(|t| t.to_f64_vec());
        let sizes = match nonempty(sizes_slot) {
            Some(t) => Some(t.to_i64_vec().ok_or_else(|| OpError::invalid("Resize: sizes must be int64"))?),
            None => None,
        };
        let plan = self.plan(shape, scales, sizes)?;
        Self::out_shape(shape, &plan)?;
        let (rank, n) = (shape.len(), plan.len());
        if self.axes.is_none() && roi_len != 2 * rank || self.axes.is_some() && roi_len != 2 * n {
            return Err(OpError::invalid(format!("Resize: roi has {roi_len} values")));
        }
        let mut cur = shape.to_vec();
        let mut out = Vec::with_capacity(n);
        for (i, p) in plan.iter().enumerate() {
            let in_len = cur[p.axis];
            if in_len == 0 && p.out > 0 {
                return Err(OpError::invalid("Resize: cannot resize an empty axis to a non-empty one"));
            }
            let (roi_start, roi_end) = if self.axes.is_some() { (i, n + i) } else { (p.axis, rank + p.axis) };
            out.push(CropAxis { axis: p.axis, in_len, out: p.out, scale: p.scale, roi_start, roi_end });
            cur[p.axis] = p.out;
        }
        Ok(out)
    }

    /// The interpolation mode (for lowerings that compute taps at run time).
    pub fn interp(&self) -> Interp {
        self.interp
    }

    /// The taps of every output position along one axis (of the current `shape`).
    fn axis_taps(&self, shape: &[usize], p: &AxisPlan, roi: Option<(f64, f64)>) -> Result<AxisTaps, OpError> {
        let in_len = shape[p.axis];
        let outer: usize = shape[..p.axis].iter().product();
        let inner: usize = shape[p.axis + 1..].iter().product();
        let total = outer
            .checked_mul(p.out)
            .and_then(|v| v.checked_mul(inner))
            .filter(|&v| v <= 1 << 28)
            .ok_or_else(|| OpError::invalid("Resize: output is too large"))?;
        // An antialiasing kernel spans about 2/scale input pixels.
        if self.antialias && p.scale < 1.0 && 2.0 / p.scale > (1u64 << 20) as f64 {
            return Err(OpError::unsupported(format!("Resize: antialiased downscaling by {}", p.scale)));
        }
        if in_len == 0 && total > 0 {
            return Err(OpError::invalid("Resize: cannot resize an empty axis to a non-empty one"));
        }
        let taps = if total == 0 {
            Vec::new()
        } else {
            (0..p.out).map(|o| self.source_coord(o as f64, p.scale, in_len, p.out, roi).map(|x| self.taps(x, p.scale, in_len))).collect()
        };
        Ok(AxisTaps { axis: p.axis, in_len, out: p.out, taps })
    }

    /// `(start, end)` of the roi for each planned axis.
    fn roi_per_axis(&self, roi: Option<&[f64]>, plan: &[AxisPlan], rank: usize) -> Result<Vec<Option<(f64, f64)>>, OpError> {
        let Some(roi) = roi else { return Ok(plan.iter().map(|_| None).collect()) };
        let n = plan.len();
        if self.axes.is_none() && roi.len() != 2 * rank || self.axes.is_some() && roi.len() != 2 * n {
            return Err(OpError::invalid(format!("Resize: roi has {} values", roi.len())));
        }
        Ok(plan
            .iter()
            .enumerate()
            .map(|(i, p)| if self.axes.is_some() { Some((roi[i], roi[n + i])) } else { Some((roi[p.axis], roi[rank + p.axis])) })
            .collect())
    }

    /// Source coordinate of output index `y`, or `None` when it falls outside the crop
    /// (tf_crop_and_resize extrapolation).
    fn source_coord(&self, y: f64, scale: f64, in_len: usize, out_len: usize, roi: Option<(f64, f64)>) -> Option<f64> {
        let in_w = in_len as f64;
        let out_w = scale * in_w;
        Some(match self.coord {
            CoordMode::AlignCorners => {
                if out_w == 1.0 {
                    0.0
                } else {
                    y * (in_w - 1.0) / (out_w - 1.0)
                }
            }
            CoordMode::Asymmetric => y / scale,
            CoordMode::TfHalfPixelForNn => (y + 0.5) / scale,
            CoordMode::TfCropAndResize => {
                let (a, b) = roi.unwrap_or((0.0, 1.0));
                let x = if out_w == 1.0 { (b - a) * (in_w - 1.0) / 2.0 } else { y * (b - a) * (in_w - 1.0) / (out_w - 1.0) };
                let x = x + a * (in_w - 1.0);
                if x < 0.0 || x > in_w - 1.0 {
                    return None;
                }
                x
            }
            CoordMode::PytorchHalfPixel => {
                if out_w == 1.0 {
                    -0.5
                } else {
                    (y + 0.5) / scale - 0.5
                }
            }
            CoordMode::HalfPixel => (y + 0.5) / scale - 0.5,
            CoordMode::HalfPixelSymmetric => {
                let adjustment = out_len as f64 / out_w;
                let offset = in_w / 2.0 * (1.0 - adjustment);
                offset + (y + 0.5) / scale - 0.5
            }
        })
    }

    /// Interpolation weights for fractional offset `ratio` (1.0 at integer positions).
    fn coeffs(&self, ratio: f64, scale: f64) -> Vec<f64> {
        match self.interp {
            Interp::Nearest(m) => {
                if ratio.fract() == 0.0 {
                    return vec![0.0, 1.0];
                }
                let up = match m {
                    NearestMode::RoundPreferFloor => ratio > 0.5,
                    NearestMode::RoundPreferCeil => ratio >= 0.5,
                    NearestMode::Floor => false,
                    NearestMode::Ceil => true,
                };
                if up { vec![0.0, 1.0] } else { vec![1.0, 0.0] }
            }
            Interp::Linear if self.antialias => {
                let s = scale.min(1.0);
                let start = (-1.0 / s).floor() as i64 + 1;
                let footprint = 2 - 2 * start;
                let c: Vec<f64> = (start..start + footprint).map(|i| (1.0 - ((i as f64 - ratio) * s).abs()).clamp(0.0, 1.0)).collect();
                normalise(c)
            }
            Interp::Linear => vec![1.0 - ratio, ratio],
            Interp::Cubic(a) if self.antialias => cubic_antialias_coeffs(ratio, scale, a),
            Interp::Cubic(a) => {
                // float32 arithmetic, as in the reference (see `Interp::Cubic`).
                let (r, q) = (ratio as f32, (1.0 - ratio) as f32);
                let (r1, q1) = ((ratio + 1.0) as f32, ((1.0 - ratio) + 1.0) as f32);
                [
                    ((a * r1 - 5.0 * a) * r1 + 8.0 * a) * r1 - 4.0 * a,
                    ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
                    ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0,
                    ((a * q1 - 5.0 * a) * q1 + 8.0 * a) * q1 - 4.0 * a,
                ]
                .map(f64::from)
                .to_vec()
            }
        }
    }

    /// Resizes `data` (of shape `shape`) along one axis.
    fn resize_axis(&self, data: &[f64], shape: &[usize], p: &AxisTaps) -> Vec<f64> {
        let outer: usize = shape[..p.axis].iter().product();
        let inner: usize = shape[p.axis + 1..].iter().product();
        let mut out = vec![0.0; outer * p.out * inner];
        for (o, taps) in p.taps.iter().enumerate() {
            for b in 0..outer {
                for i in 0..inner {
                    out[(b * p.out + o) * inner + i] = match taps {
                        None => self.extrapolation,
                        Some(taps) => taps.iter().map(|&(idx, c)| c * data[(b * p.in_len + idx) * inner + i]).sum(),
                    };
                }
            }
        }
        out
    }

    /// The (clamped input index, weight) pairs for source coordinate `x`, choosing the
    /// neighbours exactly as the reference does (edge padding, ties to the lower side).
    fn taps(&self, x: f64, scale: f64, in_len: usize) -> Vec<(usize, f64)> {
        let xi = x.floor();
        let ratio = if x == xi { 1.0 } else { x - xi };
        let mut c = self.coeffs(ratio, scale);
        let n = c.len() as i64;
        let pad = (n + 1) / 2;
        let xp = x + pad as f64;
        let p = xp.floor();
        let frac = xp - p;
        let offset = if n % 2 == 0 {
            if frac == 0.0 { -(n / 2) } else { -(n / 2) + 1 }
        } else {
            let base = -((n - 1) / 2);
            if frac <= 0.5 { base } else { base + 1 }
        };
        let start = p as i64 + offset - pad;
        let idx: Vec<i64> = (0..n).map(|k| start + k).collect();
        if self.exclude_outside {
            for (ck, &i) in c.iter_mut().zip(&idx) {
                if i < 0 || i >= in_len as i64 {
                    *ck = 0.0;
                }
            }
            let s: f64 = c.iter().sum();
            let s = if s == 0.0 { 1.0 } else { s };
            c.iter_mut().for_each(|v| *v /= s);
        }
        let last = in_len as i64 - 1;
        idx.iter().zip(c).map(|(&i, ck)| (i.clamp(0, last.max(0)) as usize, ck)).collect()
    }
}

/// The antialiased cubic weights, with the reference's mix of precisions: each kernel
/// value is float32 (it involves `a`) or an exact 0.0 (outside the support); Python's
/// `sum` of them is float32 once a float32 joins; the array is float64 when any 0.0 is
/// in it, float32 otherwise.
fn cubic_antialias_coeffs(ratio: f64, scale: f64, a: f32) -> Vec<f64> {
    let s = scale.min(1.0);
    let start = (-2.0 / s).floor() as i64 + 1;
    let vals: Vec<Option<f32>> = (start..2 - start)
        .map(|i| {
            let x = (s * (i as f64 - ratio)).abs();
            let (x2, x3) = ((x * x) as f32, (x * (x * x)) as f32);
            if x <= 1.0 {
                Some((a + 2.0) * x3 - (a + 3.0) * x2 + 1.0)
            } else if x < 2.0 {
                Some(a * x3 - 5.0 * a * x2 + 8.0 * a * x as f32 - 4.0 * a)
            } else {
                None
            }
        })
        .collect();
    // Python `sum` starts from int 0; a Python float plus a float32 is a float32.
    let (mut acc, mut single) = (0.0f64, false);
    for v in &vals {
        match v {
            Some(f) => {
                acc = (acc as f32 + f) as f64;
                single = true;
            }
            None if single => acc = (acc as f32 + 0.0) as f64,
            None => {}
        }
    }
    if vals.iter().all(Option::is_some) {
        vals.iter().map(|v| (v.unwrap_or(0.0) / acc as f32) as f64).collect()
    } else {
        vals.iter().map(|v| v.map_or(0.0, f64::from) / acc).collect()
    }
}

fn normalise(c: Vec<f64>) -> Vec<f64> {
    let s: f64 = c.iter().sum();
    c.into_iter().map(|v| v / s).collect()
}

/// f64 results back to `dtype` the way the reference does (`saturate_cast`): integers
/// are rounded half-to-even and clamped.
pub(super) fn to_dtype(shape: &[usize], data: Vec<f64>, dtype: DType) -> Tensor {
    let data = if dtype.is_int() { data.into_iter().map(f64::round_ties_even).collect() } else { data };
    Tensor::from_vec(shape, data).cast(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nearest(mode: NearestMode) -> Resize {
        Resize {
            interp: Interp::Nearest(mode),
            coord: CoordMode::Asymmetric,
            exclude_outside: false,
            extrapolation: 0.0,
            antialias: false,
            axes: None,
            aspect: AspectPolicy::Stretch,
            target: Target::RoiScalesSizes,
        }
    }

    fn picked(r: &Resize, x: f64) -> usize {
        r.taps(x, 2.0, 4).into_iter().find(|&(_, w)| w == 1.0).map(|(i, _)| i).unwrap()
    }

    #[test]
    fn nearest_modes_break_ties_as_named() {
        assert_eq!(picked(&nearest(NearestMode::RoundPreferFloor), 1.5), 1);
        assert_eq!(picked(&nearest(NearestMode::RoundPreferCeil), 1.5), 2);
        assert_eq!(picked(&nearest(NearestMode::Floor), 1.7), 1);
        assert_eq!(picked(&nearest(NearestMode::Ceil), 1.2), 2);
        assert_eq!(picked(&nearest(NearestMode::Ceil), 2.0), 2);
    }

    #[test]
    fn cubic_weights_sum_to_one_and_clamp_at_the_edge() {
        let r = Resize { interp: Interp::Cubic(-0.75), ..nearest(NearestMode::Floor) };
        let taps = r.taps(0.3, 2.0, 4);
        assert!((taps.iter().map(|t| t.1).sum::<f64>() - 1.0).abs() < 1e-6);
        assert_eq!(taps.iter().map(|t| t.0).collect::<Vec<_>>(), vec![0, 0, 1, 2]);
    }

    #[test]
    fn integer_results_round_half_to_even() {
        let t = to_dtype(&[3], vec![0.5, 1.5, 300.0], DType::U8);
        assert_eq!(t.to_i64_vec().unwrap(), vec![0, 2, 255]);
    }
}

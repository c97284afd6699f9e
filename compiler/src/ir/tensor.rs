//! Tensor values: constants in the IR and the reference evaluator's data.
//!
//! A tensor is an `ndarray::ArrayD` of its element type. The 8-bit floats and the
//! 2- and 4-bit types have no Rust type: they are kept as raw bit patterns, one element
//! per byte, in [`Tensor::Packed`], and converted through [`super::packed`].

use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};

use super::dtype::{DType, TypeInfo};
use super::packed;

#[derive(Clone, Debug, PartialEq)]
pub enum Tensor {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    F16(ArrayD<f16>),
    BF16(ArrayD<bf16>),
    I8(ArrayD<i8>),
    U8(ArrayD<u8>),
    I16(ArrayD<i16>),
    U16(ArrayD<u16>),
    I32(ArrayD<i32>),
    U32(ArrayD<u32>),
    I64(ArrayD<i64>),
    U64(ArrayD<u64>),
    Bool(ArrayD<bool>),
    /// 8-bit floats, 4-bit and 2-bit types: one raw bit pattern per element.
    Packed(DType, ArrayD<u8>),
}

/// Runs `$body` with `$a` bound to the array of whatever variant `$t` is
/// (`&ArrayD<T>` when `$t` is a reference). The body must type-check for every element
/// type, including the raw `u8` patterns of `Packed`.
#[macro_export]
macro_rules! with_array {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::ir::Tensor::F32($a) => $body,
            $crate::ir::Tensor::F64($a) => $body,
            $crate::ir::Tensor::F16($a) => $body,
            $crate::ir::Tensor::BF16($a) => $body,
            $crate::ir::Tensor::I8($a) => $body,
            $crate::ir::Tensor::U8($a) => $body,
            $crate::ir::Tensor::I16($a) => $body,
            $crate::ir::Tensor::U16($a) => $body,
            $crate::ir::Tensor::I32($a) => $body,
            $crate::ir::Tensor::U32($a) => $body,
            $crate::ir::Tensor::I64($a) => $body,
            $crate::ir::Tensor::U64($a) => $body,
            $crate::ir::Tensor::Bool($a) => $body,
            $crate::ir::Tensor::Packed(_, $a) => $body,
        }
    };
}

/// Like [`with_array!`], but `$body` yields an `ArrayD` of the same element type, which
/// is wrapped back into the same variant: the tool for layout ops (transpose, gather,
/// slice ...) that move elements without looking at them.
#[macro_export]
macro_rules! map_array {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::ir::Tensor::F32($a) => $crate::ir::Tensor::F32($body),
            $crate::ir::Tensor::F64($a) => $crate::ir::Tensor::F64($body),
            $crate::ir::Tensor::F16($a) => $crate::ir::Tensor::F16($body),
            $crate::ir::Tensor::BF16($a) => $crate::ir::Tensor::BF16($body),
            $crate::ir::Tensor::I8($a) => $crate::ir::Tensor::I8($body),
            $crate::ir::Tensor::U8($a) => $crate::ir::Tensor::U8($body),
            $crate::ir::Tensor::I16($a) => $crate::ir::Tensor::I16($body),
            $crate::ir::Tensor::U16($a) => $crate::ir::Tensor::U16($body),
            $crate::ir::Tensor::I32($a) => $crate::ir::Tensor::I32($body),
            $crate::ir::Tensor::U32($a) => $crate::ir::Tensor::U32($body),
            $crate::ir::Tensor::I64($a) => $crate::ir::Tensor::I64($body),
            $crate::ir::Tensor::U64($a) => $crate::ir::Tensor::U64($body),
            $crate::ir::Tensor::Bool($a) => $crate::ir::Tensor::Bool($body),
            $crate::ir::Tensor::Packed(d, $a) => $crate::ir::Tensor::Packed(*d, $body),
        }
    };
}

/// A Rust element type that has its own `Tensor` variant.
pub trait Element: Clone + Copy + Default + std::fmt::Debug + PartialEq + 'static {
    const DTYPE: DType;
    fn wrap(a: ArrayD<Self>) -> Tensor;
    fn view(t: &Tensor) -> Option<&ArrayD<Self>>;
    fn to_f64(self) -> f64;
    /// C-style conversion (`as`): truncating towards zero and saturating for integers.
    fn from_f64(v: f64) -> Self;
}

macro_rules! element {
    ($t:ty, $variant:ident, $to:expr, $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            fn wrap(a: ArrayD<Self>) -> Tensor {
                Tensor::$variant(a)
            }
            fn view(t: &Tensor) -> Option<&ArrayD<Self>> {
                match t {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                }
            }
            #[allow(clippy::redundant_closure_call)]
            fn to_f64(self) -> f64 {
                ($to)(self)
            }
            #[allow(clippy::redundant_closure_call)]
            fn from_f64(v: f64) -> Self {
                ($from)(v)
            }
        }
    };
}

element!(f32, F32, |x: f32| x as f64, |v: f64| v as f32);
element!(f64, F64, |x: f64| x, |v: f64| v);
element!(f16, F16, |x: f16| x.to_f64(), f16::from_f64);
element!(bf16, BF16, |x: bf16| x.to_f64(), bf16::from_f64);
element!(i8, I8, |x: i8| x as f64, |v: f64| v as i8);
element!(u8, U8, |x: u8| x as f64, |v: f64| v as u8);
element!(i16, I16, |x: i16| x as f64, |v: f64| v as i16);
element!(u16, U16, |x: u16| x as f64, |v: f64| v as u16);
element!(i32, I32, |x: i32| x as f64, |v: f64| v as i32);
element!(u32, U32, |x: u32| x as f64, |v: f64| v as u32);
element!(i64, I64, |x: i64| x as f64, |v: f64| v as i64);
element!(u64, U64, |x: u64| x as f64, |v: f64| v as u64);
element!(bool, Bool, |x: bool| if x { 1.0 } else { 0.0 }, |v: f64| v != 0.0);

impl Tensor {
    pub fn from_array<T: Element>(a: ArrayD<T>) -> Tensor {
        T::wrap(a)
    }

    /// A tensor from a shape and row-major data; panics only on a length mismatch,
    /// which is a bug in the caller, never a property of a model file.
    pub fn from_vec<T: Element>(shape: &[usize], data: Vec<T>) -> Tensor {
        T::wrap(ArrayD::from_shape_vec(IxDyn(shape), data).expect("tensor data length matches shape"))
    }

    pub fn scalar<T: Element>(v: T) -> Tensor {
        Tensor::from_vec(&[], vec![v])
    }

    /// All-zero tensor (the zero bit pattern for packed types).
    pub fn zeros(dtype: DType, shape: &[usize]) -> Tensor {
        let s = IxDyn(shape);
        match dtype {
            DType::F32 => Tensor::F32(ArrayD::zeros(s)),
            DType::F64 => Tensor::F64(ArrayD::zeros(s)),
            DType::F16 => Tensor::F16(ArrayD::from_elem(s, f16::ZERO)),
            DType::BF16 => Tensor::BF16(ArrayD::from_elem(s, bf16::ZERO)),
            DType::I8 => Tensor::I8(ArrayD::zeros(s)),
            DType::U8 => Tensor::U8(ArrayD::zeros(s)),
            DType::I16 => Tensor::I16(ArrayD::zeros(s)),
            DType::U16 => Tensor::U16(ArrayD::zeros(s)),
            DType::I32 => Tensor::I32(ArrayD::zeros(s)),
            DType::U32 => Tensor::U32(ArrayD::zeros(s)),
            DType::I64 => Tensor::I64(ArrayD::zeros(s)),
            DType::U64 => Tensor::U64(ArrayD::zeros(s)),
            DType::Bool => Tensor::Bool(ArrayD::from_elem(s, false)),
            d => Tensor::Packed(d, ArrayD::zeros(s)),
        }
    }

    pub fn dtype(&self) -> DType {
        match self {
            Tensor::F32(_) => DType::F32,
            Tensor::F64(_) => DType::F64,
            Tensor::F16(_) => DType::F16,
            Tensor::BF16(_) => DType::BF16,
            Tensor::I8(_) => DType::I8,
            Tensor::U8(_) => DType::U8,
            Tensor::I16(_) => DType::I16,
            Tensor::U16(_) => DType::U16,
            Tensor::I32(_) => DType::I32,
            Tensor::U32(_) => DType::U32,
            Tensor::I64(_) => DType::I64,
            Tensor::U64(_) => DType::U64,
            Tensor::Bool(_) => DType::Bool,
            Tensor::Packed(d, _) => *d,
        }
    }

    pub fn shape(&self) -> &[usize] {
        with_array!(self, a => a.shape())
    }

    pub fn rank(&self) -> usize {
        self.shape().len()
    }

    pub fn len(&self) -> usize {
        with_array!(self, a => a.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn type_info(&self) -> TypeInfo {
        TypeInfo::new(self.dtype(), self.shape().to_vec())
    }

    /// The same elements under another shape of equal element count.
    pub fn reshaped(&self, shape: &[usize]) -> Option<Tensor> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            return None;
        }
        Some(map_array!(self, a => {
            let v: Vec<_> = a.iter().cloned().collect();
            ArrayD::from_shape_vec(IxDyn(shape), v).expect("count checked")
        }))
    }

    /// Borrow as a concrete element type.
    pub fn as_array<T: Element>(&self) -> Option<&ArrayD<T>> {
        T::view(self)
    }

    /// Every element as `f64` (packed types decoded to their numeric value).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            Tensor::Packed(d, a) => a.iter().map(|&b| packed::decode(*d, b)).collect(),
            Tensor::F32(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::F64(a) => a.iter().copied().collect(),
            Tensor::F16(a) => a.iter().map(|x| x.to_f64()).collect(),
            Tensor::BF16(a) => a.iter().map(|x| x.to_f64()).collect(),
            Tensor::I8(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::U8(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::I16(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::U16(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::I32(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::U32(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::I64(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::U64(a) => a.iter().map(|&x| x as f64).collect(),
            Tensor::Bool(a) => a.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    /// Integer elements as `i64`: for shape, axes, indices and similar inputs.
    /// `None` for float tensors and for `u64` values above `i64::MAX`.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        Some(match self {
            Tensor::I8(a) => a.iter().map(|&x| x as i64).collect(),
            Tensor::U8(a) => a.iter().map(|&x| x as i64).collect(),
            Tensor::I16(a) => a.iter().map(|&x| x as i64).collect(),
            Tensor::U16(a) => a.iter().map(|&x| x as i64).collect(),
            Tensor::I32(a) => a.iter().map(|&x| x as i64).collect(),
            Tensor::U32(a) => a.iter().map(|&x| x as i64).collect(),
            Tensor::I64(a) => a.iter().copied().collect(),
            Tensor::U64(a) => a.iter().map(|&x| i64::try_from(x).ok()).collect::<Option<_>>()?,
            Tensor::Bool(a) => a.iter().map(|&x| x as i64).collect(),
            _ => return None,
        })
    }

    /// Converts to `dtype` with ONNX `Cast` semantics for the ordinary types: floats to
    /// integers truncate toward zero (saturating), to bool is `!= 0`, NaN to integer is 0.
    /// Packed targets are encoded with saturation (`packed::encode`).
    pub fn cast(&self, dtype: DType) -> Tensor {
        if self.dtype() == dtype {
            return self.clone();
        }
        // Integer-to-integer keeps exact values (f64 would lose bits of 64-bit values).
        if let (Some(v), true) = (self.to_i64_vec().filter(|_| self.dtype() != DType::U64), dtype.is_int() || dtype == DType::Bool) {
            let shape = self.shape().to_vec();
            return match dtype {
                DType::I8 => Tensor::from_vec(&shape, v.iter().map(|&x| x as i8).collect()),
                DType::U8 => Tensor::from_vec(&shape, v.iter().map(|&x| x as u8).collect()),
                DType::I16 => Tensor::from_vec(&shape, v.iter().map(|&x| x as i16).collect()),
                DType::U16 => Tensor::from_vec(&shape, v.iter().map(|&x| x as u16).collect()),
                DType::I32 => Tensor::from_vec(&shape, v.iter().map(|&x| x as i32).collect()),
                DType::U32 => Tensor::from_vec(&shape, v.iter().map(|&x| x as u32).collect()),
                DType::I64 => Tensor::from_vec(&shape, v),
                DType::U64 => Tensor::from_vec(&shape, v.iter().map(|&x| x as u64).collect()),
                DType::Bool => Tensor::from_vec(&shape, v.iter().map(|&x| x != 0).collect()),
                d => Tensor::Packed(
                    d,
                    ArrayD::from_shape_vec(IxDyn(&shape), v.iter().map(|&x| packed::encode(d, x as f64, true)).collect())
                        .expect("same count"),
                ),
            };
        }
        if let Tensor::U64(a) = self {
            if dtype.is_int() && !dtype.is_packed() {
                let t = Tensor::I64(a.mapv(|x| x as i64));
                return t.cast(dtype);
            }
        }
        let shape = self.shape().to_vec();
        let v = self.to_f64_vec();
        fn conv<T: Element>(shape: &[usize], v: &[f64]) -> Tensor {
            Tensor::from_vec(shape, v.iter().map(|&x| if x.is_nan() && T::DTYPE.is_int() { T::from_f64(0.0) } else { T::from_f64(x) }).collect())
        }
        match dtype {
            DType::F32 => {
                // f64 -> f32 directly; from f16/bf16 the f64 detour is exact.
                Tensor::from_vec(&shape, v.iter().map(|&x| x as f32).collect())
            }
            DType::F64 => conv::<f64>(&shape, &v),
            DType::F16 => conv::<f16>(&shape, &v),
            DType::BF16 => conv::<bf16>(&shape, &v),
            DType::I8 => conv::<i8>(&shape, &v),
            DType::U8 => conv::<u8>(&shape, &v),
            DType::I16 => conv::<i16>(&shape, &v),
            DType::U16 => conv::<u16>(&shape, &v),
            DType::I32 => conv::<i32>(&shape, &v),
            DType::U32 => conv::<u32>(&shape, &v),
            DType::I64 => conv::<i64>(&shape, &v),
            DType::U64 => conv::<u64>(&shape, &v),
            DType::Bool => conv::<bool>(&shape, &v),
            d => Tensor::Packed(
                d,
                ArrayD::from_shape_vec(IxDyn(&shape), v.iter().map(|&x| packed::encode(d, x, true)).collect())
                    .expect("same count"),
            ),
        }
    }

    /// The tensor as `f32` values (a convenience for float kernels).
    pub fn to_f32_array(&self) -> ArrayD<f32> {
        match self {
            Tensor::F32(a) => a.clone(),
            other => match other.cast(DType::F32) {
                Tensor::F32(a) => a,
                _ => unreachable!("cast to F32 gives F32"),
            },
        }
    }

    /// The tensor as `f64` values.
    pub fn to_f64_array(&self) -> ArrayD<f64> {
        ArrayD::from_shape_vec(IxDyn(self.shape()), self.to_f64_vec()).expect("same count")
    }

    /// Bytes of the tensor in memory (one byte per packed element).
    pub fn byte_len(&self) -> usize {
        self.len() * self.dtype().size()
    }
}

//! Element types, numbered as ONNX's `TensorProto.DataType`.

use std::fmt;

/// An element type. The discriminants are ONNX's `TensorProto.DataType` codes, so a
/// frontend maps a code with [`DType::from_onnx`] and nothing else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F32 = 1,
    U8 = 2,
    I8 = 3,
    U16 = 4,
    I16 = 5,
    I32 = 6,
    I64 = 7,
    Bool = 9,
    F16 = 10,
    F64 = 11,
    U32 = 12,
    U64 = 13,
    BF16 = 16,
    F8E4M3FN = 17,
    F8E4M3FNUZ = 18,
    F8E5M2 = 19,
    F8E5M2FNUZ = 20,
    U4 = 21,
    I4 = 22,
    F4E2M1 = 23,
    F8E8M0 = 24,
    U2 = 25,
    I2 = 26,
}

impl DType {
    /// Maps an ONNX data type code; `None` for strings, complex numbers and unknown codes.
    pub fn from_onnx(code: i32) -> Option<DType> {
        use DType::*;
        Some(match code {
            1 => F32,
            2 => U8,
            3 => I8,
            4 => U16,
            5 => I16,
            6 => I32,
            7 => I64,
            9 => Bool,
            10 => F16,
            11 => F64,
            12 => U32,
            13 => U64,
            16 => BF16,
            17 => F8E4M3FN,
            18 => F8E4M3FNUZ,
            19 => F8E5M2,
            20 => F8E5M2FNUZ,
            21 => U4,
            22 => I4,
            23 => F4E2M1,
            24 => F8E8M0,
            25 => U2,
            26 => I2,
            _ => return None,
        })
    }

    /// The name ONNX's data type code has, for messages about types edgec has no value for.
    pub fn onnx_code_name(code: i32) -> &'static str {
        match code {
            0 => "UNDEFINED",
            8 => "STRING",
            14 => "COMPLEX64",
            15 => "COMPLEX128",
            _ => DType::from_onnx(code).map(|d| d.name()).unwrap_or("unknown"),
        }
    }

    pub fn onnx_code(self) -> i32 {
        self as i32
    }

    /// The contract's spelling (`float32`, `int64`, ...).
    pub fn name(self) -> &'static str {
        use DType::*;
        match self {
            F32 => "float32",
            U8 => "uint8",
            I8 => "int8",
            U16 => "uint16",
            I16 => "int16",
            I32 => "int32",
            I64 => "int64",
            Bool => "bool",
            F16 => "float16",
            F64 => "float64",
            U32 => "uint32",
            U64 => "uint64",
            BF16 => "bfloat16",
            F8E4M3FN => "float8e4m3fn",
            F8E4M3FNUZ => "float8e4m3fnuz",
            F8E5M2 => "float8e5m2",
            F8E5M2FNUZ => "float8e5m2fnuz",
            U4 => "uint4",
            I4 => "int4",
            F4E2M1 => "float4e2m1",
            F8E8M0 => "float8e8m0",
            U2 => "uint2",
            I2 => "int2",
        }
    }

    /// Bits per element in storage (sub-byte types are packed in ONNX files).
    pub fn bits(self) -> usize {
        use DType::*;
        match self {
            F64 | I64 | U64 => 64,
            F32 | I32 | U32 => 32,
            F16 | BF16 | I16 | U16 => 16,
            U8 | I8 | Bool | F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F8E8M0 => 8,
            U4 | I4 | F4E2M1 => 4,
            U2 | I2 => 2,
        }
    }

    /// Bytes per element when stored one element per byte or more (sub-byte types take a
    /// whole byte in memory; ONNX files pack them).
    pub fn size(self) -> usize {
        self.bits().div_ceil(8)
    }

    /// Bytes `numel` elements take in generated code's memory, the caller's buffers and
    /// the weight blob: ONNX's packed layout (8-bit types one per byte, 4-bit types two
    /// per byte and 2-bit types four per byte, low bits first, the last byte padded).
    pub fn storage_bytes(self, numel: usize) -> usize {
        match self.bits() {
            b if b < 8 => (numel * b).div_ceil(8),
            _ => numel * self.size(),
        }
    }

    pub fn is_float(self) -> bool {
        use DType::*;
        matches!(
            self,
            F32 | F16 | BF16 | F64 | F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F4E2M1 | F8E8M0
        )
    }

    pub fn is_int(self) -> bool {
        use DType::*;
        matches!(self, U8 | I8 | U16 | I16 | I32 | I64 | U32 | U64 | U4 | I4 | U2 | I2)
    }

    pub fn is_signed_int(self) -> bool {
        use DType::*;
        matches!(self, I8 | I16 | I32 | I64 | I4 | I2)
    }

    /// Types kept in memory as raw bit patterns, one element per byte (`Tensor::Packed`):
    /// 8-bit floats and the 2- and 4-bit types.
    pub fn is_packed(self) -> bool {
        use DType::*;
        matches!(
            self,
            F8E4M3FN | F8E4M3FNUZ | F8E5M2 | F8E5M2FNUZ | F8E8M0 | U4 | I4 | F4E2M1 | U2 | I2
        )
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value's static type: element type and fixed shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TypeInfo {
    pub dtype: DType,
    pub shape: Vec<usize>,
}

impl TypeInfo {
    pub fn new(dtype: DType, shape: impl Into<Vec<usize>>) -> Self {
        TypeInfo { dtype, shape: shape.into() }
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// Element count; `None` when it overflows `usize`.
    pub fn numel(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }
    /// Bytes in memory (sub-byte types packed, [`DType::storage_bytes`]); `None` on overflow.
    pub fn bytes(&self) -> Option<usize> {
        let n = self.numel()?;
        n.checked_mul(self.dtype.size())?;
        Some(self.dtype.storage_bytes(n))
    }
}

impl fmt::Display for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?}", self.dtype, self.shape)
    }
}

/// One dimension of a declared (not yet fixed) shape, as a model file states it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DimSpec {
    Fixed(usize),
    Symbol(String),
    Unknown,
}

impl fmt::Display for DimSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DimSpec::Fixed(d) => write!(f, "{d}"),
            DimSpec::Symbol(s) => f.write_str(s),
            DimSpec::Unknown => f.write_str("?"),
        }
    }
}

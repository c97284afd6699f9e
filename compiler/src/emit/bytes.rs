//! Tensors ↔ the raw little-endian bytes generated code reads and writes: row-major,
//! f16/bf16 as their bit patterns, bool as one byte 0/1, the packed types (8-bit floats,
//! 4- and 2-bit types) in ONNX's packed layout (`ir::packed::pack`). The weight blob, the
//! test drivers' input and output files and the embedded weights all use this form.

use half::{bf16, f16};

use crate::ir::{DType, Tensor};

/// The tensor's elements as little-endian bytes; `None` for E8M0, which code generation
/// does not handle.
pub fn to_le_bytes(t: &Tensor) -> Option<Vec<u8>> {
    fn le<T: Copy, const N: usize>(a: &ndarray::ArrayD<T>, f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
        a.iter().flat_map(|&x| f(x)).collect()
    }
    Some(match t {
        Tensor::F32(a) => le(a, f32::to_le_bytes),
        Tensor::F64(a) => le(a, f64::to_le_bytes),
        Tensor::F16(a) => le(a, |x: f16| x.to_bits().to_le_bytes()),
        Tensor::BF16(a) => le(a, |x: bf16| x.to_bits().to_le_bytes()),
        Tensor::I8(a) => le(a, i8::to_le_bytes),
        Tensor::U8(a) => le(a, u8::to_le_bytes),
        Tensor::I16(a) => le(a, i16::to_le_bytes),
        Tensor::U16(a) => le(a, u16::to_le_bytes),
        Tensor::I32(a) => le(a, i32::to_le_bytes),
        Tensor::U32(a) => le(a, u32::to_le_bytes),
        Tensor::I64(a) => le(a, i64::to_le_bytes),
        Tensor::U64(a) => le(a, u64::to_le_bytes),
        Tensor::Bool(a) => le(a, |x: bool| [x as u8]),
        Tensor::Packed(d, _) if !crate::kir::packed::is_expanded(*d) => return None,
        Tensor::Packed(d, a) => crate::ir::packed::pack(*d, &a.iter().copied().collect::<Vec<u8>>()),
    })
}

/// Reads a tensor of `dtype` and `shape` from little-endian bytes; `None` when the
/// length is wrong or the type is not a code generation type.
pub fn from_le_bytes(dtype: DType, shape: &[usize], bytes: &[u8]) -> Option<Tensor> {
    let n: usize = shape.iter().product();
    if bytes.len() != dtype.storage_bytes(n) {
        return None;
    }
    fn vals<T, const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunk of N bytes"))).collect()
    }
    Some(match dtype {
        DType::F32 => Tensor::from_vec(shape, vals(bytes, f32::from_le_bytes)),
        DType::F64 => Tensor::from_vec(shape, vals(bytes, f64::from_le_bytes)),
        DType::F16 => Tensor::from_vec(shape, vals(bytes, |b| f16::from_bits(u16::from_le_bytes(b)))),
        DType::BF16 => Tensor::from_vec(shape, vals(bytes, |b| bf16::from_bits(u16::from_le_bytes(b)))),
        DType::I8 => Tensor::from_vec(shape, vals(bytes, i8::from_le_bytes)),
        DType::U8 => Tensor::from_vec(shape, vals(bytes, u8::from_le_bytes)),
        DType::I16 => Tensor::from_vec(shape, vals(bytes, i16::from_le_bytes)),
        DType::U16 => Tensor::from_vec(shape, vals(bytes, u16::from_le_bytes)),
        DType::I32 => Tensor::from_vec(shape, vals(bytes, i32::from_le_bytes)),
        DType::U32 => Tensor::from_vec(shape, vals(bytes, u32::from_le_bytes)),
        DType::I64 => Tensor::from_vec(shape, vals(bytes, i64::from_le_bytes)),
        DType::U64 => Tensor::from_vec(shape, vals(bytes, u64::from_le_bytes)),
        DType::Bool => Tensor::from_vec(shape, vals(bytes, |b: [u8; 1]| b[0] != 0)),
        d if crate::kir::packed::is_expanded(d) => Tensor::Packed(
            d,
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), crate::ir::packed::unpack(d, bytes, n)).ok()?,
        ),
        _ => return None,
    })
}

//! `TensorProto` → [`Tensor`]: raw_data, the typed repeated fields, external data files
//! and sparse tensors.
//!
//! Nothing is allocated on a header's word: the element count is checked against the
//! bytes actually present (in the message or the external file) before any buffer of
//! that size is made.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path};

use half::{bf16, f16};
use ndarray::{ArrayD, IxDyn};
use onnx_protobuf::{tensor_proto::DataLocation, SparseTensorProto, TensorProto};

use crate::ir::{DType, Tensor};

/// Decoding fails with a message; the caller adds which tensor or node it was.
pub type DecodeResult<T> = Result<T, String>;

/// Where external data files are looked up: the model file's directory.
#[derive(Clone, Debug, Default)]
pub struct DataDir(pub Option<std::path::PathBuf>);

/// Element count of `dims`, rejecting negative dimensions and overflow.
pub fn checked_numel(dims: &[i64]) -> DecodeResult<usize> {
    let mut n: usize = 1;
    for &d in dims {
        if d < 0 {
            return Err(format!("negative dimension {d} in shape {dims:?}"));
        }
        n = n
            .checked_mul(d as usize)
            .ok_or_else(|| format!("shape {dims:?} has more elements than this machine can address"))?;
    }
    Ok(n)
}

pub fn decode(t: &TensorProto, dir: &DataDir) -> DecodeResult<Tensor> {
    let dtype = DType::from_onnx(t.data_type).ok_or_else(|| {
        format!("element type {} (code {}) is not supported", DType::onnx_code_name(t.data_type), t.data_type)
    })?;
    let shape: Vec<usize> = {
        checked_numel(&t.dims)?;
        t.dims.iter().map(|&d| d as usize).collect()
    };
    let numel = checked_numel(&t.dims)?;
    let external = t.data_location.enum_value() == Ok(DataLocation::EXTERNAL) || !t.external_data.is_empty();
    if external {
        let bytes = read_external(t, dir, storage_bytes(dtype, numel)?)?;
        return from_raw(dtype, &shape, numel, &bytes);
    }
    if !t.raw_data.is_empty() || numel == 0 {
        return from_raw(dtype, &shape, numel, &t.raw_data);
    }
    from_typed_fields(t, dtype, &shape, numel)
}

/// Bytes that `numel` elements take in a file (sub-byte types packed).
fn storage_bytes(dtype: DType, numel: usize) -> DecodeResult<usize> {
    numel
        .checked_mul(dtype.bits())
        .map(|b| b.div_ceil(8))
        .ok_or_else(|| "tensor size overflows".to_string())
}

fn read_external(t: &TensorProto, dir: &DataDir, want: usize) -> DecodeResult<Vec<u8>> {
    let mut location = None;
    let mut offset: u64 = 0;
    let mut length: Option<u64> = None;
    for e in &t.external_data {
        match e.key.as_str() {
            "location" => location = Some(e.value.clone()),
            "offset" => offset = e.value.parse().map_err(|_| format!("external data offset '{}' is not a number", e.value))?,
            "length" => length = Some(e.value.parse().map_err(|_| format!("external data length '{}' is not a number", e.value))?),
            _ => {}
        }
    }
    let location = location.ok_or("external data without a 'location'")?;
    let rel = Path::new(&location);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("external data location '{location}' must be a relative path inside the model's directory"));
    }
    let base = dir.0.as_ref().ok_or("external data needs the model's directory (load the model from a file)")?;
    let path = base.join(rel);
    let mut f = File::open(&path).map_err(|e| format!("cannot open external data file '{}': {e}", path.display()))?;
    let file_len = f.metadata().map_err(|e| e.to_string())?.len();
    let len = length.unwrap_or(want as u64);
    if len != want as u64 {
        return Err(format!("external data length {len} does not match the {want} bytes the tensor's shape needs"));
    }
    if offset.checked_add(len).is_none_or(|end| end > file_len) {
        return Err(format!(
            "external data file '{}' has {file_len} bytes; the tensor claims {len} bytes at offset {offset}",
            path.display()
        ));
    }
    f.seek(SeekFrom::Start(offset)).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; want];
    f.read_exact(&mut buf).map_err(|e| format!("reading '{}': {e}", path.display()))?;
    Ok(buf)
}

fn from_raw(dtype: DType, shape: &[usize], numel: usize, raw: &[u8]) -> DecodeResult<Tensor> {
    let want = storage_bytes(dtype, numel)?;
    if raw.len() != want {
        return Err(format!(
            "raw data has {} bytes, but {} elements of {dtype} need {want}",
            raw.len(),
            numel
        ));
    }
    fn le<T, const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        raw.chunks_exact(N).map(|c| f(c.try_into().expect("chunk size"))).collect()
    }
    let s = IxDyn(shape);
    let arr = |v| ArrayD::from_shape_vec(s.clone(), v).map_err(|e| e.to_string());
    Ok(match dtype {
        DType::F32 => Tensor::F32(ArrayD::from_shape_vec(s, le(raw, f32::from_le_bytes)).map_err(|e| e.to_string())?),
        DType::F64 => Tensor::F64(ArrayD::from_shape_vec(s, le(raw, f64::from_le_bytes)).map_err(|e| e.to_string())?),
        DType::F16 => Tensor::F16(ArrayD::from_shape_vec(s, le(raw, |b| f16::from_bits(u16::from_le_bytes(b)))).map_err(|e| e.to_string())?),
        DType::BF16 => Tensor::BF16(ArrayD::from_shape_vec(s, le(raw, |b| bf16::from_bits(u16::from_le_bytes(b)))).map_err(|e| e.to_string())?),
        DType::I8 => Tensor::I8(ArrayD::from_shape_vec(s, raw.iter().map(|&b| b as i8).collect()).map_err(|e| e.to_string())?),
        DType::U8 => Tensor::U8(arr(raw.to_vec())?),
        DType::I16 => Tensor::I16(ArrayD::from_shape_vec(s, le(raw, i16::from_le_bytes)).map_err(|e| e.to_string())?),
        DType::U16 => Tensor::U16(ArrayD::from_shape_vec(s, le(raw, u16::from_le_bytes)).map_err(|e| e.to_string())?),
        DType::I32 => Tensor::I32(ArrayD::from_shape_vec(s, le(raw, i32::from_le_bytes)).map_err(|e| e.to_string())?),
        DType::U32 => Tensor::U32(ArrayD::from_shape_vec(s, le(raw, u32::from_le_bytes)).map_err(|e| e.to_string())?),
        DType::I64 => Tensor::I64(ArrayD::from_shape_vec(s, le(raw, i64::from_le_bytes)).map_err(|e| e.to_string())?),
        DType::U64 => Tensor::U64(ArrayD::from_shape_vec(s, le(raw, u64::from_le_bytes)).map_err(|e| e.to_string())?),
        DType::Bool => Tensor::Bool(ArrayD::from_shape_vec(s, raw.iter().map(|&b| b != 0).collect()).map_err(|e| e.to_string())?),
        d => Tensor::Packed(d, ArrayD::from_shape_vec(s, unpack(d, raw, numel)).map_err(|e| e.to_string())?),
    })
}

/// Sub-byte elements, low bits first, one element per output byte.
fn unpack(dtype: DType, bytes: &[u8], numel: usize) -> Vec<u8> {
    crate::ir::packed::unpack(dtype, bytes, numel)
}

fn from_typed_fields(t: &TensorProto, dtype: DType, shape: &[usize], numel: usize) -> DecodeResult<Tensor> {
    let check = |have: usize, field: &str| {
        if have != numel {
            Err(format!("{field} has {have} values, but the shape {shape:?} needs {numel}"))
        } else {
            Ok(())
        }
    };
    let i32s = |field: &str| -> DecodeResult<&[i32]> {
        check(t.int32_data.len(), field)?;
        Ok(&t.int32_data)
    };
    Ok(match dtype {
        DType::F32 => {
            check(t.float_data.len(), "float_data")?;
            Tensor::from_vec(shape, t.float_data.clone())
        }
        DType::F64 => {
            check(t.double_data.len(), "double_data")?;
            Tensor::from_vec(shape, t.double_data.clone())
        }
        DType::I64 => {
            check(t.int64_data.len(), "int64_data")?;
            Tensor::from_vec(shape, t.int64_data.clone())
        }
        DType::U64 => {
            check(t.uint64_data.len(), "uint64_data")?;
            Tensor::from_vec(shape, t.uint64_data.clone())
        }
        DType::U32 => {
            check(t.uint64_data.len(), "uint64_data")?;
            Tensor::from_vec(shape, t.uint64_data.iter().map(|&v| v as u32).collect())
        }
        DType::I32 => Tensor::from_vec(shape, i32s("int32_data")?.to_vec()),
        DType::I16 => Tensor::from_vec(shape, i32s("int32_data")?.iter().map(|&v| v as i16).collect()),
        DType::U16 => Tensor::from_vec(shape, i32s("int32_data")?.iter().map(|&v| v as u16).collect()),
        DType::I8 => Tensor::from_vec(shape, i32s("int32_data")?.iter().map(|&v| v as i8).collect()),
        DType::U8 => Tensor::from_vec(shape, i32s("int32_data")?.iter().map(|&v| v as u8).collect()),
        DType::Bool => Tensor::from_vec(shape, i32s("int32_data")?.iter().map(|&v| v != 0).collect()),
        DType::F16 => Tensor::from_vec(shape, i32s("int32_data")?.iter().map(|&v| f16::from_bits(v as u16)).collect()),
        DType::BF16 => Tensor::from_vec(shape, i32s("int32_data")?.iter().map(|&v| bf16::from_bits(v as u16)).collect()),
        d if d.bits() == 8 => Tensor::Packed(d, ArrayD::from_shape_vec(IxDyn(shape), i32s("int32_data")?.iter().map(|&v| v as u8).collect()).map_err(|e| e.to_string())?),
        d => {
            // Sub-byte types: each int32 holds one byte of packed elements.
            let per = 8 / d.bits();
            let want = numel.div_ceil(per);
            if t.int32_data.len() != want {
                return Err(format!("int32_data has {} values, but {numel} packed {d} elements need {want}", t.int32_data.len()));
            }
            let bytes: Vec<u8> = t.int32_data.iter().map(|&v| v as u8).collect();
            Tensor::Packed(d, ArrayD::from_shape_vec(IxDyn(shape), unpack(d, &bytes, numel)).map_err(|e| e.to_string())?)
        }
    })
}

/// A sparse tensor made dense: `values` at `indices` (linear `[NNZ]` or `[NNZ, rank]`),
/// zeros elsewhere.
pub fn decode_sparse(s: &SparseTensorProto, dir: &DataDir) -> DecodeResult<Tensor> {
    let values = decode(s.values.as_ref().ok_or("sparse tensor without values")?, dir)?;
    let indices = decode(s.indices.as_ref().ok_or("sparse tensor without indices")?, dir)?;
    let numel = checked_numel(&s.dims)?;
    let shape: Vec<usize> = s.dims.iter().map(|&d| d as usize).collect();
    let idx = indices.to_i64_vec().ok_or("sparse indices must be integers")?;
    let nnz = values.len();
    // The dense buffer is as large as the claimed shape: refuse claims far beyond the
    // data actually present.
    if numel > (1 << 28) && numel / 64 > nnz {
        return Err(format!("sparse tensor claims {numel} dense elements for {nnz} values"));
    }
    let linear: Vec<usize> = if indices.rank() == 1 {
        idx.iter().map(|&i| i as usize).collect()
    } else if indices.rank() == 2 && indices.shape()[1] == shape.len() {
        idx.chunks(shape.len())
            .map(|c| c.iter().zip(&shape).fold(0usize, |acc, (&i, &d)| acc * d + i as usize))
            .collect()
    } else {
        return Err(format!("sparse indices of shape {:?} do not fit dims {shape:?}", indices.shape()));
    };
    if linear.len() != nnz || linear.iter().any(|&i| i >= numel) {
        return Err("sparse indices out of range or not matching the values".into());
    }
    let mut vals = values.to_f64_vec();
    let mut dense = vec![0f64; numel];
    for (k, &i) in linear.iter().enumerate() {
        dense[i] = std::mem::take(&mut vals[k]);
    }
    let dense = Tensor::from_vec(&shape, dense);
    Ok(dense.cast(values.dtype()))
}

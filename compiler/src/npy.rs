//! NumPy `.npy` files ↔ [`Tensor`], through the `npyz` crate: what `edgec run` reads
//! inputs from and writes outputs to. Both byte orders and C or Fortran order are read
//! (`npyz` converts); files are written little-endian in C order, the types NumPy has
//! (no bfloat16, float8 or 4-bit types: those are an error naming the tensor).

use std::io::BufWriter;
use std::path::Path;

use ndarray::{ArrayD, IxDyn, ShapeBuilder};
use npyz::{Order, WriterBuilder};

use crate::error::{Error, Result};
use crate::ir::{DType, Tensor};

fn invalid(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::InvalidModel(format!("{}: {what}", path.display()))
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<Tensor> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io { path: path.display().to_string(), source: e })?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| invalid(path, format!("not a .npy file: {e}")))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let order = npy.order();
    let npyz::DType::Plain(ts) = npy.dtype() else {
        return Err(invalid(path, "structured arrays are not tensors"));
    };
    // The type string without its byte-order mark: `f4`, `i8`, `b1`, ...
    let kind = ts.to_string();
    let kind = kind.trim_start_matches(['<', '>', '|', '=']);
    macro_rules! load {
        ($t:ty, $variant:ident) => {{
            let data: Vec<$t> = npy.into_vec().map_err(|e| invalid(path, e))?;
            Tensor::$variant(array(path, &shape, order, data)?)
        }};
    }
    Ok(match kind {
        "f4" => load!(f32, F32),
        "f8" => load!(f64, F64),
        "f2" => load!(half::f16, F16),
        "i1" => load!(i8, I8),
        "u1" => load!(u8, U8),
        "i2" => load!(i16, I16),
        "u2" => load!(u16, U16),
        "i4" => load!(i32, I32),
        "u4" => load!(u32, U32),
        "i8" => load!(i64, I64),
        "u8" => load!(u64, U64),
        "b1" => load!(bool, Bool),
        other => return Err(invalid(path, format!("element type '{other}' has no ONNX tensor type edgec runs"))),
    })
}

fn array<T: Clone>(path: &Path, shape: &[usize], order: Order, data: Vec<T>) -> Result<ArrayD<T>> {
    let r = match order {
        Order::C => ArrayD::from_shape_vec(IxDyn(shape), data),
        Order::Fortran => ArrayD::from_shape_vec(IxDyn(shape).f(), data),
    };
    // Fortran order: the same logical array, stored column-major; make it standard.
    r.map(|a| a.as_standard_layout().into_owned()).map_err(|e| invalid(path, format!("shape {shape:?}: {e}")))
}

/// Writes a tensor as a `.npy` file (little-endian, C order).
pub fn write(path: &Path, t: &Tensor) -> Result<()> {
    let io = |e: std::io::Error| Error::Write { path: path.display().to_string(), source: e };
    let file = std::fs::File::create(path).map_err(io)?;
    let shape: Vec<u64> = t.shape().iter().map(|&d| d as u64).collect();
    macro_rules! save {
        ($a:expr, $t:ty) => {{
            let mut w = npyz::WriteOptions::<$t>::new()
                .default_dtype()
                .shape(&shape)
                .writer(BufWriter::new(file))
                .begin_nd()
                .map_err(io)?;
            w.extend($a.iter().copied()).map_err(io)?;
            w.finish().map_err(io)
        }};
    }
    match t {
        Tensor::F32(a) => save!(a, f32),
        Tensor::F64(a) => save!(a, f64),
        Tensor::F16(a) => save!(a, half::f16),
        Tensor::I8(a) => save!(a, i8),
        Tensor::U8(a) => save!(a, u8),
        Tensor::I16(a) => save!(a, i16),
        Tensor::U16(a) => save!(a, u16),
        Tensor::I32(a) => save!(a, i32),
        Tensor::U32(a) => save!(a, u32),
        Tensor::I64(a) => save!(a, i64),
        Tensor::U64(a) => save!(a, u64),
        Tensor::Bool(a) => save!(a, bool),
        Tensor::BF16(_) | Tensor::Packed(..) => {
            let d: DType = t.dtype();
            Err(Error::UnsupportedModel(format!("{}: NumPy has no {d} type; this output cannot be written as .npy", path.display())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_numpy_type() {
        let dir = tempfile::tempdir().unwrap();
        let tensors = [
            Tensor::from_vec(&[2, 3], vec![1.5f32, -2.0, 3.25, 0.0, 5.0, 6.5]),
            Tensor::from_vec(&[3], vec![1i64, -2, 3]),
            Tensor::from_vec(&[2, 2], vec![true, false, false, true]),
            Tensor::from_vec(&[], vec![7u8]),
            Tensor::from_vec(&[2], vec![half::f16::from_f32(0.5), half::f16::from_f32(-3.0)]),
        ];
        for (i, t) in tensors.iter().enumerate() {
            let p = dir.path().join(format!("t{i}.npy"));
            write(&p, t).unwrap();
            assert_eq!(&read(&p).unwrap(), t);
        }
    }

    #[test]
    fn rejects_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        write(&p, &Tensor::from_vec(&[4], vec![1.0f32; 4])).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(read(&p).is_err());
    }
}

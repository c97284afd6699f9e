//! A safe Rust wrapper around a compiled model's `NAME_run`.
//!
//! The generated code trusts its caller: right buffer sizes, a blob of the right model,
//! an arena of `NAME_ARENA_SIZE` bytes. [`Model`] checks all of that once, from a
//! [`ModelSpec`] that mirrors the model's header/manifest, so calls from Rust cannot
//! read or write out of bounds:
//!
//! ```ignore
//! extern "C" { fn net_run(w: *const c_void, a: *mut c_void, i: *const *const c_void, o: *const *mut c_void) -> i32; }
//! static NET: ModelSpec = ModelSpec {
//!     name: "net", arena_size: 8192, weights_size: 170576, model_hash: 0x5fb5_6fc6_44e1_a801,
//!     inputs: &[TensorSpec { name: "z", dtype: ElemType::F32, shape: &[1, 8] }],
//!     outputs: &[TensorSpec { name: "image", dtype: ElemType::F32, shape: &[1, 1, 8, 8] }],
//! };
//! let model = unsafe { Model::new(&NET, net_run, Some(&WEIGHTS.0)) }?;
//! let mut arena = Arena::<8192>::new();
//! let mut image = [0f32; 64];
//! model.run(&mut arena.0, &[Input::new(&z)], &mut [Output::new(&mut image)])?;
//! ```

use core::ffi::c_void;
use core::marker::PhantomData;

use crate::blob::{BlobError, BlobHeader, BLOB_ALIGN};
use crate::status::Status;

/// `NAME_run`'s C signature.
pub type RunFn = unsafe extern "C" fn(*const c_void, *mut c_void, *const *const c_void, *const *mut c_void) -> i32;

/// Element types of the contract (the manifest's `dtype` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemType {
    F32,
    F16,
    BF16,
    F64,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    Bool,
}

impl ElemType {
    pub fn size(self) -> usize {
        use ElemType::*;
        match self {
            I8 | U8 | Bool => 1,
            F16 | BF16 | I16 | U16 => 2,
            F32 | I32 | U32 => 4,
            F64 | I64 | U64 => 8,
        }
    }

    /// The manifest's name of the type.
    pub fn name(self) -> &'static str {
        use ElemType::*;
        match self {
            F32 => "float32",
            F16 => "float16",
            BF16 => "bfloat16",
            F64 => "float64",
            I8 => "int8",
            U8 => "uint8",
            I16 => "int16",
            U16 => "uint16",
            I32 => "int32",
            U32 => "uint32",
            I64 => "int64",
            U64 => "uint64",
            Bool => "bool",
        }
    }
}

/// A Rust type whose slices can be a model's input or output: plain, padding-free, and
/// every bit pattern the generated code writes is a valid value.
///
/// # Safety
/// `TYPE.size()` must equal `size_of::<Self>()`, and every value `NAME_run` can write
/// for `TYPE` must be a valid `Self` (for `bool`: the code writes only 0 or 1).
pub unsafe trait Element: Copy {
    const TYPE: ElemType;
}

macro_rules! element {
    ($($t:ty => $e:ident),*) => { $(unsafe impl Element for $t { const TYPE: ElemType = ElemType::$e; })* };
}
element!(f32 => F32, f64 => F64, i8 => I8, u8 => U8, i16 => I16, u16 => U16, i32 => I32, u32 => U32, i64 => I64, u64 => U64, bool => Bool);

/// One graph input or output as the header describes it.
#[derive(Clone, Copy, Debug)]
pub struct TensorSpec {
    pub name: &'static str,
    pub dtype: ElemType,
    pub shape: &'static [usize],
}

impl TensorSpec {
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> usize {
        self.numel() * self.dtype.size()
    }
}

/// What `NAME.h` / `NAME.json` say about a compiled model.
#[derive(Clone, Copy, Debug)]
pub struct ModelSpec {
    pub name: &'static str,
    pub inputs: &'static [TensorSpec],
    pub outputs: &'static [TensorSpec],
    /// `NAME_ARENA_SIZE`.
    pub arena_size: usize,
    /// `NAME_WEIGHTS_SIZE` (0 with `--embed-weights`).
    pub weights_size: usize,
    /// The manifest's `model_hash`: the blob must carry it.
    pub model_hash: u64,
}

/// A typed, borrowed input buffer.
#[derive(Clone, Copy)]
pub struct Input<'a> {
    dtype: ElemType,
    ptr: *const c_void,
    len: usize,
    _borrow: PhantomData<&'a [u8]>,
}

impl<'a> Input<'a> {
    pub fn new<T: Element>(data: &'a [T]) -> Input<'a> {
        Input { dtype: T::TYPE, ptr: data.as_ptr().cast(), len: data.len(), _borrow: PhantomData }
    }
}

/// A typed, mutably borrowed output buffer.
pub struct Output<'a> {
    dtype: ElemType,
    ptr: *mut c_void,
    len: usize,
    _borrow: PhantomData<&'a mut [u8]>,
}

impl<'a> Output<'a> {
    pub fn new<T: Element>(data: &'a mut [T]) -> Output<'a> {
        Output { dtype: T::TYPE, ptr: data.as_mut_ptr().cast(), len: data.len(), _borrow: PhantomData }
    }
}

/// Arena storage with the alignment `NAME_run` requires (`NAME_ARENA_ALIGN` = 16).
#[repr(C, align(16))]
pub struct Arena<const N: usize>(pub [u8; N]);

impl<const N: usize> Arena<N> {
    pub const fn new() -> Self {
        Arena([0; N])
    }
}

impl<const N: usize> Default for Arena<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a call was refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The weight blob is not this model's (or was cut short).
    Weights(BlobError),
    /// The blob belongs to another model or compilation.
    WeightsHash { expected: u64, found: u64 },
    /// The model needs a blob (it was not compiled with `--embed-weights`), or got one it ignores.
    WeightsMissing,
    /// The blob is not 16-byte aligned.
    WeightsAlign,
    /// `inputs` or `outputs` has the wrong number of buffers.
    Count { outputs: bool, expected: usize, got: usize },
    /// A buffer's element type is not the model's.
    Type { outputs: bool, index: usize, expected: ElemType, got: ElemType },
    /// A buffer has the wrong number of elements.
    Len { outputs: bool, index: usize, expected: usize, got: usize },
    /// The arena is smaller than `NAME_ARENA_SIZE`.
    ArenaSize { expected: usize, got: usize },
    /// The arena is not 16-byte aligned (use [`Arena`]).
    ArenaAlign,
    /// `NAME_run` returned this code (an index input out of range, ...).
    Run(Status),
    /// `NAME_run` returned a code this runtime does not know.
    Code(i32),
}

/// A compiled model, its checked weights and its interface.
pub struct Model<'w> {
    spec: &'static ModelSpec,
    run: RunFn,
    weights: *const c_void,
    _weights: PhantomData<&'w [u8]>,
}

impl<'w> Model<'w> {
    /// Binds `run` (the model's `NAME_run`) to its spec and weight blob (`None` for a
    /// model compiled with `--embed-weights`), checking the blob's header, size, trailer
    /// and hash against the spec.
    ///
    /// # Safety
    /// `run` must be the `NAME_run` of the compilation `spec` describes.
    pub unsafe fn new(spec: &'static ModelSpec, run: RunFn, weights: Option<&'w [u8]>) -> Result<Model<'w>, Error> {
        let ptr = match (weights, spec.weights_size) {
            (None, 0) => core::ptr::null(),
            (Some(w), n) if n > 0 => {
                if !(w.as_ptr() as usize).is_multiple_of(BLOB_ALIGN) {
                    return Err(Error::WeightsAlign);
                }
                if w.len() != n {
                    return Err(Error::Weights(BlobError::Size { recorded: n as u64, actual: w.len() as u64 }));
                }
                let h = BlobHeader::parse(w).map_err(Error::Weights)?;
                if h.model_hash != spec.model_hash {
                    return Err(Error::WeightsHash { expected: spec.model_hash, found: h.model_hash });
                }
                w.as_ptr().cast()
            }
            _ => return Err(Error::WeightsMissing),
        };
        Ok(Model { spec, run, weights: ptr, _weights: PhantomData })
    }

    pub fn spec(&self) -> &'static ModelSpec {
        self.spec
    }

    /// Runs the model once. Every buffer is checked against the spec first, so the
    /// generated code only ever sees buffers of the sizes it was compiled for.
    pub fn run(&self, arena: &mut [u8], inputs: &[Input], outputs: &mut [Output]) -> Result<(), Error> {
        let s = self.spec;
        if arena.len() < s.arena_size {
            return Err(Error::ArenaSize { expected: s.arena_size, got: arena.len() });
        }
        if !(arena.as_ptr() as usize).is_multiple_of(16) {
            return Err(Error::ArenaAlign);
        }
        check(false, s.inputs, inputs.iter().map(|i| (i.dtype, i.len)))?;
        check(true, s.outputs, outputs.iter().map(|o| (o.dtype, o.len)))?;
        // At most this many inputs/outputs without an allocator; more is a spec no
        // compiled model has had yet, refused rather than truncated.
        const MAX: usize = 64;
        for (outputs, got) in [(false, inputs.len()), (true, outputs.len())] {
            if got > MAX {
                return Err(Error::Count { outputs, expected: MAX, got });
            }
        }
        let mut ins = [core::ptr::null::<c_void>(); MAX];
        let mut outs = [core::ptr::null_mut::<c_void>(); MAX];
        for (p, i) in ins.iter_mut().zip(inputs) {
            *p = i.ptr;
        }
        for (p, o) in outs.iter_mut().zip(outputs.iter()) {
            *p = o.ptr;
        }
        // SAFETY: `new`'s contract makes `run` this spec's code; buffers, blob and arena
        // were checked against the spec above and are borrowed for the call.
        let code = unsafe { (self.run)(self.weights, arena.as_mut_ptr().cast(), ins.as_ptr(), outs.as_ptr()) };
        match Status::from_code(code) {
            Some(Status::Ok) => Ok(()),
            Some(st) => Err(Error::Run(st)),
            None => Err(Error::Code(code)),
        }
    }
}

fn check(outputs: bool, spec: &[TensorSpec], got: impl ExactSizeIterator<Item = (ElemType, usize)>) -> Result<(), Error> {
    if got.len() != spec.len() {
        return Err(Error::Count { outputs, expected: spec.len(), got: got.len() });
    }
    for (index, (t, (dtype, len))) in spec.iter().zip(got).enumerate() {
        if dtype != t.dtype {
            return Err(Error::Type { outputs, index, expected: t.dtype, got: dtype });
        }
        if len != t.numel() {
            return Err(Error::Len { outputs, index, expected: t.numel(), got: len });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::BLOB_HEADER_SIZE;

    /// Stands in for a compiled `NAME_run`: y[i] = 2 x[i], and code 6 when x[0] < 0.
    unsafe extern "C" fn fake_run(w: *const c_void, a: *mut c_void, i: *const *const c_void, o: *const *mut c_void) -> i32 {
        assert!(!w.is_null() && !a.is_null());
        let x = core::slice::from_raw_parts(*i as *const f32, 4);
        let y = core::slice::from_raw_parts_mut(*o as *mut f32, 4);
        if x[0] < 0.0 {
            return 6;
        }
        for k in 0..4 {
            y[k] = 2.0 * x[k];
        }
        0
    }

    static SPEC: ModelSpec = ModelSpec {
        name: "fake",
        inputs: &[TensorSpec { name: "x", dtype: ElemType::F32, shape: &[2, 2] }],
        outputs: &[TensorSpec { name: "y", dtype: ElemType::F32, shape: &[4] }],
        arena_size: 32,
        weights_size: 48,
        model_hash: 0xabc,
    };

    #[repr(C, align(16))]
    struct Blob([u8; 48]);

    fn blob(hash: u64) -> Blob {
        let h = BlobHeader { model_hash: hash, total_size: 48 };
        let mut b = [0u8; 48];
        b[..BLOB_HEADER_SIZE].copy_from_slice(&h.to_bytes());
        b[32..].copy_from_slice(&h.trailer());
        Blob(b)
    }

    #[test]
    fn checks_then_runs() {
        let good = blob(0xabc);
        let m = unsafe { Model::new(&SPEC, fake_run, Some(&good.0)) }.unwrap();
        let mut arena = Arena::<32>::new();
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let mut y = [0f32; 4];
        m.run(&mut arena.0, &[Input::new(&x)], &mut [Output::new(&mut y)]).unwrap();
        assert_eq!(y, [2.0, 4.0, 6.0, 8.0]);
        let neg = [-1.0f32, 0.0, 0.0, 0.0];
        assert_eq!(m.run(&mut arena.0, &[Input::new(&neg)], &mut [Output::new(&mut y)]), Err(Error::Run(Status::IndexOutOfRange)));
        let xi = [1i32; 4];
        assert!(matches!(m.run(&mut arena.0, &[Input::new(&xi)], &mut [Output::new(&mut y)]), Err(Error::Type { outputs: false, .. })));
        let short = [1.0f32; 3];
        assert!(matches!(m.run(&mut arena.0, &[Input::new(&short)], &mut [Output::new(&mut y)]), Err(Error::Len { outputs: false, .. })));
        assert!(matches!(m.run(&mut arena.0, &[], &mut [Output::new(&mut y)]), Err(Error::Count { .. })));
        assert!(matches!(m.run(&mut arena.0[..16], &[Input::new(&x)], &mut [Output::new(&mut y)]), Err(Error::ArenaSize { .. })));
        let mut big = Arena::<64>::new();
        assert_eq!(m.run(&mut big.0[1..], &[Input::new(&x)], &mut [Output::new(&mut y)]), Err(Error::ArenaAlign));
    }

    #[test]
    fn rejects_wrong_weights() {
        let other = blob(0xdef);
        assert!(matches!(unsafe { Model::new(&SPEC, fake_run, Some(&other.0)) }, Err(Error::WeightsHash { .. })));
        let good = blob(0xabc);
        assert!(matches!(unsafe { Model::new(&SPEC, fake_run, Some(&good.0[..32])) }, Err(Error::Weights(_))));
        let mut cut = blob(0xabc);
        cut.0[40] = 0;
        assert_eq!(unsafe { Model::new(&SPEC, fake_run, Some(&cut.0)) }.err(), Some(Error::Weights(BlobError::Trailer)));
        assert_eq!(unsafe { Model::new(&SPEC, fake_run, None) }.err(), Some(Error::WeightsMissing));
    }
}

//! The VAE decoder of testsuite/models/digits_vae_decoder, compiled by build.rs and
//! called through `edgec_runtime::Model`: no heap, one static arena, checked buffers.

use core::ffi::c_void;

pub use edgec_runtime::Error;
use edgec_runtime::{Arena, ElemType, Input, Model, ModelSpec, Output, TensorSpec};

include!(concat!(env!("OUT_DIR"), "/vae_spec.rs"));

extern "C" {
    fn vae_run(weights: *const c_void, arena: *mut c_void, inputs: *const *const c_void, outputs: *const *mut c_void) -> i32;
}

#[repr(C, align(16))]
struct Weights([u8; WEIGHTS_SIZE]);

static WEIGHTS: Weights = Weights(*include_bytes!(concat!(env!("OUT_DIR"), "/vae.weights")));

/// An 8×8 digit image (values in (0, 1)) for a latent vector `z`.
pub fn decode(z: &[f32; 8]) -> Result<[f32; 64], Error> {
    // SAFETY: vae_run is the code build.rs compiled with this spec.
    let model = unsafe { Model::new(&VAE, vae_run, Some(&WEIGHTS.0)) }?;
    let mut arena = Box::new(Arena::<ARENA_SIZE>::new());
    let mut image = [0f32; 64];
    model.run(&mut arena.0, &[Input::new(z)], &mut [Output::new(&mut image)])?;
    Ok(image)
}

/// The same call with a wrongly typed input: the wrapper refuses it before any code runs.
pub fn decode_f64(z: &[f64; 8]) -> Result<(), Error> {
    let model = unsafe { Model::new(&VAE, vae_run, Some(&WEIGHTS.0)) }?;
    let mut arena = Box::new(Arena::<ARENA_SIZE>::new());
    let mut image = [0f32; 64];
    model.run(&mut arena.0, &[Input::new(z)], &mut [Output::new(&mut image)])
}

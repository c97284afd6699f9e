//! The VAE decoder of testsuite/models/digits_vae_decoder, compiled by build.rs with
//! `edgec::Build` and called through the typed module it generated (`vae.rs`, on top of
//! `edgec_runtime::Model`): no heap in the call, checked buffers and weights.

use edgec_runtime::{Input, Output};

include!(concat!(env!("OUT_DIR"), "/vae.rs"));

pub use vae::Error;

/// An 8×8 digit image (values in (0, 1)) for a latent vector `z`.
pub fn decode(z: &[f32; 8]) -> Result<[f32; 64], Error> {
    let mut arena = Box::new(vae::Arena::new());
    let mut image = [0f32; vae::IMAGE_LEN];
    vae::run(vae::weights(), &mut arena, &vae::Inputs { z }, &mut vae::Outputs { image: &mut image })?;
    Ok(image)
}

/// The untyped call with a wrongly typed input: the wrapper refuses it before any code
/// runs (the typed `vae::run` cannot even express it).
pub fn decode_f64(z: &[f64; 8]) -> Result<(), Error> {
    let mut arena = Box::new(vae::Arena::new());
    let mut image = [0f32; 64];
    vae::model(vae::weights())?.run(&mut arena.0, &[Input::new(z)], &mut [Output::new(&mut image)])
}

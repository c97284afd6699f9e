//! A `no_std` Cortex-M7 firmware (QEMU mps2-an500) running two models compiled by
//! edgec from build.rs: chargpt writes text greedily from a fixed prompt, and the digits
//! VAE decoder draws four digits as ASCII art. Prints over semihosting, then the flash
//! and RAM the image uses, and exits QEMU.
//!
//! Lines meant for machines (scripts/examples.sh): `greedy: <text>`, and per digit
//! `zK:`/`imageK:` with the latent vector and image as float32 bit patterns (hex).
//!
//! Built for the host (as a member of the root workspace, by `cargo test --workspace`)
//! it is only a stub that says how to run it.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
mod board;
#[cfg(target_os = "none")]
mod firmware;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("this is a Cortex-M7 firmware: cd examples/firmware-cortex-m7 && cargo run --release (target thumbv7em-none-eabihf)");
    std::process::exit(2);
}

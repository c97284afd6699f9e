//! A `no_std` Cortex-M7 firmware (QEMU mps2-an500) running two models compiled by
//! edgec from build.rs: chargpt writes text greedily from a fixed prompt, and the digits
//! VAE decoder draws four digits as ASCII art. Prints over semihosting, then the flash
//! and RAM the image uses, and exits QEMU.
//!
//! Lines meant for machines (scripts/examples.sh): `greedy: <text>`, and per digit
//! `zK:`/`imageK:` with the latent vector and image as float32 bit patterns (hex).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprint, hprintln};
use edgec_example_textgen::{argmax, decode, encode, Window};

include!(concat!(env!("OUT_DIR"), "/chargpt.rs"));
include!(concat!(env!("OUT_DIR"), "/vae.rs"));
include!(concat!(env!("OUT_DIR"), "/ref_z.rs"));

/// The prompt and length of the greedy text (the host example checks the same).
const PROMPT: &str = "This program is free software: ";
const GREEDY_CHARS: usize = 48;

// Static memory of the image, from cortex-m-rt's linker script.
extern "C" {
    static __sidata: u8;
    static __sdata: u8;
    static __edata: u8;
    static __sheap: u8;
}

#[entry]
fn main() -> ! {
    match run() {
        Ok(()) => debug::exit(debug::EXIT_SUCCESS),
        Err(msg) => {
            hprintln!("error: {}", msg);
            debug::exit(debug::EXIT_FAILURE)
        }
    }
    loop {}
}

fn run() -> Result<(), &'static str> {
    hprintln!("edgec firmware on {} (cortex-m7, mps2-an500)", chargpt::TARGET);
    text()?;
    digits()?;
    memory();
    Ok(())
}

/// chargpt's greedy continuation of PROMPT, one forward pass per character.
fn text() -> Result<(), &'static str> {
    let arena = chargpt::Arena::take().ok_or("chargpt arena taken")?;
    let mut logits = [0f32; chargpt::LOGITS_LEN];
    let mut w = Window::new();
    for c in PROMPT.chars() {
        w.push(encode(c).ok_or("prompt character outside the vocabulary")?);
    }
    hprint!("greedy: ");
    for _ in 0..GREEDY_CHARS {
        chargpt::run(chargpt::weights(), arena, &chargpt::Inputs { input_ids: w.input() }, &mut chargpt::Outputs { logits: &mut logits })
            .map_err(|_| "chargpt failed")?;
        let id = argmax(w.next_logits(&logits));
        let mut buf = [0u8; 4];
        hprint!("{}", decode(id).encode_utf8(&mut buf));
        w.push(id as i64);
    }
    hprintln!("");
    Ok(())
}

/// Four digits: the reference latent vector, then three from N(0, 1).
fn digits() -> Result<(), &'static str> {
    let arena = vae::Arena::take().ok_or("vae arena taken")?;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for k in 0..4 {
        let z: [f32; 8] = if k == 0 { REF_Z } else { core::array::from_fn(|_| normal(&mut rng)) };
        let mut image = [0f32; vae::IMAGE_LEN];
        vae::run(vae::weights(), arena, &vae::Inputs { z: &z }, &mut vae::Outputs { image: &mut image }).map_err(|_| "vae failed")?;
        // The exact float32 bits, for the check against ONNX Runtime.
        hprint!("z{}:", k);
        for v in z {
            hprint!(" {:08x}", v.to_bits());
        }
        hprint!("\nimage{}:", k);
        for p in image {
            hprint!(" {:08x}", p.to_bits());
        }
        hprintln!("");
        for row in image.chunks(8) {
            let mut line = [b' '; 16];
            for (i, &p) in row.iter().enumerate() {
                let c = b" .:-=+*#%@"[((p * 10.0) as usize).min(9)];
                line[2 * i] = c;
                line[2 * i + 1] = c;
            }
            hprintln!("{}", core::str::from_utf8(&line).unwrap_or(""));
        }
        hprintln!("----------------");
    }
    Ok(())
}

/// Approximately N(0, 1) without libm: the sum of 12 uniforms minus 6.
fn normal(state: &mut u64) -> f32 {
    let mut s = 0.0;
    for _ in 0..12 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        s += (*state >> 40) as f32 / (1u64 << 24) as f32;
    }
    s - 6.0
}

/// Flash = the image (code, read-only data with the embedded weights, .data's initial
/// values); RAM = .data + .bss (the models' arenas are static, in .bss), stack aside.
fn memory() {
    // Only the addresses of the linker symbols are taken (no read): safe.
    let (sidata, sdata, edata, sheap) = {
        (
            core::ptr::addr_of!(__sidata) as usize,
            core::ptr::addr_of!(__sdata) as usize,
            core::ptr::addr_of!(__edata) as usize,
            core::ptr::addr_of!(__sheap) as usize,
        )
    };
    let flash = sidata + (edata - sdata);
    let ram = sheap - sdata;
    hprintln!("models: chargpt weights {} B arena {} B, vae weights {} B arena {} B", chargpt::WEIGHTS_BYTES, chargpt::ARENA_SIZE, vae::WEIGHTS_BYTES, vae::ARENA_SIZE);
    hprintln!("memory: flash {} B, ram {} B static (+ stack)", flash, ram);
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {}
}

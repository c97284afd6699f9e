//! The firmware's program (see main.rs).

use crate::board;
use crate::{print, println};

use edgec_example_textgen::{argmax, decode, encode, Window};

include!(concat!(env!("OUT_DIR"), "/chargpt.rs"));
include!(concat!(env!("OUT_DIR"), "/vae.rs"));
include!(concat!(env!("OUT_DIR"), "/ref_z.rs"));

/// The prompt and length of the greedy text (the host example checks the same).
const PROMPT: &str = "This program is free software: ";
const GREEDY_CHARS: usize = 48;

#[no_mangle]
extern "C" fn firmware_main() -> ! {
    match run() {
        Ok(()) => board::exit(0),
        Err(msg) => {
            println!("error: {}", msg);
            board::exit(1)
        }
    }
}

fn run() -> Result<(), &'static str> {
    println!("edgec firmware on {} (cortex-m7, mps2-an500)", chargpt::TARGET);
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
    print!("greedy: ");
    for _ in 0..GREEDY_CHARS {
        chargpt::run(chargpt::weights(), arena, &chargpt::Inputs { input_ids: w.input() }, &mut chargpt::Outputs { logits: &mut logits })
            .map_err(|_| "chargpt failed")?;
        let id = argmax(w.next_logits(&logits));
        let mut buf = [0u8; 4];
        print!("{}", decode(id).encode_utf8(&mut buf));
        w.push(id as i64);
    }
    println!("");
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
        print!("z{}:", k);
        for v in z {
            print!(" {:08x}", v.to_bits());
        }
        print!("\nimage{}:", k);
        for p in image {
            print!(" {:08x}", p.to_bits());
        }
        println!("");
        for row in image.chunks(8) {
            let mut line = [b' '; 16];
            for (i, &p) in row.iter().enumerate() {
                let c = b" .:-=+*#%@"[((p * 10.0) as usize).min(9)];
                line[2 * i] = c;
                line[2 * i + 1] = c;
            }
            println!("{}", core::str::from_utf8(&line).unwrap_or(""));
        }
        println!("----------------");
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
/// values); RAM = .data + .bss (the models' arenas are static, in .bss) + the stack.
fn memory() {
    let (flash, ram) = board::memory_used();
    println!("models: chargpt weights {} B arena {} B, vae weights {} B arena {} B", chargpt::WEIGHTS_BYTES, chargpt::ARENA_SIZE, vae::WEIGHTS_BYTES, vae::ARENA_SIZE);
    println!("memory: flash {} B, ram {} B (stack 65536 B included)", flash, ram);
}

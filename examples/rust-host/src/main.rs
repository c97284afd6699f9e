//! Draws a few digits from random latent vectors with the compiled VAE decoder.

fn main() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut normal = || {
        // Box–Muller from a xorshift: enough for a demo, no dependency.
        let mut u = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let (a, b) = (u().max(1e-12), u());
        ((-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()) as f32
    };
    for _ in 0..4 {
        let z: [f32; 8] = std::array::from_fn(|_| normal());
        let image = edgec_example_host::decode(&z).expect("the model runs");
        for row in image.chunks(8) {
            let line: String = row.iter().map(|&p| [' ', '.', ':', '*', '#'][((p * 5.0) as usize).min(4)]).collect();
            println!("{line}");
        }
        println!("--------");
    }
}

//! vocoder: `vocoder [MEL.npy] [-o OUT.wav] [--rate HZ]` — mel spectrogram (float32
//! [1,32,24] .npy; default the model's test input) → a float32 mono WAV.

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testsuite/models/hifigan_tiny");
    let (mut input, mut out, mut rate) = (root.join("test_data/input_0.npy"), PathBuf::from("vocoder.wav"), 22050u32);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-o" => out = args.next().map(PathBuf::from).unwrap_or_else(|| usage()),
            "--rate" => rate = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| usage()),
            "-h" | "--help" => usage(),
            _ => input = PathBuf::from(a),
        }
    }
    if let Err(e) = run(&input, &out, rate) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn usage() -> ! {
    eprintln!("usage: vocoder [MEL.npy] [-o OUT.wav] [--rate HZ]");
    std::process::exit(2)
}

fn run(input: &std::path::Path, out: &std::path::Path, rate: u32) -> Result<(), String> {
    let bytes = std::fs::read(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let (shape, data) = edgec_example_vocoder::read_npy_f32(&bytes).map_err(|e| format!("{}: {e}", input.display()))?;
    let mel: [f32; edgec_example_vocoder::MEL_LEN] =
        data.try_into().map_err(|_| format!("{}: shape {shape:?}, the model takes mel[1,32,24]", input.display()))?;
    let wav = edgec_example_vocoder::vocode(&mel).map_err(|e| format!("the model failed: {e:?}"))?;
    std::fs::write(out, edgec_example_vocoder::wav_f32(&wav, rate)).map_err(|e| format!("{}: {e}", out.display()))?;
    let peak = wav.iter().fold(0f32, |m, s| m.max(s.abs()));
    println!("wrote {} ({} samples at {rate} Hz, peak {peak:.4})", out.display(), wav.len());
    Ok(())
}

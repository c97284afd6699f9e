//! The compiled vocoder reproduces the reference audio; the WAV holds exactly it.

use std::path::Path;

use edgec::ir::Tensor;
use edgec::testdata::{compare, read_numbered, CONTRACT};
use edgec_example_vocoder::{read_npy_f32, vocode, wav_f32, MEL_LEN};

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testsuite/models/hifigan_tiny")
}

#[test]
fn audio_matches_the_reference_outputs() {
    let set = root().join("test_data_set_0");
    let want = read_numbered(&set, "output").unwrap().remove(0);
    let (shape, mel) = read_npy_f32(&std::fs::read(root().join("test_data/input_0.npy")).unwrap()).unwrap();
    assert_eq!(shape, [1, 32, 24]);
    let mel: [f32; MEL_LEN] = mel.try_into().unwrap();
    let wav = vocode(&mel).unwrap();
    compare(&Tensor::from_vec(want.shape(), wav.to_vec()), &want, CONTRACT).unwrap();
    let file = wav_f32(&wav, 22050);
    assert_eq!(&file[..4], b"RIFF");
    assert_eq!(u32::from_le_bytes(file[4..8].try_into().unwrap()) as usize, file.len() - 8);
    let data = &file[file.len() - 4 * wav.len()..];
    assert_eq!(&file[file.len() - 4 * wav.len() - 8..file.len() - 4 * wav.len() - 4], b"data");
    assert!(data.chunks_exact(4).zip(&wav).all(|(c, s)| f32::from_le_bytes(c.try_into().unwrap()) == *s));
}

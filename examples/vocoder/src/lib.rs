//! hifigan_tiny (mel[1,32,24] → wav[1,1,384]) compiled at build time by `edgec::Build`,
//! plus the two file formats around it: a float32 `.npy` reader for the mel input and
//! a float32 WAV writer for the audio.

include!(concat!(env!("OUT_DIR"), "/hifigan.rs"));

pub use hifigan::{MEL_LEN, WAV_LEN};

/// The audio samples of one mel spectrogram.
pub fn vocode(mel: &[f32; MEL_LEN]) -> Result<[f32; WAV_LEN], hifigan::Error> {
    let mut arena = Box::new(hifigan::Arena::new());
    let mut wav = [0f32; WAV_LEN];
    hifigan::run(hifigan::weights(), &mut arena, &hifigan::Inputs { mel }, &mut hifigan::Outputs { wav: &mut wav })?;
    Ok(wav)
}

/// The data of a little-endian float32 `.npy` file (C order), with its shape.
pub fn read_npy_f32(bytes: &[u8]) -> Result<(Vec<usize>, Vec<f32>), String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("not an .npy file".into());
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let header = std::str::from_utf8(bytes.get(start..start + hlen).ok_or("truncated header")?).map_err(|e| e.to_string())?;
    if !header.contains("'descr': '<f4'") || header.contains("'fortran_order': True") {
        return Err(format!("need little-endian float32 in C order, got {header}"));
    }
    let shape_str = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or("no shape")?;
    let shape: Vec<usize> = shape_str.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().map_err(|_| format!("bad shape {shape_str}"))).collect::<Result<_, _>>()?;
    let data = &bytes[start + hlen..];
    let n: usize = shape.iter().product();
    if data.len() != 4 * n {
        return Err(format!("{} data bytes for shape {shape:?}", data.len()));
    }
    Ok((shape, data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()))
}

/// A mono WAV file of IEEE float32 samples (format tag 3), written by hand: RIFF header,
/// `fmt ` chunk (with the extension size field), `fact` chunk (required for non-PCM),
/// `data` chunk.
pub fn wav_f32(samples: &[f32], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 4) as u32;
    let mut v = Vec::with_capacity(58 + data_len as usize);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(4 + 26 + 12 + 8 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&18u32.to_le_bytes());
    v.extend_from_slice(&3u16.to_le_bytes()); // WAVE_FORMAT_IEEE_FLOAT
    v.extend_from_slice(&1u16.to_le_bytes()); // mono
    v.extend_from_slice(&rate.to_le_bytes());
    v.extend_from_slice(&(rate * 4).to_le_bytes()); // bytes per second
    v.extend_from_slice(&4u16.to_le_bytes()); // block align
    v.extend_from_slice(&32u16.to_le_bytes()); // bits per sample
    v.extend_from_slice(&0u16.to_le_bytes()); // extension size
    v.extend_from_slice(b"fact");
    v.extend_from_slice(&4u32.to_le_bytes());
    v.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

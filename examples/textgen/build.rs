//! chargpt's vocabulary (testsuite/models/chargpt/vocab.json) as Rust constants.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testsuite/models/chargpt/vocab.json");
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let chars: Vec<char> = v["chars"]
        .as_array()
        .expect("vocab.json has a \"chars\" array")
        .iter()
        .map(|c| c.as_str().and_then(|s| s.chars().next()).expect("one character per entry"))
        .collect();
    let block = v["block_size"].as_u64().expect("vocab.json has \"block_size\"");
    let mut s = String::new();
    writeln!(s, "/// The model's characters, by token id.\npub const CHARS: [char; {}] = {:?};", chars.len(), chars).unwrap();
    writeln!(s, "/// The model's context length (tokens per forward pass).\npub const BLOCK_SIZE: usize = {block};").unwrap();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("vocab.rs");
    std::fs::write(out, s).unwrap();
}

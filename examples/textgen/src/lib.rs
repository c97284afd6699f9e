//! chargpt's side of text generation, shared by examples/chargpt-host and
//! examples/firmware-cortex-m7 so both decode the same way: the vocabulary, the sliding
//! context window, and greedy choice. `no_std`, no allocation.
//!
//! chargpt takes exactly `BLOCK_SIZE` ids; its attention is causal, so a shorter context
//! is placed at positions `0..len` and padded after it, and the next token comes from the
//! logits at position `len - 1` — the same as a forward pass over the context alone.
//! Once the context is full it slides: the last `BLOCK_SIZE` ids.
#![no_std]

include!(concat!(env!("OUT_DIR"), "/vocab.rs"));

/// Vocabulary size.
pub const VOCAB: usize = CHARS.len();

/// The token of a character (None: not in the vocabulary).
pub fn encode(c: char) -> Option<i64> {
    CHARS.iter().position(|&x| x == c).map(|i| i as i64)
}

/// The character of a token id.
pub fn decode(id: usize) -> char {
    CHARS[id]
}

/// The last `BLOCK_SIZE` tokens of the text so far.
pub struct Window {
    ids: [i64; BLOCK_SIZE],
    len: usize,
}

impl Window {
    pub const fn new() -> Window {
        Window { ids: [0; BLOCK_SIZE], len: 0 }
    }

    /// Appends a token, dropping the oldest when full.
    pub fn push(&mut self, id: i64) {
        if self.len == BLOCK_SIZE {
            self.ids.copy_within(1.., 0);
            self.len -= 1;
        }
        self.ids[self.len] = id;
        self.len += 1;
    }

    /// The model input: the window, padded with token 0 after it.
    pub fn input(&self) -> &[i64; BLOCK_SIZE] {
        &self.ids
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The logits of the next token within the model's `[1, BLOCK_SIZE, VOCAB]` output.
    pub fn next_logits<'a>(&self, logits: &'a [f32]) -> &'a [f32] {
        let p = self.len.max(1) - 1;
        &logits[p * VOCAB..(p + 1) * VOCAB]
    }
}

impl Default for Window {
    fn default() -> Self {
        Self::new()
    }
}

/// The index of the largest value, the first on ties (as numpy's argmax).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides() {
        let mut w = Window::new();
        for i in 0..BLOCK_SIZE as i64 + 3 {
            w.push(i % VOCAB as i64);
        }
        assert_eq!(w.len(), BLOCK_SIZE);
        assert_eq!(w.input()[0], 3);
        assert_eq!(w.input()[BLOCK_SIZE - 1], (BLOCK_SIZE as i64 + 2) % VOCAB as i64);
        assert_eq!(argmax(&[1.0, 3.0, 3.0, 2.0]), 1);
        assert_eq!(encode(decode(40)), Some(40));
    }
}

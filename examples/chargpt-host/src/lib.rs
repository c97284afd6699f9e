//! Text generation with chargpt (a character-level GPT, context 64) compiled at build
//! time by `edgec::Build`: greedy decoding and seeded temperature sampling.

use edgec_example_textgen::{argmax, encode, Window, VOCAB};

include!(concat!(env!("OUT_DIR"), "/chargpt.rs"));

pub use edgec_example_textgen::decode;

#[derive(Debug)]
pub enum GenError {
    /// The prompt has a character outside the model's vocabulary.
    Char(char),
    Model(chargpt::Error),
}

impl std::fmt::Display for GenError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            GenError::Char(c) => write!(f, "the prompt's character {c:?} is not in chargpt's vocabulary"),
            GenError::Model(e) => write!(f, "the model failed: {e:?}"),
        }
    }
}

impl std::error::Error for GenError {}

/// How the next character is chosen.
#[derive(Clone, Copy, Debug)]
pub enum Choice {
    Greedy,
    /// Softmax of logits / temperature, drawn with a xorshift64* generator.
    Sample { temperature: f32, seed: u64 },
}

/// The model with its arena, ready to generate.
pub struct Generator {
    arena: Box<chargpt::Arena>,
    logits: Box<[f32; chargpt::LOGITS_LEN]>,
}

impl Default for Generator {
    fn default() -> Self {
        Self::new()
    }
}

impl Generator {
    pub fn new() -> Generator {
        Generator { arena: Box::new(chargpt::Arena::new()), logits: Box::new([0.0; chargpt::LOGITS_LEN]) }
    }

    /// One forward pass over a full input: the `[1, 64, VOCAB]` logits.
    pub fn forward(&mut self, input_ids: &[i64; chargpt::INPUT_IDS_LEN]) -> Result<&[f32], chargpt::Error> {
        chargpt::run(chargpt::weights(), &mut self.arena, &chargpt::Inputs { input_ids }, &mut chargpt::Outputs { logits: &mut self.logits })?;
        Ok(&self.logits[..])
    }

    /// `prompt` followed by `n` generated characters (the continuation only).
    pub fn generate(&mut self, prompt: &str, n: usize, choice: Choice) -> Result<String, GenError> {
        let mut w = Window::new();
        for c in prompt.chars() {
            w.push(encode(c).ok_or(GenError::Char(c))?);
        }
        if w.is_empty() {
            w.push(encode('\n').unwrap_or(0));
        }
        let mut rng = match choice {
            Choice::Sample { seed, .. } => seed.max(1),
            Choice::Greedy => 1,
        };
        let mut out = String::new();
        for _ in 0..n {
            let logits = self.forward(w.input()).map_err(GenError::Model)?;
            let next = w.next_logits(logits);
            let id = match choice {
                Choice::Greedy => argmax(next),
                Choice::Sample { temperature, .. } => sample(next, temperature, &mut rng),
            };
            out.push(decode(id));
            w.push(id as i64);
        }
        Ok(out)
    }
}

/// Draws from softmax(logits / t).
fn sample(logits: &[f32], t: f32, state: &mut u64) -> usize {
    let t = t.max(1e-3);
    let max = logits[argmax(logits)];
    let p: Vec<f64> = logits.iter().map(|&x| (((x - max) / t) as f64).exp()).collect();
    let total: f64 = p.iter().sum();
    // xorshift64*: uniform in [0, 1).
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    let u = (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64;
    let mut acc = 0.0;
    for (i, q) in p.iter().enumerate() {
        acc += q / total;
        if u < acc {
            return i;
        }
    }
    VOCAB - 1
}

//! chargpt-host: `chargpt-host [--greedy N | --sample N] [--seed S] [--temperature T] [PROMPT]`.
//! Prints the prompt and its continuation; `--greedy N` prints only the N greedy
//! characters (what scripts/examples.sh compares with ONNX Runtime's greedy loop).

use edgec_example_chargpt::{Choice, Generator};

const DEFAULT_PROMPT: &str = "This program is free software: ";

fn usage() -> ! {
    eprintln!("usage: chargpt-host [--greedy N | --sample N] [--seed S] [--temperature T] [PROMPT]");
    std::process::exit(2)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut greedy, mut n, mut seed, mut temperature, mut prompt) = (false, 200usize, 1234u64, 0.8f32, None);
    let num = |v: Option<String>| v.and_then(|s| s.parse().ok()).unwrap_or_else(|| usage());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--greedy" => (greedy, n) = (true, num(args.next())),
            "--sample" => n = num(args.next()),
            "--seed" => seed = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| usage()),
            "--temperature" => temperature = args.next().and_then(|s| s.parse().ok()).unwrap_or_else(|| usage()),
            "-h" | "--help" => usage(),
            _ if prompt.is_none() => prompt = Some(a),
            _ => usage(),
        }
    }
    let prompt = prompt.unwrap_or_else(|| DEFAULT_PROMPT.to_string());
    let choice = if greedy { Choice::Greedy } else { Choice::Sample { temperature, seed } };
    let mut g = Generator::new();
    match g.generate(&prompt, n, choice) {
        Ok(text) if greedy => println!("{text}"),
        Ok(text) => println!("{prompt}{text}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}

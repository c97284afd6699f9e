//! The `edgec` command line (see ../shared/CONTRACT.md): `compile`, `inspect`, `verify`,
//! `targets`. Library errors become messages and the contract's exit codes here.

mod cli;

use clap::Parser;

fn main() {
    let args = cli::Cli::parse();
    let code = match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            e.downcast_ref::<edgec::Error>().map(|e| e.exit_code()).unwrap_or(1)
        }
    };
    std::process::exit(code);
}

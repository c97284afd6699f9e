//! The `edgec` command line (see ../shared/CONTRACT.md): `compile`, `inspect`, `verify`,
//! `targets`. Library errors become messages and the contract's exit codes here.

mod cli;

use clap::Parser;

/// Large allocations (weight tensors) always come from their own mappings, so freeing
/// one returns its memory to the system. glibc otherwise raises the mmap threshold to
/// the size of the first such block freed (the loader's read buffer), after which
/// tensors land in the brk heap, where freeing them while the weight blob is packed
/// (emit::blob::build_consuming) leaves holes that still count as resident: the
/// 100M-parameter compile peaked at 1.8x its weight bytes instead of 1.2x
/// (docs/performance.md). Setting the threshold fixes it and turns the adjustment off.
fn large_blocks_mapped() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() {
    large_blocks_mapped();
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

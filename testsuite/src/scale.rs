//! `edgec-testsuite scale`: compiles the generated ~100M-parameter decoder (external
//! data, scripts/gen_decoder.py --preset scale) for cortex-a53 with the `edgec` binary
//! and checks the wall time and the compiler's peak resident memory against bounds:
//! the weights must be streamed into the blob, not held several times
//! (docs/performance.md).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the generated model lives (made when missing).
    #[arg(long, default_value_os_t = crate::generated::default_dir())]
    generated: PathBuf,
    /// Python with onnx, numpy and onnxruntime for the generator.
    #[arg(long, default_value_os_t = crate::generated::default_python())]
    python: PathBuf,
    /// The edgec binary (default: beside this one).
    #[arg(long)]
    edgec: Option<PathBuf>,
    #[arg(long, default_value = "cortex-a53")]
    target: String,
    /// Bound on the compile's wall time, seconds.
    #[arg(long, default_value_t = 60.0)]
    max_seconds: f64,
    /// Bound on peak resident memory / weight bytes.
    #[arg(long, default_value_t = 1.5)]
    max_memory_ratio: f64,
}

/// Runs the scale test; `Ok(false)` when a bound is exceeded.
pub fn run(args: &Args) -> anyhow::Result<bool> {
    let dir = crate::generated::scale(&args.generated, &args.python)?;
    let edgec = match &args.edgec {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("edgec"),
    };
    let out = tempfile::tempdir()?;
    let started = Instant::now();
    let child = Command::new(&edgec)
        .arg("compile")
        .arg(dir.join("model.onnx"))
        .args(["--target", &args.target, "-o"])
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("running {}", edgec.display()))?;
    // wait4 rather than Child::wait: it gives the child's peak RSS (ru_maxrss, KiB).
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; status and usage are ours to write.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    if pid < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("edgec compile failed (wait status {status})");
    }
    let peak = usage.ru_maxrss as f64 * 1024.0;
    let blob = std::fs::metadata(out.path().join("model.weights")).context("model.weights")?.len() as f64;
    let data = std::fs::metadata(dir.join("model.onnx.data")).map(|m| m.len() as f64).unwrap_or(0.0);
    let ratio = peak / blob;
    println!("scale test: {} for {}", dir.join("model.onnx").display(), args.target);
    println!("  external data:  {:.1} MB ({} parameters)", data / 1e6, (data / 4.0) as u64);
    println!("  weight blob:    {:.1} MB", blob / 1e6);
    println!("  compile time:   {seconds:.1} s (bound {:.0} s; user {:.1} s, system {:.1} s)", args.max_seconds, tv(usage.ru_utime), tv(usage.ru_stime));
    println!("  peak RSS:       {:.1} MB = {ratio:.2} x weight bytes (bound {:.2} x)", peak / 1e6, args.max_memory_ratio);
    let ok = seconds <= args.max_seconds && ratio <= args.max_memory_ratio;
    println!("scale test {}", if ok { "passed" } else { "FAILED" });
    Ok(ok)
}

fn tv(t: libc::timeval) -> f64 {
    t.tv_sec as f64 + 1e-6 * t.tv_usec as f64
}

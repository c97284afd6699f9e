//! Deterministic instruction counts of one inference under QEMU: the performance
//! figure for targets we can only emulate (docs/benchmarks.md).
//!
//! A QEMU TCG plugin (targets/qemu-plugin/icount.c, built here with the host `cc`)
//! counts every guest instruction inline. The test driver calls two marker functions
//! right around `NAME_run` (emit/driver.rs); the plugin snapshots its counter at their
//! first instructions, so a span is one inference, whatever it calls. A second counter
//! covers only the model's own code (the address range of its object's functions).
//! The driver is linked without PIE so `nm` addresses are the run-time ones (a board's
//! firmware image is linked at fixed addresses anyway); runs get an empty environment
//! and, in user mode, a fixed argv; system-mode runs (the boards) add `-icount shift=0`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::driver::{run_batch_with, Instrument, Job, SetResult, MARK_BEGIN, MARK_END};
use super::toolchain::{RunConfig, ToolError, Toolchain};
use super::CodeKind;

pub const PLUGIN_SOURCE: &str = include_str!("../../../targets/qemu-plugin/icount.c");
pub const PLUGIN_HEADER: &str = include_str!("../../../targets/qemu-plugin/qemu-plugin.h");

/// Instructions of one inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    /// From the begin marker to the end marker: `NAME_run` and everything it calls,
    /// plus a constant handful of instructions for the calls themselves.
    pub inference: u64,
    /// Of those, the ones inside the model's own functions (`NAME_run`, its kernels,
    /// static helpers).
    pub model_code: u64,
}

fn io(e: std::io::Error) -> ToolError {
    ToolError::Failed(e.to_string())
}

/// Builds the plugin into `dir`; returns the shared library's path.
pub fn build_plugin(dir: &Path) -> Result<PathBuf, ToolError> {
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(dir.join("icount.c"), PLUGIN_SOURCE).map_err(io)?;
    std::fs::write(dir.join("qemu-plugin.h"), PLUGIN_HEADER).map_err(io)?;
    let so = dir.join("icount.so");
    let out = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-std=gnu99", "-Wall", "-Wextra", "-o"])
        .arg(&so)
        .arg(dir.join("icount.c"))
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ToolError::Missing("cc".into()),
            _ => io(e),
        })?;
    if !out.status.success() {
        return Err(ToolError::Failed(format!("building the QEMU plugin failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    Ok(so)
}

/// The toolchain's `nm`: `aarch64-linux-gnu-gcc` → `aarch64-linux-gnu-nm`, `cc` → `nm`.
fn nm_for(tc: &Toolchain) -> String {
    match tc.cc.strip_suffix("gcc") {
        Some(prefix) => format!("{prefix}nm"),
        None => "nm".into(),
    }
}

/// A defined code symbol of the linked binary.
struct Symbol {
    name: String,
    addr: u64,
    size: u64,
}

fn code_symbols(nm: &str, exe: &Path) -> Result<Vec<Symbol>, ToolError> {
    let out = Command::new(nm).args(["-S", "--defined-only"]).arg(exe).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ToolError::Missing(nm.into()),
        _ => io(e),
    })?;
    if !out.status.success() {
        return Err(ToolError::Failed(format!("{nm} failed: {}", String::from_utf8_lossy(&out.stderr))));
    }
    let mut syms = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (addr, size, kind, name) = match f[..] {
            [a, s, k, n] => (a, Some(s), k, n),
            [a, k, n] => (a, None, k, n),
            _ => continue,
        };
        if kind != "T" && kind != "t" {
            continue;
        }
        let hex = |s: &str| u64::from_str_radix(s, 16).ok();
        let (Some(addr), size) = (hex(addr), size.and_then(hex).unwrap_or(0)) else { continue };
        // Thumb function symbols carry the mode in bit 0; instructions are 2-aligned.
        syms.push(Symbol { name: name.to_string(), addr: addr & !1, size });
    }
    Ok(syms)
}

/// The names of the code symbols the model's own object defines: `NAME_run`, its
/// kernels and any static helpers (the C backend's `ec_*`). For C code the source is
/// compiled once more, alone, with the runner's flags, the same code the driver links.
fn model_symbols(tc: &Toolchain, nm: &str, dir: &Path, name: &str, extra: &[&str]) -> Result<Vec<String>, ToolError> {
    let object = match tc.code {
        CodeKind::Object => dir.join(format!("{name}.o")),
        CodeKind::C => {
            let alone = dir.join(format!("{name}.alone.o"));
            let out = Command::new(tc.cc)
                .args(tc.cflags)
                .args(extra)
                .arg("-c")
                .arg(dir.join(format!("{name}.c")))
                .arg("-o")
                .arg(&alone)
                .output()
                .map_err(|e| ToolError::Failed(format!("cannot run {}: {e}", tc.cc)))?;
            if !out.status.success() {
                return Err(ToolError::Failed(format!("{} failed: {}", tc.cc, String::from_utf8_lossy(&out.stderr))));
            }
            alone
        }
    };
    Ok(code_symbols(nm, &object)?.into_iter().map(|s| s.name).collect())
}

/// The plugin's arguments for the linked driver `exe` running model `name`. With
/// `profile`, also a ranges file of every code symbol of the model (sorted by
/// address), whose names are stored into `profile` in the file's order.
fn plugin_config(
    tc: &Toolchain,
    plugin: &Path,
    name: &str,
    exe: &Path,
    out: &Path,
    profile: Option<&std::cell::RefCell<Vec<String>>>,
) -> Result<RunConfig, ToolError> {
    let nm = nm_for(tc);
    let syms = code_symbols(&nm, exe)?;
    let find = |n: &str| {
        syms.iter().find(|s| s.name == n).map(|s| s.addr).ok_or_else(|| ToolError::Failed(format!("no symbol {n} in {}", exe.display())))
    };
    let (begin, end) = (find(MARK_BEGIN)?, find(MARK_END)?);
    let extra: &[&str] = if profile.is_some() { NO_INLINE_KERNELS } else { &[] };
    let own = model_symbols(tc, &nm, exe.parent().unwrap_or(Path::new(".")), name, extra)?;
    let model: Vec<&Symbol> = syms.iter().filter(|s| own.contains(&s.name)).collect();
    let lo = model.iter().map(|s| s.addr).min().ok_or_else(|| ToolError::Failed(format!("no code of {name} in {}", exe.display())))?;
    let hi = model.iter().map(|s| s.addr + s.size).max().unwrap_or(lo);
    // The linker keeps one object's code together: a wider span means a name matched
    // something else in the binary, and the range would count foreign code.
    let size: u64 = model.iter().map(|s| s.size).sum();
    if hi - lo > 2 * size + 4096 {
        return Err(ToolError::Failed(format!("{name}'s code is not contiguous in {} ({lo:#x}..{hi:#x} for {size} bytes)", exe.display())));
    }
    let ranges_file = out.with_extension("ranges");
    let (plugin, out) = (plugin.display().to_string(), out.display().to_string());
    if plugin.contains(',') || out.contains(',') {
        return Err(ToolError::Failed(format!("QEMU plugin paths cannot contain ',': {plugin}, {out}")));
    }
    let mut args = format!("{plugin},lo={lo:#x},hi={hi:#x},begin={begin:#x},end={end:#x},out={out}");
    if let Some(names) = profile {
        let mut own: Vec<&&Symbol> = model.iter().filter(|s| s.size > 0).collect();
        own.sort_by_key(|s| s.addr);
        let file = &ranges_file;
        let text: String = own.iter().map(|s| format!("{:x} {:x}\n", s.addr, s.addr + s.size)).collect();
        std::fs::write(file, text).map_err(io)?;
        *names.borrow_mut() = own.iter().map(|s| s.name.clone()).collect();
        args.push_str(&format!(",ranges={}", file.display()));
    }
    let mut emulator_args = vec!["-plugin".to_string(), args];
    if is_system_mode(tc) {
        // Without it, QEMU's virtual clock (timers, SysTick) follows the host's.
        emulator_args.extend(["-icount".into(), "shift=0".into()]);
    }
    Ok(RunConfig { emulator_args, deterministic: true })
}

/// Firmware images run under QEMU system mode.
fn is_system_mode(tc: &Toolchain) -> bool {
    tc.board.is_some()
}

/// Builds and runs `job` in `dir` under the plugin at `plugin` (from [`build_plugin`]):
/// each set's results and its instruction count.
pub fn count(tc: &Toolchain, job: &Job, dir: &Path, plugin: &Path) -> Result<(Vec<SetResult>, Vec<Count>), ToolError> {
    count_with(tc, job, dir, plugin, false).map(|(r, c, _)| (r, c))
}

/// Instructions per code symbol of the model (`NAME_run`, each kernel `NAME_kI`, each
/// helper), summed over the job's runs, in address order; with the results and spans
/// of [`count`]. C kernels are kept out of line for this (they are called once each,
/// which GCC would otherwise inline into `NAME_run`).
pub type Profile = Vec<(String, u64)>;

/// GCC inlines a static function called once (each C kernel) at -O1 and above.
const NO_INLINE_KERNELS: &[&str] = &["-O2", "-fno-inline-functions-called-once"];

pub fn profile(tc: &Toolchain, job: &Job, dir: &Path, plugin: &Path) -> Result<(Vec<SetResult>, Vec<Count>, Profile), ToolError> {
    let (r, c, p) = count_with(tc, job, dir, plugin, true)?;
    Ok((r, c, p.unwrap_or_default()))
}

fn count_with(tc: &Toolchain, job: &Job, dir: &Path, plugin: &Path, profile: bool) -> Result<(Vec<SetResult>, Vec<Count>, Option<Profile>), ToolError> {
    if !is_system_mode(tc) && !tc.run_prefix.first().is_some_and(|e| e.starts_with("qemu-")) {
        return Err(ToolError::Failed(format!("target '{}' runs natively; instruction counts need a QEMU target", tc.name)));
    }
    std::fs::create_dir_all(dir).map_err(io)?;
    let dir = dir.canonicalize().map_err(io)?;
    let out = dir.join("icount.txt");
    let _ = std::fs::remove_file(&out);
    let name = job.artifacts.name.clone();
    let names = std::cell::RefCell::new(Vec::new());
    let config = |exe: &Path| plugin_config(tc, plugin, &name, exe, &out, profile.then_some(&names));
    // Firmware images are not position independent anyway; Linux drivers are by default.
    let link_flags: &[&str] = match (is_system_mode(tc), profile) {
        (true, false) => &[],
        (true, true) => NO_INLINE_KERNELS,
        (false, false) => &["-no-pie"],
        (false, true) => &["-no-pie", "-O2", "-fno-inline-functions-called-once"],
    };
    let instrument = Instrument { link_flags, run_config: &config };
    let results = run_batch_with(tc, std::slice::from_ref(job), &dir, Some(&instrument))?.pop().unwrap_or_default();
    if let Some(why) = results.iter().find_map(|r| match r {
        SetResult::Error(why) => Some(why.clone()),
        _ => None,
    }) {
        return Err(ToolError::Failed(why));
    }
    let text = std::fs::read_to_string(&out).map_err(|e| ToolError::Failed(format!("the plugin wrote no counts ({}): {e}", out.display())))?;
    let counts: Vec<Count> = text
        .lines()
        .filter_map(|l| {
            let f: Vec<u64> = l.strip_prefix("span ")?.split_whitespace().filter_map(|n| n.parse().ok()).collect();
            match f[..] {
                [inference, model_code] => Some(Count { inference, model_code }),
                _ => None,
            }
        })
        .collect();
    if counts.len() != job.sets.len() {
        return Err(ToolError::Failed(format!("{} counted spans for {} runs: {}", counts.len(), job.sets.len(), text.trim())));
    }
    let per_symbol = profile.then(|| {
        let names = names.into_inner();
        let mut p: Profile = names.iter().map(|n| (n.clone(), 0)).collect();
        for l in text.lines() {
            let f: Vec<u64> = l.strip_prefix("range ").map(|r| r.split_whitespace().filter_map(|n| n.parse().ok()).collect()).unwrap_or_default();
            if let [k, n] = f[..] {
                if let Some(slot) = p.get_mut(k as usize) {
                    slot.1 = n;
                }
            }
        }
        p
    });
    Ok((results, counts, per_symbol))
}

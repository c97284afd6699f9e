//! `edgec compile --report FILE.html`: one self-contained page (inline SVG and CSS, no
//! script, nothing fetched) that shows the memory plan — every arena buffer as a box
//! spanning the kernels it lives across (x) at its offset in the arena (y) — and a
//! table of bytes per kernel. It is generated from the [`Timeline`] that compile keeps,
//! so the picture is the plan the code uses, not a re-derivation.

use std::fmt::Write;

use super::Report;
use crate::kir::{BufKind, Program};
use crate::plan::layout::{kernel_buffers, live_ranges, Layout, Place};

/// Where a buffer lives, for the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    Arena(usize),
    Weight(usize),
    Input(usize),
    Output(usize),
}

/// A buffer some kernel touches.
#[derive(Clone, Debug)]
pub struct TimelineBuffer {
    pub name: String,
    pub bytes: usize,
    pub region: Region,
    /// First and last kernel (inclusive) that touch it.
    pub first: usize,
    pub last: usize,
}

/// The schedule and the memory plan of a compilation.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub kernels: Vec<String>,
    pub buffers: Vec<TimelineBuffer>,
    /// Per kernel, the indices (into `buffers`) of what it reads or writes.
    pub uses: Vec<Vec<usize>>,
}

impl Timeline {
    pub fn new(program: &Program, layout: &Layout) -> Timeline {
        let live = live_ranges(program);
        let mut index = vec![usize::MAX; program.buffers.len()];
        let mut buffers = Vec::new();
        for (i, b) in program.buffers.iter().enumerate() {
            let Some((first, last)) = live[i] else { continue };
            let region = match layout.places[i] {
                Place::Arena(o) => Region::Arena(o),
                Place::Weight(o) => Region::Weight(o),
                Place::Input(k) => Region::Input(k),
                Place::Output(k) => Region::Output(k),
                Place::Unused => continue,
            };
            debug_assert!(!matches!((&b.kind, region), (BufKind::Temp, Region::Weight(_))));
            index[i] = buffers.len();
            buffers.push(TimelineBuffer { name: b.name.clone(), bytes: b.len() * b.dtype.size(), region, first, last });
        }
        let uses = program
            .kernels
            .iter()
            .map(|k| {
                let mut u: Vec<usize> = kernel_buffers(k).into_iter().map(|b| index[b.0 as usize]).filter(|&i| i != usize::MAX).collect();
                u.sort_unstable();
                u.dedup();
                u
            })
            .collect();
        Timeline { kernels: program.kernels.iter().map(|k| k.name.clone()).collect(), buffers, uses }
    }

    /// Bytes of each region a kernel touches, and the arena bytes live across it.
    fn per_kernel(&self) -> Vec<[usize; 4]> {
        let mut rows = vec![[0usize; 4]; self.kernels.len()];
        for b in &self.buffers {
            if matches!(b.region, Region::Arena(_)) {
                for row in &mut rows[b.first..=b.last] {
                    row[3] += b.bytes;
                }
            }
        }
        for (row, uses) in rows.iter_mut().zip(&self.uses) {
            for &i in uses {
                let b = &self.buffers[i];
                match b.region {
                    Region::Weight(_) => row[0] += b.bytes,
                    Region::Input(_) => row[1] += b.bytes,
                    Region::Output(_) => row[2] += b.bytes,
                    Region::Arena(_) => {}
                }
            }
        }
        rows
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A colour per buffer, stable across runs (hash of the name).
fn colour(name: &str) -> String {
    let h = name.bytes().fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
    format!("hsl({}, 60%, 62%)", h % 360)
}

/// The page.
pub fn render(title: &str, target: &str, t: &Timeline, r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>edgec: {t_}</title>\n\
<style>body{{font:14px system-ui,sans-serif;margin:1.5em;color:#222}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}td:first-child,th:first-child{{text-align:left}}\
.k{{font-family:monospace}}svg{{border:1px solid #999;background:#fafafa}}</style></head><body>\n\
<h1>{t_} — {tg}</h1>\n<p>{kn} kernels ({ob} ops before optimisation, {oa} after) · weights {w} bytes · \
arena <b>{a} bytes</b> (liveness lower bound {lb} bytes, {ratio:.3}×) · code {c} bytes ({ck})</p>\n",
        t_ = esc(title),
        tg = esc(target),
        kn = r.kernels,
        ob = r.ops_before,
        oa = r.ops_after,
        w = r.weights_bytes,
        a = r.arena_bytes,
        lb = r.arena_lower_bound,
        ratio = if r.arena_lower_bound == 0 { 1.0 } else { r.arena_bytes as f64 / r.arena_lower_bound as f64 },
        c = r.code_bytes,
        ck = r.code_kind,
    );
    arena_svg(&mut s, t, r);
    s.push_str("<h2>Bytes per kernel</h2>\n<p>Weights, inputs and outputs: what the kernel reads or writes of them; arena: every arena buffer live across the kernel (what must be resident).</p>\n");
    s.push_str("<table><tr><th>#</th><th>kernel</th><th>weights</th><th>inputs</th><th>outputs</th><th>arena live</th></tr>\n");
    for (i, (k, row)) in t.kernels.iter().zip(t.per_kernel()).enumerate() {
        let _ = writeln!(
            s,
            "<tr><td>{i}</td><td class=\"k\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(k),
            row[0],
            row[1],
            row[2],
            row[3]
        );
    }
    s.push_str("</table>\n<h2>Arena buffers</h2>\n<table><tr><th>buffer</th><th>offset</th><th>bytes</th><th>kernels</th></tr>\n");
    let mut arena: Vec<&TimelineBuffer> = t.buffers.iter().filter(|b| matches!(b.region, Region::Arena(_))).collect();
    arena.sort_by_key(|b| (b.first, b.last));
    for b in arena {
        let Region::Arena(o) = b.region else { continue };
        let _ = writeln!(s, "<tr><td class=\"k\">{}</td><td>{o}</td><td>{}</td><td>{}–{}</td></tr>", esc(&b.name), b.bytes, b.first, b.last);
    }
    s.push_str("</table>\n</body></html>\n");
    s
}

/// Kernels on x, arena offset on y (0 at the top); a box per arena buffer.
fn arena_svg(s: &mut String, t: &Timeline, r: &Report) {
    let (w, h, left, top) = (960.0f64, 420.0f64, 70.0f64, 10.0f64);
    let steps = t.kernels.len().max(1) as f64;
    let size = r.arena_bytes.max(1) as f64;
    let (sx, sy) = (w / steps, h / size);
    s.push_str("<h2>Arena over time</h2>\n<p>Each box is a buffer: from its first to its last kernel (x), at its offset in the arena (y). Hover for details.</p>\n");
    let _ = writeln!(s, "<svg width=\"{}\" height=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">", w + left + 10.0, h + top + 40.0);
    for b in &t.buffers {
        let Region::Arena(off) = b.region else { continue };
        let (x, y) = (left + b.first as f64 * sx, top + off as f64 * sy);
        let (bw, bh) = (((b.last - b.first + 1) as f64 * sx).max(1.0), (b.bytes as f64 * sy).max(1.0));
        let _ = writeln!(
            s,
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"{}\" stroke=\"#333\" stroke-width=\"0.5\"><title>{} — {} bytes at offset {off}, kernels {}–{}</title></rect>",
            colour(&b.name),
            esc(&b.name),
            b.bytes,
            b.first,
            b.last
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{}\" stroke=\"#000\"/><line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#000\"/>",
        top + h,
        top + h,
        left + w,
        top + h
    );
    let _ = writeln!(s, "<text x=\"2\" y=\"{}\" font-size=\"11\">0</text><text x=\"2\" y=\"{}\" font-size=\"11\">{} B</text>", top + 10.0, top + h, r.arena_bytes);
    let _ = writeln!(
        s,
        "<text x=\"{left}\" y=\"{}\" font-size=\"11\">kernel 0</text><text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"end\">kernel {}</text></svg>",
        top + h + 16.0,
        left + w,
        top + h + 16.0,
        t.kernels.len().saturating_sub(1)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_shows_every_arena_buffer_and_kernel() {
        let t = Timeline {
            kernels: vec!["MatMul_0".into(), "Relu<1>".into()],
            buffers: vec![
                TimelineBuffer { name: "h".into(), bytes: 64, region: Region::Arena(0), first: 0, last: 1 },
                TimelineBuffer { name: "w".into(), bytes: 32, region: Region::Weight(32), first: 0, last: 0 },
                TimelineBuffer { name: "y".into(), bytes: 16, region: Region::Output(0), first: 1, last: 1 },
            ],
            uses: vec![vec![0, 1], vec![0, 2]],
        };
        let r = Report {
            ops_before: 2,
            ops_after: 2,
            kernels: 2,
            weights_bytes: 80,
            arena_bytes: 64,
            arena_lower_bound: 64,
            code_kind: "obj",
            code_bytes: 100,
            model_hash: 1,
            footprint: None,
        };
        let page = render("m", "host", &t, &r);
        assert_eq!(page.matches("<rect").count(), 1);
        assert!(page.contains("Relu&lt;1&gt;"));
        assert!(page.contains("<tr><td>0</td><td class=\"k\">MatMul_0</td><td>32</td><td>0</td><td>0</td><td>64</td></tr>"));
        assert!(page.contains("<tr><td>1</td><td class=\"k\">Relu&lt;1&gt;</td><td>0</td><td>0</td><td>16</td><td>64</td></tr>"));
    }
}

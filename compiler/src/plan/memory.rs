//! Offset assignment in one arena for buffers with known lifetimes.
//!
//! Greedy by size with best-fit gaps (the strategy of TFLite Micro's and TVM's static
//! planners): buffers are placed largest first, each at the lowest offset where it
//! overlaps no already-placed buffer that is live at the same time. The lower bound —
//! the largest sum of simultaneously live bytes at any step — is reported beside the
//! arena size so the gap is visible.

/// A buffer to place: `size` bytes, aligned to `align`, live from step `first` to step
/// `last` inclusive (steps are positions in the schedule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    pub size: usize,
    pub align: usize,
    pub first: usize,
    pub last: usize,
}

impl Buffer {
    fn overlaps_in_time(&self, other: &Buffer) -> bool {
        self.first <= other.last && other.first <= self.last
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Offset of each buffer, in the order given.
    pub offsets: Vec<usize>,
    /// Bytes the arena needs.
    pub arena_size: usize,
    /// The largest sum of sizes of buffers live at one step: no plan can do better.
    pub lower_bound: usize,
}

fn align_up(x: usize, a: usize) -> usize {
    let a = a.max(1);
    x.div_ceil(a) * a
}

/// The largest total size of buffers live at the same step.
pub fn lower_bound(buffers: &[Buffer]) -> usize {
    // Sweep over lifetime boundaries: +size at `first`, -size after `last`.
    let mut events: Vec<(usize, i64)> = Vec::with_capacity(buffers.len() * 2);
    for b in buffers {
        events.push((b.first * 2, b.size as i64));
        events.push((b.last * 2 + 1, -(b.size as i64)));
    }
    events.sort();
    let (mut live, mut peak) = (0i64, 0i64);
    for (_, d) in events {
        live += d;
        peak = peak.max(live);
    }
    peak as usize
}

pub fn plan(buffers: &[Buffer]) -> Plan {
    let mut order: Vec<usize> = (0..buffers.len()).collect();
    // Largest first; ties by earlier start, then index, so plans are reproducible.
    order.sort_by(|&a, &b| {
        buffers[b].size.cmp(&buffers[a].size).then(buffers[a].first.cmp(&buffers[b].first)).then(a.cmp(&b))
    });
    let mut offsets = vec![0usize; buffers.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(buffers.len());
    let mut arena_size = 0;
    for &i in &order {
        let b = &buffers[i];
        // Occupied intervals of time-overlapping buffers, sorted by offset.
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| buffers[j].overlaps_in_time(b) && buffers[j].size > 0)
            .map(|&j| (offsets[j], offsets[j] + buffers[j].size))
            .collect();
        busy.sort();
        // Best fit: the smallest gap that holds the buffer; else after the last one.
        let mut best: Option<(usize, usize)> = None; // (gap size, offset)
        let mut cursor = 0usize;
        for &(start, end) in &busy {
            let at = align_up(cursor, b.align);
            if at + b.size <= start {
                let gap = start - cursor;
                if best.is_none_or(|(g, _)| gap < g) {
                    best = Some((gap, at));
                }
            }
            cursor = cursor.max(end);
        }
        let offset = best.map(|(_, at)| at).unwrap_or_else(|| align_up(cursor, b.align));
        offsets[i] = offset;
        arena_size = arena_size.max(offset + b.size);
        placed.push(i);
    }
    Plan { offsets, arena_size, lower_bound: lower_bound(buffers) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(size: usize, first: usize, last: usize) -> Buffer {
        Buffer { size, align: 16, first, last }
    }

    /// No two buffers live at the same time may overlap in memory.
    fn check_disjoint(buffers: &[Buffer], p: &Plan) {
        for i in 0..buffers.len() {
            for j in i + 1..buffers.len() {
                if buffers[i].overlaps_in_time(&buffers[j]) && buffers[i].size > 0 && buffers[j].size > 0 {
                    let (a, b) = (p.offsets[i], p.offsets[j]);
                    assert!(a + buffers[i].size <= b || b + buffers[j].size <= a, "{i} and {j} overlap");
                }
            }
        }
        for (k, b) in buffers.iter().enumerate() {
            assert_eq!(p.offsets[k] % b.align, 0);
            assert!(p.offsets[k] + b.size <= p.arena_size);
        }
    }

    #[test]
    fn chain_reuses_memory() {
        // a -> b -> c -> d, each live for two steps: two buffers suffice.
        let bs = [buf(64, 0, 1), buf(64, 1, 2), buf(64, 2, 3), buf(64, 3, 4)];
        let p = plan(&bs);
        check_disjoint(&bs, &p);
        assert_eq!(p.lower_bound, 128);
        assert_eq!(p.arena_size, 128);
    }

    #[test]
    fn fills_gaps_best_fit() {
        let bs = [buf(256, 0, 10), buf(128, 0, 2), buf(64, 3, 10), buf(64, 3, 10), buf(32, 0, 10)];
        let p = plan(&bs);
        check_disjoint(&bs, &p);
        assert_eq!(p.arena_size, p.lower_bound);
    }

    #[test]
    fn pseudo_random_plans_are_valid_and_tight() {
        let mut seed = 12345u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..50 {
            let bs: Vec<Buffer> = (0..40)
                .map(|_| {
                    let first = (next() % 30) as usize;
                    let len = (next() % 6) as usize;
                    buf(16 * (1 + (next() % 64) as usize), first, first + len)
                })
                .collect();
            let p = plan(&bs);
            check_disjoint(&bs, &p);
            assert!(p.arena_size >= p.lower_bound);
            assert!((p.arena_size as f64) <= 1.5 * p.lower_bound as f64, "{} vs {}", p.arena_size, p.lower_bound);
        }
    }
}

//! Sets of record ids as sorted, disjoint, inclusive ranges: the done ids above the watermark
//! (acknowledged out of order, dropped, or found lost on open), persisted in the watermark file.

/// Sorted, disjoint, non-adjacent inclusive ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct IdRanges(Vec<(u64, u64)>);

impl IdRanges {
    /// From arbitrary ranges (`first <= last` each; others are ignored).
    pub fn from_ranges(ranges: impl IntoIterator<Item = (u64, u64)>) -> Self {
        let mut v: Vec<(u64, u64)> = ranges.into_iter().filter(|(a, b)| a <= b).collect();
        v.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(v.len());
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        Self(out)
    }

    /// The ranges, ascending.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.0
    }

    /// Adds `first..=last`.
    pub fn insert(&mut self, first: u64, last: u64) {
        let merged = Self::from_ranges(self.0.iter().copied().chain([(first, last)]));
        *self = merged;
    }

    /// Whether `id` is in the set.
    pub fn contains(&self, id: u64) -> bool {
        let i = self.0.partition_point(|r| r.1 < id);
        self.0.get(i).is_some_and(|r| r.0 <= id)
    }

    /// How many ids of `first..=last` are in the set.
    pub fn count_in(&self, first: u64, last: u64) -> u64 {
        self.0
            .iter()
            .map(|&(a, b)| {
                let (lo, hi) = (a.max(first), b.min(last));
                if lo <= hi {
                    hi - lo + 1
                } else {
                    0
                }
            })
            .sum()
    }

    /// Drops ids below `id`.
    pub fn retain_from(&mut self, id: u64) {
        self.0.retain(|r| r.1 >= id);
        if let Some(first) = self.0.first_mut() {
            first.0 = first.0.max(id);
        }
    }

    /// Highest id in the set.
    pub fn last(&self) -> Option<u64> {
        self.0.last().map(|r| r.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_counts_and_prunes() {
        let mut r = IdRanges::from_ranges([(5, 6), (1, 2), (3, 3), (9, 9), (8, 7)]);
        assert_eq!(r.ranges(), &[(1, 3), (5, 6), (9, 9)]);
        assert!(r.contains(5) && r.contains(9) && !r.contains(4) && !r.contains(10));
        assert_eq!(r.count_in(3, 9), 4);
        r.insert(4, 8);
        assert_eq!(r.ranges(), &[(1, 9)]);
        r.retain_from(4);
        assert_eq!(r.ranges(), &[(4, 9)]);
        assert_eq!(r.last(), Some(9));
    }
}

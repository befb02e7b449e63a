//! A latency histogram that merges: log-linear buckets (16 per power of
//! two, so a quantile is within about 3 % of the true value), kept sparse,
//! so p50, p90 and p99 come out of any range of minutes, keys or tenants.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Values below this are their own bucket.
const LINEAR: u64 = 16;
/// Sub-buckets per power of two, as bits.
const SUB_BITS: u32 = 4;

/// Counts of values (microseconds) per bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Histogram(BTreeMap<u16, u64>);

impl Histogram {
    pub fn record(&mut self, value: u64) {
        self.add(bucket(value), 1);
    }

    fn add(&mut self, bucket: u16, n: u64) {
        *self.0.entry(bucket).or_default() += n;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (&b, &n) in &other.0 {
            self.add(b, n);
        }
    }

    pub fn count(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at quantile `q` (0 < q <= 1): the middle of the bucket
    /// holding the `ceil(q * n)`-th smallest value; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (&b, &c) in &self.0 {
            seen += c;
            if seen >= rank {
                return Some(middle(b));
            }
        }
        self.0.keys().next_back().map(|&b| middle(b))
    }
}

/// The bucket of a value.
fn bucket(v: u64) -> u16 {
    if v < LINEAR {
        return v as u16;
    }
    let exp = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = (v >> (exp - SUB_BITS)) & (LINEAR - 1);
    ((exp - SUB_BITS + 1) as u64 * LINEAR + sub) as u16
}

/// The smallest value of a bucket and its width.
fn bounds(b: u16) -> (u64, u64) {
    let b = u64::from(b);
    if b < LINEAR {
        return (b, 1);
    }
    let exp = (b / LINEAR) as u32 + SUB_BITS - 1;
    let sub = b % LINEAR;
    let shift = exp - SUB_BITS;
    ((LINEAR + sub) << shift, 1 << shift)
}

fn middle(b: u16) -> u64 {
    let (low, width) = bounds(b);
    low + width / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_hold_their_values() {
        let mut last = None;
        for v in (0..100_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let b = bucket(v);
            let (low, width) = bounds(b);
            assert!(low <= v && v - low < width, "{v} in bucket {b} = {low}+{width}");
            if let Some(prev) = last
                && v < 100_000
            {
                assert!(b == prev || b == prev + 1, "gap at {v}");
            }
            last = Some(b);
        }
    }

    #[test]
    fn quantiles_are_within_the_bucket_error() {
        let mut h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        for (q, exact) in [(0.5, 5_000.0), (0.9, 9_000.0), (0.99, 9_900.0)] {
            let got = h.quantile(q).unwrap() as f64;
            assert!((got - exact).abs() / exact < 0.035, "q{q}: {got} vs {exact}");
        }
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn merging_is_the_same_as_recording_together() {
        let (mut a, mut b, mut both) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for v in [3u64, 70, 900, 12_345] {
            a.record(v);
            both.record(v);
        }
        for v in [5u64, 70, 40_000] {
            b.record(v);
            both.record(v);
        }
        a.merge(&b);
        assert_eq!(a, both);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Histogram>(&json).unwrap(), both);
    }
}

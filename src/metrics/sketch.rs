//! A small log-bucketed quantile sketch for the per-second time series,
//! where one full HDR histogram per second would cost far more than a chart
//! needs.
//!
//! Values are counted in buckets whose bounds grow by a factor
//! `γ = (1 + α)/(1 − α)` with `α` = 1 %: any quantile is answered within 1 %
//! of a value that was recorded (the DDSketch construction). Only buckets
//! that hold values are stored, sorted, as `(index, count)`: the values of one
//! second cluster, so a second costs a few dozen bytes to a few hundred.

/// Relative accuracy of a quantile.
const ALPHA: f64 = 0.01;

/// A mergeable quantile sketch of microsecond values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    /// `(bucket index, count)`, sorted by index; value 0 is bucket 0.
    buckets: Vec<(u16, u32)>,
    count: u64,
    min: u64,
    max: u64,
}

fn gamma_ln() -> f64 {
    ((1.0 + ALPHA) / (1.0 - ALPHA)).ln()
}

/// The bucket of `value`: 0 for 0, else `1 + ⌈ln v / ln γ⌉` (at most ~2,200
/// for `u64::MAX`, so a `u16` holds it).
fn index_of(value: u64) -> u16 {
    if value == 0 {
        return 0;
    }
    let i = ((value as f64).ln() / gamma_ln()).ceil();
    // ln(u64::MAX)/ln γ < 2,300: the cast never truncates.
    1 + i.max(0.0) as u16
}

/// The value a bucket stands for: the point within `α` of both its bounds.
fn value_of(index: u16) -> u64 {
    if index == 0 {
        return 0;
    }
    let g = gamma_ln();
    let upper = (f64::from(index - 1) * g).exp();
    let gamma = g.exp();
    (2.0 * upper / (gamma + 1.0)).round() as u64
}

impl Sketch {
    pub fn record(&mut self, value: u64) {
        let index = index_of(value);
        match self.buckets.binary_search_by_key(&index, |&(i, _)| i) {
            Ok(at) => self.buckets[at].1 = self.buckets[at].1.saturating_add(1),
            Err(at) => self.buckets.insert(at, (index, 1)),
        }
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += 1;
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The value at quantile `q` (0 to 1), within 1 % (exact at 0 and 1);
    /// `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        if self.count == 0 {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        if q <= 0.0 {
            return Some(self.min);
        }
        if q >= 1.0 {
            return Some(self.max);
        }
        // The rank of the wanted value, from 1 (nearest-rank definition).
        let rank = ((q * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for &(index, count) in &self.buckets {
            seen += u64::from(count);
            if seen >= rank {
                return Some(value_of(index).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        let mut merged = Vec::with_capacity(self.buckets.len() + other.buckets.len());
        let (mut a, mut b) = (self.buckets.iter().peekable(), other.buckets.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&(ia, ca)), Some(&&(ib, cb))) => {
                    if ia == ib {
                        a.next();
                        b.next();
                        (ia, ca.saturating_add(cb))
                    } else if ia < ib {
                        a.next();
                        (ia, ca)
                    } else {
                        b.next();
                        (ib, cb)
                    }
                }
                (Some(&&x), None) => {
                    a.next();
                    x
                }
                (None, Some(&&x)) => {
                    b.next();
                    x
                }
                (None, None) => break,
            };
            merged.push(next);
        }
        self.buckets = merged;
        if self.count == 0 {
            self.min = other.min;
            self.max = other.max;
        } else {
            self.min = self.min.min(other.min);
            self.max = self.max.max(other.max);
        }
        self.count += other.count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn within(got: u64, want: u64) -> bool {
        (got as f64 - want as f64).abs() <= want as f64 * ALPHA + 1.0
    }

    #[test]
    fn quantiles_are_within_one_percent() {
        let mut s = Sketch::default();
        for v in 1..=10_000u64 {
            s.record(v * 100);
        }
        assert_eq!(s.len(), 10_000);
        for (q, want) in [(0.5, 500_000), (0.9, 900_000), (0.99, 990_000), (0.999, 999_000)] {
            let got = s.quantile(q).unwrap();
            assert!(within(got, want), "q{q}: {got} vs {want}");
        }
        assert_eq!(s.quantile(0.0), Some(100));
        assert_eq!(s.quantile(1.0), Some(1_000_000));
    }

    #[test]
    fn empty_zero_and_huge_values() {
        let mut s = Sketch::default();
        assert_eq!(s.quantile(0.5), None);
        s.record(0);
        assert_eq!(s.quantile(0.5), Some(0));
        s.record(u64::MAX);
        assert_eq!(s.quantile(1.0), Some(u64::MAX));
        assert!(index_of(u64::MAX) < u16::MAX);
    }

    #[test]
    fn merging_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (Sketch::default(), Sketch::default(), Sketch::default());
        for v in 0..500u64 {
            let value = v * v * 7 + 3;
            if v % 3 == 0 { &mut a } else { &mut b }.record(value);
            all.record(value);
        }
        a.merge(&b);
        assert_eq!(a, all);
        let mut empty = Sketch::default();
        empty.merge(&all);
        assert_eq!(empty, all);
    }
}

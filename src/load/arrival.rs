//! Open-loop arrival schedules: when each request of a phase is meant to be
//! sent, as offsets from the phase start.
//!
//! A [`Schedule`] holds *intended* send times. It is fixed by the arrival
//! process, the seed and the phase duration, never by how the target
//! responds: the generator waits for each offset and measures latency from
//! it, so a slow target cannot slow the arrivals down (no coordinated
//! omission). The same seed gives the same schedule, and [`shard`] splits a
//! schedule across machines without coordination.
//!
//! Every schedule yields offsets that never decrease and lie in
//! `[0, duration)`; a zero duration yields nothing, a burst included.

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, Exp, Exp1, Gamma};

/// The highest rate accepted, per second: 10 million, far past what one
/// load generator sends (the scenario format's range of a rate).
pub const MAX_RATE: f64 = 1e7;

/// The largest burst accepted: a million requests at once.
pub const MAX_BURST: u64 = 1_000_000;

/// The highest gamma burstiness accepted. Past it nearly every gap is zero
/// and a phase degenerates into one enormous burst at its start.
pub const MAX_BURSTINESS: f64 = 100.0;

/// Why an [`Arrival`]'s parameters are unusable; each message names the
/// field and the value given.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ArrivalError {
    /// A constant, Poisson or gamma rate not above 0, or above [`MAX_RATE`].
    #[error("{field} must be above 0 and at most {max} per second, got {rate}", max = MAX_RATE)]
    Rate { field: &'static str, rate: f64 },
    /// A ramp's end below 0 or above [`MAX_RATE`].
    #[error("{field} must be at least 0 and at most {max} per second, got {rate}", max = MAX_RATE)]
    RampRate { field: &'static str, rate: f64 },
    /// A gamma burstiness not above 0, or above [`MAX_BURSTINESS`].
    #[error("burstiness must be above 0 and at most {max}, got {burstiness}", max = MAX_BURSTINESS)]
    Burstiness { burstiness: f64 },
    /// A ramp from 0 to 0.
    #[error("from and to must not both be 0")]
    EmptyRamp,
    /// A burst of no requests, or more than [`MAX_BURST`].
    #[error("count must be at least 1 and at most {max}, got {count}", max = MAX_BURST)]
    BurstCount { count: u64 },
}

/// How requests arrive during a phase (open loop: regardless of responses).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// Evenly spaced: one every `1/rate` s, the first at offset 0.
    Constant {
        /// Arrivals per second.
        rate: f64,
    },
    /// A Poisson process: exponential inter-arrival gaps with mean `1/rate`.
    Poisson {
        /// Arrivals per second.
        rate: f64,
    },
    /// A gamma renewal process: gaps with mean `1/rate` and coefficient of
    /// variation `burstiness` (1 is Poisson, above 1 burstier, below 1
    /// smoother). Shape `k = 1/burstiness²`, scale `θ = 1/(rate·k)`.
    Gamma {
        /// Arrivals per second.
        rate: f64,
        /// Standard deviation of the gaps over their mean.
        burstiness: f64,
    },
    /// A rate moving linearly from `from` to `to` over the phase duration.
    ///
    /// Deterministic by default: arrival `i` is at the time `t` where the
    /// cumulative rate `Λ(t) = from·t + (to − from)·t²/(2T)` reaches `i`
    /// (the inverse of the rate integral), so a flat ramp is exactly
    /// [`Arrival::Constant`]. With `poisson`, a non-homogeneous Poisson
    /// process: the arrivals of a unit-rate Poisson process mapped through
    /// `Λ⁻¹`.
    Ramp {
        /// Arrivals per second at the start of the phase.
        from: f64,
        /// Arrivals per second at the end of the phase.
        to: f64,
        /// Random (Poisson) rather than evenly spaced arrivals.
        poisson: bool,
    },
    /// `count` requests all at offset 0.
    Burst {
        /// How many requests.
        count: u64,
    },
}

impl Arrival {
    /// Checks the parameters: rates finite and above 0 (a ramp's ends may be
    /// 0 but not both), at most [`MAX_RATE`]; burstiness above 0 and at most
    /// [`MAX_BURSTINESS`]; a burst of 1 to [`MAX_BURST`] requests. The error
    /// names the field.
    pub fn validate(&self) -> Result<(), ArrivalError> {
        match *self {
            Arrival::Constant { rate } | Arrival::Poisson { rate } => positive_rate("rate", rate),
            Arrival::Gamma { rate, burstiness } => {
                positive_rate("rate", rate)?;
                if !(burstiness > 0.0 && burstiness <= MAX_BURSTINESS) {
                    return Err(ArrivalError::Burstiness { burstiness });
                }
                Ok(())
            }
            Arrival::Ramp { from, to, .. } => {
                ramp_rate("from", from)?;
                ramp_rate("to", to)?;
                if from == 0.0 && to == 0.0 {
                    return Err(ArrivalError::EmptyRamp);
                }
                Ok(())
            }
            Arrival::Burst { count } => {
                if !(1..=MAX_BURST).contains(&count) {
                    return Err(ArrivalError::BurstCount { count });
                }
                Ok(())
            }
        }
    }

    /// The intended send offsets of a phase of `duration`, at most
    /// `max_requests` of them. Random kinds draw from `seed`; the others
    /// ignore it. An arrival that fails [`Arrival::validate`] yields an
    /// empty schedule.
    pub fn schedule(&self, seed: u64, duration: Duration, max_requests: Option<u64>) -> Schedule {
        let horizon = duration.as_secs_f64();
        let process = match *self {
            _ if self.validate().is_err() || duration.is_zero() => None,
            Arrival::Constant { rate } => Some(Process::Constant { rate }),
            Arrival::Poisson { rate } => Exp::new(rate).ok().map(Process::Poisson),
            Arrival::Gamma { rate, burstiness } => {
                let shape = 1.0 / (burstiness * burstiness);
                Gamma::new(shape, 1.0 / (rate * shape)).ok().map(Process::Gamma)
            }
            Arrival::Ramp { from, to, poisson } => Some(Process::Ramp {
                from,
                curvature: (to - from) / (2.0 * horizon),
                total: (from + to) / 2.0 * horizon,
                poisson,
            }),
            Arrival::Burst { .. } => Some(Process::Burst),
        };
        let remaining = match (&process, *self) {
            (None, _) => 0,
            (Some(_), Arrival::Burst { count }) => max_requests.map_or(count, |max| max.min(count)),
            (Some(_), _) => max_requests.unwrap_or(u64::MAX),
        };
        Schedule {
            process: process.unwrap_or(Process::Burst),
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            duration,
            horizon,
            remaining,
            index: 0,
            clock: 0.0,
            last: Duration::ZERO,
        }
    }

    /// The expected number of arrivals in `duration` (the "requested" count
    /// that achieved throughput is compared with). For a gamma process this
    /// is the long-run `rate·duration`; a renewal process started at 0 runs
    /// about `(burstiness² − 1)/2` arrivals over it.
    pub fn expected(&self, duration: Duration) -> f64 {
        let secs = duration.as_secs_f64();
        match *self {
            Arrival::Constant { rate } | Arrival::Poisson { rate } | Arrival::Gamma { rate, .. } => rate * secs,
            Arrival::Ramp { from, to, .. } => (from + to) / 2.0 * secs,
            Arrival::Burst { .. } if duration.is_zero() => 0.0,
            Arrival::Burst { count } => count as f64,
        }
    }
}

/// A finite rate above 0, at most [`MAX_RATE`].
fn positive_rate(field: &'static str, rate: f64) -> Result<(), ArrivalError> {
    if rate > 0.0 && rate <= MAX_RATE {
        Ok(())
    } else {
        Err(ArrivalError::Rate { field, rate })
    }
}

/// A finite rate of at least 0, at most [`MAX_RATE`].
fn ramp_rate(field: &'static str, rate: f64) -> Result<(), ArrivalError> {
    if (0.0..=MAX_RATE).contains(&rate) {
        Ok(())
    } else {
        Err(ArrivalError::RampRate { field, rate })
    }
}

/// The intended send offsets of one phase, in order: an iterator that draws
/// each arrival as it is asked for and never allocates.
#[derive(Debug, Clone)]
pub struct Schedule {
    process: Process,
    rng: Xoshiro256PlusPlus,
    duration: Duration,
    /// `duration` in seconds.
    horizon: f64,
    /// Arrivals still allowed (by `max_requests`, or a burst's count); 0
    /// once the schedule has ended.
    remaining: u64,
    /// Arrivals yielded so far.
    index: u64,
    /// Seconds since the start for the renewal processes; the unit-rate
    /// clock for a Poisson ramp.
    clock: f64,
    /// The last offset yielded, so rounding can never step backwards.
    last: Duration,
}

/// An [`Arrival`] prepared for drawing.
#[derive(Debug, Clone)]
enum Process {
    /// Arrival `i` at `i/rate`.
    Constant { rate: f64 },
    /// Exponential gaps.
    Poisson(Exp<f64>),
    /// Gamma gaps.
    Gamma(Gamma<f64>),
    /// Arrival where `Λ(t) = from·t + curvature·t²` reaches the target.
    Ramp {
        from: f64,
        curvature: f64,
        /// `Λ(duration)`: targets at or past it are out of the phase.
        total: f64,
        poisson: bool,
    },
    /// Everything at 0 (also the process of an empty schedule).
    Burst,
}

impl Schedule {
    /// The next arrival's offset in seconds, or `None` past the phase.
    fn draw(&mut self) -> Option<f64> {
        match &self.process {
            Process::Constant { rate } => Some(self.index as f64 / rate),
            Process::Poisson(gap) => {
                self.clock += gap.sample(&mut self.rng);
                Some(self.clock)
            }
            Process::Gamma(gap) => {
                self.clock += gap.sample(&mut self.rng);
                Some(self.clock)
            }
            &Process::Ramp {
                from,
                curvature,
                total,
                poisson,
            } => {
                let target = if poisson {
                    let gap: f64 = Exp1.sample(&mut self.rng);
                    self.clock += gap;
                    self.clock
                } else {
                    self.index as f64
                };
                // (A NaN target is caught by the horizon check in `next`.)
                if target >= total {
                    return None;
                }
                if target == 0.0 {
                    return Some(0.0);
                }
                // The positive root of curvature·t² + from·t − target = 0,
                // written without the cancellation of (−b + √…)/2a, so it
                // holds for a flat or falling ramp too.
                let discriminant = (from * from + 4.0 * curvature * target).max(0.0);
                Some(2.0 * target / (from + discriminant.sqrt()))
            }
            Process::Burst => Some(0.0),
        }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if self.remaining == 0 {
            return None;
        }
        let offset = self
            .draw()
            .filter(|secs| *secs < self.horizon)
            .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
            .filter(|offset| *offset < self.duration);
        let Some(offset) = offset else {
            self.remaining = 0;
            return None;
        };
        self.remaining -= 1;
        self.index += 1;
        self.last = self.last.max(offset);
        Some(self.last)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let upper = usize::try_from(self.remaining).ok();
        match self.process {
            Process::Burst => (upper.unwrap_or(usize::MAX), upper),
            _ => (0, upper),
        }
    }
}

impl std::iter::FusedIterator for Schedule {}

/// Shard `index` of `count`: every arrival of `schedule` whose position
/// `% count == index`. The shards of one schedule partition it, each arrival
/// in exactly one shard, and each shard keeps the intended offsets (a shard
/// at `1/count` of the rate, interleaved with the others). An `index` at or
/// past `count` (or a `count` of 0) yields nothing.
pub fn shard(schedule: Schedule, index: u32, count: u32) -> impl Iterator<Item = Duration> {
    let mut schedule = schedule;
    if index >= count {
        schedule.remaining = 0;
    }
    let (index, count) = (u64::from(index), u64::from(count));
    schedule
        .zip(0u64..)
        .filter_map(move |(offset, position)| (position % count == index).then_some(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn offsets(arrival: Arrival, seed: u64, duration: Duration) -> Vec<Duration> {
        arrival.schedule(seed, duration, None).collect()
    }

    fn count(arrival: Arrival, seed: u64, duration: Duration) -> f64 {
        arrival.schedule(seed, duration, None).count() as f64
    }

    /// Coefficient of variation of the gaps (the first measured from 0).
    fn gap_cv(offsets: &[Duration]) -> f64 {
        let gaps: Vec<f64> = std::iter::once(Duration::ZERO)
            .chain(offsets.iter().copied())
            .zip(offsets)
            .map(|(before, after)| (*after - before).as_secs_f64())
            .collect();
        let n = gaps.len() as f64;
        let mean = gaps.iter().sum::<f64>() / n;
        let variance = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0);
        variance.sqrt() / mean
    }

    #[test]
    fn constant_is_evenly_spaced_and_counts_within_one() {
        for (rate, secs) in [(100.0, 100.0), (3.0, 1.0), (2.5, 1.0), (7.0, 0.3), (0.5, 10.0)] {
            let arrival = Arrival::Constant { rate };
            let duration = Duration::from_secs_f64(secs);
            let got = count(arrival, 0, duration);
            let expected = arrival.expected(duration);
            assert!(
                (got - expected).abs() <= 1.0,
                "{rate}/s for {secs}s: {got} vs {expected}"
            );
        }
        let got = offsets(Arrival::Constant { rate: 4.0 }, 0, SECOND);
        let quarter = Duration::from_millis(250);
        assert_eq!(got, [Duration::ZERO, quarter, quarter * 2, quarter * 3]);
    }

    #[test]
    fn poisson_count_is_near_expected() {
        let arrival = Arrival::Poisson { rate: 100.0 };
        let duration = 100 * SECOND;
        let expected = arrival.expected(duration);
        assert_eq!(expected, 10_000.0);
        for seed in 1..=3 {
            let got = count(arrival, seed, duration);
            // Poisson: standard deviation √expected = 100; allow 4 of them.
            assert!((got - expected).abs() < 4.0 * expected.sqrt(), "seed {seed}: {got}");
        }
        let cv = gap_cv(&offsets(arrival, 7, duration));
        assert!((cv - 1.0).abs() < 0.05, "poisson gap cv {cv}");
    }

    #[test]
    fn gamma_count_and_gap_variation_match_burstiness() {
        let duration = 100 * SECOND;
        for burstiness in [1.0, 2.0, 0.5] {
            let arrival = Arrival::Gamma {
                rate: 100.0,
                burstiness,
            };
            let expected = arrival.expected(duration);
            let got = offsets(arrival, 11, duration);
            // A renewal count has standard deviation ≈ cv·√expected, and a
            // process started at 0 runs about (cv² − 1)/2 over.
            let bias = (burstiness * burstiness - 1.0) / 2.0;
            let sd = burstiness * expected.sqrt();
            let n = got.len() as f64;
            assert!(
                (n - expected - bias).abs() < 4.0 * sd,
                "burstiness {burstiness}: {n} vs {expected}"
            );
            let cv = gap_cv(&got);
            assert!(
                (cv / burstiness - 1.0).abs() < 0.1,
                "burstiness {burstiness}: gap cv {cv}"
            );
        }
    }

    #[test]
    fn ramp_fills_each_half_by_its_mean_rate() {
        let duration = 100 * SECOND;
        let half = duration / 2;
        for (from, to) in [(50.0, 150.0), (150.0, 50.0), (0.0, 200.0)] {
            let mid = (from + to) / 2.0;
            let first = (from + mid) / 2.0 * half.as_secs_f64();
            let second = (mid + to) / 2.0 * half.as_secs_f64();
            for poisson in [false, true] {
                let arrival = Arrival::Ramp { from, to, poisson };
                assert_eq!(arrival.expected(duration), first + second);
                let got = offsets(arrival, 5, duration);
                let early = got.iter().filter(|offset| **offset < half).count() as f64;
                let late = got.len() as f64 - early;
                // Deterministic spacing lands within one arrival of each
                // integral; Poisson within 4 standard deviations.
                let (tolerance_first, tolerance_second) = if poisson {
                    (4.0 * first.sqrt(), 4.0 * second.sqrt())
                } else {
                    (1.0, 1.0)
                };
                let case = format!("{from}→{to} poisson={poisson}: {early} + {late}");
                assert!((early - first).abs() <= tolerance_first, "{case}");
                assert!((late - second).abs() <= tolerance_second, "{case}");
            }
        }
    }

    #[test]
    fn flat_ramp_is_constant() {
        for (rate, secs) in [(7.0, 10.0), (100.0, 3.0), (0.3, 20.0)] {
            let duration = Duration::from_secs_f64(secs);
            let ramp = Arrival::Ramp {
                from: rate,
                to: rate,
                poisson: false,
            };
            let constant = Arrival::Constant { rate };
            assert_eq!(offsets(ramp, 0, duration), offsets(constant, 0, duration));
        }
    }

    #[test]
    fn burst_is_all_at_zero() {
        let burst = Arrival::Burst { count: 50 };
        let got = offsets(burst, 0, SECOND);
        assert_eq!(got, vec![Duration::ZERO; 50]);
        assert_eq!(burst.expected(SECOND), 50.0);
        assert_eq!(burst.schedule(0, SECOND, Some(20)).count(), 20);
        assert_eq!(burst.schedule(0, SECOND, None).size_hint(), (50, Some(50)));
        assert!(offsets(burst, 0, Duration::ZERO).is_empty());
        assert_eq!(burst.expected(Duration::ZERO), 0.0);
    }

    #[test]
    fn same_seed_same_schedule_different_seed_different() {
        let duration = 10 * SECOND;
        let random = [
            Arrival::Poisson { rate: 50.0 },
            Arrival::Gamma {
                rate: 50.0,
                burstiness: 2.0,
            },
            Arrival::Ramp {
                from: 10.0,
                to: 90.0,
                poisson: true,
            },
        ];
        for arrival in random {
            let first = offsets(arrival, 42, duration);
            assert!(!first.is_empty());
            assert_eq!(first, offsets(arrival, 42, duration), "{arrival:?}");
            assert_ne!(first, offsets(arrival, 43, duration), "{arrival:?}");
        }
        let fixed = [
            Arrival::Constant { rate: 50.0 },
            Arrival::Ramp {
                from: 10.0,
                to: 90.0,
                poisson: false,
            },
            Arrival::Burst { count: 3 },
        ];
        for arrival in fixed {
            assert_eq!(offsets(arrival, 1, duration), offsets(arrival, 2, duration));
        }
    }

    #[test]
    fn max_requests_bounds_every_kind() {
        let kinds = [
            Arrival::Constant { rate: 100.0 },
            Arrival::Poisson { rate: 100.0 },
            Arrival::Gamma {
                rate: 100.0,
                burstiness: 0.5,
            },
            Arrival::Ramp {
                from: 0.0,
                to: 100.0,
                poisson: false,
            },
            Arrival::Burst { count: 100 },
        ];
        for arrival in kinds {
            let bounded: Vec<_> = arrival.schedule(3, 10 * SECOND, Some(17)).collect();
            assert_eq!(bounded.len(), 17, "{arrival:?}");
            // The bound cuts the schedule short; it does not change it.
            let whole: Vec<_> = arrival.schedule(3, 10 * SECOND, None).take(17).collect();
            assert_eq!(bounded, whole, "{arrival:?}");
            assert_eq!(arrival.schedule(3, 10 * SECOND, Some(0)).count(), 0);
        }
        // A bound above the natural count changes nothing.
        let constant = Arrival::Constant { rate: 10.0 };
        assert_eq!(constant.schedule(0, SECOND, Some(1_000)).count(), 10);
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (Arrival::Constant { rate: 0.0 }, "rate"),
            (Arrival::Constant { rate: -1.0 }, "rate"),
            (Arrival::Poisson { rate: f64::NAN }, "rate"),
            (Arrival::Poisson { rate: f64::INFINITY }, "rate"),
            (Arrival::Poisson { rate: 2e9 }, "rate"),
            (
                Arrival::Gamma {
                    rate: 0.0,
                    burstiness: 1.0,
                },
                "rate",
            ),
            (
                Arrival::Gamma {
                    rate: 1.0,
                    burstiness: 0.0,
                },
                "burstiness",
            ),
            (
                Arrival::Gamma {
                    rate: 1.0,
                    burstiness: f64::NAN,
                },
                "burstiness",
            ),
            (
                Arrival::Ramp {
                    from: -1.0,
                    to: 1.0,
                    poisson: false,
                },
                "from",
            ),
            (
                Arrival::Ramp {
                    from: 1.0,
                    to: f64::INFINITY,
                    poisson: false,
                },
                "to",
            ),
            (
                Arrival::Ramp {
                    from: 0.0,
                    to: 0.0,
                    poisson: true,
                },
                "both",
            ),
            (Arrival::Burst { count: 0 }, "count"),
            (Arrival::Burst { count: u64::MAX }, "count"),
            (Arrival::Constant { rate: 2e7 }, "rate"),
        ];
        for (arrival, field) in cases {
            let Err(error) = arrival.validate() else {
                panic!("{arrival:?} should be invalid");
            };
            let message = error.to_string();
            assert!(message.contains(field), "{message}");
            // An invalid arrival schedules nothing rather than panicking.
            assert_eq!(arrival.schedule(0, SECOND, None).count(), 0, "{arrival:?}");
        }
        let valid = Arrival::Ramp {
            from: 0.0,
            to: 5.0,
            poisson: false,
        };
        assert_eq!(valid.validate(), Ok(()));
    }

    #[test]
    fn validation_messages_name_the_value() {
        let message = |arrival: Arrival| arrival.validate().map_err(|e| e.to_string()).err();
        assert_eq!(
            message(Arrival::Constant { rate: -1.5 }).as_deref(),
            Some("rate must be above 0 and at most 10000000 per second, got -1.5")
        );
        assert_eq!(
            message(Arrival::Ramp {
                from: 1.0,
                to: -2.0,
                poisson: false
            })
            .as_deref(),
            Some("to must be at least 0 and at most 10000000 per second, got -2")
        );
        assert_eq!(
            message(Arrival::Gamma {
                rate: 1.0,
                burstiness: 0.0
            })
            .as_deref(),
            Some("burstiness must be above 0 and at most 100, got 0")
        );
    }

    #[test]
    fn shard_out_of_range_is_empty() {
        let schedule = Arrival::Constant { rate: 10.0 }.schedule(0, SECOND, None);
        assert_eq!(shard(schedule.clone(), 2, 2).count(), 0);
        assert_eq!(shard(schedule.clone(), 0, 0).count(), 0);
        assert_eq!(shard(schedule, 0, 1).count(), 10);
    }

    fn valid_arrival() -> impl Strategy<Value = Arrival> {
        let rate = 0.01f64..5_000.0;
        prop_oneof![
            rate.clone().prop_map(|rate| Arrival::Constant { rate }),
            rate.clone().prop_map(|rate| Arrival::Poisson { rate }),
            (rate, 0.05f64..20.0).prop_map(|(rate, burstiness)| Arrival::Gamma { rate, burstiness }),
            (0.0f64..5_000.0, 0.0f64..5_000.0, any::<bool>())
                .prop_filter("a ramp needs a rate", |(from, to, _)| *from > 0.0 || *to > 0.0)
                .prop_map(|(from, to, poisson)| Arrival::Ramp { from, to, poisson }),
            (1u64..3_000).prop_map(|count| Arrival::Burst { count }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn offsets_are_sorted_and_within_the_phase(
            arrival in valid_arrival(),
            seed in any::<u64>(),
            nanos in 0u64..3_000_000_000,
            max in 0u64..2_000,
        ) {
            prop_assert_eq!(arrival.validate(), Ok(()));
            let duration = Duration::from_nanos(nanos);
            let got: Vec<_> = arrival.schedule(seed, duration, Some(max)).collect();
            prop_assert!(got.len() as u64 <= max);
            prop_assert!(got.windows(2).all(|pair| pair[0] <= pair[1]));
            prop_assert!(got.iter().all(|offset| *offset < duration));
        }

        #[test]
        fn shards_partition_the_schedule(
            arrival in valid_arrival(),
            seed in any::<u64>(),
            count in 1u32..8,
        ) {
            let schedule = arrival.schedule(seed, SECOND, Some(1_000));
            let whole: Vec<_> = schedule.clone().collect();
            let shards: Vec<Vec<_>> = (0..count)
                .map(|index| shard(schedule.clone(), index, count).collect())
                .collect();
            prop_assert_eq!(shards.iter().map(Vec::len).sum::<usize>(), whole.len());
            let n = count as usize;
            for (position, offset) in whole.iter().enumerate() {
                prop_assert_eq!(shards[position % n].get(position / n), Some(offset));
            }
        }
    }
}

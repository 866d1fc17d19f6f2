//! Seeded distributions for time to first token, inter-token gaps and output length.
//!
//! In a config file a distribution is either a bare number (a constant) or a
//! table naming its kind:
//!
//! ```toml
//! ttft-ms = 120                                        # constant
//! itl-ms = { dist = "uniform", min = 8, max = 12 }
//! output-tokens = { dist = "normal", mean = 200, stddev = 40 }
//! ttft-ms = { dist = "lognormal", p50 = 300, p99 = 1200 }
//! ```
//!
//! Every parameter must lie in the field's range (validation says which,
//! see [`crate::bounds`]); samples are clamped at zero, so a normal draw
//! never yields a negative delay, and the caller clamps them to the range.

use std::fmt;

use rand::RngExt;
use rand_distr::StandardNormal;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::bounds::{OutOfRange, Range};

/// The z-score of the 99th percentile of the standard normal distribution.
const Z_P99: f64 = 2.326_347_874_040_841;

/// A validated distribution of non-negative values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distribution {
    Constant(f64),
    Uniform {
        min: f64,
        max: f64,
    },
    Normal {
        mean: f64,
        stddev: f64,
    },
    /// Log-normal given by its median and 99th percentile (`mu = ln p50`,
    /// `sigma = (ln p99 - ln p50) / z99`).
    LogNormal {
        p50: f64,
        p99: f64,
    },
}

impl Distribution {
    /// Draws one value, never negative.
    pub fn sample<R: rand::Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let value = match *self {
            Distribution::Constant(v) => v,
            Distribution::Uniform { min, max } => {
                if max > min {
                    rng.random_range(min..=max)
                } else {
                    min
                }
            }
            Distribution::Normal { mean, stddev } => {
                let z: f64 = rng.sample(StandardNormal);
                mean + stddev * z
            }
            Distribution::LogNormal { p50, p99 } => {
                let sigma = (p99.ln() - p50.ln()) / Z_P99;
                let z: f64 = rng.sample(StandardNormal);
                (p50.ln() + sigma * z).exp()
            }
        };
        value.max(0.0)
    }

    /// The median of the distribution (used to describe it, never to sample).
    pub fn median(&self) -> f64 {
        match *self {
            Distribution::Constant(v) => v,
            Distribution::Uniform { min, max } => (min + max) / 2.0,
            Distribution::Normal { mean, .. } => mean.max(0.0),
            Distribution::LogNormal { p50, .. } => p50,
        }
    }
}

/// A distribution as written in a file, before validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RawDistribution {
    Constant(f64),
    Table(RawDistributionTable),
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawDistributionTable {
    pub dist: DistKind,
    pub value: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub mean: Option<f64>,
    pub stddev: Option<f64>,
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DistKind {
    Constant,
    Uniform,
    Normal,
    Lognormal,
}

/// Why a distribution's parameters are unusable; the message says what is
/// wrong without the path (the caller knows the field it came from).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DistributionError {
    #[error("missing `{field}`")]
    Missing { field: &'static str },
    /// A parameter outside the field's range; `field` is `value` for the
    /// bare-number form.
    #[error("`{field}` = {0}", .range)]
    OutOfRange { field: &'static str, range: OutOfRange },
    /// A parameter of another kind; `takes` lists this kind's, quoted.
    #[error("`{field}` does not apply to dist = \"{dist}\" (it takes {takes})")]
    DoesNotApply {
        field: &'static str,
        dist: &'static str,
        takes: String,
    },
    #[error("uniform needs min <= max, got min = {min}, max = {max}")]
    UniformOrder { min: f64, max: f64 },
    #[error("lognormal needs p50 > 0, got {p50}")]
    LognormalMedian { p50: f64 },
    #[error("lognormal needs p99 >= p50, got p50 = {p50}, p99 = {p99}")]
    LognormalOrder { p50: f64, p99: f64 },
}

impl DistributionError {
    /// The parameter whose value is out of range, when it is one written
    /// in a table (`p99` of `{ dist = "lognormal", … }`); `None` for a bare
    /// number and for the other errors.
    pub fn parameter(&self) -> Option<&'static str> {
        match self {
            DistributionError::OutOfRange { field, .. } if *field != "value" => Some(field),
            _ => None,
        }
    }
}

impl RawDistribution {
    /// Validates the raw form, every parameter in `range`; the error says
    /// what is wrong, without the path (the caller knows the field it came
    /// from).
    pub fn validate(&self, range: Range) -> Result<Distribution, DistributionError> {
        let in_range = |field: &'static str, value: Option<f64>| -> Result<f64, DistributionError> {
            let value = value.ok_or(DistributionError::Missing { field })?;
            range
                .check(value)
                .map_err(|range| DistributionError::OutOfRange { field, range })
        };
        let table = match self {
            RawDistribution::Constant(v) => return in_range("value", Some(*v)).map(Distribution::Constant),
            RawDistribution::Table(table) => table,
        };
        let allowed: &[&str] = match table.dist {
            DistKind::Constant => &["value"],
            DistKind::Uniform => &["min", "max"],
            DistKind::Normal => &["mean", "stddev"],
            DistKind::Lognormal => &["p50", "p99"],
        };
        let given = [
            ("value", table.value),
            ("min", table.min),
            ("max", table.max),
            ("mean", table.mean),
            ("stddev", table.stddev),
            ("p50", table.p50),
            ("p99", table.p99),
        ];
        if let Some((name, _)) = given.iter().find(|(name, v)| v.is_some() && !allowed.contains(name)) {
            return Err(DistributionError::DoesNotApply {
                field: name,
                dist: table.dist.name(),
                takes: allowed
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(" and "),
            });
        }
        match table.dist {
            DistKind::Constant => in_range("value", table.value).map(Distribution::Constant),
            DistKind::Uniform => {
                let min = in_range("min", table.min)?;
                let max = in_range("max", table.max)?;
                if max < min {
                    return Err(DistributionError::UniformOrder { min, max });
                }
                Ok(Distribution::Uniform { min, max })
            }
            DistKind::Normal => {
                let mean = in_range("mean", table.mean)?;
                let stddev = in_range("stddev", table.stddev)?;
                Ok(Distribution::Normal { mean, stddev })
            }
            DistKind::Lognormal => {
                let p50 = in_range("p50", table.p50)?;
                let p99 = in_range("p99", table.p99)?;
                if p50 <= 0.0 {
                    return Err(DistributionError::LognormalMedian { p50 });
                }
                if p99 < p50 {
                    return Err(DistributionError::LognormalOrder { p50, p99 });
                }
                Ok(Distribution::LogNormal { p50, p99 })
            }
        }
    }
}

impl DistKind {
    fn name(self) -> &'static str {
        match self {
            DistKind::Constant => "constant",
            DistKind::Uniform => "uniform",
            DistKind::Normal => "normal",
            DistKind::Lognormal => "lognormal",
        }
    }
}

impl From<Distribution> for RawDistribution {
    fn from(d: Distribution) -> Self {
        let empty = RawDistributionTable {
            dist: DistKind::Constant,
            value: None,
            min: None,
            max: None,
            mean: None,
            stddev: None,
            p50: None,
            p99: None,
        };
        match d {
            Distribution::Constant(v) => RawDistribution::Constant(v),
            Distribution::Uniform { min, max } => RawDistribution::Table(RawDistributionTable {
                dist: DistKind::Uniform,
                min: Some(min),
                max: Some(max),
                ..empty
            }),
            Distribution::Normal { mean, stddev } => RawDistribution::Table(RawDistributionTable {
                dist: DistKind::Normal,
                mean: Some(mean),
                stddev: Some(stddev),
                ..empty
            }),
            Distribution::LogNormal { p50, p99 } => RawDistribution::Table(RawDistributionTable {
                dist: DistKind::Lognormal,
                p50: Some(p50),
                p99: Some(p99),
                ..empty
            }),
        }
    }
}

/// A number or a table; written by hand so that errors inside the table keep
/// serde's own message instead of "did not match any variant".
impl<'de> Deserialize<'de> for RawDistribution {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RawVisitor;

        impl<'de> Visitor<'de> for RawVisitor {
            type Value = RawDistribution;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a table like { dist = \"uniform\", min = 1, max = 5 }")
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawDistribution::Constant(v as f64))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawDistribution::Constant(v as f64))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RawDistribution::Constant(v))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawDistributionTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawDistribution::Table)
            }
        }

        deserializer.deserialize_any(RawVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use crate::bounds::DELAY_MS;

    fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    }

    #[test]
    fn lognormal_hits_its_p50_and_p99() {
        let d = Distribution::LogNormal { p50: 100.0, p99: 400.0 };
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let samples: Vec<f64> = (0..200_000).map(|_| d.sample(&mut rng)).collect();
        let p50 = percentile(samples.clone(), 0.50);
        let p99 = percentile(samples, 0.99);
        assert!((p50 - 100.0).abs() < 2.0, "p50 = {p50}");
        assert!((p99 - 400.0).abs() < 20.0, "p99 = {p99}");
    }

    #[test]
    fn normal_is_clamped_at_zero() {
        let d = Distribution::Normal {
            mean: 1.0,
            stddev: 10.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!((0..10_000).all(|_| d.sample(&mut rng) >= 0.0));
    }

    #[test]
    fn uniform_stays_in_range() {
        let d = Distribution::Uniform { min: 3.0, max: 5.0 };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        assert!(
            (0..10_000)
                .map(|_| d.sample(&mut rng))
                .all(|v| (3.0..=5.0).contains(&v))
        );
    }

    #[test]
    fn validation_names_the_problem() {
        let raw: RawDistribution = toml::from_str::<toml::Table>("d = { dist = \"uniform\", min = 5, max = 1 }")
            .map(|t| t["d"].clone().try_into().unwrap())
            .unwrap();
        assert!(raw.validate(DELAY_MS).unwrap_err().to_string().contains("min <= max"));
        let raw = RawDistribution::Table(RawDistributionTable {
            dist: DistKind::Lognormal,
            value: Some(1.0),
            min: None,
            max: None,
            mean: None,
            stddev: None,
            p50: Some(1.0),
            p99: Some(2.0),
        });
        assert_eq!(
            raw.validate(DELAY_MS).unwrap_err().to_string(),
            "`value` does not apply to dist = \"lognormal\" (it takes `p50` and `p99`)"
        );
        for bad in [-1.0, 1e300, f64::NAN, f64::INFINITY] {
            let e = RawDistribution::Constant(bad).validate(DELAY_MS).unwrap_err();
            assert_eq!(e.parameter(), None, "{e}");
        }
        assert_eq!(
            RawDistribution::Constant(3_600_000.0).validate(DELAY_MS),
            Ok(Distribution::Constant(3_600_000.0))
        );
    }
}

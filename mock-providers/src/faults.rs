//! Faults: programmed failures, on a time window or by seeded probability,
//! that can be replaced while the mock runs.
//!
//! ```toml
//! [[providers.faults]]
//! kind = "status"          # status | hang | slow-first-byte | cut | malformed-chunk | reset
//! status = 429             # status: 429, 500, 502, 503, 529 (any 400..=599)
//! retry-after-ms = 1500    # status: sent as `retry-after` (whole seconds, rounded up) and `retry-after-ms`
//! after-tokens = 5         # status, cut, malformed-chunk, reset: act mid-stream after this many tokens
//! delay-ms = 2000          # hang: how long to hold (default 30000); slow-first-byte: the delay
//! from-ms = 1000           # active from this long after the fault list was installed ...
//! until-ms = 4000          # ... until this long after
//! probability = 0.25       # share of matching attempts it acts on (default 1), seeded
//! max-hits = 3             # stop after acting this many times
//! model = "gpt-4o-mini"    # only attempts for this model
//! key = "sk-upstream-1"    # only attempts with this upstream key
//! ```
//!
//! The first fault in the list that matches an attempt acts on it. The
//! times and counts have ranges (see [`crate::bounds`]): `retry-after-ms`
//! up to a day, `delay-ms` up to an hour, `from-ms` and `until-ms` up to a
//! week, `after-tokens` up to a million.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::bounds::{self, Count};

/// A fault as written in a file or sent to the control route.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RawFault {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub kind: FaultKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hits: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    Status,
    Hang,
    SlowFirstByte,
    Cut,
    MalformedChunk,
    Reset,
}

/// What a fault does to an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with an error status; with `after_tokens`, send that many tokens
    /// and then an error event in the stream.
    Status {
        status: u16,
        retry_after: Option<Duration>,
        after_tokens: Option<u32>,
    },
    /// Hold the request without answering, then drop the connection.
    Hang { duration: Duration },
    /// Delay the response headers.
    SlowFirstByte { delay: Duration },
    /// Send this many tokens, then end the body without finishing it.
    Cut { after_tokens: u32 },
    /// Send a chunk that is not valid JSON in place of the token after this many.
    MalformedChunk { after_tokens: u32 },
    /// Reset the TCP connection (RST), before the answer or after this many tokens.
    Reset { after_tokens: Option<u32> },
}

/// A validated fault with its hit counter.
#[derive(Debug)]
pub struct Fault {
    pub name: String,
    pub action: FaultAction,
    pub from: Duration,
    pub until: Option<Duration>,
    pub probability: f64,
    pub max_hits: Option<u64>,
    pub model: Option<String>,
    pub key: Option<String>,
    hits: AtomicU64,
    raw: RawFault,
}

impl Clone for Fault {
    /// The same fault with no hits yet.
    fn clone(&self) -> Self {
        Fault {
            name: self.name.clone(),
            action: self.action,
            from: self.from,
            until: self.until,
            probability: self.probability,
            max_hits: self.max_hits,
            model: self.model.clone(),
            key: self.key.clone(),
            hits: AtomicU64::new(0),
            raw: self.raw.clone(),
        }
    }
}

const DEFAULT_HANG: Duration = Duration::from_secs(30);

/// Why a fault is refused: the field, its value when that is the problem,
/// and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultError {
    pub field: &'static str,
    pub value: Option<String>,
    pub message: String,
}

impl From<(&'static str, String)> for FaultError {
    fn from((field, message): (&'static str, String)) -> Self {
        FaultError {
            field,
            value: None,
            message,
        }
    }
}

/// `value`, when given, in `range`.
fn in_range<T: Copy + TryInto<u64> + std::fmt::Display>(
    field: &'static str,
    range: Count,
    value: Option<T>,
) -> Result<Option<T>, FaultError> {
    value
        .map(|v| {
            range.check(v).map_err(|e| FaultError {
                field,
                value: Some(e.value),
                message: e.expected,
            })
        })
        .transpose()
}

impl RawFault {
    /// Validates one fault; `index` names it when it has no name.
    pub fn validate(&self, index: usize) -> Result<Fault, FaultError> {
        let only = |field: &'static str, given: bool, kinds: &str| -> Result<(), FaultError> {
            if given {
                Err(FaultError::from((
                    field,
                    format!(
                        "`{field}` does not apply to kind = \"{}\" (only to {kinds})",
                        self.kind.name()
                    ),
                )))
            } else {
                Ok(())
            }
        };
        only(
            "status",
            self.status.is_some() && self.kind != FaultKind::Status,
            "status",
        )?;
        only(
            "retry-after-ms",
            self.retry_after_ms.is_some() && self.kind != FaultKind::Status,
            "status",
        )?;
        only(
            "delay-ms",
            self.delay_ms.is_some() && !matches!(self.kind, FaultKind::Hang | FaultKind::SlowFirstByte),
            "hang and slow-first-byte",
        )?;
        only(
            "after-tokens",
            self.after_tokens.is_some() && matches!(self.kind, FaultKind::Hang | FaultKind::SlowFirstByte),
            "status, cut, malformed-chunk and reset",
        )?;
        let retry_after_ms = in_range("retry-after-ms", bounds::RETRY_AFTER_MS, self.retry_after_ms)?;
        let delay_ms = in_range("delay-ms", bounds::FAULT_DELAY_MS, self.delay_ms)?;
        let after_tokens = in_range("after-tokens", bounds::AFTER_TOKENS, self.after_tokens)?;
        let from_ms = in_range("from-ms", bounds::FAULT_WINDOW_MS, self.from_ms)?;
        let until_ms = in_range("until-ms", bounds::FAULT_WINDOW_MS, self.until_ms)?;
        let action = match self.kind {
            FaultKind::Status => {
                let status = self
                    .status
                    .ok_or(("status", "kind = \"status\" needs `status`".to_string()))?;
                if !(400..=599).contains(&status) {
                    return Err(FaultError::from((
                        "status",
                        format!("must be an error status in 400..=599, got {status}"),
                    )));
                }
                FaultAction::Status {
                    status,
                    retry_after: retry_after_ms.map(Duration::from_millis),
                    after_tokens,
                }
            }
            FaultKind::Hang => FaultAction::Hang {
                duration: delay_ms.map_or(DEFAULT_HANG, Duration::from_millis),
            },
            FaultKind::SlowFirstByte => FaultAction::SlowFirstByte {
                delay: Duration::from_millis(
                    delay_ms.ok_or(("delay-ms", "kind = \"slow-first-byte\" needs `delay-ms`".to_string()))?,
                ),
            },
            FaultKind::Cut => FaultAction::Cut {
                after_tokens: after_tokens
                    .ok_or(("after-tokens", "kind = \"cut\" needs `after-tokens`".to_string()))?,
            },
            FaultKind::MalformedChunk => FaultAction::MalformedChunk {
                after_tokens: after_tokens.ok_or((
                    "after-tokens",
                    "kind = \"malformed-chunk\" needs `after-tokens`".to_string(),
                ))?,
            },
            FaultKind::Reset => FaultAction::Reset { after_tokens },
        };
        if let Some(p) = self.probability.filter(|p| !(0.0..=1.0).contains(p)) {
            return Err(FaultError::from((
                "probability",
                format!("must be between 0 and 1, got {p}"),
            )));
        }
        if let (Some(from), Some(until)) = (from_ms, until_ms)
            && until <= from
        {
            return Err(FaultError::from((
                "until-ms",
                format!("must be after from-ms = {from}, got {until}"),
            )));
        }
        if self.max_hits == Some(0) {
            return Err(FaultError::from((
                "max-hits",
                "must be at least 1 (remove the fault to disable it)".to_string(),
            )));
        }
        Ok(Fault {
            name: self
                .name
                .clone()
                .unwrap_or_else(|| format!("faults[{index}]:{}", self.kind.name())),
            action,
            from: Duration::from_millis(from_ms.unwrap_or(0)),
            until: until_ms.map(Duration::from_millis),
            probability: self.probability.unwrap_or(1.0),
            max_hits: self.max_hits,
            model: self.model.clone(),
            key: self.key.clone(),
            hits: AtomicU64::new(0),
            raw: self.clone(),
        })
    }
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Status => "status",
            FaultKind::Hang => "hang",
            FaultKind::SlowFirstByte => "slow-first-byte",
            FaultKind::Cut => "cut",
            FaultKind::MalformedChunk => "malformed-chunk",
            FaultKind::Reset => "reset",
        }
    }
}

impl Fault {
    pub fn raw(&self) -> &RawFault {
        &self.raw
    }

    /// How many attempts this fault has acted on.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// What an attempt looks like to the fault matcher.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub model: &'a str,
    pub key: Option<&'a str>,
    /// A uniform draw in [0, 1) from the attempt's own seeded generator.
    pub roll: f64,
    /// How many content tokens the answer will have: a fault that acts after
    /// k tokens acts only on answers long enough to reach it.
    pub tokens: u32,
}

/// The fault list of a provider, replaceable at run time.
#[derive(Debug)]
pub struct FaultSet {
    current: RwLock<Installed>,
}

#[derive(Debug, Clone)]
struct Installed {
    faults: Arc<Vec<Arc<Fault>>>,
    at: Instant,
}

impl FaultSet {
    pub fn new(faults: Vec<Fault>) -> Self {
        FaultSet {
            current: RwLock::new(Installed {
                faults: Arc::new(faults.into_iter().map(Arc::new).collect()),
                at: Instant::now(),
            }),
        }
    }

    /// Replaces the list; windows count from now.
    pub fn replace(&self, faults: Vec<Fault>) {
        let installed = Installed {
            faults: Arc::new(faults.into_iter().map(Arc::new).collect()),
            at: Instant::now(),
        };
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = installed;
    }

    pub fn list(&self) -> Arc<Vec<Arc<Fault>>> {
        self.installed().faults
    }

    fn installed(&self) -> Installed {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The first fault that matches and acts on this attempt, counting its hit.
    pub fn pick(&self, now: Instant, target: Target<'_>) -> Option<Arc<Fault>> {
        let installed = self.installed();
        if installed.faults.is_empty() {
            return None;
        }
        let elapsed = now.saturating_duration_since(installed.at);
        installed
            .faults
            .iter()
            .find(|fault| {
                fault.model.as_deref().is_none_or(|m| m == target.model)
                    && fault.key.as_deref().is_none_or(|k| Some(k) == target.key)
                    && elapsed >= fault.from
                    && fault.until.is_none_or(|until| elapsed < until)
                    && target.roll < fault.probability
                    && fault.reaches(target.tokens)
                    && fault.take_hit()
            })
            .cloned()
    }
}

impl Fault {
    /// Whether a fault acting after k tokens acts on an answer of `tokens`:
    /// cut, reset and malformed-chunk need a token after the k-th; an error
    /// status after k tokens needs k of them (it takes the finish's place).
    fn reaches(&self, tokens: u32) -> bool {
        match self.action {
            FaultAction::Status {
                after_tokens: Some(k), ..
            } => k <= tokens,
            FaultAction::Cut { after_tokens: k }
            | FaultAction::MalformedChunk { after_tokens: k }
            | FaultAction::Reset { after_tokens: Some(k) } => k < tokens,
            _ => true,
        }
    }

    fn take_hit(&self) -> bool {
        match self.max_hits {
            None => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                true
            }
            Some(max) => self
                .hits
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |h| (h < max).then_some(h + 1))
                .is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(kind: FaultKind) -> RawFault {
        RawFault {
            name: None,
            kind,
            status: None,
            retry_after_ms: None,
            after_tokens: None,
            delay_ms: None,
            from_ms: None,
            until_ms: None,
            probability: None,
            max_hits: None,
            model: None,
            key: None,
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(raw(FaultKind::Status).validate(0).unwrap_err().field, "status");
        let mut f = raw(FaultKind::Cut);
        f.status = Some(500);
        assert_eq!(f.validate(0).unwrap_err().field, "status");
        let mut f = raw(FaultKind::Status);
        f.status = Some(200);
        assert!(f.validate(0).unwrap_err().message.contains("400..=599"));
        let mut f = raw(FaultKind::Reset);
        f.probability = Some(1.5);
        assert_eq!(f.validate(0).unwrap_err().field, "probability");
    }

    #[tokio::test(start_paused = true)]
    async fn windows_filters_and_max_hits() {
        let mut f = raw(FaultKind::Status);
        f.status = Some(503);
        f.from_ms = Some(100);
        f.until_ms = Some(200);
        f.max_hits = Some(2);
        f.model = Some("m".into());
        let set = FaultSet::new(vec![f.validate(0).unwrap()]);
        let t = Target {
            model: "m",
            key: None,
            roll: 0.5,
            tokens: 10,
        };
        let start = Instant::now();
        assert!(set.pick(start, t).is_none(), "before the window");
        let inside = start + Duration::from_millis(150);
        assert!(
            set.pick(inside, Target { model: "other", ..t }).is_none(),
            "other model"
        );
        assert!(set.pick(inside, t).is_some());
        assert!(set.pick(inside, t).is_some());
        assert!(set.pick(inside, t).is_none(), "max-hits reached");
        assert_eq!(set.list()[0].hits(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fault_after_k_tokens_needs_a_long_enough_answer() {
        let mut f = raw(FaultKind::Cut);
        f.after_tokens = Some(8);
        let set = FaultSet::new(vec![f.validate(0).unwrap()]);
        let now = Instant::now();
        let target = |tokens| Target {
            model: "m",
            key: None,
            roll: 0.0,
            tokens,
        };
        assert!(set.pick(now, target(8)).is_none());
        assert_eq!(set.list()[0].hits(), 0, "a fault that cannot act is not counted");
        assert!(set.pick(now, target(9)).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn probability_uses_the_roll() {
        let mut f = raw(FaultKind::Reset);
        f.probability = Some(0.3);
        let set = FaultSet::new(vec![f.validate(0).unwrap()]);
        let now = Instant::now();
        assert!(
            set.pick(
                now,
                Target {
                    model: "m",
                    key: None,
                    roll: 0.29,
                    tokens: 10,
                }
            )
            .is_some()
        );
        assert!(
            set.pick(
                now,
                Target {
                    model: "m",
                    key: None,
                    roll: 0.31,
                    tokens: 10,
                }
            )
            .is_none()
        );
    }
}

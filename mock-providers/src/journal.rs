//! The journal: one record per upstream attempt, the ground truth that the
//! harness's checks join with what the client saw.
//!
//! Times are microseconds since the Unix epoch. Each journal anchors the wall
//! clock once and then advances it with a monotonic clock, so times never go
//! backwards within a run and are comparable with any other process on the
//! same host that reads the wall clock (the harness does the same).

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Dialect;

/// Wall-clock microseconds advanced by a monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    anchor: Instant,
    anchor_unix_us: u64,
}

impl Clock {
    pub fn new() -> Self {
        let anchor_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Clock {
            anchor: Instant::now(),
            anchor_unix_us,
        }
    }

    /// The current time in microseconds since the Unix epoch.
    pub fn now_us(&self) -> u64 {
        self.at_us(Instant::now())
    }

    /// The time of `instant` in microseconds since the Unix epoch.
    pub fn at_us(&self, instant: Instant) -> u64 {
        let since = instant.saturating_duration_since(self.anchor);
        self.anchor_unix_us + u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
    }

    /// The monotonic instant the clock was anchored at.
    pub fn anchor(&self) -> Instant {
        self.anchor
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// How an attempt ended, as a class (never an error string).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A complete answer was sent.
    Ok,
    /// Refused with 429 by a per-key limit (rpm, tpm or concurrency).
    RateLimited,
    /// A fault answered with an error status before any token.
    FaultStatus,
    /// A fault sent an error event after some tokens.
    FaultStreamError,
    /// A fault held the request without answering, then dropped the connection.
    Hang,
    /// A fault cut the stream after some tokens without finishing it.
    Cut,
    /// A fault sent a malformed chunk; the rest of the answer followed.
    Malformed,
    /// A fault reset the connection.
    Reset,
    /// The model is unknown or marked removed: 404.
    ModelNotFound,
    /// The upstream key was missing or unknown: 401.
    Unauthorized,
    /// The request body was not a valid request: 400 or 413.
    BadRequest,
    /// The client went away before the answer was complete.
    ClientClosed,
}

/// How the correlation id was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrelationSource {
    Header,
    Nonce,
    None,
}

/// Token usage as the mock reported it, in the dialect-neutral form:
/// `prompt` counts every prompt token, cached or not.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// All prompt tokens, including cache reads and writes.
    pub prompt_tokens: u32,
    /// Prompt tokens read from the cache.
    pub cache_read_tokens: u32,
    /// Prompt tokens written to the cache (Anthropic reports these).
    pub cache_write_tokens: u32,
    /// All completion tokens, including reasoning tokens.
    pub completion_tokens: u32,
    /// Reasoning tokens, a part of `completion_tokens`.
    pub reasoning_tokens: u32,
}

/// One upstream attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Position in this provider's journal, from 0.
    pub seq: u64,
    pub correlation_id: Option<String>,
    pub correlation_source: CorrelationSource,
    /// The attempt number for this correlation id at this provider, from 1.
    pub attempt: u32,
    pub provider: String,
    pub dialect: Dialect,
    pub model: Option<String>,
    pub upstream_key: Option<String>,
    /// The system prompt as the mock received it (all system messages joined
    /// with a newline).
    pub system_prompt: Option<String>,
    pub stream: bool,
    pub max_tokens: Option<u32>,
    pub received_us: u64,
    /// When the first content token left the mock (for a non-streaming
    /// answer: when the response was sent).
    pub first_token_us: Option<u64>,
    /// When the last content token left the mock.
    pub last_token_us: Option<u64>,
    /// When the attempt ended (last byte sent, error sent, or connection gone).
    pub finished_us: u64,
    /// Content tokens (text or tool-call argument pieces) actually sent.
    pub tokens_sent: u32,
    /// Send time of each content token, in microseconds after `received_us`.
    pub token_offsets_us: Vec<u32>,
    /// The usage the mock reported to the client, if it reported any.
    pub usage: Option<Usage>,
    pub status: u16,
    pub outcome: Outcome,
    /// The `Retry-After` the mock sent, in milliseconds.
    pub retry_after_ms: Option<u64>,
    /// The name of the fault that acted on this attempt.
    pub fault: Option<String>,
}

/// The records of one provider's attempts, shared by the provider and its
/// readers.
///
/// Every record is numbered (`seq`) in push order, from 0. A reader either
/// copies records ([`snapshot`](Journal::snapshot), [`since`](Journal::since))
/// or takes them out ([`drain`](Journal::drain)) so that a long run does not
/// keep them all in memory. A drain does not renumber: the next record pushed
/// after a drain continues the numbering, so `seq` stays unique and
/// increasing, and `since(n)` keeps meaning "the records numbered `n` or
/// more" — of those still held (drained ones are gone). Only
/// [`clear`](Journal::clear) starts the numbering again from 0.
#[derive(Debug, Clone)]
pub struct Journal {
    inner: Arc<JournalInner>,
}

#[derive(Debug)]
struct JournalInner {
    records: Mutex<Held>,
    /// Records pushed since the last clear (the next record's `seq`).
    pushed: watch::Sender<usize>,
    clock: Clock,
}

/// The records not yet drained: `records[i].seq == first + i`.
#[derive(Debug, Default)]
struct Held {
    first: usize,
    records: Vec<Record>,
}

impl Held {
    fn pushed(&self) -> usize {
        self.first + self.records.len()
    }
}

impl Journal {
    pub fn new(clock: Clock) -> Self {
        Journal {
            inner: Arc::new(JournalInner {
                records: Mutex::new(Held::default()),
                pushed: watch::Sender::new(0),
                clock,
            }),
        }
    }

    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Appends a record, numbering it.
    pub fn push(&self, mut record: Record) {
        let mut held = self.lock();
        record.seq = held.pushed() as u64;
        held.records.push(record);
        // Published under the lock, so a clear cannot be overtaken.
        self.inner.pushed.send_replace(held.pushed());
    }

    /// The records held: pushed and not yet drained.
    pub fn len(&self) -> usize {
        self.lock().records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The records pushed since the journal was created or last cleared,
    /// drained or not: the `seq` the next record will get.
    pub fn pushed(&self) -> usize {
        self.lock().pushed()
    }

    /// A copy of every record held.
    pub fn snapshot(&self) -> Vec<Record> {
        self.lock().records.clone()
    }

    /// A copy of the held records numbered `start` or more (`seq >= start`).
    /// Before any drain that is the records from position `start` on; after
    /// a drain, records already drained are not returned, so a reader that
    /// asks from the number after the last record it saw never sees a record
    /// twice.
    pub fn since(&self, start: usize) -> Vec<Record> {
        let held = self.lock();
        let from = start.saturating_sub(held.first);
        held.records.get(from..).map(<[Record]>::to_vec).unwrap_or_default()
    }

    /// Takes every record held, in `seq` order, leaving none: each record is
    /// returned by exactly one drain. Numbering goes on from where it was.
    pub fn drain(&self) -> Vec<Record> {
        let mut held = self.lock();
        let records = std::mem::take(&mut held.records);
        held.first += records.len();
        records
    }

    /// Waits until at least `n` records have been pushed since the journal
    /// was created or last cleared (drained ones count).
    pub async fn wait_for(&self, n: usize) {
        let mut rx = self.inner.pushed.subscribe();
        // The sender lives as long as `self`, so this only ends when n is reached.
        let _ = rx.wait_for(|&pushed| pushed >= n).await;
    }

    /// Removes every record (numbering starts again from 0).
    pub fn clear(&self) {
        let mut held = self.lock();
        *held = Held::default();
        self.inner.pushed.send_replace(0);
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // A panic while holding the lock cannot leave a half-pushed Vec.
        self.inner.records.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes records as NDJSON, one JSON object a line.
pub fn to_ndjson(records: &[Record]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * 512);
    for record in records {
        if serde_json::to_writer(&mut out, record).is_ok() {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            seq: 99,
            correlation_id: None,
            correlation_source: CorrelationSource::None,
            attempt: 1,
            provider: "p".into(),
            dialect: Dialect::OpenAi,
            model: None,
            upstream_key: None,
            system_prompt: None,
            stream: false,
            max_tokens: None,
            received_us: 1,
            first_token_us: None,
            last_token_us: None,
            finished_us: 2,
            tokens_sent: 0,
            token_offsets_us: Vec::new(),
            usage: None,
            status: 200,
            outcome: Outcome::Ok,
            retry_after_ms: None,
            fault: None,
        }
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    #[tokio::test]
    async fn a_drain_takes_each_record_once_and_numbering_goes_on() {
        let j = Journal::new(Clock::new());
        assert!(j.drain().is_empty());
        for _ in 0..3 {
            j.push(record());
        }
        assert_eq!(seqs(&j.since(1)), [1, 2]);
        assert_eq!(seqs(&j.drain()), [0, 1, 2]);
        assert!(j.is_empty());
        assert_eq!((j.len(), j.pushed()), (0, 3));
        assert!(j.drain().is_empty(), "a record is drained once");
        assert!(j.since(0).is_empty() && j.since(2).is_empty());
        j.push(record());
        j.push(record());
        assert_eq!(seqs(&j.snapshot()), [3, 4]);
        // `since` counts in seq numbers; drained records are gone.
        assert_eq!(seqs(&j.since(0)), [3, 4]);
        assert_eq!(seqs(&j.since(4)), [4]);
        assert!(j.since(5).is_empty() && j.since(usize::MAX).is_empty());
        // Drained records count for `wait_for`.
        j.wait_for(5).await;
        assert_eq!(seqs(&j.drain()), [3, 4]);
        j.clear();
        j.push(record());
        assert_eq!(seqs(&j.drain()), [0], "clear starts the numbering again");
        assert_eq!(j.pushed(), 1);
    }
}

//! One attempt as the journal sees it: the record an attempt fills in while
//! it is answered (pushed when it finishes, or as `client_closed` when it is
//! dropped unfinished), and the attempt numbers of each correlation id.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::Dialect;
use crate::journal::{CorrelationSource, Journal, Outcome, Record, Usage};
use crate::plan::Ask;
use crate::tokens::Fnv64;

/// How long a correlation id's attempt count is remembered, at least: longer
/// than any request's retries take (a router's deadline is seconds).
const ATTEMPT_MEMORY: Duration = Duration::from_secs(120);

/// Attempt numbers per correlation id, remembered for [`ATTEMPT_MEMORY`]
/// and then forgotten, so that a long run does not grow with its requests:
/// two generations of counts keyed by a hash of the id; every
/// [`ATTEMPT_MEMORY`] the older one is dropped. About 24 B per id of the
/// last two generations.
#[derive(Debug)]
pub(crate) struct AttemptCounter {
    current: HashMap<u64, u32>,
    previous: HashMap<u64, u32>,
    rotated: Instant,
}

impl AttemptCounter {
    pub(crate) fn new() -> Self {
        AttemptCounter {
            current: HashMap::new(),
            previous: HashMap::new(),
            rotated: Instant::now(),
        }
    }

    /// The next attempt number of `correlation`, from 1.
    pub(crate) fn next(&mut self, correlation: &str, now: Instant) -> u32 {
        if now.duration_since(self.rotated) >= ATTEMPT_MEMORY {
            self.previous = std::mem::take(&mut self.current);
            self.rotated = now;
        }
        let id = Fnv64::new(0).write(correlation.as_bytes()).finish();
        let earlier = self.previous.remove(&id).unwrap_or(0);
        let n = self.current.entry(id).or_insert(earlier);
        *n += 1;
        *n
    }
}

/// The journal record of an attempt in progress; pushed when finished, or
/// as `client_closed` when dropped unfinished.
#[derive(Debug)]
pub struct Attempt {
    journal: Journal,
    pub(crate) record: Option<Record>,
    pub(crate) received: Instant,
    include_usage: bool,
}

impl Attempt {
    /// The journal's record of an attempt `provider` received at `received`,
    /// before its body is read: a client that goes away now closed it.
    pub(crate) fn open(
        journal: Journal,
        provider: &str,
        dialect: Dialect,
        received: Instant,
        header_id: Option<String>,
        upstream_key: Option<String>,
    ) -> Attempt {
        let correlation_source = if header_id.is_some() {
            CorrelationSource::Header
        } else {
            CorrelationSource::None
        };
        let received_us = journal.clock().at_us(received);
        Attempt {
            journal,
            record: Some(Record {
                seq: 0,
                correlation_id: header_id,
                correlation_source,
                attempt: 1,
                provider: provider.to_string(),
                dialect,
                model: None,
                upstream_key,
                system_prompt: None,
                stream: false,
                max_tokens: None,
                received_us,
                first_token_us: None,
                last_token_us: None,
                finished_us: 0,
                tokens_sent: 0,
                token_offsets_us: Vec::new(),
                usage: None,
                status: 0,
                outcome: Outcome::ClientClosed,
                retry_after_ms: None,
                fault: None,
            }),
            received,
            include_usage: false,
        }
    }

    pub fn token_sent(&mut self, at: Instant) {
        let Some(record) = self.record.as_mut() else { return };
        let us = self.journal.clock().at_us(at);
        record.first_token_us.get_or_insert(us);
        record.last_token_us = Some(us);
        record.tokens_sent += 1;
        let offset = at.saturating_duration_since(self.received).as_micros();
        record.token_offsets_us.push(u32::try_from(offset).unwrap_or(u32::MAX));
    }

    pub fn set_usage(&mut self, usage: Usage, reported: bool) {
        if let Some(record) = self.record.as_mut() {
            record.usage = reported.then_some(usage);
        }
    }

    pub fn include_usage(&self) -> bool {
        self.include_usage
    }

    /// What the parsed ask says of the attempt: its number, model, system
    /// prompt and streaming; its correlation id is the prompt nonce when no
    /// header named one (`by_nonce`).
    pub(crate) fn describe(&mut self, ask: &Ask, attempt_no: u32, by_nonce: bool) {
        if let Some(record) = self.record.as_mut() {
            if by_nonce && ask.nonce.is_some() {
                record.correlation_id = ask.nonce.clone();
                record.correlation_source = CorrelationSource::Nonce;
            }
            record.attempt = attempt_no;
            record.model = Some(ask.model.clone());
            record.system_prompt = ask.system.clone();
            record.stream = ask.stream;
            record.max_tokens = ask.max_tokens;
        }
        self.include_usage = ask.include_usage;
    }

    pub(crate) fn set_fault(&mut self, name: &str, retry_after: Option<Duration>) {
        if let Some(record) = self.record.as_mut() {
            record.fault = Some(name.to_string());
            if retry_after.is_some() {
                record.retry_after_ms = retry_after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            }
        }
    }

    pub fn finish(&mut self, status: u16, outcome: Outcome) {
        if let Some(mut record) = self.record.take() {
            record.status = status;
            record.outcome = outcome;
            record.finished_us = self.journal.clock().now_us();
            self.journal.push(record);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        // The outcome set in advance (client_closed unless a fault said
        // otherwise, like a hang the client gave up on).
        if let Some(record) = self.record.as_ref() {
            let (status, outcome) = (record.status, record.outcome);
            self.finish(status, outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempt_numbers_survive_one_rotation_and_are_forgotten_after_two() {
        let mut counter = AttemptCounter::new();
        let start = counter.rotated;
        assert_eq!(counter.next("r1", start), 1);
        assert_eq!(counter.next("r1", start), 2);
        assert_eq!(counter.next("r2", start), 1);
        // Rotated once: r1 is still remembered, and moves to the current generation.
        let later = start + ATTEMPT_MEMORY;
        assert_eq!(counter.next("r1", later), 3);
        // Rotated again: r2 (untouched for a generation) is forgotten, r1 is not.
        let much_later = later + ATTEMPT_MEMORY;
        assert_eq!(counter.next("r2", much_later), 1);
        assert_eq!(counter.next("r1", much_later), 4);
        assert!(counter.previous.len() + counter.current.len() <= 3);
    }
}

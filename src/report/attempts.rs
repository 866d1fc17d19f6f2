//! `attempts.csv`: one row per upstream attempt the mocks journaled, written
//! as the run goes from each drain of the journals ([`AttemptsCsv`]), so the
//! attempts are not kept in memory.
//!
//! Rows come drain by drain; within a drain, provider by provider in journal
//! (`seq`) order. Times are Unix µs on the run's clock; empty fields are
//! absent values.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use mock_providers::Record;
use serde::Serialize;

pub const ATTEMPTS_CSV: &str = "attempts.csv";

#[derive(Serialize)]
struct AttemptRow<'a> {
    provider: &'a str,
    seq: u64,
    correlation_id: Option<&'a str>,
    attempt: u32,
    dialect: mock_providers::Dialect,
    model: Option<&'a str>,
    stream: bool,
    status: u16,
    outcome: mock_providers::Outcome,
    received_us: u64,
    first_token_us: Option<u64>,
    last_token_us: Option<u64>,
    finished_us: u64,
    duration_us: u64,
    tokens_sent: u32,
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
    cache_read_tokens: Option<u32>,
    cache_write_tokens: Option<u32>,
    retry_after_ms: Option<u64>,
    fault: Option<&'a str>,
}

const ATTEMPT_HEADER: [&str; 21] = [
    "provider",
    "seq",
    "correlation_id",
    "attempt",
    "dialect",
    "model",
    "stream",
    "status",
    "outcome",
    "received_us",
    "first_token_us",
    "last_token_us",
    "finished_us",
    "duration_us",
    "tokens_sent",
    "prompt_tokens",
    "completion_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "retry_after_ms",
    "fault",
];

/// `attempts.csv`, written a batch of drained journal records at a time
/// (nothing is kept in memory but the write buffer).
pub struct AttemptsCsv {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
    rows: u64,
}

impl AttemptsCsv {
    /// Creates `dir/attempts.csv` with its header, so an empty table still
    /// says what its columns are.
    pub fn create(dir: &Path) -> io::Result<Self> {
        let path = dir.join(ATTEMPTS_CSV);
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(BufWriter::new(File::create(&path)?));
        writer.write_record(ATTEMPT_HEADER)?;
        Ok(AttemptsCsv { path, writer, rows: 0 })
    }

    /// Writes `provider`'s records, in the order given.
    pub fn write(&mut self, provider: &str, records: &[Record]) -> io::Result<()> {
        for a in records {
            self.writer.serialize(AttemptRow {
                provider,
                seq: a.seq,
                correlation_id: a.correlation_id.as_deref(),
                attempt: a.attempt,
                dialect: a.dialect,
                model: a.model.as_deref(),
                stream: a.stream,
                status: a.status,
                outcome: a.outcome,
                received_us: a.received_us,
                first_token_us: a.first_token_us,
                last_token_us: a.last_token_us,
                finished_us: a.finished_us,
                duration_us: a.finished_us.saturating_sub(a.received_us),
                tokens_sent: a.tokens_sent,
                prompt_tokens: a.usage.map(|u| u.prompt_tokens),
                completion_tokens: a.usage.map(|u| u.completion_tokens),
                cache_read_tokens: a.usage.map(|u| u.cache_read_tokens),
                cache_write_tokens: a.usage.map(|u| u.cache_write_tokens),
                retry_after_ms: a.retry_after_ms,
                fault: a.fault.as_deref(),
            })?;
            self.rows += 1;
        }
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Flushes the file; returns its path.
    pub fn finish(mut self) -> io::Result<PathBuf> {
        self.writer.flush()?;
        Ok(self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::fixtures::attempt;
    use crate::report::tests::{TempDir, read_csv as read};

    #[test]
    fn attempts_are_written_batch_by_batch() {
        let dir = TempDir::new("attempts-csv");
        let mut csv = AttemptsCsv::create(dir.path()).unwrap();
        csv.write("a", &[attempt("r1", 503, 10, 20)]).unwrap();
        csv.write("b", &[]).unwrap();
        let mut second = attempt("r,1", 200, 30, 90);
        second.seq = 1;
        csv.write("a", &[second]).unwrap();
        assert_eq!(csv.rows(), 2);
        let path = csv.finish().unwrap();
        let rows = read(&path);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], ATTEMPT_HEADER);
        assert!(rows.iter().all(|r| r.len() == ATTEMPT_HEADER.len()));
        let col = |name: &str| ATTEMPT_HEADER.iter().position(|h| *h == name).unwrap();
        assert_eq!(rows[1][col("outcome")], "fault_status");
        assert_eq!(rows[2][col("provider")], "a");
        assert_eq!(rows[2][col("seq")], "1");
        assert_eq!(rows[2][col("correlation_id")], "r,1");
        assert_eq!(rows[2][col("outcome")], "ok");
        assert_eq!(rows[2][col("duration_us")], "60");
        assert_eq!(rows[2][col("prompt_tokens")], "");
    }

    #[test]
    fn an_empty_table_keeps_its_header() {
        let dir = TempDir::new("attempts-csv-empty");
        let write = |journals: &[(&str, &[Record])]| {
            let mut csv = AttemptsCsv::create(dir.path()).unwrap();
            for (provider, records) in journals {
                csv.write(provider, records).unwrap();
            }
            csv.finish().unwrap()
        };
        let path = write(&[("a", &[]), ("b", &[])]);
        assert_eq!(read(&path), [ATTEMPT_HEADER]);
        let path = write(&[("a", &[attempt("r1", 200, 1, 2)])]);
        assert_eq!(read(&path).len(), 2);
    }
}

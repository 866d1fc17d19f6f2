//! The CSV tables of a run: `requests.csv` (one row per request, written as
//! the run goes), `attempts.csv` (one row per upstream attempt, from the mock
//! journals) and `timeseries.csv` (one row per second).
//!
//! Times are Unix µs on the run's clock; empty fields are absent values.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use mock_providers::Record;
use serde::Serialize;

use crate::load::record::{Outcome, RequestRecord};
use crate::metrics::{SecondRow, Timings};

pub const REQUESTS_CSV: &str = "requests.csv";
pub const ATTEMPTS_CSV: &str = "attempts.csv";
pub const TIMESERIES_CSV: &str = "timeseries.csv";

type Writer = csv::Writer<BufWriter<File>>;

/// A CSV file whose header is written up front, so an empty table still says
/// what its columns are.
fn create(path: &Path, header: &[&str]) -> io::Result<Writer> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(BufWriter::new(File::create(path)?));
    w.write_record(header)?;
    Ok(w)
}

#[derive(Serialize)]
struct RequestRow<'a> {
    id: &'a str,
    phase: u16,
    mix: u16,
    stream: bool,
    outcome: Outcome,
    status: u16,
    intended_us: u64,
    sent_us: u64,
    head_us: Option<u64>,
    first_content_us: Option<u64>,
    last_byte_us: Option<u64>,
    dispatch_us: Option<u64>,
    ttft_us: Option<u64>,
    e2e_us: Option<u64>,
    tpot_us: Option<u64>,
    chunks: u32,
    content_chunks: u32,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    cached_tokens: Option<u64>,
    cost: Option<&'a str>,
    model: Option<&'a str>,
    generation_id: Option<&'a str>,
    error: Option<&'a str>,
}

const REQUEST_HEADER: [&str; 24] = [
    "id",
    "phase",
    "mix",
    "stream",
    "outcome",
    "status",
    "intended_us",
    "sent_us",
    "head_us",
    "first_content_us",
    "last_byte_us",
    "dispatch_us",
    "ttft_us",
    "e2e_us",
    "tpot_us",
    "chunks",
    "content_chunks",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost",
    "model",
    "generation_id",
    "error",
];

/// `requests.csv`, written one request at a time as the run goes (nothing
/// is kept in memory but the write buffer).
pub struct RequestsCsv {
    path: PathBuf,
    writer: Writer,
    rows: u64,
}

impl RequestsCsv {
    /// Creates `dir/requests.csv` with its header.
    pub fn create(dir: &Path) -> io::Result<Self> {
        let path = dir.join(REQUESTS_CSV);
        let writer = create(&path, &REQUEST_HEADER)?;
        Ok(RequestsCsv { path, writer, rows: 0 })
    }

    pub fn write(&mut self, r: &RequestRecord) -> io::Result<()> {
        let t = Timings::of(r);
        self.writer.serialize(RequestRow {
            id: &r.id,
            phase: r.phase,
            mix: r.mix,
            stream: r.stream,
            outcome: r.outcome,
            status: r.status,
            intended_us: r.intended_us,
            sent_us: r.sent_us,
            head_us: r.head_us,
            first_content_us: r.first_content_us,
            last_byte_us: r.last_byte_us,
            dispatch_us: t.dispatch_us,
            ttft_us: t.ttft_us,
            e2e_us: t.e2e_us,
            tpot_us: t.tpot_us,
            chunks: r.chunks,
            content_chunks: r.content_chunks,
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            cached_tokens: r.cached_tokens,
            cost: r.cost.as_deref(),
            model: r.model.as_deref(),
            generation_id: r.generation_id.as_deref(),
            error: r.error.as_deref(),
        })?;
        self.rows += 1;
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

/// Writes `dir/attempts.csv`: every upstream attempt of every provider's
/// journal, provider by provider in journal order.
pub fn write_attempts(dir: &Path, journals: &[(&str, &[Record])]) -> io::Result<PathBuf> {
    let path = dir.join(ATTEMPTS_CSV);
    let mut w = create(&path, &ATTEMPT_HEADER)?;
    for (provider, records) in journals {
        for a in records.iter() {
            w.serialize(AttemptRow {
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
        }
    }
    w.flush()?;
    Ok(path)
}

#[derive(Serialize)]
struct SecondCsvRow {
    second: i64,
    unix_second: u64,
    intended: u32,
    sent: u32,
    dropped: u32,
    completed: u32,
    errors: u32,
    e2e_p50_us: Option<u64>,
    e2e_p99_us: Option<u64>,
    ttft_p50_us: Option<u64>,
    ttft_p99_us: Option<u64>,
}

const SECOND_HEADER: [&str; 11] = [
    "second",
    "unix_second",
    "intended",
    "sent",
    "dropped",
    "completed",
    "errors",
    "e2e_p50_us",
    "e2e_p99_us",
    "ttft_p50_us",
    "ttft_p99_us",
];

/// Writes `dir/timeseries.csv`, one row per second of the run.
pub fn write_timeseries(dir: &Path, rows: &[SecondRow]) -> io::Result<PathBuf> {
    let path = dir.join(TIMESERIES_CSV);
    let mut w = create(&path, &SECOND_HEADER)?;
    for r in rows {
        w.serialize(SecondCsvRow {
            second: r.second,
            unix_second: r.unix_second,
            intended: r.intended,
            sent: r.sent,
            dropped: r.dropped,
            completed: r.completed,
            errors: r.errors,
            e2e_p50_us: r.e2e_p50_us,
            e2e_p99_us: r.e2e_p99_us,
            ttft_p50_us: r.ttft_p50_us,
            ttft_p99_us: r.ttft_p99_us,
        })?;
    }
    w.flush()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::fixtures::{attempt, failed, stream};
    use crate::report::tests::TempDir;

    fn read(path: &Path) -> Vec<Vec<String>> {
        let mut r = csv::ReaderBuilder::new().has_headers(false).from_path(path).unwrap();
        r.records()
            .map(|row| row.unwrap().iter().map(String::from).collect())
            .collect()
    }

    #[test]
    fn requests_are_written_as_they_come() {
        let dir = TempDir::new("requests-csv");
        let mut csv = RequestsCsv::create(dir.path()).unwrap();
        csv.write(&stream("s,1", 0, 100, &[1_000, 3_000], 2)).unwrap();
        let mut f = failed("f\"2", 5, Outcome::RateLimited);
        f.error = Some("slow down\nplease".into());
        csv.write(&f).unwrap();
        assert_eq!(csv.rows(), 2);
        let path = csv.finish().unwrap();
        let rows = read(&path);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], REQUEST_HEADER);
        let col = |name: &str| REQUEST_HEADER.iter().position(|h| *h == name).unwrap();
        assert_eq!(rows[1][col("id")], "s,1");
        assert_eq!(rows[1][col("outcome")], "ok");
        assert_eq!(rows[1][col("ttft_us")], "1100");
        assert_eq!(rows[1][col("tpot_us")], "2000");
        assert_eq!(rows[2][col("id")], "f\"2");
        assert_eq!(rows[2][col("outcome")], "rate_limited");
        assert_eq!(rows[2][col("e2e_us")], "");
        assert_eq!(rows[2][col("error")], "slow down\nplease");
        assert!(rows.iter().all(|r| r.len() == REQUEST_HEADER.len()));
    }

    #[test]
    fn attempts_and_an_empty_table_keep_their_header() {
        let dir = TempDir::new("attempts-csv");
        let path = write_attempts(
            dir.path(),
            &[
                ("a", &[attempt("r1", 503, 10, 20), attempt("r1", 200, 30, 90)]),
                ("b", &[]),
            ],
        )
        .unwrap();
        let rows = read(&path);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], ATTEMPT_HEADER);
        assert_eq!(rows[2][0], "a");
        assert_eq!(rows[2][8], "ok");
        assert_eq!(rows[2][13], "60");
        let empty = write_timeseries(dir.path(), &[]).unwrap();
        assert_eq!(read(&empty), [SECOND_HEADER]);
    }
}

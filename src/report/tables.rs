//! The CSV tables of a run: `requests.csv` (one row per request, written as
//! the run goes) and `timeseries.csv` (one row per second). `attempts.csv`
//! is in [`super::attempts`].
//!
//! `requests.csv` has every request the engine made, warm-up phases'
//! included: `phase` is the phase's number in the scenario, and `warm_up`
//! says whether it was a warm-up phase, whose requests no metric or check
//! counts (nor their rows of `attempts.csv`, whose `correlation_id` is the
//! request's `id`). The other columns are the [`RequestRecord`]'s fields and
//! the [`Timings`] derived from them.
//!
//! Times are Unix µs on the run's clock; empty fields are absent values.

use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::load::record::{Outcome, RequestRecord};
use crate::metrics::{SecondRow, Timings};

pub const REQUESTS_CSV: &str = "requests.csv";
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
    warm_up: bool,
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
    retry_after: Option<&'a str>,
    original_model: Option<&'a str>,
    error_ok: Option<bool>,
    availability_code: Option<&'a str>,
    usage_chunks: u32,
    usage_last: bool,
    done: bool,
    finish_reason: Option<&'a str>,
    error_chunk: bool,
}

const REQUEST_HEADER: [&str; 34] = [
    "id",
    "phase",
    "warm_up",
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
    "retry_after",
    "original_model",
    "error_ok",
    "availability_code",
    "usage_chunks",
    "usage_last",
    "done",
    "finish_reason",
    "error_chunk",
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

    /// Writes one request, `warm_up` when its phase was a warm-up one.
    pub fn write(&mut self, r: &RequestRecord, warm_up: bool) -> io::Result<()> {
        let t = Timings::of(r);
        let c = &r.conformance;
        let shape = c.error_shape.as_ref();
        self.writer.serialize(RequestRow {
            id: &r.id,
            phase: r.phase,
            warm_up,
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
            retry_after: c.retry_after.as_deref(),
            original_model: c.original_model.as_deref(),
            error_ok: shape.map(|s| s.ok),
            availability_code: shape.and_then(|s| s.availability_code.as_deref()),
            usage_chunks: c.usage_chunks,
            usage_last: c.usage_last,
            done: c.done,
            finish_reason: c.finish_reason.as_deref(),
            error_chunk: c.error_chunk,
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
    use crate::load::record::ErrorShape;
    use crate::metrics::fixtures::{failed, stream};
    use crate::report::tests::{TempDir, read_csv as read};

    #[test]
    fn requests_are_written_as_they_come() {
        let dir = TempDir::new("requests-csv");
        let mut csv = RequestsCsv::create(dir.path()).unwrap();
        csv.write(&stream("s,1", 0, 100, &[1_000, 3_000], 2), false).unwrap();
        let mut f = failed("f\"2", 5, Outcome::RateLimited);
        f.error = Some("slow down\nplease".into());
        f.conformance.retry_after = Some("2".into());
        f.conformance.error_shape = Some(ErrorShape {
            ok: true,
            error_type: None,
            anthropic: false,
            availability_code: Some("model_deprecated".into()),
            fallback_models: vec!["x".into()],
        });
        csv.write(&f, true).unwrap();
        assert_eq!(csv.rows(), 2);
        let path = csv.finish().unwrap();
        let rows = read(&path);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], REQUEST_HEADER);
        let col = |name: &str| REQUEST_HEADER.iter().position(|h| *h == name).unwrap();
        assert_eq!(rows[1][col("id")], "s,1");
        assert_eq!(rows[1][col("outcome")], "ok");
        assert_eq!(rows[1][col("warm_up")], "false");
        assert_eq!(rows[2][col("warm_up")], "true");
        assert_eq!(rows[1][col("ttft_us")], "1100");
        assert_eq!(rows[1][col("tpot_us")], "2000");
        assert_eq!(rows[2][col("id")], "f\"2");
        assert_eq!(rows[2][col("outcome")], "rate_limited");
        assert_eq!(rows[2][col("e2e_us")], "");
        assert_eq!(rows[2][col("error")], "slow down\nplease");
        assert_eq!(rows[2][col("retry_after")], "2");
        assert_eq!(rows[2][col("error_ok")], "true");
        assert_eq!(rows[2][col("availability_code")], "model_deprecated");
        assert_eq!(rows[2][col("done")], "false");
        // A 2xx answer has no error shape: an empty field, not `false`.
        assert_eq!(rows[1][col("error_ok")], "");
        assert_eq!(rows[1][col("finish_reason")], "");
        assert!(rows.iter().all(|r| r.len() == REQUEST_HEADER.len()));
    }

    #[test]
    fn an_empty_timeseries_keeps_its_header() {
        let dir = TempDir::new("timeseries-csv");
        let empty = write_timeseries(dir.path(), &[]).unwrap();
        assert_eq!(read(&empty), [SECOND_HEADER]);
    }
}

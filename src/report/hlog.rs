//! `latency.hlog`: the run's latency histograms as an HdrHistogram V2
//! interval log, one interval covering the whole run per metric, tagged with
//! the metric's name (`e2e`, `ttft`, ...). Values are microseconds.
//!
//! Shards of one scenario write the same tags, so `gauntlet merge` (or any
//! HdrHistogram tool) adds the intervals of one tag to get the whole run's
//! histogram.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use hdrhistogram::serialization::V2Serializer;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, IntervalLogWriterError, Tag};

use crate::metrics::{Collector, Metric};

pub const HLOG: &str = "latency.hlog";

fn io_error<E: std::fmt::Debug>(e: IntervalLogWriterError<E>) -> io::Error {
    match e {
        IntervalLogWriterError::IoError(e) => e,
        IntervalLogWriterError::SerializeError(e) => io::Error::other(format!("cannot serialize a histogram: {e:?}")),
    }
}

/// Writes the log into `out`: a header stating the run start, then one
/// tagged interval per metric from `start_us` to `end_us`.
pub fn write_log(
    out: &mut impl Write,
    collector: &Collector,
    scenario: &str,
    start_us: u64,
    end_us: u64,
) -> io::Result<()> {
    let start = UNIX_EPOCH + Duration::from_micros(start_us);
    let length = Duration::from_micros(end_us.saturating_sub(start_us));
    let mut serializer = V2Serializer::new();
    let mut builder = IntervalLogWriterBuilder::new();
    builder
        .add_comment(&format!("gauntlet {}: {scenario}", env!("CARGO_PKG_VERSION")))
        .add_comment("latency histograms in microseconds, one interval per metric, tagged by metric")
        .with_start_time(start)
        .with_base_time(start);
    let mut log = builder.begin_log_with(out, &mut serializer)?;
    for metric in Metric::ALL {
        let tag = Tag::new(metric.name());
        log.write_histogram(collector.histogram(metric), Duration::ZERO, length, tag)
            .map_err(io_error)?;
    }
    Ok(())
}

/// Writes `dir/latency.hlog`.
pub fn write_hlog(
    dir: &Path,
    collector: &Collector,
    scenario: &str,
    start_us: u64,
    end_us: u64,
) -> io::Result<PathBuf> {
    let path = dir.join(HLOG);
    let mut out = BufWriter::new(File::create(&path)?);
    write_log(&mut out, collector, scenario, start_us, end_us)?;
    out.flush()?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use hdrhistogram::Histogram;
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    use super::*;
    use crate::metrics::fixtures::{record, stream};
    use crate::scenario::Slo;

    #[test]
    fn every_metric_is_a_tagged_interval_that_reads_back() {
        let mut c = Collector::with(Slo::default(), &[]);
        for i in 0..100u64 {
            c.record(&record(&format!("r{i}"), 0, i * 10));
            c.record(&stream(&format!("s{i}"), 0, 0, &[1_000, 2_000 + i as u32], 2));
        }
        let mut buf = Vec::new();
        write_log(&mut buf, &c, "t", 1_700_000_000_000_000, 1_700_000_010_000_000).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(text.contains("#[StartTime: 1700000000.000"), "{text}");

        let mut seen = Vec::new();
        let mut merged: Histogram<u64> = Histogram::new(3).unwrap();
        for entry in IntervalLogIterator::new(&buf) {
            if let LogEntry::Interval(interval) = entry.unwrap() {
                let tag = interval.tag().unwrap().as_str().to_string();
                assert_eq!(interval.duration(), Duration::from_secs(10));
                let bytes = base64_decode(interval.encoded_histogram());
                let h: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice()).unwrap();
                let metric = Metric::ALL.into_iter().find(|m| m.name() == tag).unwrap();
                assert_eq!(h, *c.histogram(metric), "{tag}");
                if tag == "ttft" {
                    // Intervals of one tag add up (as shards' logs would).
                    merged.add(&h).unwrap();
                    merged.add(&h).unwrap();
                }
                seen.push(tag);
            }
        }
        assert_eq!(seen, Metric::ALL.map(Metric::name));
        assert_eq!(merged.len(), 200);
    }

    /// Standard base64, enough for the test (the crate's decoder is private).
    fn base64_decode(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').map(value).collect();
        let mut out = Vec::with_capacity(digits.len() * 3 / 4);
        for chunk in digits.chunks(4) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
            for i in 0..chunk.len() - 1 {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        out
    }
}

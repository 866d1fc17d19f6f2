//! The write-ahead log: where a write is durable before it reaches the redb file.
//!
//! The log is a file beside the ledger (`<ledger>.wal`), allocated up front
//! (written with zeros, so that appending never changes the file's size and
//! `fdatasync` has only the data to flush). It starts with a 64-byte header
//! (magic, epoch, CRC) and holds records:
//!
//! ```text
//! len u32 | crc u32 | epoch u64 | group u64 | seq u64 | operation (len bytes)
//! ```
//!
//! little-endian, the CRC over everything after it, each record padded with
//! zeros to a multiple of 8 bytes. The writer appends one
//! group of records with one write and one `fdatasync`; `group` is the first
//! sequence number of the record's group. After the redb file has been made
//! durable up to some sequence number (a checkpoint), the log is reset by
//! writing a header with the next epoch: records of older epochs that remain
//! further on are no longer the log's.
//!
//! Reading the log back, the records are those of the header's epoch with
//! consecutive sequence numbers from the first expected one. The first record
//! that is not (torn, zeros, another epoch) ends the log. A record that ends
//! the log is expected only in the last group written, which a crash may
//! have cut: if a valid record of a *later* group follows it, the log was
//! damaged and reading it fails.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The size a new log is allocated with; it grows only for a group larger than what is left.
pub(super) const WAL_BYTES: u64 = 4 << 20;
const HEADER: u64 = 64;
const MAGIC: &[u8; 16] = b"gauntlet-wal\0\0\0\x01";
/// `len`, `crc`, `epoch`, `group`, `seq`.
const RECORD_HEAD: usize = 32;
/// No single operation comes near this; a larger length is damage.
const MAX_RECORD: usize = 64 << 20;

/// What is wrong with a log file.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("cannot {during} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        during: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a gauntlet write-ahead log (its header is not one)", path.display())]
    NotALog { path: PathBuf },
    #[error(
        "{} is damaged: the record at byte {at} is unreadable but a later one (byte {later}, sequence {seq}) is valid",
        path.display()
    )]
    Damaged {
        path: PathBuf,
        at: u64,
        later: u64,
        seq: u64,
    },
    #[error(
        "{} starts at sequence {found} but the ledger needs it from {expected}: records are missing",
        path.display()
    )]
    Gap { path: PathBuf, expected: u64, found: u64 },
}

/// An open log, positioned after its last record.
#[derive(Debug)]
pub(super) struct Wal {
    file: File,
    path: PathBuf,
    epoch: u64,
    /// Where the next group is written.
    end: u64,
    capacity: u64,
}

/// One record read back.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Record {
    pub seq: u64,
    pub op: Vec<u8>,
}

/// What [`Wal::open`] read.
#[derive(Debug)]
pub(super) struct Scan {
    /// The header's epoch; `None` when the header is unreadable.
    pub epoch: Option<u64>,
    /// The log's records, in order.
    pub records: Vec<Record>,
}

fn io_error<'a>(path: &'a Path, during: &'static str) -> impl FnOnce(io::Error) -> WalError + 'a {
    move |source| WalError::Io {
        path: path.to_path_buf(),
        during,
        source,
    }
}

fn header(epoch: u64) -> [u8; HEADER as usize] {
    let mut header = [0; HEADER as usize];
    header[..16].copy_from_slice(MAGIC);
    header[16..24].copy_from_slice(&epoch.to_le_bytes());
    let crc = crc32fast::hash(&header[..24]);
    header[24..28].copy_from_slice(&crc.to_le_bytes());
    header
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut buf = [0; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(buf)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut buf = [0; 4];
    buf.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(buf)
}

/// The epoch of a valid header, or `None`.
fn read_header(bytes: &[u8]) -> Option<u64> {
    let head = bytes.get(..HEADER as usize)?;
    (&head[..16] == MAGIC && u32_at(head, 24) == crc32fast::hash(&head[..24])).then(|| u64_at(head, 16))
}

/// The record of `epoch` at `at`: `(group, seq, operation, next offset)`.
fn record_at(bytes: &[u8], at: usize, epoch: u64) -> Option<(u64, u64, &[u8], usize)> {
    let head = bytes.get(at..at.checked_add(RECORD_HEAD)?)?;
    // The cheapest test first: most offsets scanned for damage fail it.
    if u64_at(head, 8) != epoch {
        return None;
    }
    let len = usize::try_from(u32_at(head, 0)).ok().filter(|&len| len <= MAX_RECORD)?;
    let end = at.checked_add(RECORD_HEAD)?.checked_add(len)?;
    let body = bytes.get(at + 8..end)?;
    (crc32fast::hash(body) == u32_at(head, 4)).then(|| {
        (
            u64_at(head, 16),
            u64_at(head, 24),
            &bytes[at + RECORD_HEAD..end],
            end.next_multiple_of(8),
        )
    })
}

/// Appends one record to a group being built.
pub(super) fn push_record(out: &mut Vec<u8>, epoch: u64, group: u64, seq: u64, encode: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    encode(out);
    let len = u32::try_from(out.len() - start - RECORD_HEAD).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let crc = crc32fast::hash(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    out.resize(out.len().next_multiple_of(8), 0);
}

/// Writes `len` zero bytes from `at`.
fn zero_fill(file: &File, at: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at + done)?;
        done += n;
    }
    Ok(())
}

/// Makes a rename or a new file in `path`'s directory durable.
pub(super) fn sync_parent(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

impl Wal {
    /// Creates the log at `path` with `epoch`, atomically: it is written in
    /// full beside its place, made durable, then renamed into place.
    pub(super) fn create(path: &Path, epoch: u64) -> Result<Wal, WalError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".new");
        let tmp = PathBuf::from(tmp);
        {
            let file = File::create(&tmp).map_err(io_error(&tmp, "create"))?;
            zero_fill(&file, 0, WAL_BYTES).map_err(io_error(&tmp, "allocate"))?;
            file.write_all_at(&header(epoch), 0).map_err(io_error(&tmp, "write"))?;
            file.sync_all().map_err(io_error(&tmp, "sync"))?;
        }
        std::fs::rename(&tmp, path).map_err(io_error(path, "rename a new log into"))?;
        sync_parent(path).map_err(io_error(path, "sync the directory of"))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_error(path, "open"))?;
        Ok(Wal {
            file,
            path: path.to_path_buf(),
            epoch,
            end: HEADER,
            capacity: WAL_BYTES,
        })
    }

    /// Opens the log at `path` and reads its records, the first expected to
    /// be `first_seq`. The log is not yet writable: [`Wal::reset`] it first.
    pub(super) fn open(path: &Path, first_seq: u64) -> Result<(Wal, Scan), WalError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_error(path, "open"))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error(path, "read"))?;
        let capacity = bytes.len() as u64;
        let Some(epoch) = read_header(&bytes) else {
            if bytes.len() < HEADER as usize || bytes[..16] != MAGIC[..] {
                return Err(WalError::NotALog {
                    path: path.to_path_buf(),
                });
            }
            // The magic is there but the header is torn: a reset cut short.
            let wal = Wal {
                file,
                path: path.to_path_buf(),
                epoch: 0,
                end: HEADER,
                capacity,
            };
            let scan = Scan {
                epoch: None,
                records: Vec::new(),
            };
            return Ok((wal, scan));
        };
        let records = scan(&bytes, epoch, first_seq).map_err(|(at, later, seq)| match at {
            0 => WalError::Gap {
                path: path.to_path_buf(),
                expected: first_seq,
                found: seq,
            },
            _ => WalError::Damaged {
                path: path.to_path_buf(),
                at: at as u64,
                later: later as u64,
                seq,
            },
        })?;
        let wal = Wal {
            file,
            path: path.to_path_buf(),
            epoch,
            end: HEADER,
            capacity,
        };
        Ok((
            wal,
            Scan {
                epoch: Some(epoch),
                records,
            },
        ))
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Bytes of records since the last reset.
    pub(super) fn used(&self) -> u64 {
        self.end - HEADER
    }

    /// Writes a group of records (built with [`push_record`]) and makes it durable.
    pub(super) fn append(&mut self, group: &[u8]) -> io::Result<()> {
        let end = self.end + group.len() as u64;
        if end > self.capacity {
            // Rare: grown in whole allocations, with the size change synced.
            let grown = end.div_ceil(WAL_BYTES) * WAL_BYTES;
            zero_fill(&self.file, self.capacity, grown - self.capacity)?;
            self.file.sync_all()?;
            self.capacity = grown;
        }
        self.file.write_all_at(group, self.end)?;
        self.file.sync_data()?;
        self.end = end;
        Ok(())
    }

    /// Starts the log afresh with `epoch`; every record before is forgotten.
    pub(super) fn reset(&mut self, epoch: u64) -> io::Result<()> {
        self.file.write_all_at(&header(epoch), 0)?;
        self.file.sync_data()?;
        self.epoch = epoch;
        self.end = HEADER;
        Ok(())
    }
}

/// The records of `epoch` from `first_seq` on (earlier ones are skipped),
/// or where the log is damaged: `(offset of the break, offset of a later
/// valid record, its seq)`, or for a log that starts after `first_seq`, `(0, 0, its first seq)`.
fn scan(bytes: &[u8], epoch: u64, first_seq: u64) -> Result<Vec<Record>, (usize, usize, u64)> {
    let mut records = Vec::new();
    let mut at = HEADER as usize;
    let mut next = None;
    while let Some((_, seq, op, end)) = record_at(bytes, at, epoch) {
        if next.is_some_and(|next| seq != next) {
            break;
        }
        if seq >= first_seq {
            records.push(Record { seq, op: op.to_vec() });
        }
        next = Some(seq + 1);
        at = end;
    }
    if let Some(first) = records.first()
        && first.seq != first_seq
    {
        return Err((0, 0, first.seq));
    }
    let next = next.unwrap_or(first_seq);
    // The break is the end of the log unless a record of a later group than
    // the one that was being written follows it. Records start at multiples of 8.
    for later in (at + 8..bytes.len().saturating_sub(RECORD_HEAD)).step_by(8) {
        if let Some((group, seq, _, _)) = record_at(bytes, later, epoch)
            && group > next
            && seq >= next
        {
            return Err((at, later, seq));
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(epoch: u64, seqs: std::ops::RangeInclusive<u64>) -> Vec<u8> {
        let first = *seqs.start();
        let mut out = Vec::new();
        for seq in seqs {
            push_record(&mut out, epoch, first, seq, |out| {
                out.extend_from_slice(format!("op-{seq}").as_bytes())
            });
        }
        out
    }

    fn log(groups: &[Vec<u8>]) -> Vec<u8> {
        let mut bytes = header(3).to_vec();
        for g in groups {
            bytes.extend_from_slice(g);
        }
        bytes.resize(bytes.len() + 4096, 0);
        bytes
    }

    fn seqs(records: &[Record]) -> Vec<u64> {
        records.iter().map(|r| r.seq).collect()
    }

    #[test]
    fn records_are_read_back_in_order_from_the_expected_one() {
        let bytes = log(&[group(3, 5..=7), group(3, 8..=8)]);
        assert_eq!(seqs(&scan(&bytes, 3, 5).unwrap()), [5, 6, 7, 8]);
        // Records already applied are skipped; a log that starts too late is an error.
        assert_eq!(seqs(&scan(&bytes, 3, 7).unwrap()), [7, 8]);
        assert_eq!(seqs(&scan(&bytes, 3, 9).unwrap()), Vec::<u64>::new());
        assert_eq!(scan(&bytes, 3, 4).unwrap_err(), (0, 0, 5));
        assert_eq!(scan(&bytes, 3, 5).unwrap()[1].op, b"op-6");
        // Another epoch's records are not the log's.
        assert!(scan(&bytes, 4, 5).unwrap().is_empty());
    }

    #[test]
    fn a_torn_last_group_ends_the_log_and_damage_before_it_is_an_error() {
        let first = group(3, 1..=2);
        let last = group(3, 3..=5);
        // The last group cut anywhere, even with a later record of it intact.
        for cut in 1..last.len() {
            let mut torn = last.clone();
            torn[cut - 1] ^= 0xff;
            let bytes = log(&[first.clone(), torn]);
            let records = scan(&bytes, 3, 1).unwrap();
            assert!(seqs(&records).starts_with(&[1, 2]), "cut {cut}");
        }
        // A byte flipped in an earlier group, with a later group intact after it.
        let mut damaged = first.clone();
        damaged[RECORD_HEAD + 2] ^= 1;
        let bytes = log(&[damaged, last]);
        let (at, _, seq) = scan(&bytes, 3, 1).unwrap_err();
        assert_eq!((at, seq), (HEADER as usize, 3));
    }

    #[test]
    fn a_log_is_created_appended_reset_and_reopened() {
        let dir = std::env::temp_dir().join(format!("gauntlet-wal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.wal");
        let mut wal = Wal::create(&path, 1).unwrap();
        wal.append(&group(1, 1..=3)).unwrap();
        wal.append(&group(1, 4..=4)).unwrap();
        let (_, scan) = Wal::open(&path, 1).unwrap();
        assert_eq!((scan.epoch, seqs(&scan.records)), (Some(1), vec![1, 2, 3, 4]));
        wal.reset(2).unwrap();
        let (_, scan) = Wal::open(&path, 5).unwrap();
        assert_eq!((scan.epoch, scan.records.len()), (Some(2), 0));
        std::fs::write(&path, b"not a log").unwrap();
        assert!(matches!(Wal::open(&path, 1), Err(WalError::NotALog { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

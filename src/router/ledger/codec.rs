//! How the ledger's rows and write-ahead records are laid out in bytes.
//!
//! Every stored row carries a CRC-32 of its key and its value, so a byte
//! changed on disk is caught when the row is read, whatever redb itself
//! notices. Accounts and generations are stored as:
//!
//! - account row: `crc32 (4) | credits i64 (8) | spent i64 (8) | purchases u32 (4) | purchase (32) × purchases | settings JSON`,
//!   a purchase being `at i64 | expires i64 (i64::MAX: never) | amount i64 | used i64` (format 3)
//! - generation row: `crc32 (4) | charged i64 (8) | uncollected i64 (8) | key length u32 (4) | key | record JSON`
//!
//! all integers little-endian, the CRC over the row's key followed by the
//! bytes after the CRC. Write-ahead records hold one [`Op`] each, encoded by
//! [`encode_op`] (a tag byte, then length-prefixed strings and integers).

use std::sync::Arc;

use super::account::Purchase;
use super::store::Op;
use crate::router::pricing::Picodollars;

/// What a row or record could not be decoded as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("its checksum does not match its bytes")]
    Checksum,
    #[error("it is {len} bytes, too short for its fields")]
    Short { len: usize },
    #[error("it holds invalid UTF-8")]
    Utf8,
    #[error("its JSON is not valid: {0}")]
    Json(String),
    #[error("it has an unknown operation tag {0}")]
    Tag(u8),
}

fn crc(key: &[u8], rest: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(rest);
    hasher.finalize()
}

/// `crc | a | b | tail`, the CRC over `key` and everything after it.
fn encode_row(key: &[u8], a: i64, b: i64, tail: &[u8]) -> Vec<u8> {
    let mut row = Vec::with_capacity(20 + tail.len());
    row.extend_from_slice(&[0; 4]);
    row.extend_from_slice(&a.to_le_bytes());
    row.extend_from_slice(&b.to_le_bytes());
    row.extend_from_slice(tail);
    let sum = crc(key, &row[4..]);
    row[..4].copy_from_slice(&sum.to_le_bytes());
    row
}

fn decode_row<'a>(key: &[u8], row: &'a [u8]) -> Result<(i64, i64, &'a [u8]), DecodeError> {
    if row.len() < 20 {
        return Err(DecodeError::Short { len: row.len() });
    }
    let stored = u32::from_le_bytes([row[0], row[1], row[2], row[3]]);
    if stored != crc(key, &row[4..]) {
        return Err(DecodeError::Checksum);
    }
    Ok((i64_at(row, 4), i64_at(row, 12), &row[20..]))
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    let mut buf = [0; 8];
    buf.copy_from_slice(&bytes[at..at + 8]);
    i64::from_le_bytes(buf)
}

/// The stored `expires` of a purchase that never expires.
const NEVER: i64 = i64::MAX;

fn expires_to_i64(expires_us: Option<i64>) -> i64 {
    expires_us.unwrap_or(NEVER)
}

fn expires_from_i64(expires: i64) -> Option<i64> {
    (expires != NEVER).then_some(expires)
}

/// An account row: its money, its purchases and its settings' JSON.
pub(super) fn encode_account(
    key: &str,
    credits: Picodollars,
    spent: Picodollars,
    purchases: &[Purchase],
    settings: &[u8],
) -> Vec<u8> {
    let mut tail = Vec::with_capacity(4 + 32 * purchases.len() + settings.len());
    // Purchases are made by hand, far fewer than 4 billion.
    tail.extend_from_slice(&u32::try_from(purchases.len()).unwrap_or(u32::MAX).to_le_bytes());
    for p in purchases {
        for n in [p.at_us, expires_to_i64(p.expires_us), p.amount.0, p.used.0] {
            tail.extend_from_slice(&n.to_le_bytes());
        }
    }
    tail.extend_from_slice(settings);
    encode_row(key.as_bytes(), credits.0, spent.0, &tail)
}

/// An account row read back.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct AccountRow<'a> {
    pub credits: Picodollars,
    pub spent: Picodollars,
    pub purchases: Vec<Purchase>,
    pub settings: &'a [u8],
}

/// Decodes (and checks) an account row.
pub(super) fn decode_account<'a>(key: &[u8], row: &'a [u8]) -> Result<AccountRow<'a>, DecodeError> {
    let (credits, spent, tail) = decode_row(key, row)?;
    let mut reader = Reader {
        bytes: tail,
        len: row.len(),
    };
    let count = reader.u32()?;
    let mut purchases = Vec::new();
    for _ in 0..count {
        purchases.push(Purchase {
            at_us: reader.i64()?,
            expires_us: expires_from_i64(reader.i64()?),
            amount: Picodollars(reader.i64()?),
            used: Picodollars(reader.i64()?),
        });
    }
    Ok(AccountRow {
        credits: Picodollars(credits),
        spent: Picodollars(spent),
        purchases,
        settings: reader.bytes,
    })
}

/// A generation row: what was charged to which key, what was not, and the record's JSON.
pub(super) fn encode_generation(
    id: &str,
    key: &str,
    charged: Picodollars,
    uncollected: Picodollars,
    record: &[u8],
) -> Vec<u8> {
    let mut tail = Vec::with_capacity(4 + key.len() + record.len());
    put_bytes(&mut tail, key.as_bytes());
    tail.extend_from_slice(record);
    encode_row(id.as_bytes(), charged.0, uncollected.0, &tail)
}

/// A generation row read back.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct GenerationRow<'a> {
    pub key: &'a str,
    pub charged: Picodollars,
    pub uncollected: Picodollars,
    pub record: &'a [u8],
}

/// Decodes (and checks) a generation row.
pub(super) fn decode_generation<'a>(id: &[u8], row: &'a [u8]) -> Result<GenerationRow<'a>, DecodeError> {
    let (charged, uncollected, tail) = decode_row(id, row)?;
    let mut reader = Reader {
        bytes: tail,
        len: row.len(),
    };
    let key = text(reader.bytes()?)?;
    Ok(GenerationRow {
        key,
        charged: Picodollars(charged),
        uncollected: Picodollars(uncollected),
        record: reader.bytes,
    })
}

/// A row key as text.
pub(super) fn text(bytes: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(bytes).map_err(|_| DecodeError::Utf8)
}

const CREATE: u8 = 1;
const ADD_CREDITS: u8 = 2;
const SETTLE: u8 = 3;
const SETTINGS: u8 = 4;

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    // Every field is far below 4 GiB: keys, ids and JSON of bounded requests.
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends the encoding of `op` to `out`.
pub(super) fn encode_op(op: &Op, out: &mut Vec<u8>) {
    match op {
        Op::Create {
            key,
            settings,
            credits,
            at_us,
            expires_us,
        } => {
            out.push(CREATE);
            put_bytes(out, key.as_bytes());
            put_bytes(out, settings);
            for n in [credits.0, *at_us, expires_to_i64(*expires_us)] {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        Op::AddCredits {
            key,
            amount,
            at_us,
            expires_us,
        } => {
            out.push(ADD_CREDITS);
            put_bytes(out, key.as_bytes());
            for n in [amount.0, *at_us, expires_to_i64(*expires_us)] {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        Op::Settle {
            key,
            id,
            charged,
            uncollected,
            record,
            draws,
        } => {
            out.push(SETTLE);
            put_bytes(out, key.as_bytes());
            put_bytes(out, id.as_bytes());
            out.extend_from_slice(&charged.0.to_le_bytes());
            out.extend_from_slice(&uncollected.0.to_le_bytes());
            put_bytes(out, record);
            out.extend_from_slice(&u32::try_from(draws.len()).unwrap_or(u32::MAX).to_le_bytes());
            for (index, amount) in draws {
                out.extend_from_slice(&index.to_le_bytes());
                out.extend_from_slice(&amount.0.to_le_bytes());
            }
        }
        Op::Settings { key, settings } => {
            out.push(SETTINGS);
            put_bytes(out, key.as_bytes());
            put_bytes(out, settings);
        }
    }
}

/// Reads fields off the front of an encoded operation.
struct Reader<'a> {
    bytes: &'a [u8],
    len: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Short { len: self.len });
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64_at(self.take(8)?, 0))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.take(4)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        self.take(usize::try_from(len).unwrap_or(usize::MAX))
    }

    fn str(&mut self) -> Result<Arc<str>, DecodeError> {
        Ok(text(self.bytes()?)?.into())
    }
}

/// The operation `bytes` encode (the whole of them).
pub(super) fn decode_op(bytes: &[u8]) -> Result<Op, DecodeError> {
    let mut reader = Reader {
        bytes,
        len: bytes.len(),
    };
    let op = match reader.u8()? {
        CREATE => Op::Create {
            key: reader.str()?,
            settings: reader.bytes()?.to_vec(),
            credits: Picodollars(reader.i64()?),
            at_us: reader.i64()?,
            expires_us: expires_from_i64(reader.i64()?),
        },
        ADD_CREDITS => Op::AddCredits {
            key: reader.str()?,
            amount: Picodollars(reader.i64()?),
            at_us: reader.i64()?,
            expires_us: expires_from_i64(reader.i64()?),
        },
        SETTLE => Op::Settle {
            key: reader.str()?,
            id: reader.str()?,
            charged: Picodollars(reader.i64()?),
            uncollected: Picodollars(reader.i64()?),
            record: reader.bytes()?.to_vec(),
            draws: {
                let count = reader.u32()?;
                let mut draws = Vec::new();
                for _ in 0..count {
                    draws.push((reader.u32()?, Picodollars(reader.i64()?)));
                }
                draws
            },
        },
        SETTINGS => Op::Settings {
            key: reader.str()?,
            settings: reader.bytes()?.to_vec(),
        },
        tag => return Err(DecodeError::Tag(tag)),
    };
    if !reader.bytes.is_empty() {
        return Err(DecodeError::Short { len: bytes.len() });
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_any_changed_byte_is_caught() {
        let purchases = [
            Purchase {
                at_us: 1,
                expires_us: Some(2),
                amount: Picodollars(5),
                used: Picodollars(3),
            },
            Purchase {
                at_us: 3,
                expires_us: None,
                amount: Picodollars(2),
                used: Picodollars(0),
            },
        ];
        let row = encode_account("sk-a", Picodollars(7), Picodollars(3), &purchases, br#"{"label":"a"}"#);
        assert_eq!(
            decode_account(b"sk-a", &row),
            Ok(AccountRow {
                credits: Picodollars(7),
                spent: Picodollars(3),
                purchases: purchases.to_vec(),
                settings: &br#"{"label":"a"}"#[..]
            })
        );
        for at in 0..row.len() {
            for bit in 0..8 {
                let mut bad = row.clone();
                bad[at] ^= 1 << bit;
                assert_eq!(
                    decode_account(b"sk-a", &bad),
                    Err(DecodeError::Checksum),
                    "byte {at} bit {bit}"
                );
            }
        }
        // The key is checked too: a row moved under another key is caught.
        assert_eq!(decode_account(b"sk-b", &row), Err(DecodeError::Checksum));
        assert_eq!(decode_account(b"sk-a", &row[..10]), Err(DecodeError::Short { len: 10 }));

        let row = encode_generation("gen-1", "sk-a", Picodollars(5), Picodollars(1), b"{}");
        let read = decode_generation(b"gen-1", &row).unwrap();
        assert_eq!(
            (read.key, read.charged, read.uncollected, read.record),
            ("sk-a", Picodollars(5), Picodollars(1), &b"{}"[..])
        );
        let mut bad = row.clone();
        bad[22] ^= 4;
        assert_eq!(decode_generation(b"gen-1", &bad), Err(DecodeError::Checksum));
    }

    #[test]
    fn operations_round_trip() {
        let ops = [
            Op::Create {
                key: "sk-a".into(),
                settings: b"{}".to_vec(),
                credits: Picodollars(5),
                at_us: 10,
                expires_us: Some(20),
            },
            Op::AddCredits {
                key: "sk-a".into(),
                amount: Picodollars(-1),
                at_us: 11,
                expires_us: None,
            },
            Op::Settle {
                key: "sk-a".into(),
                id: "gen-1".into(),
                charged: Picodollars(2),
                uncollected: Picodollars(1),
                record: b"{\"id\":\"gen-1\"}".to_vec(),
                draws: vec![(0, Picodollars(1)), (3, Picodollars(1))],
            },
            Op::Settings {
                key: "sk-a".into(),
                settings: b"{\"label\":\"b\"}".to_vec(),
            },
        ];
        for op in ops {
            let mut bytes = Vec::new();
            encode_op(&op, &mut bytes);
            let decoded = decode_op(&bytes).unwrap();
            let mut again = Vec::new();
            encode_op(&decoded, &mut again);
            assert_eq!(bytes, again);
            assert!(decode_op(&bytes[..bytes.len() - 1]).is_err());
        }
        assert_eq!(decode_op(&[9]).err(), Some(DecodeError::Tag(9)));
    }
}

//! The durable store: the redb file, its write-ahead log, the write queue
//! and the writer thread, and the checks a file must pass to be opened.

use std::collections::HashMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use redb::{Builder, Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::watch;

use super::account::{Account, KeySettings, Money};
use super::bloom::Bloom;
use super::codec::{self, DecodeError};
use super::generations::{Generation, Generations};
use super::wal::{self, Wal};
use super::{GenerationRecord, Ledger, LedgerError, lock};
use crate::router::pricing::Picodollars;

/// The most operations the writer puts in one group.
pub const MAX_BATCH: usize = 1024;
/// The layout of the ledger file this version reads and writes. Format 3
/// added the dated purchases to the account row (and to the log's records).
pub const FORMAT: u64 = 3;
/// The redb page cache: the ledger reads little once open.
const CACHE_BYTES: usize = 16 << 20;
/// The applier checkpoints (makes the redb file durable) this long after
/// its last checkpoint, or after [`CHECKPOINT_OPS`] operations.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);
/// The writer starts the log afresh once it holds this much and every
/// record of it is in a checkpoint.
const RESET_BYTES: u64 = 2 << 20;

/// `format`, `applied` (the last log sequence number applied), `wal-epoch`
/// (the log's epoch after the last checkpoint) and `clean` (1 once closed cleanly).
const META: TableDefinition<&[u8], u64> = TableDefinition::new("meta");
/// Key → account row ([`codec::encode_account`]).
const ACCOUNTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accounts");
/// Generation id → generation row ([`codec::encode_generation`]).
const GENERATIONS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("generations");

const META_FORMAT: &[u8] = b"format";
const META_APPLIED: &[u8] = b"applied";
const META_WAL_EPOCH: &[u8] = b"wal-epoch";
const META_CLEAN: &[u8] = b"clean";

/// Why the store stopped taking writes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreFailure {
    #[error("cannot {during}: {source}")]
    Redb {
        during: &'static str,
        #[source]
        source: Arc<redb::Error>,
    },
    #[error("cannot write the log {}: {source}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: Arc<std::io::Error>,
    },
    #[error("account `{key}` is missing from the store")]
    MissingAccount { key: Arc<str> },
    #[error("the stored row of `{key}` is damaged: {cause}")]
    Damaged { key: String, cause: DecodeError },
    #[error("a charge to account `{key}` draws from its purchase {index}, which it does not have")]
    NoPurchase { key: Arc<str>, index: u32 },
    #[error("cannot set a transaction's durability: {0}")]
    Durability(String),
    #[error("the writer thread stopped unexpectedly")]
    WriterStopped,
}

/// State shared by the handles and the writer thread.
pub(super) struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    health: AtomicU8,
    /// Every operation with a sequence number up to this one is durable.
    committed: AtomicU64,
    /// The writer has stopped: nothing more becomes durable.
    stopped: AtomicBool,
    /// Tasks waiting for a write to be durable, with its sequence number.
    /// The writer wakes just the ones its group covers, so a group wakes
    /// its own writers and nobody else.
    waiters: Mutex<Vec<(u64, Waker)>>,
    /// The store, for reading generation records; `None` in memory and once closed.
    db: Mutex<Option<Arc<Database>>>,
    pub(super) commits: AtomicU64,
    pub(super) persisted: AtomicU64,
    pub(super) settled: AtomicU64,
    pub(super) replayed: AtomicU64,
    pub(super) checkpoints: AtomicU64,
}

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const FAILED: u8 = 2;

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    /// The sequence number the next queued operation gets.
    next_seq: u64,
    /// No more operations are taken; the writer commits what is queued and stops.
    closed: bool,
    /// The writer waits on [`Shared::wake`]: the next operation must wake it.
    /// (A notification nobody waits for still costs a system call.)
    writer_waits: bool,
}

/// A write for the store. Settings are [`KeySettings`] as JSON.
#[derive(Debug)]
pub(super) enum Op {
    /// `credits` (if not zero) are its first purchase, made at `at_us`.
    Create {
        key: Arc<str>,
        settings: Vec<u8>,
        credits: Picodollars,
        at_us: i64,
        expires_us: Option<i64>,
    },
    /// A purchase.
    AddCredits {
        key: Arc<str>,
        amount: Picodollars,
        at_us: i64,
        expires_us: Option<i64>,
    },
    /// `draws`: what the charge took from each purchase, by index.
    Settle {
        key: Arc<str>,
        id: Arc<str>,
        charged: Picodollars,
        uncollected: Picodollars,
        record: Vec<u8>,
        draws: Vec<(u32, Picodollars)>,
    },
    Settings {
        key: Arc<str>,
        settings: Vec<u8>,
    },
}

/// What the writer publishes when it fails or stops (what is durable is
/// [`Shared::committed`], and its waiters are woken one by one).
#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    pub(super) failure: Option<StoreFailure>,
    /// The writer has stopped and closed the file.
    pub(super) stopped: bool,
}

impl Shared {
    pub(super) fn new(next_seq: u64) -> Arc<Shared> {
        Arc::new(Shared {
            queue: Mutex::new(Queue {
                next_seq,
                ..Queue::default()
            }),
            wake: Condvar::new(),
            health: AtomicU8::new(OPEN),
            committed: AtomicU64::new(next_seq - 1),
            stopped: AtomicBool::new(false),
            waiters: Mutex::new(Vec::new()),
            db: Mutex::new(None),
            commits: AtomicU64::new(0),
            persisted: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
        })
    }

    /// Takes no more operations; the writer drains the queue and stops.
    pub(super) fn close_queue(&self) {
        lock(&self.queue).closed = true;
        self.wake.notify_one();
    }

    /// Publishes that every operation up to `seq` is durable and wakes the
    /// tasks waiting for one of them (and only those).
    fn publish(&self, seq: u64) {
        self.committed.store(seq, Ordering::Release);
        let mut waiters = lock(&self.waiters);
        let mut at = 0;
        while at < waiters.len() {
            if waiters[at].0 <= seq {
                waiters.swap_remove(at).1.wake();
            } else {
                at += 1;
            }
        }
    }

    /// Wakes every waiting task, after a failure or once the writer stopped
    /// (each then sees why it will not be durable).
    fn wake_all(&self) {
        for (_, waker) in lock(&self.waiters).drain(..) {
            waker.wake();
        }
    }

    /// The stored generation `id`, read from the file; `None` if it is not
    /// there (or the file is closed). A row that cannot be read is an error.
    pub(super) fn stored_generation(&self, id: &str) -> Result<Option<Generation>, StoreFailure> {
        let Some(db) = lock(&self.db).clone() else {
            return Ok(None);
        };
        guard_read(id, || read_generation(&db, id))
    }
}

fn read_generation(db: &Database, id: &str) -> Result<Option<Generation>, StoreFailure> {
    let txn = db.begin_read().map_err(redb_failure("begin a read transaction"))?;
    let table = match txn.open_table(GENERATIONS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(redb_failure("open the generations table")(e)),
    };
    let Some(row) = table.get(id.as_bytes()).map_err(redb_failure("read a generation"))? else {
        return Ok(None);
    };
    let damaged = |cause| StoreFailure::Damaged {
        key: id.to_string(),
        cause,
    };
    let row = row.value();
    let decoded = codec::decode_generation(id.as_bytes(), row).map_err(damaged)?;
    let record: GenerationRecord =
        serde_json::from_slice(decoded.record).map_err(|e| damaged(DecodeError::Json(e.to_string())))?;
    Ok(Some(Generation {
        record,
        charged: decoded.charged,
        uncollected: decoded.uncollected,
        seq: 0,
    }))
}

/// Runs a read of the store, turning a panic inside redb into a failure.
fn guard_read<T>(key: &str, read: impl FnOnce() -> Result<T, StoreFailure>) -> Result<T, StoreFailure> {
    catch_unwind(AssertUnwindSafe(read)).unwrap_or_else(|payload| {
        Err(StoreFailure::Damaged {
            key: key.to_string(),
            cause: DecodeError::Json(format!("the store panicked reading it: {}", panic_text(&*payload))),
        })
    })
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

/// The write-ahead log of the ledger at `path`.
pub fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push(".wal");
    PathBuf::from(wal)
}

/// What a ledger file holds, as [`Ledger::check`] finds it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Accounts by key: (credits, stored spent, sum of its generations' charges, generations).
    pub accounts: Vec<AccountCheck>,
    /// Generations stored.
    pub generations: u64,
    /// Log records replayed on top of the file (from a run that did not close cleanly).
    pub replayed: usize,
    /// Everything that does not add up; empty for a sound ledger.
    pub problems: Vec<String>,
}

/// One account as [`Ledger::check`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountCheck {
    pub key: String,
    pub label: String,
    pub credits: Picodollars,
    /// The spent the account row holds.
    pub spent: Picodollars,
    /// The sum of the charges of its settled generations.
    pub charged: Picodollars,
    pub generations: u64,
}

/// Opened and recovered: the file, its log and the accounts.
struct Opened {
    db: Database,
    /// Every generation id the file holds.
    stored: Bloom,
    wal: Wal,
    applied: u64,
    accounts: HashMap<Arc<str>, Arc<Account>>,
    report: CheckReport,
}

/// How thoroughly [`open_store`] reads the generations.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// Rows checked by their checksums and summed per account.
    Open,
    /// Also every record's JSON parsed and held to its row.
    Check,
}

/// Creates a new, empty ledger at `path`, atomically: the file is written
/// in full beside its place, made durable and renamed into place, so a kill
/// at any moment leaves either no ledger or a complete empty one. Then its
/// log, the same way.
fn create_new(path: &Path) -> Result<(), LedgerError> {
    let io = |during: &'static str| {
        move |source: std::io::Error| LedgerError::Io {
            path: path.to_path_buf(),
            during,
            source,
        }
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("remove an unfinished new ledger beside")(e)),
    }
    {
        let db = Database::create(&tmp).map_err(|e| LedgerError::Open {
            path: path.to_path_buf(),
            during: "create a new ledger",
            source: Box::new(e.into()),
        })?;
        let txn = db.begin_write().map_err(open_failure(path, "create the tables"))?;
        {
            let mut meta = txn.open_table(META).map_err(open_failure(path, "create the tables"))?;
            for (name, value) in [
                (META_FORMAT, FORMAT),
                (META_APPLIED, 0),
                (META_WAL_EPOCH, 1),
                (META_CLEAN, 1),
            ] {
                meta.insert(name, value)
                    .map_err(open_failure(path, "create the tables"))?;
            }
            txn.open_table(ACCOUNTS)
                .map_err(open_failure(path, "create the tables"))?;
            txn.open_table(GENERATIONS)
                .map_err(open_failure(path, "create the tables"))?;
        }
        txn.commit().map_err(open_failure(path, "create the tables"))?;
        db.close().map_err(open_failure(path, "close a new ledger"))?;
    }
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io("sync a new ledger"))?;
    let wal = wal_path(path);
    // A log left by an unfinished creation is replaced; no ledger relied on it.
    Wal::create(&wal, 1).map_err(|source| LedgerError::Wal { source })?;
    std::fs::rename(&tmp, path).map_err(io("rename a new ledger into"))?;
    wal::sync_parent(path).map_err(io("sync the directory of"))?;
    Ok(())
}

fn open_failure<'a, E: Into<redb::Error>>(path: &'a Path, during: &'static str) -> impl FnOnce(E) -> LedgerError + 'a {
    move |e| LedgerError::Open {
        path: path.to_path_buf(),
        during,
        source: Box::new(e.into()),
    }
}

fn damaged(path: &Path, what: impl Into<String>) -> LedgerError {
    LedgerError::Damaged {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// Runs `f`, turning a panic inside redb into [`LedgerError::Damaged`].
fn guarded<T>(path: &Path, during: &str, f: impl FnOnce() -> Result<T, LedgerError>) -> Result<T, LedgerError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(damaged(
            path,
            format!("redb panicked {during}: {}", panic_text(&*payload)),
        ))
    })
}

/// Opens the ledger at `path` (creating it if no file is there), checks it,
/// replays its log and checkpoints. Fails on anything that does not add up.
fn open_store(path: &Path, depth: Depth) -> Result<Opened, LedgerError> {
    let wal_file = wal_path(path);
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if wal_file.exists() && !is_unfinished_creation(path) {
                return Err(LedgerError::OrphanLog {
                    path: path.to_path_buf(),
                });
            }
            create_new(path)?;
        }
        Err(source) => {
            return Err(LedgerError::Io {
                path: path.to_path_buf(),
                during: "read the metadata of",
                source,
            });
        }
        Ok(meta) if !meta.is_file() => return Err(damaged(path, "it is not a regular file")),
        Ok(meta) if meta.len() == 0 => {
            return Err(LedgerError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(_) => {}
    }
    let db = guarded(path, "opening the file", || {
        Builder::new()
            .set_cache_size(CACHE_BYTES)
            .set_check_integrity_on_open(true)
            .open(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => LedgerError::InUse {
                    path: path.to_path_buf(),
                },
                redb::DatabaseError::Storage(redb::StorageError::Io(source))
                    if source.kind() != std::io::ErrorKind::InvalidData =>
                {
                    LedgerError::Io {
                        path: path.to_path_buf(),
                        during: "read",
                        source,
                    }
                }
                other => damaged(path, format!("redb cannot open it: {other}")),
            })
    })?;
    let meta = guarded(path, "reading the meta table", || read_meta(&db, path))?;
    let mut stored = Bloom::with_capacity(0);
    let mut report = guarded(path, "reading the accounts and generations", || {
        verify(&db, path, depth, &mut stored)
    })?;
    if depth == Depth::Open && !report.problems.is_empty() {
        return Err(LedgerError::Inconsistent {
            path: path.to_path_buf(),
            problems: std::mem::take(&mut report.problems),
        });
    }

    // The log: what was durable after the last checkpoint.
    let (mut wal, records, epoch) = if wal_file.exists() {
        let (wal, scan) = Wal::open(&wal_file, meta.applied + 1).map_err(|source| LedgerError::Wal { source })?;
        match scan.epoch {
            // The writer starts the log afresh (a later epoch) only once the
            // file holds all of it, so its records follow the file's.
            Some(epoch) if epoch >= meta.wal_epoch => (wal, scan.records, epoch),
            // A reset cut short: every record of the log is in the file already.
            Some(epoch) if epoch + 1 == meta.wal_epoch && scan.records.is_empty() => (wal, Vec::new(), meta.wal_epoch),
            None => (wal, Vec::new(), meta.wal_epoch),
            Some(epoch) => {
                return Err(LedgerError::LogMismatch {
                    path: path.to_path_buf(),
                    log_epoch: epoch,
                    expected: meta.wal_epoch,
                });
            }
        }
    } else if meta.clean {
        let wal = Wal::create(&wal_file, meta.wal_epoch).map_err(|source| LedgerError::Wal { source })?;
        (wal, Vec::new(), meta.wal_epoch)
    } else {
        return Err(LedgerError::MissingLog {
            path: path.to_path_buf(),
        });
    };
    let mut ops = Vec::with_capacity(records.len());
    for record in &records {
        let op = codec::decode_op(&record.op).map_err(|cause| {
            damaged(
                wal.path(),
                format!("log record {} is not an operation: {cause}", record.seq),
            )
        })?;
        ops.push(op);
    }
    for op in &ops {
        if let Op::Settle { id, .. } = op {
            stored.insert(id);
        }
    }
    let mut applied = meta.applied;
    if let Some(last) = records.last() {
        let failure = |f: StoreFailure| damaged(wal.path(), format!("cannot replay the log: {f}"));
        guarded(path, "replaying the log", || {
            apply(&db, &ops, last.seq, Durability::None).map_err(failure)
        })?;
        applied = last.seq;
        report.replayed = records.len();
    }
    // The file is durable with everything the log had; the log starts afresh.
    let next_epoch = epoch + 1;
    checkpoint(&db, applied, next_epoch, false).map_err(|cause| LedgerError::Failed { cause })?;
    wal.reset(next_epoch).map_err(|source| LedgerError::Io {
        path: wal.path().to_path_buf(),
        during: "reset the write-ahead log of",
        source,
    })?;
    let accounts = guarded(path, "reading the accounts", || read_accounts(&db, path))?;
    Ok(Opened {
        db,
        stored,
        wal,
        applied,
        accounts,
        report,
    })
}

/// A ledger file is renamed into place after its log is created: a log
/// beside a `.new` file and no ledger is a creation that was cut short.
fn is_unfinished_creation(path: &Path) -> bool {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    Path::new(&tmp).exists()
}

struct Meta {
    applied: u64,
    wal_epoch: u64,
    clean: bool,
}

fn read_meta(db: &Database, path: &Path) -> Result<Meta, LedgerError> {
    let txn = db
        .begin_read()
        .map_err(open_failure(path, "begin a read transaction"))?;
    let meta = match txn.open_table(META) {
        Ok(meta) => meta,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            return Err(damaged(
                path,
                "it has no `meta` table: it is not a gauntlet ledger, or one written before format 2",
            ));
        }
        Err(e) => return Err(damaged(path, format!("its `meta` table cannot be opened: {e}"))),
    };
    let get = |name: &[u8]| -> Result<u64, LedgerError> {
        let value = meta
            .get(name)
            .map_err(|e| damaged(path, format!("its `meta` table cannot be read: {e}")))?;
        value.map(|v| v.value()).ok_or_else(|| {
            damaged(
                path,
                format!("its `meta` table has no `{}`", String::from_utf8_lossy(name)),
            )
        })
    };
    let format = get(META_FORMAT)?;
    if format != FORMAT {
        return Err(damaged(
            path,
            format!(
                "it is a ledger of format {format}; this gauntlet reads format {FORMAT} only (format 3 dates each purchase of credits); keep the gauntlet that wrote it, or start a new ledger"
            ),
        ));
    }
    Ok(Meta {
        applied: get(META_APPLIED)?,
        wal_epoch: get(META_WAL_EPOCH)?,
        clean: get(META_CLEAN)? == 1,
    })
}

/// Reads every account and generation, checks each row's checksum and that
/// each account's spent is the sum of its generations' charges.
fn verify(db: &Database, path: &Path, depth: Depth, stored: &mut Bloom) -> Result<CheckReport, LedgerError> {
    let txn = db
        .begin_read()
        .map_err(open_failure(path, "begin a read transaction"))?;
    let mut report = CheckReport::default();
    let mut accounts: Vec<AccountCheck> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let table = txn
        .open_table(ACCOUNTS)
        .map_err(|e| damaged(path, format!("its `accounts` table cannot be opened: {e}")))?;
    let rows = table
        .iter()
        .map_err(|e| damaged(path, format!("its accounts cannot be read: {e}")))?;
    for row in rows {
        let (key, value) = row.map_err(|e| damaged(path, format!("its accounts cannot be read: {e}")))?;
        let key_bytes = key.value();
        let shown = String::from_utf8_lossy(key_bytes).into_owned();
        let codec::AccountRow {
            credits,
            spent,
            purchases,
            settings,
        } = match codec::decode_account(key_bytes, value.value()) {
            Ok(decoded) => decoded,
            Err(cause) => {
                report
                    .problems
                    .push(format!("the row of account `{shown}` is damaged: {cause}"));
                continue;
            }
        };
        let label = match serde_json::from_slice::<KeySettings>(settings) {
            Ok(settings) => settings.label,
            Err(e) => {
                report
                    .problems
                    .push(format!("the settings of account `{shown}` are not valid: {e}"));
                continue;
            }
        };
        check_purchases(&shown, credits, spent, &purchases, &mut report.problems);
        index.insert(shown.clone(), accounts.len());
        accounts.push(AccountCheck {
            key: shown,
            label,
            credits,
            spent,
            charged: Picodollars::ZERO,
            generations: 0,
        });
    }
    let table = txn
        .open_table(GENERATIONS)
        .map_err(|e| damaged(path, format!("its `generations` table cannot be opened: {e}")))?;
    let rows = table
        .iter()
        .map_err(|e| damaged(path, format!("its generations cannot be read: {e}")))?;
    for row in rows {
        let (id, value) = row.map_err(|e| damaged(path, format!("its generations cannot be read: {e}")))?;
        report.generations += 1;
        let id_bytes = id.value();
        let shown = String::from_utf8_lossy(id_bytes);
        stored.insert(&shown);
        let generation = match codec::decode_generation(id_bytes, value.value()) {
            Ok(generation) => generation,
            Err(cause) => {
                report
                    .problems
                    .push(format!("the row of generation `{shown}` is damaged: {cause}"));
                continue;
            }
        };
        if depth == Depth::Check {
            check_record(&shown, &generation, &mut report.problems);
        }
        match index.get(generation.key) {
            Some(&i) => {
                accounts[i].charged += generation.charged;
                accounts[i].generations += 1;
            }
            None => report.problems.push(format!(
                "generation `{shown}` charged key `{}`, which has no account",
                generation.key
            )),
        }
    }
    for account in &accounts {
        if account.spent != account.charged {
            report.problems.push(format!(
                "account `{}` says it spent {} but its {} generations charged {}",
                account.key, account.spent, account.generations, account.charged
            ));
        }
        if account.spent > account.credits {
            report.problems.push(format!(
                "account `{}` spent {} of {} in credits",
                account.key, account.spent, account.credits
            ));
        }
    }
    report.accounts = accounts;
    Ok(report)
}

/// The purchases of an account add up to its credits, and what charges
/// drew from them to no more than it spent (an overdraft is drawn from
/// none) and no more than each purchase.
fn check_purchases(
    key: &str,
    credits: Picodollars,
    spent: Picodollars,
    purchases: &[super::Purchase],
    problems: &mut Vec<String>,
) {
    let bought = purchases.iter().fold(Picodollars::ZERO, |sum, p| sum + p.amount);
    let used = purchases.iter().fold(Picodollars::ZERO, |sum, p| sum + p.used);
    if bought != credits {
        problems.push(format!(
            "account `{key}` has {credits} in credits but its {} purchases add up to {bought}",
            purchases.len()
        ));
    }
    if used > spent {
        problems.push(format!(
            "account `{key}` spent {spent} but drew {used} from its purchases"
        ));
    }
    for (i, p) in purchases.iter().enumerate() {
        if p.used < Picodollars::ZERO || p.used > p.amount || p.amount <= Picodollars::ZERO {
            problems.push(format!(
                "purchase {i} of account `{key}` is of {} but {} of it was used",
                p.amount, p.used
            ));
        }
    }
}

/// Holds a generation's record to its row.
fn check_record(id: &str, row: &codec::GenerationRow<'_>, problems: &mut Vec<String>) {
    match serde_json::from_slice::<GenerationRecord>(row.record) {
        Err(e) => problems.push(format!("the record of generation `{id}` is not valid: {e}")),
        Ok(record) => {
            if record.id != id || record.key != row.key {
                problems.push(format!(
                    "the record of generation `{id}` names generation `{}` of key `{}`",
                    record.id, record.key
                ));
            }
            if row.charged + row.uncollected != record.total_cost || row.charged < Picodollars::ZERO {
                problems.push(format!(
                    "generation `{id}` cost {} but {} was charged and {} left uncollected",
                    record.total_cost, row.charged, row.uncollected
                ));
            }
        }
    }
}

fn read_accounts(db: &Database, path: &Path) -> Result<HashMap<Arc<str>, Arc<Account>>, LedgerError> {
    let txn = db
        .begin_read()
        .map_err(open_failure(path, "begin a read transaction"))?;
    let table = txn
        .open_table(ACCOUNTS)
        .map_err(open_failure(path, "open the accounts table"))?;
    let mut accounts = HashMap::new();
    for row in table.iter().map_err(open_failure(path, "read the accounts"))? {
        let (key, value) = row.map_err(open_failure(path, "read the accounts"))?;
        let shown = String::from_utf8_lossy(key.value()).into_owned();
        let bad = |cause: DecodeError| damaged(path, format!("the row of account `{shown}` is damaged: {cause}"));
        let key_text = codec::text(key.value()).map_err(bad)?;
        let row = codec::decode_account(key.value(), value.value()).map_err(bad)?;
        let settings: KeySettings =
            serde_json::from_slice(row.settings).map_err(|e| bad(DecodeError::Json(e.to_string())))?;
        let key: Arc<str> = key_text.into();
        let money = Money {
            credits: row.credits,
            spent: row.spent,
            reserved: Picodollars::ZERO,
            purchases: row.purchases,
        };
        accounts.insert(Arc::clone(&key), Account::new(key, Arc::new(settings), money));
    }
    Ok(accounts)
}

/// Makes the file durable up to `applied`, recording the log's epoch and
/// whether the ledger was closed cleanly.
fn checkpoint(db: &Database, applied: u64, epoch: u64, clean: bool) -> Result<(), StoreFailure> {
    let mut txn = db.begin_write().map_err(redb_failure("begin a checkpoint"))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| StoreFailure::Durability(e.to_string()))?;
    {
        let mut meta = txn.open_table(META).map_err(redb_failure("open the meta table"))?;
        for (name, value) in [
            (META_APPLIED, applied),
            (META_WAL_EPOCH, epoch),
            (META_CLEAN, u64::from(clean)),
        ] {
            meta.insert(name, value).map_err(redb_failure("write the meta table"))?;
        }
    }
    txn.commit().map_err(redb_failure("commit a checkpoint"))
}

impl Ledger {
    /// Opens the ledger at `path`, or creates it if no file is there. The
    /// file is checked (every page by redb, every row by its checksum, every
    /// account's spent against its generations), its log is replayed and a
    /// checkpoint taken; then the writer thread starts. Anything that does
    /// not add up is an error naming the file; nothing is ever started
    /// afresh over an existing file.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let opened = open_store(path, Depth::Open)?;
        let db = Arc::new(opened.db);
        let shared = Shared::new(opened.applied + 1);
        *lock(&shared.db) = Some(Arc::clone(&db));
        let generations = Arc::new(Generations::durable(opened.stored));
        let (progress, durable) = watch::channel(Progress::default());
        Writer::spawn(db, opened.wal, opened.applied, &shared, &generations, progress)?;
        Ok(Ledger::with_state(opened.accounts, generations, shared, Some(durable)))
    }

    /// Checks the ledger at `path` offline, without changing it: a copy of
    /// the file and its log is opened and recovered as [`Ledger::open`]
    /// would, every record is also held to its row, and everything found is
    /// reported, problems included. An error only when the copy cannot be
    /// read at all.
    pub fn check(path: &Path) -> Result<CheckReport, LedgerError> {
        let io = |during: &'static str| {
            move |source: std::io::Error| LedgerError::Io {
                path: path.to_path_buf(),
                during,
                source,
            }
        };
        match std::fs::metadata(path) {
            Ok(meta) if meta.len() == 0 => {
                return Err(LedgerError::Empty {
                    path: path.to_path_buf(),
                });
            }
            Ok(_) => {}
            Err(source) => return Err(io("read")(source)),
        }
        static CHECKS: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "gauntlet-check-ledger-{}-{}",
            std::process::id(),
            CHECKS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(io("make a folder for a copy of"))?;
        let copy = dir.join("ledger.redb");
        let result = std::fs::copy(path, &copy)
            .map_err(io("copy"))
            .and_then(|_| match std::fs::copy(wal_path(path), wal_path(&copy)) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(io("copy the log of")(e)),
            })
            .and_then(|()| open_store(&copy, Depth::Check))
            .map(|opened| opened.report)
            .map_err(|e| e.with_path(path));
        let _ = std::fs::remove_dir_all(&dir);
        result
    }

    /// Stops taking writes and reservations (on every handle), commits what
    /// is queued, checkpoints and waits until the store is closed, so the
    /// file can be reopened. Returns the store's failure, if it failed.
    pub async fn close(self) -> Result<(), LedgerError> {
        let shared = &self.inner.shared;
        // Only an open ledger becomes closed; a failed one stays failed.
        let _ = shared
            .health
            .compare_exchange(OPEN, CLOSED, Ordering::AcqRel, Ordering::Acquire);
        shared.close_queue();
        let Some(durable) = &self.inner.durable else {
            return Ok(());
        };
        let mut durable = durable.clone();
        let failure = match durable.wait_for(|progress| progress.stopped).await {
            Ok(progress) => progress.failure.clone(),
            Err(_) => Some(StoreFailure::WriterStopped),
        };
        match failure {
            Some(cause) => Err(LedgerError::Failed { cause }),
            None => Ok(()),
        }
    }

    pub(super) fn check_health(&self) -> Result<(), LedgerError> {
        match self.inner.shared.health.load(Ordering::Acquire) {
            OPEN => Ok(()),
            CLOSED => Err(LedgerError::Closed),
            _ => Err(self.failure()),
        }
    }

    fn failure(&self) -> LedgerError {
        let cause = self
            .inner
            .durable
            .as_ref()
            .and_then(|durable| durable.borrow().failure.clone());
        LedgerError::Failed {
            cause: cause.unwrap_or(StoreFailure::WriterStopped),
        }
    }

    /// Queues a write for the store and returns its sequence number (0 and
    /// nothing queued for an in-memory ledger).
    pub(super) fn enqueue(&self, op: impl FnOnce() -> Op) -> Result<u64, LedgerError> {
        if self.inner.durable.is_none() {
            return Ok(0);
        }
        let shared = &self.inner.shared;
        let mut queue = lock(&shared.queue);
        if queue.closed {
            drop(queue);
            return Err(match shared.health.load(Ordering::Acquire) {
                FAILED => self.failure(),
                _ => LedgerError::Closed,
            });
        }
        let seq = queue.next_seq;
        queue.next_seq += 1;
        queue.ops.push(op());
        if queue.writer_waits {
            queue.writer_waits = false;
            shared.wake.notify_one();
        }
        Ok(seq)
    }

    /// Waits until the write `seq` is durable.
    pub(super) async fn wait_durable(&self, seq: u64) -> Result<(), LedgerError> {
        if self.inner.durable.is_none() {
            return Ok(());
        }
        let durable = Durable {
            shared: &self.inner.shared,
            seq,
        };
        match durable.await {
            Ok(()) => Ok(()),
            Err(()) => Err(self.failure()),
        }
    }
}

/// Ready once the write `seq` is durable (`Ok`), or once it never will be
/// because the store failed or stopped (`Err`; the cause is in the
/// progress the writer published).
struct Durable<'a> {
    shared: &'a Shared,
    seq: u64,
}

impl Durable<'_> {
    fn state(&self) -> Option<Result<(), ()>> {
        if self.shared.committed.load(Ordering::Acquire) >= self.seq {
            Some(Ok(()))
        } else if self.shared.health.load(Ordering::Acquire) == FAILED || self.shared.stopped.load(Ordering::Acquire) {
            Some(Err(()))
        } else {
            None
        }
    }
}

impl Future for Durable<'_> {
    type Output = Result<(), ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(done) = self.state() {
            return Poll::Ready(done);
        }
        // Looked at again under the waiters' lock, which the writer takes
        // after publishing: either this sees the news or the writer sees
        // this waker.
        let mut waiters = lock(&self.shared.waiters);
        if let Some(done) = self.state() {
            return Poll::Ready(done);
        }
        match waiters
            .iter_mut()
            .find(|(seq, waker)| *seq == self.seq && waker.will_wake(cx.waker()))
        {
            Some(_) => {}
            None => waiters.push((self.seq, cx.waker().clone())),
        }
        Poll::Pending
    }
}

/// The writer thread: owns the log. It makes each group durable in the log,
/// tells the waiters, and hands the group to the applier thread, which
/// applies it to the file and checkpoints; so a group's `fdatasync` never
/// waits for redb.
struct Writer {
    wal: Wal,
    shared: Arc<Shared>,
    progress: watch::Sender<Progress>,
    /// Stopped on purpose (queue closed and drained, or a write failed).
    clean: bool,
    /// The last sequence number written to the log.
    written: u64,
    /// Groups for the applier; `None` once it was told to stop.
    to_apply: Option<std::sync::mpsc::Sender<(Vec<Op>, u64)>>,
    applier: Option<std::thread::JoinHandle<()>>,
    /// What the applier has made durable in the file (its last checkpoint).
    checkpointed: Arc<AtomicU64>,
    /// The log's epoch, which the applier records at its checkpoints.
    epoch: Arc<AtomicU64>,
    /// The group being written, reused.
    group: Vec<u8>,
}

/// The applier thread: applies logged groups to the file without syncing,
/// and checkpoints (one synced commit) every [`CHECKPOINT_EVERY`] or
/// [`CHECKPOINT_OPS`] operations.
struct Applier {
    db: Arc<Database>,
    shared: Arc<Shared>,
    generations: Arc<Generations>,
    progress: watch::Sender<Progress>,
    groups: std::sync::mpsc::Receiver<(Vec<Op>, u64)>,
    checkpointed: Arc<AtomicU64>,
    epoch: Arc<AtomicU64>,
    applied: u64,
}

/// How long the applier gathers groups into one transaction.
const APPLY_EVERY: Duration = Duration::from_millis(50);

/// Operations after which the applier checkpoints even within [`CHECKPOINT_EVERY`].
const CHECKPOINT_OPS: u64 = 65_536;

impl Writer {
    /// Starts the writer and its applier on an opened store.
    fn spawn(
        db: Arc<Database>,
        wal: Wal,
        applied: u64,
        shared: &Arc<Shared>,
        generations: &Arc<Generations>,
        progress: watch::Sender<Progress>,
    ) -> Result<(), LedgerError> {
        let (to_apply, groups) = std::sync::mpsc::channel();
        let checkpointed = Arc::new(AtomicU64::new(applied));
        let epoch = Arc::new(AtomicU64::new(wal.epoch()));
        let mut applier = Applier {
            db,
            shared: Arc::clone(shared),
            generations: Arc::clone(generations),
            progress: progress.clone(),
            groups,
            checkpointed: Arc::clone(&checkpointed),
            epoch: Arc::clone(&epoch),
            applied,
        };
        let applier = std::thread::Builder::new()
            .name("ledger-applier".into())
            .spawn(move || applier.run())
            .map_err(|source| LedgerError::Spawn { source })?;
        let mut writer = Writer {
            wal,
            shared: Arc::clone(shared),
            progress,
            clean: false,
            written: applied,
            to_apply: Some(to_apply),
            applier: Some(applier),
            checkpointed,
            epoch,
            group: Vec::new(),
        };
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run())
            .map_err(|source| LedgerError::Spawn { source })?;
        Ok(())
    }

    fn run(&mut self) {
        while let Some((batch, last_seq)) = self.next_batch() {
            if let Err(failure) = self.write(batch, last_seq) {
                fail(&self.shared, &self.progress, failure);
                break;
            }
        }
        // The applier applies what it was given, checkpoints and stops.
        self.to_apply.take();
        if let Some(applier) = self.applier.take()
            && applier.join().is_err()
        {
            fail(&self.shared, &self.progress, StoreFailure::WriterStopped);
        }
        // Everything is in the file: the log starts afresh.
        if self.checkpointed.load(Ordering::Acquire) == self.written
            && self.progress.borrow().failure.is_none()
            && let Err(source) = self.wal.reset(self.wal.epoch() + 1)
        {
            let failure = StoreFailure::Log {
                path: self.wal.path().to_path_buf(),
                source: Arc::new(source),
            };
            fail(&self.shared, &self.progress, failure);
        }
        self.clean = true;
    }

    /// Makes a batch durable in the log, tells the waiters and hands it on.
    fn write(&mut self, batch: Vec<Op>, last_seq: u64) -> Result<(), StoreFailure> {
        let log_failure = |wal: &Wal, source: std::io::Error| StoreFailure::Log {
            path: wal.path().to_path_buf(),
            source: Arc::new(source),
        };
        // Once everything in the log is in a checkpoint, the log can start afresh.
        if self.wal.used() >= RESET_BYTES && self.checkpointed.load(Ordering::Acquire) == self.written {
            let next = self.wal.epoch() + 1;
            self.wal.reset(next).map_err(|e| log_failure(&self.wal, e))?;
            self.epoch.store(next, Ordering::Release);
        }
        let first = last_seq + 1 - batch.len() as u64;
        self.group.clear();
        let epoch = self.wal.epoch();
        for (seq, op) in (first..).zip(&batch) {
            wal::push_record(&mut self.group, epoch, first, seq, |out| codec::encode_op(op, out));
        }
        self.wal.append(&self.group).map_err(|e| log_failure(&self.wal, e))?;
        self.written = last_seq;
        self.shared.commits.fetch_add(1, Ordering::Relaxed);
        self.shared.persisted.fetch_add(batch.len() as u64, Ordering::Relaxed);
        self.shared.publish(last_seq);
        match &self.to_apply {
            Some(to_apply) if to_apply.send((batch, last_seq)).is_ok() => Ok(()),
            // The applier stopped: it failed, and said why.
            _ => Err(self
                .progress
                .borrow()
                .failure
                .clone()
                .unwrap_or(StoreFailure::WriterStopped)),
        }
    }

    /// The next batch and the sequence number of its last operation, or
    /// `None` once the queue is closed and empty.
    fn next_batch(&self) -> Option<(Vec<Op>, u64)> {
        let mut queue = lock(&self.shared.queue);
        while queue.ops.is_empty() {
            if queue.closed {
                return None;
            }
            queue.writer_waits = true;
            queue = self.shared.wake.wait(queue).unwrap_or_else(PoisonError::into_inner);
        }
        let batch = if queue.ops.len() <= MAX_BATCH {
            std::mem::take(&mut queue.ops)
        } else {
            queue.ops.drain(..MAX_BATCH).collect()
        };
        let last_seq = queue.next_seq - 1 - queue.ops.len() as u64;
        Some((batch, last_seq))
    }
}

impl Applier {
    fn run(&mut self) {
        let mut last_checkpoint = Instant::now();
        let mut since = 0u64;
        let result = loop {
            let (mut ops, mut last) = match self.groups.recv_timeout(CHECKPOINT_EVERY) {
                Ok(group) => group,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if since > 0
                        && let Err(failure) = self.checkpoint(false)
                    {
                        break Err(failure);
                    }
                    since = 0;
                    last_checkpoint = Instant::now();
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break Ok(()),
            };
            // Whatever else comes within APPLY_EVERY goes into the same
            // transaction: fewer, larger transactions write far fewer pages.
            // The applier sleeps meanwhile rather than waiting on the
            // channel, so a group sent to it wakes nobody.
            std::thread::sleep(APPLY_EVERY);
            while let Ok((more, more_last)) = self.groups.try_recv() {
                ops.extend(more);
                last = more_last;
            }
            if let Err(failure) = apply(&self.db, &ops, last, Durability::None) {
                break Err(failure);
            }
            self.applied = last;
            self.generations.applied(&ops);
            since += ops.len() as u64;
            if since >= CHECKPOINT_OPS || last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                if let Err(failure) = self.checkpoint(false) {
                    break Err(failure);
                }
                self.shared.checkpoints.fetch_add(1, Ordering::Relaxed);
                since = 0;
                last_checkpoint = Instant::now();
            }
        };
        let result = result.and_then(|()| self.checkpoint(true));
        if let Err(failure) = result {
            fail(&self.shared, &self.progress, failure);
        }
    }

    fn checkpoint(&self, clean: bool) -> Result<(), StoreFailure> {
        checkpoint(&self.db, self.applied, self.epoch.load(Ordering::Acquire), clean)?;
        self.checkpointed.store(self.applied, Ordering::Release);
        Ok(())
    }
}

/// Records the cause and marks the ledger failed before any waiter is
/// woken, so that a waiter told of the failure can no longer reserve and
/// anyone refused sees the cause.
fn fail(shared: &Shared, progress: &watch::Sender<Progress>, failure: StoreFailure) {
    progress.send_modify(|progress| {
        progress.failure.get_or_insert(failure);
        shared.health.store(FAILED, Ordering::Release);
    });
    shared.wake_all();
    shared.close_queue();
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.to_apply.take();
        if let Some(applier) = self.applier.take() {
            let _ = applier.join();
        }
        lock(&self.shared.db).take();
        if !self.clean {
            fail(&self.shared, &self.progress, StoreFailure::WriterStopped);
        }
        self.progress.send_modify(|progress| progress.stopped = true);
        self.shared.stopped.store(true, Ordering::Release);
        self.shared.wake_all();
    }
}

fn redb_failure<E: Into<redb::Error>>(during: &'static str) -> impl FnOnce(E) -> StoreFailure {
    move |error| StoreFailure::Redb {
        during,
        source: Arc::new(error.into()),
    }
}

/// What a batch changes of one account.
#[derive(Default)]
struct AccountChange<'a> {
    credits: Picodollars,
    spent: Picodollars,
    /// Purchases made, in order.
    purchases: Vec<super::Purchase>,
    /// What charges drew from the purchases, by index.
    draws: Vec<(u32, Picodollars)>,
    /// The last settings the batch sets.
    settings: Option<&'a [u8]>,
}

/// Applies a batch in one write transaction, recording `last_seq` as applied.
fn apply(db: &Database, batch: &[Op], last_seq: u64, durability: Durability) -> Result<(), StoreFailure> {
    let mut txn = db.begin_write().map_err(redb_failure("begin a write transaction"))?;
    txn.set_durability(durability)
        .map_err(|e| StoreFailure::Durability(e.to_string()))?;
    {
        let mut accounts = txn
            .open_table(ACCOUNTS)
            .map_err(redb_failure("open the accounts table"))?;
        let mut generations = txn
            .open_table(GENERATIONS)
            .map_err(redb_failure("open the generations table"))?;
        // Creations go first; credits and charges add up per account, and
        // the last settings of an account win. Every operation on an account
        // was queued after the account's creation.
        let mut changes: HashMap<&Arc<str>, AccountChange<'_>> = HashMap::new();
        for op in batch {
            match op {
                Op::Create {
                    key,
                    settings,
                    credits,
                    at_us,
                    expires_us,
                } => {
                    let exists = accounts
                        .get(key.as_bytes())
                        .map_err(redb_failure("read an account"))?
                        .is_some();
                    if !exists {
                        let mut money = Money::default();
                        money.buy(*credits, *at_us, *expires_us);
                        let row =
                            codec::encode_account(key, money.credits, Picodollars::ZERO, &money.purchases, settings);
                        accounts
                            .insert(key.as_bytes(), row.as_slice())
                            .map_err(redb_failure("write an account"))?;
                    }
                }
                Op::AddCredits {
                    key,
                    amount,
                    at_us,
                    expires_us,
                } => {
                    let change = changes.entry(key).or_default();
                    change.credits += *amount;
                    if *amount > Picodollars::ZERO {
                        change.purchases.push(super::Purchase {
                            at_us: *at_us,
                            expires_us: *expires_us,
                            amount: *amount,
                            used: Picodollars::ZERO,
                        });
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
                    // A settle replayed from the log onto a file that has it
                    // already is not charged twice.
                    let stored = generations
                        .get(id.as_bytes())
                        .map_err(redb_failure("read a generation"))?
                        .is_some();
                    if stored {
                        continue;
                    }
                    let row = codec::encode_generation(id, key, *charged, *uncollected, record);
                    generations
                        .insert(id.as_bytes(), row.as_slice())
                        .map_err(redb_failure("write a generation"))?;
                    if *charged > Picodollars::ZERO {
                        let change = changes.entry(key).or_default();
                        change.spent += *charged;
                        change.draws.extend_from_slice(draws);
                    }
                }
                Op::Settings { key, settings } => changes.entry(key).or_default().settings = Some(settings),
            }
        }
        for (key, change) in changes {
            let row = accounts
                .get(key.as_bytes())
                .map_err(redb_failure("read an account"))?
                .map(|row| {
                    codec::decode_account(key.as_bytes(), row.value())
                        .map(|row| (row.credits, row.spent, row.purchases, row.settings.to_vec()))
                        .map_err(|cause| StoreFailure::Damaged {
                            key: key.to_string(),
                            cause,
                        })
                })
                .transpose()?;
            let Some((old_credits, old_spent, mut purchases, old_settings)) = row else {
                return Err(StoreFailure::MissingAccount { key: Arc::clone(key) });
            };
            // Purchases first: a charge in the batch may draw from one made in it.
            purchases.extend(change.purchases);
            super::account::apply_draws(&mut purchases, &change.draws).map_err(|index| StoreFailure::NoPurchase {
                key: Arc::clone(key),
                index,
            })?;
            let settings = change.settings.unwrap_or(&old_settings);
            let row = codec::encode_account(
                key,
                old_credits + change.credits,
                old_spent + change.spent,
                &purchases,
                settings,
            );
            accounts
                .insert(key.as_bytes(), row.as_slice())
                .map_err(redb_failure("write an account"))?;
        }
        let mut meta = txn.open_table(META).map_err(redb_failure("open the meta table"))?;
        meta.insert(META_APPLIED, last_seq)
            .map_err(redb_failure("write the meta table"))?;
    }
    txn.commit().map_err(redb_failure("commit"))
}

impl LedgerError {
    /// The same error, naming `path` as the ledger (for checks run on a copy).
    fn with_path(self, path: &Path) -> LedgerError {
        match self {
            LedgerError::Damaged { what, .. } => LedgerError::Damaged {
                path: path.to_path_buf(),
                what,
            },
            LedgerError::Inconsistent { problems, .. } => LedgerError::Inconsistent {
                path: path.to_path_buf(),
                problems,
            },
            LedgerError::MissingLog { .. } => LedgerError::MissingLog {
                path: path.to_path_buf(),
            },
            LedgerError::LogMismatch {
                log_epoch, expected, ..
            } => LedgerError::LogMismatch {
                path: path.to_path_buf(),
                log_epoch,
                expected,
            },
            other => other,
        }
    }
}

/// Rewrites an account row of a closed ledger with a valid checksum: a
/// change the checksums cannot see, for the tests of the cross-checks.
#[cfg(test)]
pub(super) fn rewrite_account_for_test(
    path: &Path,
    key: &str,
    change: impl FnOnce(Picodollars, Picodollars) -> (Picodollars, Picodollars),
) {
    let db = Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut accounts = txn.open_table(ACCOUNTS).unwrap();
        let row = accounts.get(key.as_bytes()).unwrap().unwrap().value().to_vec();
        let old = codec::decode_account(key.as_bytes(), &row).unwrap();
        let (credits, spent) = change(old.credits, old.spent);
        let row = codec::encode_account(key, credits, spent, &old.purchases, old.settings);
        accounts.insert(key.as_bytes(), row.as_slice()).unwrap();
    }
    txn.commit().unwrap();
}

/// Marks a closed ledger as of another format.
#[cfg(test)]
pub(super) fn set_format_for_test(path: &Path, format: u64) {
    let db = Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(META).unwrap();
        meta.insert(META_FORMAT, format).unwrap();
    }
    txn.commit().unwrap();
}

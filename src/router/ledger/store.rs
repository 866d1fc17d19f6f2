//! The durable store: the redb file, the write queue and the group-committing writer thread.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::watch;

use super::account::{Account, Money};
use super::generations::{Generation, Generations};
use super::{GenerationRecord, Ledger, LedgerError, lock};
use crate::router::pricing::Picodollars;

/// The most operations the writer puts in one transaction.
pub const MAX_BATCH: usize = 1024;

/// Key → (credits, spent, label), money in picodollars.
const ACCOUNTS: TableDefinition<&str, (i64, i64, &str)> = TableDefinition::new("accounts");
/// Generation id → (charged, uncollected, JSON of the [`GenerationRecord`]).
const GENERATIONS: TableDefinition<&str, (i64, i64, &[u8])> = TableDefinition::new("generations");

/// Why the store stopped taking writes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreFailure {
    #[error("cannot {during}: {source}")]
    Redb {
        during: &'static str,
        #[source]
        source: Arc<redb::Error>,
    },
    #[error("account `{key}` is missing from the store")]
    MissingAccount { key: Arc<str> },
    #[error("the writer thread stopped unexpectedly")]
    WriterStopped,
}

/// State shared by the handles and the writer thread.
pub(super) struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    health: AtomicU8,
    pub(super) commits: AtomicU64,
    pub(super) persisted: AtomicU64,
    pub(super) settled: AtomicU64,
    pub(super) replayed: AtomicU64,
}

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
const FAILED: u8 = 2;

#[derive(Default)]
struct Queue {
    ops: Vec<Op>,
    /// The sequence number the next queued operation gets (the first is 1).
    next_seq: u64,
    /// No more operations are taken; the writer commits what is queued and stops.
    closed: bool,
}

/// A write for the store.
pub(super) enum Op {
    Create {
        key: Arc<str>,
        label: Arc<str>,
        credits: Picodollars,
    },
    AddCredits {
        key: Arc<str>,
        amount: Picodollars,
    },
    Settle {
        key: Arc<str>,
        id: Arc<str>,
        charged: Picodollars,
        uncollected: Picodollars,
        record: Vec<u8>,
    },
}

/// What the writer publishes after each commit.
#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    /// Every operation with a sequence number up to this one is on disk.
    committed: u64,
    failure: Option<StoreFailure>,
    /// The writer has stopped and closed the file.
    stopped: bool,
}

impl Shared {
    pub(super) fn new() -> Arc<Shared> {
        Arc::new(Shared {
            queue: Mutex::new(Queue {
                next_seq: 1,
                ..Queue::default()
            }),
            wake: Condvar::new(),
            health: AtomicU8::new(OPEN),
            commits: AtomicU64::new(0),
            persisted: AtomicU64::new(0),
            settled: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
        })
    }

    /// Takes no more operations; the writer drains the queue and stops.
    pub(super) fn close_queue(&self) {
        lock(&self.queue).closed = true;
        self.wake.notify_one();
    }
}

impl Ledger {
    /// Opens (or creates) the redb file at `path`, reads every account and
    /// generation record into memory and starts the writer thread.
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let failed = |during: &'static str| {
            move |source: redb::Error| LedgerError::Open {
                path: path.to_path_buf(),
                during,
                source: Box::new(source),
            }
        };
        let db = Database::create(path).map_err(|e| failed("open the file")(e.into()))?;
        let mut accounts = HashMap::new();
        let mut generations = Generations::default();
        // A write transaction creates the tables on first use.
        let txn = db.begin_write().map_err(|e| failed("begin a transaction")(e.into()))?;
        {
            let table = txn
                .open_table(ACCOUNTS)
                .map_err(|e| failed("open the accounts table")(e.into()))?;
            for row in table.iter().map_err(|e| failed("read the accounts")(e.into()))? {
                let (key, value) = row.map_err(|e| failed("read the accounts")(e.into()))?;
                let (credits, spent, label) = value.value();
                let key: Arc<str> = key.value().into();
                let money = Money {
                    credits: Picodollars(credits),
                    spent: Picodollars(spent),
                    reserved: Picodollars::ZERO,
                };
                accounts.insert(Arc::clone(&key), Account::new(key, label.into(), money));
            }
            let table = txn
                .open_table(GENERATIONS)
                .map_err(|e| failed("open the generations table")(e.into()))?;
            for row in table.iter().map_err(|e| failed("read the generations")(e.into()))? {
                let (id, value) = row.map_err(|e| failed("read the generations")(e.into()))?;
                let (charged, uncollected, json) = value.value();
                let mut record: GenerationRecord =
                    serde_json::from_slice(json).map_err(|source| LedgerError::Corrupt {
                        path: path.to_path_buf(),
                        id: id.value().to_string(),
                        source,
                    })?;
                // The table's key is the id settling is idempotent by.
                if record.id != id.value() {
                    record.id = id.value().to_string();
                }
                let generation = Generation {
                    record,
                    charged: Picodollars(charged),
                    uncollected: Picodollars(uncollected),
                    seq: 0,
                };
                generations.load(Box::new(generation));
            }
        }
        txn.commit().map_err(|e| failed("commit the tables")(e.into()))?;

        let shared = Shared::new();
        let (progress, durable) = watch::channel(Progress::default());
        let mut writer = Writer {
            db: Some(db),
            shared: Arc::clone(&shared),
            progress,
            clean: false,
        };
        std::thread::Builder::new()
            .name("ledger-writer".into())
            .spawn(move || writer.run())
            .map_err(|source| LedgerError::Spawn { source })?;
        Ok(Ledger::with_state(accounts, generations, shared, Some(durable)))
    }

    /// Stops taking writes and reservations (on every handle), commits what
    /// is queued and waits until the store is closed, so the file can be
    /// reopened. Returns the store's failure, if it failed.
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
        if queue.ops.len() == 1 {
            // The writer waits only on an empty queue.
            shared.wake.notify_one();
        }
        Ok(seq)
    }

    /// Waits until the write `seq` is committed.
    pub(super) async fn wait_durable(&self, seq: u64) -> Result<(), LedgerError> {
        let Some(durable) = &self.inner.durable else {
            return Ok(());
        };
        let mut durable = durable.clone();
        let failure = match durable
            .wait_for(|progress| progress.committed >= seq || progress.failure.is_some() || progress.stopped)
            .await
        {
            Ok(progress) if progress.committed >= seq => None,
            Ok(progress) => Some(progress.failure.clone().unwrap_or(StoreFailure::WriterStopped)),
            Err(_) => Some(StoreFailure::WriterStopped),
        };
        match failure {
            Some(cause) => Err(LedgerError::Failed { cause }),
            None => Ok(()),
        }
    }
}

/// The writer thread: owns the database, commits the queue in batches.
struct Writer {
    /// `None` once closed, in `drop`.
    db: Option<Database>,
    shared: Arc<Shared>,
    progress: watch::Sender<Progress>,
    /// Stopped on purpose (queue closed and drained, or a commit failed).
    clean: bool,
}

impl Writer {
    fn run(&mut self) {
        while let Some((batch, last_seq)) = self.next_batch() {
            let Some(db) = &self.db else { return };
            match commit(db, &batch) {
                Ok(()) => {
                    self.shared.commits.fetch_add(1, Ordering::Relaxed);
                    self.shared.persisted.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.progress.send_modify(|progress| progress.committed = last_seq);
                }
                Err(failure) => {
                    self.fail(failure);
                    break;
                }
            }
        }
        self.clean = true;
    }

    /// The next batch and the sequence number of its last operation, or
    /// `None` once the queue is closed and empty.
    fn next_batch(&self) -> Option<(Vec<Op>, u64)> {
        let mut queue = lock(&self.shared.queue);
        while queue.ops.is_empty() {
            if queue.closed {
                return None;
            }
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

    /// Records the cause and marks the ledger failed before any waiter is
    /// woken, so that a waiter told of the failure can no longer reserve
    /// and anyone refused sees the cause.
    fn fail(&self, failure: StoreFailure) {
        self.progress.send_modify(|progress| {
            progress.failure.get_or_insert(failure);
            self.shared.health.store(FAILED, Ordering::Release);
        });
        lock(&self.shared.queue).closed = true;
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.db.take());
        if !self.clean {
            self.fail(StoreFailure::WriterStopped);
        }
        self.progress.send_modify(|progress| progress.stopped = true);
    }
}

fn redb_failure<E: Into<redb::Error>>(during: &'static str) -> impl FnOnce(E) -> StoreFailure {
    move |error| StoreFailure::Redb {
        during,
        source: Arc::new(error.into()),
    }
}

/// Applies a batch in one write transaction and commits it durably.
fn commit(db: &Database, batch: &[Op]) -> Result<(), StoreFailure> {
    let txn = db.begin_write().map_err(redb_failure("begin a write transaction"))?;
    {
        let mut accounts = txn
            .open_table(ACCOUNTS)
            .map_err(redb_failure("open the accounts table"))?;
        let mut generations = txn
            .open_table(GENERATIONS)
            .map_err(redb_failure("open the generations table"))?;
        // Creations go first; credits and charges add up per account. Every
        // operation on an account was queued after the account's creation.
        let mut deltas: HashMap<&Arc<str>, (Picodollars, Picodollars)> = HashMap::new();
        for op in batch {
            match op {
                Op::Create { key, label, credits } => {
                    let exists = accounts.get(&**key).map_err(redb_failure("read an account"))?.is_some();
                    if !exists {
                        accounts
                            .insert(&**key, (credits.0, 0, &**label))
                            .map_err(redb_failure("write an account"))?;
                    }
                }
                Op::AddCredits { key, amount } => deltas.entry(key).or_default().0 += *amount,
                Op::Settle {
                    key,
                    id,
                    charged,
                    uncollected,
                    record,
                } => {
                    generations
                        .insert(&**id, (charged.0, uncollected.0, record.as_slice()))
                        .map_err(redb_failure("write a generation"))?;
                    if *charged > Picodollars::ZERO {
                        deltas.entry(key).or_default().1 += *charged;
                    }
                }
            }
        }
        for (key, (credits, spent)) in deltas {
            let row = accounts
                .get(&**key)
                .map_err(redb_failure("read an account"))?
                .map(|row| {
                    let (credits, spent, label) = row.value();
                    (Picodollars(credits), Picodollars(spent), label.to_string())
                });
            let Some((old_credits, old_spent, label)) = row else {
                return Err(StoreFailure::MissingAccount { key: Arc::clone(key) });
            };
            accounts
                .insert(
                    &**key,
                    ((old_credits + credits).0, (old_spent + spent).0, label.as_str()),
                )
                .map_err(redb_failure("write an account"))?;
        }
    }
    txn.commit().map_err(redb_failure("commit"))
}

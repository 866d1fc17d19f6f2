//! Prepaid credits: per-key balances, reservations held while a request runs,
//! and settled charges that survive a `kill -9`.
//!
//! # Money flow
//!
//! Each account has `credits` (everything ever added), `spent` (settled
//! charges) and `reserved` (holds of requests in flight). Credits are
//! [`Purchase`]s, each dated by the [`Terms`]' clock (the router's, warped
//! or not) and, under terms with a credit expiry, expiring that long after
//! it was made (OpenRouter's credits "may expire after 12 months"). A charge
//! draws from the purchases not yet expired, oldest first; what an expired
//! purchase had left is `expired`, and
//! `available = credits − spent − reserved − expired`, never negative
//! (except under the deliberate, test-only [`Ledger::reserve_unguarded`],
//! whose overdraft is drawn from no purchase).
//! [`Ledger::reserve`] holds a request's worst-case cost before it is
//! forwarded and refuses (the router's 402) what `available` cannot cover, so
//! concurrent requests never overdraw. [`Ledger::settle`] charges the real cost
//! and releases the rest of the hold; a [`Reservation`] dropped without being
//! settled releases its hold, so a failed request is never charged. A charge
//! larger than its hold takes at most what the account still has and reports
//! the rest as uncollected. Settling is idempotent by generation id.
//!
//! # Durability
//!
//! [`Ledger::open`] keeps the ledger in a [redb] file (format [`FORMAT`])
//! with three tables: `meta`, `accounts` (key → credits, spent, the
//! purchases with what was drawn from each, and the key's [`KeySettings`]) and `generations` (generation id → charged, uncollected,
//! the key charged and the JSON of the [`GenerationRecord`]); every row
//! carries a CRC-32 of its key and value. Accounts are read into memory at
//! open; generation records are read from the file when asked for, behind a
//! bounded cache, so memory does not grow with the requests served.
//! Reservations are never written (a restart forgets requests in flight,
//! which were not charged).
//!
//! Writes (accounts, settings, credits, settled charges) are applied to
//! memory first, then queued for one writer thread. The writer takes
//! everything queued while it was busy (at most [`MAX_BATCH`] operations),
//! appends it to the write-ahead log beside the file (`<ledger>.wal`, see
//! `wal`) with one `write` and one `fdatasync`, and then publishes the
//! sequence number of the last operation and wakes the callers the group
//! holds (and nobody else): each caller waits for its own, so `settle` and
//! `add_credits` return only once their change is on disk, and a client told
//! a cost is never told about a charge that a crash could lose. Only then is
//! the group handed to the applier thread, which wakes every 50 ms to apply
//! what came in one redb transaction, without syncing it; every few seconds
//! (or 65,536 operations) it checkpoints: one synced redb commit, after which
//! the writer starts the log afresh. Opening replays the log's
//! records after the file's last checkpoint, so nothing acknowledged is lost
//! and nothing is applied twice (a generation the file has is not charged
//! again). Operations are logged in queue order, so a settle that is durable
//! implies the credits and account it relied on are durable too.
//!
//! Opening never starts afresh over an existing file. A new ledger is
//! created only where no file is, atomically (written beside its place and
//! renamed). An empty, foreign or damaged file, a log that does not belong to
//! the file, a row whose checksum fails, or an account whose spent is not the
//! sum of its generations' charges, or whose purchases do not add up to its
//! credits, is an error naming the file and what is wrong; so is a ledger
//! of another format (format 2 had no purchases). redb checks every page's checksum at open, and a panic inside redb
//! on a damaged file becomes an error too. [`Ledger::check`] (`gauntlet
//! router --check-ledger FILE`) does all of this on a copy and reports every
//! account and every problem.
//!
//! If a log write or a commit fails the ledger *fails*: the in-memory state
//! is not rolled back (it cannot know which way to roll). Every caller still
//! waiting gets [`LedgerError::Failed`], and every later `reserve`, `settle`,
//! `add_credits` or account change is refused with the same error, so the
//! router stops admitting paid requests. Reopening the file recovers the
//! truth from disk.
//!
//! Dropping the last [`Ledger`] handle lets the writer commit what is queued
//! and stop; [`Ledger::close`] does the same, checkpoints, and waits until
//! the file is closed. [`Ledger::in_memory`] has no store at all, for
//! benchmarks and tests: no writer, no queue, a settle that never waits, and
//! only the last 50,000 generation records kept.
//!
//! # Layout
//!
//! - `account`: accounts, their money, settings and reservations.
//! - `generations`: settled generations by id, bounded in memory.
//! - `store`: the redb file, the checks at open, the queue and the writer.
//! - `wal`: the write-ahead log.
//! - `codec`: rows and log records as bytes, with their checksums.

mod account;
mod bloom;
mod codec;
mod generations;
mod store;
#[cfg(test)]
mod tests;
mod wal;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use jiff::SignedDuration;

use super::clock::CalendarClock;
use super::pricing::Picodollars;
use account::Account;
pub use account::{KeySettings, Purchase, Reservation, StoredByok};
use generations::{Generation, Generations};
pub use store::{AccountCheck, CheckReport, FORMAT, MAX_BATCH, StoreFailure, wal_path};
use store::{Op, Progress, Shared};
pub use wal::WalError;

/// What can go wrong with the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("no account for key `{key}`")]
    UnknownAccount { key: String },
    #[error("an account for key `{key}` already exists")]
    AccountExists { key: String },
    #[error("key `{key}` needs {needed} but has {available} available")]
    Insufficient {
        key: String,
        needed: Picodollars,
        available: Picodollars,
    },
    #[error("amount {amount} for key `{key}` is negative")]
    NegativeAmount { key: String, amount: Picodollars },
    #[error("credits of key `{key}` would overflow")]
    Overflow { key: String },
    #[error("cannot open the ledger {}: cannot {during}: {source}", path.display())]
    Open {
        path: PathBuf,
        during: &'static str,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("cannot {during} the ledger {}: {source}", path.display())]
    Io {
        path: PathBuf,
        during: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the ledger {} is an empty file (0 bytes), not a ledger: a new ledger is created only where no file is; move the empty file away to start afresh, or restore the ledger from a backup",
        path.display()
    )]
    Empty { path: PathBuf },
    #[error("the ledger {} is damaged: {what}", path.display())]
    Damaged { path: PathBuf, what: String },
    #[error(
        "the ledger {} does not add up: {}; `gauntlet router --check-ledger {}` shows every account",
        path.display(),
        problems.join("; "),
        path.display()
    )]
    Inconsistent { path: PathBuf, problems: Vec<String> },
    #[error("the ledger {} is in use by another process", path.display())]
    InUse { path: PathBuf },
    #[error(
        "the ledger {} is missing but its write-ahead log {}.wal is there: the ledger was removed, so the charges it held are gone; restore it from a backup, or remove the log to start afresh",
        path.display(),
        path.display()
    )]
    OrphanLog { path: PathBuf },
    #[error(
        "the write-ahead log {}.wal of the ledger is missing, and the ledger was not closed cleanly: the charges since its last checkpoint were in the log",
        path.display()
    )]
    MissingLog { path: PathBuf },
    #[error(
        "the write-ahead log {}.wal is of epoch {log_epoch} but the ledger expects epoch {expected}: the ledger file was replaced or rolled back",
        path.display()
    )]
    LogMismatch {
        path: PathBuf,
        log_epoch: u64,
        expected: u64,
    },
    #[error("{source}")]
    Wal {
        #[source]
        source: wal::WalError,
    },
    #[error("cannot start the ledger writer thread: {source}")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode {what}: {source}")]
    Encode {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the ledger is closed")]
    Closed,
    #[error("the ledger store failed and refuses writes until reopened: {cause}")]
    Failed {
        #[source]
        cause: StoreFailure,
    },
}

/// One generation (one billed request), as `GET /api/v1/generation?id=`
/// shows it, with OpenRouter's field names. Money serialises as integer
/// picodollars; the API renders USD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRecord {
    /// The generation id (`X-Generation-Id`); settling is idempotent by it.
    pub id: String,
    /// The API key of the account charged; [`Ledger::settle`] sets it from the reservation.
    pub key: String,
    /// The model that served the request (its price applies).
    pub model: String,
    /// The model the client asked for (differs during a deprecation grace period).
    pub requested_model: String,
    pub provider_name: String,
    /// The cost of the request, BYOK fee included: the amount to charge.
    #[serde(with = "picos")]
    pub total_cost: Picodollars,
    /// The cost at the model's prices, before the BYOK fee.
    #[serde(with = "picos")]
    pub upstream_cost: Picodollars,
    pub is_byok: bool,
    pub tokens_prompt: u64,
    pub tokens_completion: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// From the request's arrival to its last byte.
    pub latency_ms: u64,
    /// From the first token to the last.
    pub generation_time_ms: u64,
    pub streamed: bool,
    pub finish_reason: Option<String>,
    /// Calendar time (the router's clock) of the request, microseconds since the Unix epoch.
    pub created_at_us: i64,
}

/// Integer picodollars for serde.
mod picos {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Picodollars;

    pub fn serialize<S: Serializer>(amount: &Picodollars, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(amount.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Picodollars, D::Error> {
        i64::deserialize(deserializer).map(Picodollars)
    }
}

/// An account's money at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    pub label: String,
    /// Everything ever added.
    pub credits: Picodollars,
    /// Settled charges.
    pub spent: Picodollars,
    /// Held by requests in flight.
    pub reserved: Picodollars,
    /// What expired purchases had left unspent: no longer available.
    pub expired: Picodollars,
    /// `credits − spent − reserved − expired`, never negative.
    pub available: Picodollars,
    /// The purchases the credits are, in the order they were made.
    pub purchases: Vec<Purchase>,
}

/// The terms the ledger applies: the clock that dates purchases and
/// charges, and how long a purchase lasts.
#[derive(Debug, Clone, Copy)]
pub struct Terms {
    pub clock: CalendarClock,
    /// A purchase expires this long after it was made; `None`: never
    /// (derouter.ai's terms).
    pub credit_expiry: Option<SignedDuration>,
}

impl Default for Terms {
    fn default() -> Self {
        Terms {
            clock: CalendarClock::real(),
            credit_expiry: None,
        }
    }
}

/// The outcome of [`Ledger::settle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settlement {
    /// What the account was charged.
    pub charged: Picodollars,
    /// The part of the cost the account could not cover.
    pub uncollected: Picodollars,
    /// This generation id had been settled before: this is that settlement,
    /// and nothing was charged now.
    pub replayed: bool,
}

/// Counters for benchmarks and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerStats {
    /// Write transactions committed by the writer (zero in memory).
    pub commits: u64,
    /// Operations (settles, credits, accounts) committed by the writer.
    pub persisted: u64,
    /// Settlements applied (replays not counted).
    pub settled: u64,
    /// Settles answered from an earlier settlement of the same generation id.
    pub replayed: u64,
}

/// The prepaid-credit ledger. Cheap to clone: every clone is a handle on the
/// same state.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

struct Inner {
    accounts: RwLock<HashMap<Arc<str>, Arc<Account>>>,
    generations: Arc<Generations>,
    shared: Arc<Shared>,
    /// The writer's failure and stop; `None` for an in-memory ledger.
    durable: Option<watch::Receiver<Progress>>,
    terms: RwLock<Terms>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(rwlock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rwlock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(rwlock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rwlock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.close_queue();
    }
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("durable", &self.inner.durable.is_some())
            .field("accounts", &read(&self.inner.accounts).len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl Ledger {
    /// A ledger kept in memory only, for benchmarks and tests: nothing
    /// survives the process.
    pub fn in_memory() -> Ledger {
        Ledger::with_state(HashMap::new(), Arc::new(Generations::default()), Shared::new(1), None)
    }

    fn with_state(
        accounts: HashMap<Arc<str>, Arc<Account>>,
        generations: Arc<Generations>,
        shared: Arc<Shared>,
        durable: Option<watch::Receiver<Progress>>,
    ) -> Ledger {
        let inner = Inner {
            accounts: RwLock::new(accounts),
            generations,
            shared,
            durable,
            terms: RwLock::new(Terms::default()),
        };
        Ledger { inner: Arc::new(inner) }
    }

    /// Applies `terms` from now on: the router sets its clock (warped or
    /// not) and its credit expiry here before it serves. A purchase keeps
    /// the expiry it was made with.
    pub fn set_terms(&self, terms: Terms) {
        *write(&self.inner.terms) = terms;
    }

    /// The terms in force.
    pub fn terms(&self) -> Terms {
        *read(&self.inner.terms)
    }

    /// The terms' calendar time now, in microseconds since the Unix epoch.
    pub(crate) fn now_us(&self) -> i64 {
        self.terms().clock.now().as_microsecond()
    }

    /// When a purchase made now is made and when it expires.
    pub(crate) fn purchase_dates(&self) -> (i64, Option<i64>) {
        let terms = self.terms();
        let now = terms.clock.now();
        let expires = terms
            .credit_expiry
            .map(|after| now.checked_add(after).map_or(i64::MAX, |t| t.as_microsecond()));
        (now.as_microsecond(), expires)
    }

    /// Whether settled charges are written to a store.
    pub fn is_durable(&self) -> bool {
        self.inner.durable.is_some()
    }

    /// Settles a reservation with the real cost, `record.total_cost`, and
    /// releases the rest of the hold; `record.key` is set to the reservation's
    /// key. Returns once the charge and the record are durable. An in-memory
    /// ledger has nothing to wait for: its settle never awaits, so the future
    /// is ready at its first poll.
    ///
    /// Idempotent by `record.id`: a generation id settled before (by this
    /// process or before a restart) is not charged again; the reservation is
    /// released and the first settlement comes back with `replayed` set. A
    /// cost larger than the hold is charged only up to what the account still
    /// has, never below zero, and the rest is reported as uncollected.
    pub async fn settle(&self, reservation: Reservation, record: GenerationRecord) -> Result<Settlement, LedgerError> {
        let cost = record.total_cost;
        self.check_amount(reservation.key(), cost)?;
        let mut record = record;
        if record.key != reservation.key() {
            record.key = reservation.key().to_string();
        }
        if !self.is_durable() {
            // The fast path: nothing is written, so nothing is awaited and
            // the future is ready at its first poll.
            return self
                .apply_settle(reservation, record, None)
                .map(|(settlement, _)| settlement);
        }
        let encoded = serde_json::to_vec(&record).map_err(|source| LedgerError::Encode {
            what: format!("generation `{}`", record.id),
            source,
        })?;
        let (settlement, seq) = self.apply_settle(reservation, record, Some(encoded))?;
        self.wait_durable(seq).await?;
        Ok(settlement)
    }

    /// Settles in memory and, for a durable ledger (`encoded` is then the
    /// record's JSON), queues the write. Returns the settlement and the
    /// sequence number of the write to wait for (0 in memory, where nothing
    /// is queued). Takes two short locks (the generations', then the
    /// account's) and never waits.
    fn apply_settle(
        &self,
        reservation: Reservation,
        record: GenerationRecord,
        encoded: Option<Vec<u8>>,
    ) -> Result<(Settlement, u64), LedgerError> {
        let mut reservation = reservation;
        let cost = record.total_cost;
        // Hashed and boxed before the lock, to keep it short.
        let hash = self.inner.generations.hash(&record.id);
        let mut generation = Box::new(Generation {
            record,
            charged: Picodollars::ZERO,
            uncollected: Picodollars::ZERO,
            seq: 0,
        });
        let mut generations = self.inner.generations.lock();
        let first = match generations.get(hash, &generation.record.id) {
            Some(first) => Some((first.settlement(true), first.seq)),
            None => self
                .inner
                .generations
                .settled_before(hash, &generation.record.id, &self.inner.shared)
                .map_err(|cause| LedgerError::Failed { cause })?
                .map(|settlement| (settlement, 0)),
        };
        if let Some(replay) = first {
            self.inner.shared.replayed.fetch_add(1, Ordering::Relaxed);
            drop(generations);
            // A replay releases its own hold: the first settlement charged already.
            drop(reservation);
            return Ok(replay);
        }
        let account = &reservation.account;
        let now_us = self.now_us();
        let mut money = lock(&account.money);
        money.reserved -= reservation.amount;
        let charged = if reservation.unguarded {
            cost
        } else {
            cost.min(money.available(now_us).max(Picodollars::ZERO))
        };
        let uncollected = cost - charged;
        let draws = money.plan_draw(charged, now_us);
        let queued = match encoded {
            None => Ok(0),
            Some(encoded) => self.enqueue(|| Op::Settle {
                key: Arc::clone(&account.key),
                id: generation.record.id.as_str().into(),
                charged,
                uncollected,
                record: encoded,
                draws: draws.clone(),
            }),
        };
        if queued.is_ok() {
            money.spent += charged;
            // The plan was made under this lock: every index is there.
            let _ = account::apply_draws(&mut money.purchases, &draws);
        }
        drop(money);
        // The hold is released whether the charge could be queued or not.
        reservation.live = false;
        generation.seq = queued?;
        generation.charged = charged;
        generation.uncollected = uncollected;
        let answer = (generation.settlement(false), generation.seq);
        self.inner.generations.settled(&generation.record.id);
        generations.insert(hash, generation);
        drop(generations);
        self.inner.shared.settled.fetch_add(1, Ordering::Relaxed);
        Ok(answer)
    }

    /// The record of a settled generation, or `None` if the id was never settled.
    pub fn generation(&self, id: &str) -> Option<GenerationRecord> {
        self.inner
            .generations
            .read(id, &self.inner.shared, |generation| generation.record.clone())
    }

    /// The settlement recorded for a generation id (`replayed` is false).
    pub fn settlement(&self, id: &str) -> Option<Settlement> {
        self.inner
            .generations
            .read(id, &self.inner.shared, |generation| generation.settlement(false))
    }

    /// Counters since this ledger was opened.
    pub fn stats(&self) -> LedgerStats {
        let shared = &self.inner.shared;
        LedgerStats {
            commits: shared.commits.load(Ordering::Relaxed),
            persisted: shared.persisted.load(Ordering::Relaxed),
            settled: shared.settled.load(Ordering::Relaxed),
            replayed: shared.replayed.load(Ordering::Relaxed),
        }
    }
}

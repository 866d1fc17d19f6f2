//! Prepaid credits: per-key balances, reservations held while a request runs,
//! and settled charges that survive a `kill -9`.
//!
//! # Money flow
//!
//! Each account has `credits` (everything ever added), `spent` (settled
//! charges) and `reserved` (holds of requests in flight);
//! `available = credits − spent − reserved` and is never negative (except
//! under the deliberate, test-only [`Ledger::reserve_unguarded`]).
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
//! [`Ledger::open`] keeps the ledger in a [redb] file with two tables:
//! `accounts` (key → credits, spent, label) and `generations` (generation id →
//! charged, uncollected, JSON of the [`GenerationRecord`]). Everything is read
//! into memory at open; from then on `reserve`, `balance` and `generation`
//! never touch the disk, and reservations are never written at all (a restart
//! forgets requests in flight, which were not charged).
//!
//! Writes (account creation, credits, settled charges) are applied to memory
//! first, then queued for one writer thread that owns the `redb::Database`.
//! The writer does group commit: it takes everything queued while its previous
//! commit ran (at most [`MAX_BATCH`] operations), applies it in one write
//! transaction, commits it with redb's default immediate durability (fsync),
//! and then publishes the sequence number of the last operation committed.
//! Each caller waits for its own sequence number, so `settle` and
//! `add_credits` return only once their change is on disk: a client told a
//! cost is never told about a charge that a crash could lose, and since the
//! `generations` table is written in the same transaction as the charge, a
//! replayed settle after a restart is recognised and charges nothing twice.
//! Operations are committed in queue order, so a settle that is durable
//! implies the credits and account it relied on are durable too.
//!
//! If a commit fails the ledger *fails*: redb documents that a failed commit
//! may or may not have reached the disk and that the database then refuses
//! further writes, so the in-memory state is not rolled back (it cannot know
//! which way to roll). Every caller still waiting gets [`LedgerError::Failed`],
//! and every later `reserve`, `settle`, `add_credits` or account creation is
//! refused with the same error, so the router stops admitting paid requests.
//! Reopening the file recovers the truth from disk.
//!
//! Dropping the last [`Ledger`] handle lets the writer commit what is queued
//! and stop; [`Ledger::close`] does the same and waits until the file is
//! closed. [`Ledger::in_memory`] has no store at all, for benchmarks: no
//! writer, no queue, no sequence numbers, and a settle that never waits.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use redb::{Database, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::pricing::Picodollars;

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
    #[error("cannot open the ledger store {}: cannot {during}: {source}", path.display())]
    Open {
        path: PathBuf,
        during: &'static str,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("the ledger store {} holds an unreadable generation `{id}`: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot start the ledger writer thread: {source}")]
    Spawn {
        #[source]
        source: std::io::Error,
    },
    #[error("cannot encode generation `{id}`: {source}")]
    Encode {
        id: String,
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
    /// `credits − spent − reserved`, never negative.
    pub available: Picodollars,
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

/// A hold on an account's available balance, from [`Ledger::reserve`]. Settle
/// it with [`Ledger::settle`]; dropping it instead releases the hold.
#[derive(Debug)]
pub struct Reservation {
    account: Arc<Account>,
    amount: Picodollars,
    live: bool,
    /// Made by [`Ledger::reserve_unguarded`]: its settlement may overdraw.
    unguarded: bool,
}

struct Inner {
    accounts: RwLock<HashMap<Arc<str>, Arc<Account>>>,
    generations: Generations,
    shared: Arc<Shared>,
    /// The writer's progress; `None` for an in-memory ledger.
    durable: Option<watch::Receiver<Progress>>,
}

#[derive(Debug)]
struct Account {
    key: Arc<str>,
    label: Arc<str>,
    money: Mutex<Money>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Money {
    credits: Picodollars,
    spent: Picodollars,
    reserved: Picodollars,
}

struct Generation {
    record: GenerationRecord,
    charged: Picodollars,
    uncollected: Picodollars,
    /// The write that persists it; durable once the writer has committed it.
    seq: u64,
}

impl Generation {
    fn settlement(&self, replayed: bool) -> Settlement {
        Settlement {
            charged: self.charged,
            uncollected: self.uncollected,
            replayed,
        }
    }
}

/// Settled generations by id. Every settle looks its id up and then adds it,
/// and the set only grows, so it is kept compact and cheap to grow: each id
/// is hashed once per settle, before the lock is taken (SipHash with a random
/// key, as `HashMap` does), and the table is keyed by that hash with the
/// generation boxed, so growing it moves 16 bytes a generation and never
/// re-hashes a string. The id is stored once, in the record.
#[derive(Default)]
struct Generations {
    hasher: RandomState,
    table: Mutex<GenerationTable>,
}

/// Generations by the hash of their id. Two ids with the same 64-bit hash
/// are told apart by `collided`, which is empty in practice.
#[derive(Default)]
struct GenerationTable {
    by_hash: HashMap<u64, Box<Generation>, BuildHasherDefault<Prehashed>>,
    collided: HashMap<String, Box<Generation>>,
}

impl Generations {
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    fn lock(&self) -> MutexGuard<'_, GenerationTable> {
        lock(&self.table)
    }

    /// What `read` makes of the generation `id`, if it was settled.
    fn read<T>(&self, id: &str, read: impl FnOnce(&Generation) -> T) -> Option<T> {
        let hash = self.hash(id);
        self.lock().get(hash, id).map(read)
    }

    /// Adds a generation read from the store.
    fn load(&mut self, generation: Box<Generation>) {
        let hash = self.hash(&generation.record.id);
        let table = self.table.get_mut().unwrap_or_else(PoisonError::into_inner);
        if table.get(hash, &generation.record.id).is_none() {
            table.insert(hash, generation);
        }
    }
}

impl GenerationTable {
    /// The generation `id`, whose hash is `hash`.
    fn get(&self, hash: u64, id: &str) -> Option<&Generation> {
        match self.by_hash.get(&hash) {
            Some(generation) if generation.record.id == id => Some(&**generation),
            // Only an id whose hash is taken can be in `collided`.
            Some(_) => self.collided.get(id).map(|generation| &**generation),
            None => None,
        }
    }

    /// Adds a generation whose id is not in the table; `hash` is its id's.
    fn insert(&mut self, hash: u64, generation: Box<Generation>) {
        match self.by_hash.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(generation);
            }
            Entry::Occupied(_) => {
                self.collided.insert(generation.record.id.clone(), generation);
            }
        }
    }
}

/// The hasher of [`GenerationTable::by_hash`], whose keys are hashes already.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    /// Not used by `u64` keys; folds bytes in anyway, to stay a hasher.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
}

/// State shared by the handles and the writer thread.
struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    health: AtomicU8,
    commits: AtomicU64,
    persisted: AtomicU64,
    settled: AtomicU64,
    replayed: AtomicU64,
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
enum Op {
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
struct Progress {
    /// Every operation with a sequence number up to this one is on disk.
    committed: u64,
    failure: Option<StoreFailure>,
    /// The writer has stopped and closed the file.
    stopped: bool,
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

impl Money {
    fn available(&self) -> Picodollars {
        self.credits - self.spent - self.reserved
    }
}

impl Account {
    fn new(key: Arc<str>, label: Arc<str>, money: Money) -> Arc<Account> {
        Arc::new(Account {
            key,
            label,
            money: Mutex::new(money),
        })
    }

    fn balance_of(&self, money: &Money) -> Balance {
        Balance {
            label: self.label.to_string(),
            credits: money.credits,
            spent: money.spent,
            reserved: money.reserved,
            available: money.available(),
        }
    }

    fn balance(&self) -> Balance {
        let money = *lock(&self.money);
        self.balance_of(&money)
    }
}

impl Reservation {
    /// The key of the account held against.
    pub fn key(&self) -> &str {
        &self.account.key
    }

    /// The amount held.
    pub fn amount(&self) -> Picodollars {
        self.amount
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.live {
            lock(&self.account.money).reserved -= self.amount;
        }
    }
}

impl Shared {
    fn new() -> Arc<Shared> {
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
    fn close_queue(&self) {
        lock(&self.queue).closed = true;
        self.wake.notify_one();
    }
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
        Ledger::with_state(HashMap::new(), Generations::default(), Shared::new(), None)
    }

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

    fn with_state(
        accounts: HashMap<Arc<str>, Arc<Account>>,
        generations: Generations,
        shared: Arc<Shared>,
        durable: Option<watch::Receiver<Progress>>,
    ) -> Ledger {
        let inner = Inner {
            accounts: RwLock::new(accounts),
            generations,
            shared,
            durable,
        };
        Ledger { inner: Arc::new(inner) }
    }

    /// Whether settled charges are written to a store.
    pub fn is_durable(&self) -> bool {
        self.inner.durable.is_some()
    }

    /// Creates the account if the store does not know it yet, with `initial`
    /// credits; an existing account keeps its stored state and label (a
    /// restart must not reset balances). Returns the balance, once durable.
    pub async fn ensure_account(&self, key: &str, label: &str, initial: Picodollars) -> Result<Balance, LedgerError> {
        if let Some(account) = self.account(key) {
            return Ok(account.balance());
        }
        self.insert_account(key, label, initial, true).await
    }

    /// Creates an account with `credits` (the admin route); an error if the
    /// key already has one. Returns the balance, once durable.
    pub async fn create_account(&self, key: &str, label: &str, credits: Picodollars) -> Result<Balance, LedgerError> {
        self.insert_account(key, label, credits, false).await
    }

    async fn insert_account(
        &self,
        key: &str,
        label: &str,
        credits: Picodollars,
        existing_ok: bool,
    ) -> Result<Balance, LedgerError> {
        self.check_amount(key, credits)?;
        let (balance, seq) = {
            let mut accounts = write(&self.inner.accounts);
            if let Some(account) = accounts.get(key) {
                if existing_ok {
                    return Ok(account.balance());
                }
                return Err(LedgerError::AccountExists { key: key.to_string() });
            }
            let key: Arc<str> = key.into();
            let label: Arc<str> = label.into();
            let money = Money {
                credits,
                ..Money::default()
            };
            let account = Account::new(Arc::clone(&key), Arc::clone(&label), money);
            let seq = self.enqueue(|| Op::Create {
                key: Arc::clone(&key),
                label,
                credits,
            })?;
            let balance = account.balance_of(&money);
            accounts.insert(key, account);
            (balance, seq)
        };
        self.wait_durable(seq).await?;
        Ok(balance)
    }

    /// Adds `amount` to the key's credits. Returns the balance once the
    /// change is durable; an error for an unknown key.
    pub async fn add_credits(&self, key: &str, amount: Picodollars) -> Result<Balance, LedgerError> {
        self.check_amount(key, amount)?;
        let account = self.known_account(key)?;
        let (balance, seq) = {
            let mut money = lock(&account.money);
            let credits = money
                .credits
                .checked_add(amount)
                .map_err(|_| LedgerError::Overflow { key: key.to_string() })?;
            let seq = self.enqueue(|| Op::AddCredits {
                key: Arc::clone(&account.key),
                amount,
            })?;
            money.credits = credits;
            (account.balance_of(&money), seq)
        };
        self.wait_durable(seq).await?;
        Ok(balance)
    }

    /// Holds `amount` against the key's available balance (credits − spent −
    /// reserved), or refuses with [`LedgerError::Insufficient`]. Concurrent
    /// reservations never overdraw. Synchronous and in memory only.
    pub fn reserve(&self, key: &str, amount: Picodollars) -> Result<Reservation, LedgerError> {
        self.check_amount(key, amount)?;
        let account = self.known_account(key)?;
        {
            let mut money = lock(&account.money);
            let available = money.available();
            if amount > available {
                return Err(LedgerError::Insufficient {
                    key: key.to_string(),
                    needed: amount,
                    available,
                });
            }
            money.reserved += amount;
        }
        Ok(Reservation {
            account,
            amount,
            live: true,
            unguarded: false,
        })
    }

    /// The deliberate `no-overdraft-guard` defect (test-only): holds `amount`
    /// whether or not the balance covers it, and the settlement of this
    /// reservation charges its whole cost, taking the balance below zero if
    /// need be.
    pub fn reserve_unguarded(&self, key: &str, amount: Picodollars) -> Result<Reservation, LedgerError> {
        self.check_amount(key, amount)?;
        let account = self.known_account(key)?;
        lock(&account.money).reserved += amount;
        Ok(Reservation {
            account,
            amount,
            live: true,
            unguarded: true,
        })
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
            id: record.id.clone(),
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
        if let Some(first) = generations.get(hash, &generation.record.id) {
            self.inner.shared.replayed.fetch_add(1, Ordering::Relaxed);
            let replay = (first.settlement(true), first.seq);
            drop(generations);
            // A replay releases its own hold: the first settlement charged already.
            drop(reservation);
            return Ok(replay);
        }
        let account = &reservation.account;
        let mut money = lock(&account.money);
        money.reserved -= reservation.amount;
        let charged = if reservation.unguarded {
            cost
        } else {
            cost.min(money.available().max(Picodollars::ZERO))
        };
        let uncollected = cost - charged;
        let queued = match encoded {
            None => Ok(0),
            Some(encoded) => self.enqueue(|| Op::Settle {
                key: Arc::clone(&account.key),
                id: generation.record.id.as_str().into(),
                charged,
                uncollected,
                record: encoded,
            }),
        };
        if queued.is_ok() {
            money.spent += charged;
        }
        drop(money);
        // The hold is released whether the charge could be queued or not.
        reservation.live = false;
        generation.seq = queued?;
        generation.charged = charged;
        generation.uncollected = uncollected;
        let answer = (generation.settlement(false), generation.seq);
        generations.insert(hash, generation);
        drop(generations);
        self.inner.shared.settled.fetch_add(1, Ordering::Relaxed);
        Ok(answer)
    }

    /// The key's balance now, or `None` for an unknown key.
    pub fn balance(&self, key: &str) -> Option<Balance> {
        self.account(key).map(|account| account.balance())
    }

    /// The record of a settled generation, or `None` if the id was never settled.
    pub fn generation(&self, id: &str) -> Option<GenerationRecord> {
        self.inner.generations.read(id, |generation| generation.record.clone())
    }

    /// The settlement recorded for a generation id (`replayed` is false).
    pub fn settlement(&self, id: &str) -> Option<Settlement> {
        self.inner
            .generations
            .read(id, |generation| generation.settlement(false))
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

    /// Refuses a negative amount, and any write once the ledger is closed or failed.
    fn check_amount(&self, key: &str, amount: Picodollars) -> Result<(), LedgerError> {
        if amount < Picodollars::ZERO {
            return Err(LedgerError::NegativeAmount {
                key: key.to_string(),
                amount,
            });
        }
        self.check_health()
    }

    fn known_account(&self, key: &str) -> Result<Arc<Account>, LedgerError> {
        self.account(key)
            .ok_or_else(|| LedgerError::UnknownAccount { key: key.to_string() })
    }

    fn account(&self, key: &str) -> Option<Arc<Account>> {
        read(&self.inner.accounts).get(key).cloned()
    }

    fn check_health(&self) -> Result<(), LedgerError> {
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
    fn enqueue(&self, op: impl FnOnce() -> Op) -> Result<u64, LedgerError> {
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
    async fn wait_durable(&self, seq: u64) -> Result<(), LedgerError> {
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use proptest::prelude::*;

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!("gauntlet-ledger-{}-{n}-{name}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }

        fn file(&self) -> PathBuf {
            self.0.join("ledger.redb")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn p(picos: i64) -> Picodollars {
        Picodollars(picos)
    }

    fn record(id: &str, cost: i64) -> GenerationRecord {
        GenerationRecord {
            id: id.to_string(),
            model: "openai/gpt-4o-mini".to_string(),
            requested_model: "openai/gpt-4o-mini".to_string(),
            provider_name: "openai-like".to_string(),
            total_cost: p(cost),
            upstream_cost: p(cost),
            tokens_prompt: 12,
            tokens_completion: 7,
            latency_ms: 40,
            generation_time_ms: 30,
            streamed: true,
            finish_reason: Some("stop".to_string()),
            created_at_us: 1_767_225_600_000_000,
            ..GenerationRecord::default()
        }
    }

    fn assert_conserved(balance: &Balance) {
        assert_eq!(
            balance.credits,
            balance.spent + balance.reserved + balance.available,
            "{balance:?}"
        );
        assert!(balance.available >= Picodollars::ZERO, "{balance:?}");
    }

    #[test]
    fn handles_are_shareable_and_settle_is_send() {
        fn shareable<T: Send + Sync + Clone>() {}
        fn send<T: Send>(_: &T) {}
        shareable::<Ledger>();
        let ledger = Ledger::in_memory();
        let reservation = Reservation {
            account: Account::new("k".into(), "l".into(), Money::default()),
            amount: p(0),
            live: false,
            unguarded: false,
        };
        send(&ledger.settle(reservation, record("g", 0)));
    }

    #[tokio::test]
    async fn an_unguarded_reservation_overdraws() {
        let ledger = Ledger::in_memory();
        ledger.create_account("sk-a", "alice", p(100)).await.unwrap();
        assert!(ledger.reserve("sk-a", p(300)).is_err());
        let held = ledger.reserve_unguarded("sk-a", p(300)).unwrap();
        assert_eq!(ledger.balance("sk-a").unwrap().available, p(-200));
        let settled = ledger.settle(held, record("g", 250)).await.unwrap();
        assert_eq!((settled.charged, settled.uncollected), (p(250), p(0)));
        let balance = ledger.balance("sk-a").unwrap();
        assert_eq!(
            (balance.spent, balance.reserved, balance.available),
            (p(250), p(0), p(-150))
        );
    }

    #[tokio::test]
    async fn reserve_settle_and_release_move_money() {
        let ledger = Ledger::in_memory();
        ledger.create_account("sk-a", "alice", p(1_000)).await.unwrap();

        let held = ledger.reserve("sk-a", p(300)).unwrap();
        let balance = ledger.balance("sk-a").unwrap();
        assert_eq!((balance.reserved, balance.available), (p(300), p(700)));
        assert_conserved(&balance);

        let refused = ledger.reserve("sk-a", p(800)).unwrap_err();
        assert!(
            matches!(&refused, LedgerError::Insufficient { key, needed, available }
                if key == "sk-a" && *needed == p(800) && *available == p(700)),
            "{refused}"
        );

        let settlement = ledger.settle(held, record("gen-1", 120)).await.unwrap();
        assert_eq!(
            settlement,
            Settlement {
                charged: p(120),
                uncollected: p(0),
                replayed: false
            }
        );
        let balance = ledger.balance("sk-a").unwrap();
        assert_eq!(
            (balance.spent, balance.reserved, balance.available),
            (p(120), p(0), p(880))
        );
        assert_eq!(balance.label, "alice");
        let stored = ledger.generation("gen-1").unwrap();
        assert_eq!(stored.key, "sk-a");
        assert_eq!(stored.total_cost, p(120));

        // A failed request: the hold goes away with the reservation.
        let failed = ledger.reserve("sk-a", p(500)).unwrap();
        assert_eq!(ledger.balance("sk-a").unwrap().available, p(380));
        drop(failed);
        let balance = ledger.balance("sk-a").unwrap();
        assert_eq!(
            (balance.spent, balance.reserved, balance.available),
            (p(120), p(0), p(880))
        );

        ledger.add_credits("sk-a", p(20)).await.unwrap();
        assert_eq!(ledger.balance("sk-a").unwrap().available, p(900));
        assert_eq!(ledger.stats().settled, 1);
    }

    #[tokio::test]
    async fn unknown_keys_duplicates_and_negative_amounts_are_errors() {
        let ledger = Ledger::in_memory();
        assert!(matches!(
            ledger.reserve("nobody", p(1)),
            Err(LedgerError::UnknownAccount { .. })
        ));
        assert!(matches!(
            ledger.add_credits("nobody", p(1)).await,
            Err(LedgerError::UnknownAccount { .. })
        ));
        assert!(ledger.balance("nobody").is_none());
        assert!(ledger.generation("nothing").is_none());

        ledger.create_account("sk-a", "alice", p(100)).await.unwrap();
        let again = ledger.create_account("sk-a", "alice", p(100)).await.unwrap_err();
        assert_eq!(again.to_string(), "an account for key `sk-a` already exists");

        // ensure_account keeps what the account has.
        let _held = ledger.reserve("sk-a", p(40)).unwrap();
        let kept = ledger.ensure_account("sk-a", "renamed", p(5_000)).await.unwrap();
        assert_eq!(
            (kept.label.as_str(), kept.credits, kept.available),
            ("alice", p(100), p(60))
        );
        let fresh = ledger.ensure_account("sk-b", "bob", p(5_000)).await.unwrap();
        assert_eq!(fresh.available, p(5_000));

        assert!(matches!(
            ledger.reserve("sk-a", p(-1)),
            Err(LedgerError::NegativeAmount { .. })
        ));
        assert!(matches!(
            ledger.add_credits("sk-a", p(-1)).await,
            Err(LedgerError::NegativeAmount { .. })
        ));
        assert!(matches!(
            ledger.create_account("sk-c", "c", p(-1)).await,
            Err(LedgerError::NegativeAmount { .. })
        ));
        let held = ledger.reserve("sk-a", p(10)).unwrap();
        assert!(matches!(
            ledger.settle(held, record("neg", -5)).await,
            Err(LedgerError::NegativeAmount { .. })
        ));
        assert_eq!(
            ledger.balance("sk-a").unwrap().reserved,
            p(40),
            "a refused settle releases its hold"
        );
        assert!(matches!(
            ledger.add_credits("sk-a", p(i64::MAX)).await,
            Err(LedgerError::Overflow { .. })
        ));
    }

    #[tokio::test]
    async fn a_charge_beyond_the_hold_takes_only_what_is_left() {
        let ledger = Ledger::in_memory();
        ledger.create_account("sk-a", "alice", p(1_000)).await.unwrap();
        let first = ledger.reserve("sk-a", p(600)).unwrap();
        let second = ledger.reserve("sk-a", p(300)).unwrap();

        // 600 held + 100 free; the other request's 300 stays untouched.
        let settlement = ledger.settle(first, record("big", 900)).await.unwrap();
        assert_eq!(
            settlement,
            Settlement {
                charged: p(700),
                uncollected: p(200),
                replayed: false
            }
        );
        let balance = ledger.balance("sk-a").unwrap();
        assert_eq!(
            (balance.spent, balance.reserved, balance.available),
            (p(700), p(300), p(0))
        );

        let settlement = ledger.settle(second, record("all", 301)).await.unwrap();
        assert_eq!((settlement.charged, settlement.uncollected), (p(300), p(1)));
        let balance = ledger.balance("sk-a").unwrap();
        assert_eq!(
            (balance.spent, balance.reserved, balance.available),
            (p(1_000), p(0), p(0))
        );
        assert_eq!(ledger.settlement("big").unwrap().uncollected, p(200));
    }

    #[test]
    fn in_memory_settle_is_ready_at_its_first_poll() {
        use std::task::{Context, Poll, Waker};

        let ledger = Ledger::in_memory();
        let mut cx = Context::from_waker(Waker::noop());
        let created = std::pin::pin!(ledger.create_account("sk-a", "alice", p(1_000)));
        assert!(matches!(created.poll(&mut cx), Poll::Ready(Ok(_))));
        let held = ledger.reserve("sk-a", p(300)).unwrap();
        let settle = std::pin::pin!(ledger.settle(held, record("gen-1", 120)));
        let Poll::Ready(Ok(settlement)) = settle.poll(&mut cx) else {
            panic!("an in-memory settle waited or failed");
        };
        assert_eq!(settlement.charged, p(120));
        assert_eq!(ledger.balance("sk-a").unwrap().available, p(880));
    }

    #[test]
    fn generations_whose_ids_hash_alike_are_told_apart() {
        let generation = |id: &str, cost: i64| {
            Box::new(Generation {
                record: record(id, cost),
                charged: p(cost),
                uncollected: p(0),
                seq: 0,
            })
        };
        let mut table = GenerationTable::default();
        table.insert(7, generation("gen-a", 1));
        table.insert(7, generation("gen-b", 2));
        table.insert(8, generation("gen-c", 3));
        assert_eq!(table.get(7, "gen-a").map(|g| g.charged), Some(p(1)));
        assert_eq!(table.get(7, "gen-b").map(|g| g.charged), Some(p(2)));
        assert_eq!(table.get(8, "gen-c").map(|g| g.charged), Some(p(3)));
        assert!(table.get(7, "gen-c").is_none());
        assert!(table.get(8, "gen-a").is_none());
        assert!(table.get(9, "gen-a").is_none());
    }

    #[tokio::test]
    async fn settle_is_idempotent_by_generation_id() {
        let ledger = Ledger::in_memory();
        ledger.create_account("sk-a", "alice", p(1_000)).await.unwrap();
        let first = ledger
            .settle(ledger.reserve("sk-a", p(200)).unwrap(), record("gen-1", 100))
            .await
            .unwrap();

        let again = ledger.reserve("sk-a", p(200)).unwrap();
        let replay = ledger.settle(again, record("gen-1", 150)).await.unwrap();
        assert_eq!(
            replay,
            Settlement {
                replayed: true,
                ..first
            }
        );
        let balance = ledger.balance("sk-a").unwrap();
        assert_eq!(
            (balance.spent, balance.reserved, balance.available),
            (p(100), p(0), p(900))
        );
        assert_eq!(
            ledger.generation("gen-1").unwrap().total_cost,
            p(100),
            "the first record stays"
        );
        assert_eq!(
            ledger.stats(),
            LedgerStats {
                settled: 1,
                replayed: 1,
                ..LedgerStats::default()
            }
        );
    }

    #[test]
    fn concurrent_reservations_never_overdraw() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let ledger = Ledger::in_memory();
        runtime
            .block_on(ledger.create_account("sk-a", "alice", p(1_000)))
            .unwrap();

        let granted: Vec<Reservation> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        for _ in 0..500 {
                            match ledger.reserve("sk-a", p(7)) {
                                Ok(reservation) => mine.push(reservation),
                                Err(LedgerError::Insufficient { .. }) => {}
                                Err(other) => panic!("{other}"),
                            }
                        }
                        mine
                    })
                })
                .collect();
            workers.into_iter().flat_map(|worker| worker.join().unwrap()).collect()
        });

        let total = granted.iter().fold(Picodollars::ZERO, |sum, r| sum + r.amount());
        assert!(total <= p(1_000), "granted {total}");
        assert_eq!(total, p(1_000 / 7 * 7), "every reservation that fit was granted");
        let balance = ledger.balance("sk-a").unwrap();
        assert_eq!(balance.reserved, total);
        assert_conserved(&balance);
        drop(granted);
        assert_eq!(ledger.balance("sk-a").unwrap().available, p(1_000));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_settles_never_overdraw() {
        let ledger = Ledger::in_memory();
        ledger.create_account("sk-a", "alice", p(10_000)).await.unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let Ok(held) = ledger.reserve("sk-a", p(100)) else {
                        return Picodollars::ZERO;
                    };
                    // Half the requests cost more than they reserved.
                    let cost = if i % 2 == 0 { 60 } else { 250 };
                    ledger
                        .settle(held, record(&format!("gen-{i}"), cost))
                        .await
                        .unwrap()
                        .charged
                })
            })
            .collect();
        let mut charged = Picodollars::ZERO;
        for task in tasks {
            charged += task.await.unwrap();
        }
        let balance = ledger.balance("sk-a").unwrap();
        assert_eq!(balance.spent, charged);
        assert!(balance.spent <= balance.credits);
        assert_conserved(&balance);
    }

    #[tokio::test]
    async fn durable_state_survives_reopen() {
        let dir = TempDir::new("reopen");
        let ledger = Ledger::open(&dir.file()).unwrap();
        assert!(ledger.is_durable());
        ledger.create_account("sk-a", "alice", p(1_000)).await.unwrap();
        ledger.ensure_account("sk-b", "bob", p(50)).await.unwrap();
        ledger.add_credits("sk-a", p(500)).await.unwrap();
        ledger
            .settle(ledger.reserve("sk-a", p(400)).unwrap(), record("gen-1", 123))
            .await
            .unwrap();
        ledger
            .settle(ledger.reserve("sk-a", p(10)).unwrap(), record("gen-2", 0))
            .await
            .unwrap();
        ledger
            .settle(ledger.reserve("sk-b", p(50)).unwrap(), record("gen-3", 70))
            .await
            .unwrap();
        let in_flight = ledger.reserve("sk-a", p(99)).unwrap();
        let before: Vec<_> = ["sk-a", "sk-b"].map(|key| ledger.balance(key).unwrap()).into();
        let records: Vec<_> = ["gen-1", "gen-2", "gen-3"]
            .map(|id| ledger.generation(id).unwrap())
            .into();
        assert!(ledger.stats().commits >= 1);
        ledger.clone().close().await.unwrap();
        assert!(matches!(ledger.reserve("sk-a", p(1)), Err(LedgerError::Closed)));
        drop((in_flight, ledger));

        let reopened = Ledger::open(&dir.file()).unwrap();
        let after: Vec<_> = ["sk-a", "sk-b"].map(|key| reopened.balance(key).unwrap()).into();
        // A reservation in flight at a restart is forgotten, never charged.
        assert_eq!(
            after[0],
            Balance {
                reserved: p(0),
                available: before[0].available + p(99),
                ..before[0].clone()
            }
        );
        assert_eq!(after[1], before[1]);
        assert_eq!(after[1].spent, p(50), "bob paid what he had, the rest is uncollected");
        assert_eq!(reopened.settlement("gen-3").unwrap().uncollected, p(20));
        let records_after: Vec<_> = ["gen-1", "gen-2", "gen-3"]
            .map(|id| reopened.generation(id).unwrap())
            .into();
        assert_eq!(records_after, records);

        // A replay after the restart charges nothing; the account keeps its state.
        let replay = reopened
            .settle(reopened.reserve("sk-a", p(400)).unwrap(), record("gen-1", 123))
            .await
            .unwrap();
        assert_eq!(
            replay,
            Settlement {
                charged: p(123),
                uncollected: p(0),
                replayed: true
            }
        );
        let kept = reopened.ensure_account("sk-a", "alice", p(1_000)).await.unwrap();
        assert_eq!(kept.spent, p(123));
        assert_eq!(kept.credits, p(1_500));
        reopened.close().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn group_commit_batches_concurrent_settles() {
        let dir = TempDir::new("group");
        let ledger = Ledger::open(&dir.file()).unwrap();
        ledger.create_account("sk-a", "alice", p(1_000_000)).await.unwrap();
        let before = ledger.stats();
        let tasks: Vec<_> = (0..500)
            .map(|i| {
                let ledger = ledger.clone();
                tokio::spawn(async move {
                    let held = ledger.reserve("sk-a", p(1_000)).unwrap();
                    ledger.settle(held, record(&format!("gen-{i}"), i)).await.unwrap()
                })
            })
            .collect();
        for task in tasks {
            assert!(!task.await.unwrap().replayed);
        }
        let after = ledger.stats();
        assert_eq!(after.settled - before.settled, 500);
        assert_eq!(after.persisted - before.persisted, 500);
        let commits = after.commits - before.commits;
        assert!(commits < 500, "{commits} commits for 500 settles");
        ledger.close().await.unwrap();

        let reopened = Ledger::open(&dir.file()).unwrap();
        assert_eq!(reopened.balance("sk-a").unwrap().spent, p((0..500).sum()));
        assert!((0..500).all(|i| reopened.generation(&format!("gen-{i}")).is_some()));
        reopened.close().await.unwrap();
    }

    #[tokio::test]
    async fn a_failed_commit_fails_the_ledger() {
        let dir = TempDir::new("failed");
        let ledger = Ledger::open(&dir.file()).unwrap();
        ledger.create_account("sk-a", "alice", p(1_000)).await.unwrap();
        // Credits for an account the store does not have: the commit fails.
        let seq = ledger
            .enqueue(|| Op::AddCredits {
                key: "ghost".into(),
                amount: p(1),
            })
            .unwrap();
        let failed = ledger.wait_durable(seq).await.unwrap_err();
        assert!(
            matches!(&failed, LedgerError::Failed { cause: StoreFailure::MissingAccount { key } } if &**key == "ghost"),
            "{failed}"
        );
        assert!(matches!(ledger.reserve("sk-a", p(1)), Err(LedgerError::Failed { .. })));
        assert!(matches!(
            ledger.add_credits("sk-a", p(1)).await,
            Err(LedgerError::Failed { .. })
        ));
        assert!(matches!(ledger.clone().close().await, Err(LedgerError::Failed { .. })));

        // Nothing of the failed batch was written; what was committed before stays.
        let reopened = Ledger::open(&dir.file()).unwrap();
        assert_eq!(reopened.balance("sk-a").unwrap().available, p(1_000));
        assert!(reopened.balance("ghost").is_none());
        reopened.close().await.unwrap();
    }

    #[derive(Debug, Clone)]
    enum Step {
        AddCredits(i64),
        Reserve(i64),
        Settle { slot: usize, cost: i64 },
        Replay { slot: usize, hold: i64, cost: i64 },
        Drop { slot: usize },
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            1 => (0i64..500).prop_map(Step::AddCredits),
            3 => (0i64..400).prop_map(Step::Reserve),
            3 => (any::<usize>(), 0i64..600).prop_map(|(slot, cost)| Step::Settle { slot, cost }),
            1 => (any::<usize>(), 0i64..100, 0i64..600).prop_map(|(slot, hold, cost)| Step::Replay { slot, hold, cost }),
            1 => any::<usize>().prop_map(|slot| Step::Drop { slot }),
        ]
    }

    async fn run_steps(steps: Vec<Step>) -> Result<(), TestCaseError> {
        let ledger = Ledger::in_memory();
        let mut credits = p(300);
        let mut spent = Picodollars::ZERO;
        let mut live: Vec<Reservation> = Vec::new();
        let mut settled: Vec<(String, Settlement)> = Vec::new();
        ledger.create_account("sk-a", "alice", credits).await.unwrap();
        for (n, step) in steps.into_iter().enumerate() {
            let before = ledger.balance("sk-a").unwrap();
            match step {
                Step::AddCredits(amount) => {
                    ledger.add_credits("sk-a", p(amount)).await.unwrap();
                    credits += p(amount);
                }
                Step::Reserve(amount) => match ledger.reserve("sk-a", p(amount)) {
                    Ok(reservation) => live.push(reservation),
                    Err(LedgerError::Insufficient { available, .. }) => {
                        prop_assert!(p(amount) > before.available);
                        prop_assert_eq!(available, before.available);
                    }
                    Err(other) => return Err(TestCaseError::fail(other.to_string())),
                },
                Step::Settle { slot, cost } if !live.is_empty() => {
                    let reservation = live.swap_remove(slot % live.len());
                    let collectable = before.available + reservation.amount();
                    let id = format!("gen-{n}");
                    let settlement = ledger.settle(reservation, record(&id, cost)).await.unwrap();
                    prop_assert_eq!(settlement.charged, p(cost).min(collectable));
                    prop_assert_eq!(settlement.charged + settlement.uncollected, p(cost));
                    prop_assert!(!settlement.replayed);
                    spent += settlement.charged;
                    settled.push((id, settlement));
                }
                Step::Replay { slot, hold, cost } if !settled.is_empty() => {
                    let (id, first) = &settled[slot % settled.len()];
                    if let Ok(reservation) = ledger.reserve("sk-a", p(hold)) {
                        let replay = ledger.settle(reservation, record(id, cost)).await.unwrap();
                        prop_assert_eq!(
                            replay,
                            Settlement {
                                replayed: true,
                                ..*first
                            }
                        );
                        prop_assert_eq!(ledger.balance("sk-a").unwrap(), before.clone());
                    }
                }
                Step::Drop { slot } if !live.is_empty() => {
                    drop(live.swap_remove(slot % live.len()));
                }
                _ => {}
            }
            let balance = ledger.balance("sk-a").unwrap();
            let held = live.iter().fold(Picodollars::ZERO, |sum, r| sum + r.amount());
            prop_assert_eq!(balance.credits, credits);
            prop_assert_eq!(balance.spent, spent);
            prop_assert_eq!(balance.reserved, held);
            prop_assert_eq!(balance.credits, balance.spent + balance.reserved + balance.available);
            prop_assert!(balance.available >= Picodollars::ZERO);
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn money_is_conserved(steps in prop::collection::vec(step(), 1..60)) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(run_steps(steps))?;
        }
    }
}

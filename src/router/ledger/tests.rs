//! Tests of the ledger through its API: money flow, idempotence, durability.

use std::sync::atomic::AtomicUsize;

use std::path::Path;

use proptest::prelude::*;

use super::account::Money;
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
        balance.spent + balance.reserved + balance.expired + balance.available,
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
        account: Account::new("k".into(), Arc::new(KeySettings::labelled("l")), Money::default()),
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
    // Credits for an account the store does not have: durable in the log,
    // but applying them to the file fails, and so does the ledger.
    let seq = ledger
        .enqueue(|| Op::AddCredits {
            key: "ghost".into(),
            amount: p(1),
            at_us: 0,
            expires_us: None,
        })
        .unwrap();
    let _ = ledger.wait_durable(seq).await;
    let mut state = ledger.inner.durable.clone().unwrap();
    let failed = state
        .wait_for(|progress| progress.stopped)
        .await
        .unwrap()
        .failure
        .clone()
        .unwrap();
    assert!(
        matches!(&failed, StoreFailure::MissingAccount { key } if key.as_ref() == "ghost"),
        "{failed}"
    );
    assert!(matches!(ledger.reserve("sk-a", p(1)), Err(LedgerError::Failed { .. })));
    assert!(matches!(
        ledger.add_credits("sk-a", p(1)).await,
        Err(LedgerError::Failed { .. })
    ));
    assert!(matches!(ledger.clone().close().await, Err(LedgerError::Failed { .. })));
    drop(ledger);

    // The log holds an operation the file cannot take: reopening refuses,
    // naming the log, rather than dropping it.
    let refused = Ledger::open(&dir.file()).unwrap_err();
    let message = refused.to_string();
    assert!(
        message.contains("ledger.redb.wal") && message.contains("ghost"),
        "{message}"
    );
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

/// A directory for ledgers the tests damage: in memory (`/dev/shm`) where
/// there is one, since every open syncs.
fn scratch(name: &str) -> TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = shm.join(format!("gauntlet-ledger-{}-{n}-{name}", std::process::id()));
        if std::fs::create_dir_all(&path).is_ok() {
            return TempDir(path);
        }
    }
    TempDir::new(name)
}

#[tokio::test]
async fn an_empty_or_foreign_file_is_an_error_never_a_fresh_ledger() {
    let dir = TempDir::new("empty");
    std::fs::write(dir.file(), b"").unwrap();
    let empty = Ledger::open(&dir.file()).unwrap_err();
    assert!(matches!(empty, LedgerError::Empty { .. }), "{empty}");
    assert!(empty.to_string().contains("ledger.redb"), "{empty}");
    assert_eq!(
        std::fs::metadata(dir.file()).unwrap().len(),
        0,
        "the empty file is left alone"
    );

    std::fs::write(dir.file(), b"hello, I am a text file and not a ledger at all").unwrap();
    let foreign = Ledger::open(&dir.file()).unwrap_err();
    assert!(matches!(foreign, LedgerError::Damaged { .. }), "{foreign}");

    // A ledger's log without the ledger: the ledger was removed, not never made.
    let dir = TempDir::new("orphan");
    Ledger::open(&dir.file()).unwrap().close().await.unwrap();
    std::fs::remove_file(dir.file()).unwrap();
    let orphan = Ledger::open(&dir.file()).unwrap_err();
    assert!(matches!(orphan, LedgerError::OrphanLog { .. }), "{orphan}");
}

#[tokio::test]
async fn a_creation_cut_short_leaves_no_ledger_and_the_next_start_creates_one() {
    let dir = TempDir::new("cut");
    // What a kill during creation can leave: a half-written ledger and log
    // beside their places, never at them.
    let mut new = dir.file().into_os_string();
    new.push(".new");
    std::fs::write(&new, b"half a redb file").unwrap();
    std::fs::write(format!("{}.wal.new", dir.file().display()), b"half a log").unwrap();
    let ledger = Ledger::open(&dir.file()).unwrap();
    ledger.create_account("sk-a", "alice", p(5)).await.unwrap();
    ledger.close().await.unwrap();
    assert_eq!(
        Ledger::open(&dir.file()).unwrap().balance("sk-a").unwrap().credits,
        p(5)
    );
    assert!(!Path::new(&new).exists());
}

#[tokio::test]
async fn a_missing_log_is_an_error_unless_the_ledger_was_closed_cleanly() {
    let dir = TempDir::new("missing-log");
    let ledger = Ledger::open(&dir.file()).unwrap();
    ledger.create_account("sk-a", "alice", p(5)).await.unwrap();
    ledger.close().await.unwrap();
    std::fs::remove_file(wal_path(&dir.file())).unwrap();
    let reopened = Ledger::open(&dir.file()).unwrap();
    assert_eq!(reopened.balance("sk-a").unwrap().credits, p(5));
    // Open and not closed (as after a crash): the log is needed.
    let crashed = scratch("crashed");
    std::fs::copy(dir.file(), crashed.file()).unwrap();
    reopened.close().await.unwrap();
    let missing = Ledger::open(&crashed.file()).unwrap_err();
    assert!(matches!(missing, LedgerError::MissingLog { .. }), "{missing}");
}

/// Copies a running ledger's file and log, as a crash would leave them.
fn crash_image(from: &Path, to: &TempDir) {
    std::fs::copy(from, to.file()).unwrap();
    std::fs::copy(wal_path(from), wal_path(&to.file())).unwrap();
}

#[tokio::test]
async fn a_crash_loses_nothing_that_was_acknowledged_and_the_log_replays_once() {
    let dir = TempDir::new("crash");
    let ledger = Ledger::open(&dir.file()).unwrap();
    ledger
        .create_key(
            "sk-a",
            KeySettings {
                label: "alice".into(),
                rpm: Some(60),
                ..KeySettings::default()
            },
            p(1_000),
        )
        .await
        .unwrap();
    for i in 0..50 {
        ledger
            .settle(ledger.reserve("sk-a", p(10)).unwrap(), record(&format!("gen-{i}"), 3))
            .await
            .unwrap();
    }
    ledger.add_credits("sk-a", p(7)).await.unwrap();
    ledger
        .update_settings("sk-a", KeySettings::labelled("renamed"))
        .await
        .unwrap();
    let image = scratch("crash-image");
    crash_image(&dir.file(), &image);
    ledger.close().await.unwrap();

    for _ in 0..2 {
        let recovered = Ledger::open(&image.file()).unwrap();
        let balance = recovered.balance("sk-a").unwrap();
        assert_eq!((balance.credits, balance.spent), (p(1_007), p(150)));
        assert_eq!(recovered.settings("sk-a").unwrap().label, "renamed");
        assert_eq!(recovered.settlement("gen-49").unwrap().charged, p(3));
        assert!(recovered.generation("gen-0").is_some());
        // A replayed settle of a recovered generation charges nothing.
        let replay = recovered
            .settle(recovered.reserve("sk-a", p(10)).unwrap(), record("gen-7", 3))
            .await
            .unwrap();
        assert!(replay.replayed);
        recovered.close().await.unwrap();
    }
    let report = Ledger::check(&image.file()).unwrap();
    assert_eq!(report.problems, Vec::<String>::new());
    assert_eq!(report.generations, 50);
}

#[tokio::test]
async fn generation_records_are_served_from_the_file_with_a_bounded_cache() {
    let dir = scratch("bounded");
    let ledger = Ledger::open(&dir.file()).unwrap();
    ledger.create_account("sk-a", "alice", p(1 << 40)).await.unwrap();
    let n = super::generations::CACHE_LIMIT + 500;
    for i in 0..n {
        ledger
            .settle(ledger.reserve("sk-a", p(10)).unwrap(), record(&format!("gen-{i}"), 1))
            .await
            .unwrap();
    }
    // Every record is there, the oldest from the file, and held in memory
    // are at most the cache and what the writer has not applied yet.
    for i in [0, 1, n / 2, n - 1] {
        assert_eq!(ledger.generation(&format!("gen-{i}")).unwrap().id, format!("gen-{i}"));
    }
    assert!(
        ledger
            .settle(ledger.reserve("sk-a", p(10)).unwrap(), record("gen-0", 1))
            .await
            .unwrap()
            .replayed
    );
    assert!(ledger.inner.generations.held() <= super::generations::CACHE_LIMIT + MAX_BATCH);
    ledger.close().await.unwrap();

    let memory = Ledger::in_memory();
    memory.create_account("sk-a", "alice", p(1 << 40)).await.unwrap();
    for i in 0..super::generations::MEMORY_LIMIT + 10 {
        memory
            .settle(memory.reserve("sk-a", p(10)).unwrap(), record(&format!("gen-{i}"), 1))
            .await
            .unwrap();
    }
    assert_eq!(memory.inner.generations.held(), super::generations::MEMORY_LIMIT);
    assert!(memory.generation("gen-0").is_none(), "the oldest is forgotten");
    assert!(
        memory
            .generation(&format!("gen-{}", super::generations::MEMORY_LIMIT + 9))
            .is_some()
    );
}

/// Everything a ledger says about money: each account's balance and each
/// generation's settlement.
fn money_of(ledger: &Ledger, keys: &[&str], ids: &[String]) -> Vec<String> {
    let mut seen: Vec<String> = keys
        .iter()
        .map(|key| format!("{key}: {:?}", ledger.balance(key)))
        .collect();
    seen.extend(ids.iter().map(|id| format!("{id}: {:?}", ledger.settlement(id))));
    seen
}

/// A small deterministic generator for the flips (xorshift64*).
struct Flips(u64);

impl Flips {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_flips_never_panic_and_every_changed_balance_or_charge_is_caught() {
    const ROUNDS: usize = 160;
    let dir = scratch("flips");
    let keys = ["sk-flip-a", "sk-flip-b", "sk-flip-c"];
    let ledger = Ledger::open(&dir.file()).unwrap();
    for (i, key) in keys.iter().enumerate() {
        ledger
            .create_account(key, &format!("label {i}"), p(1_000_000))
            .await
            .unwrap();
    }
    let mut ids = Vec::new();
    for i in 0..120 {
        let key = keys[i % keys.len()];
        let id = format!("gen-flip-{i}");
        ledger
            .settle(ledger.reserve(key, p(5_000)).unwrap(), record(&id, 1_000 + i as i64))
            .await
            .unwrap();
        ids.push(id);
    }
    ledger.add_credits("sk-flip-b", p(77)).await.unwrap();
    let truth = money_of(&ledger, &keys, &ids);
    ledger.close().await.unwrap();
    let original = std::fs::read(dir.file()).unwrap();
    // Where rows live, so that many flips land on them rather than on free space.
    let hot: Vec<usize> = original
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"sk-fl" || *w == b"gen-f")
        .map(|(at, _)| at)
        .collect();
    assert!(!hot.is_empty());

    let (mut refused, mut opened, mut panics, mut undetected) = (0, 0, 0, Vec::new());
    let mut flips = Flips(0x9e37_79b9_7f4a_7c15);
    for round in 0..ROUNDS {
        let mut bytes = original.clone();
        let mut changed = Vec::new();
        for _ in 0..1 + flips.below(3) {
            let at = if round % 2 == 0 {
                (hot[flips.below(hot.len())] + flips.below(160)).saturating_sub(60)
            } else {
                flips.below(bytes.len())
            }
            .min(bytes.len() - 1);
            bytes[at] ^= 1 << flips.below(8);
            changed.push(at);
        }
        let copy = scratch("flip");
        std::fs::write(copy.file(), &bytes).unwrap();
        std::fs::copy(wal_path(&dir.file()), wal_path(&copy.file())).unwrap();
        let file = copy.file();
        match std::panic::catch_unwind(|| Ledger::open(&file)) {
            Err(_) => panics += 1,
            Ok(Err(_)) => refused += 1,
            Ok(Ok(reopened)) => {
                opened += 1;
                let seen = money_of(&reopened, &keys, &ids);
                if seen != truth {
                    undetected.push((
                        changed.clone(),
                        seen.iter()
                            .zip(&truth)
                            .filter(|(a, b)| a != b)
                            .map(|(a, _)| a.clone())
                            .collect::<Vec<_>>(),
                    ));
                }
                reopened.close().await.unwrap();
            }
        }
        let file = copy.file();
        if std::panic::catch_unwind(|| Ledger::check(&file)).is_err() {
            panics += 1;
        }
    }
    eprintln!("{ROUNDS} damaged copies: {refused} refused, {opened} opened unchanged, {panics} panics");
    assert_eq!(panics, 0);
    assert!(
        undetected.is_empty(),
        "flips that changed money unnoticed: {undetected:?}"
    );
    assert!(
        refused > ROUNDS / 4,
        "most flips on rows are caught: {refused} of {ROUNDS}"
    );
}

#[tokio::test]
async fn a_spent_that_is_not_the_sum_of_its_charges_is_refused_and_shown_by_the_check() {
    let dir = TempDir::new("mismatch");
    let ledger = Ledger::open(&dir.file()).unwrap();
    ledger.create_account("sk-a", "alice", p(1_000)).await.unwrap();
    ledger
        .settle(ledger.reserve("sk-a", p(100)).unwrap(), record("gen-1", 40))
        .await
        .unwrap();
    ledger.close().await.unwrap();
    // A row rewritten with a valid checksum but a spent its charges do not make.
    super::store::rewrite_account_for_test(&dir.file(), "sk-a", |credits, spent| (credits, spent + p(1)));

    let refused = Ledger::open(&dir.file()).unwrap_err();
    let message = refused.to_string();
    assert!(matches!(refused, LedgerError::Inconsistent { .. }), "{message}");
    assert!(
        message.contains("sk-a") && message.contains("--check-ledger"),
        "{message}"
    );
    let report = Ledger::check(&dir.file()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let account = &report.accounts[0];
    assert_eq!((account.spent, account.charged, account.generations), (p(41), p(40), 1));
}

/// Terms whose clock stands (almost) still at `at`, with purchases lasting
/// `days`: a test "warps" by setting terms at a later time.
fn terms_at(at: &str, days: Option<i64>) -> Terms {
    Terms {
        clock: crate::router::clock::CalendarClock::warped(at.parse().unwrap(), 0.001).unwrap(),
        credit_expiry: days.map(|d| jiff::SignedDuration::from_hours(d * 24)),
    }
}

/// (amount, used, expires) of each purchase.
fn purchases(ledger: &Ledger, key: &str) -> Vec<(Picodollars, Picodollars, Option<String>)> {
    let show = |us: i64| jiff::Timestamp::from_microsecond(us).unwrap().to_string();
    ledger
        .balance(key)
        .unwrap()
        .purchases
        .iter()
        .map(|p| (p.amount, p.used, p.expires_us.map(show)))
        .collect()
}

/// Spends `cost` through a reservation of it.
async fn spend(ledger: &Ledger, key: &str, id: &str, cost: i64) -> Settlement {
    ledger
        .settle(ledger.reserve(key, p(cost)).unwrap(), record(id, cost))
        .await
        .unwrap()
}

#[tokio::test]
async fn purchases_expire_and_charges_draw_from_the_oldest_first() {
    let ledger = Ledger::in_memory();
    ledger.set_terms(terms_at("2026-01-01T00:00:00Z", Some(365)));
    ledger.create_account("sk-a", "alice", p(1_000)).await.unwrap();
    ledger.set_terms(terms_at("2026-04-01T00:00:00Z", Some(365)));
    ledger.add_credits("sk-a", p(500)).await.unwrap();
    // Oldest first: the first 1,000 before any of the 500.
    spend(&ledger, "sk-a", "gen-1", 300).await;
    let year = |at: &str| Some(at.to_string());
    assert_eq!(
        purchases(&ledger, "sk-a"),
        [
            (p(1_000), p(300), year("2027-01-01T00:00:00Z")),
            (p(500), p(0), year("2027-04-01T00:00:00Z"))
        ]
    );
    // A second before the first purchase expires, all of it is there.
    ledger.set_terms(terms_at("2026-12-31T23:59:59Z", Some(365)));
    let before = ledger.balance("sk-a").unwrap();
    assert_eq!((before.available, before.expired), (p(1_200), p(0)));
    assert_conserved(&before);
    // Past it, the balance drops by exactly what it had left.
    ledger.set_terms(terms_at("2027-01-01T00:00:00Z", Some(365)));
    let after = ledger.balance("sk-a").unwrap();
    assert_eq!((after.available, after.expired), (p(500), p(700)));
    assert_eq!((after.credits, after.spent), (before.credits, before.spent));
    assert_conserved(&after);
    // Reservations honour it: the expired 700 cannot be held.
    assert!(matches!(
        ledger.reserve("sk-a", p(501)),
        Err(LedgerError::Insufficient { available, .. }) if available == p(500)
    ));
    // The next charge draws from the second purchase, not the expired rest.
    spend(&ledger, "sk-a", "gen-2", 200).await;
    assert_eq!(
        purchases(&ledger, "sk-a"),
        [
            (p(1_000), p(300), year("2027-01-01T00:00:00Z")),
            (p(500), p(200), year("2027-04-01T00:00:00Z"))
        ]
    );
    assert_eq!(ledger.balance("sk-a").unwrap().available, p(300));
    // A charge past its hold takes what is left unexpired, no more.
    let held = ledger.reserve("sk-a", p(100)).unwrap();
    let settlement = ledger.settle(held, record("gen-3", 400)).await.unwrap();
    assert_eq!((settlement.charged, settlement.uncollected), (p(300), p(100)));
    let last = ledger.balance("sk-a").unwrap();
    assert_eq!((last.available, last.expired, last.spent), (p(0), p(700), p(800)));
    assert_conserved(&last);
    // Once everything expired, nothing is left, and the terms without
    // expiry do not revive a purchase made under them.
    ledger.set_terms(terms_at("2027-05-01T00:00:00Z", None));
    assert_eq!(ledger.balance("sk-a").unwrap().expired, p(700));
    ledger.add_credits("sk-a", p(50)).await.unwrap();
    assert_eq!(purchases(&ledger, "sk-a")[2], (p(50), p(0), None));
    assert_eq!(ledger.balance("sk-a").unwrap().available, p(50));
}

#[tokio::test]
async fn purchases_survive_reopen_and_a_crash() {
    let dir = TempDir::new("purchases");
    let ledger = Ledger::open(&dir.file()).unwrap();
    ledger.set_terms(terms_at("2026-01-01T00:00:00Z", Some(30)));
    ledger.create_account("sk-a", "alice", p(1_000)).await.unwrap();
    ledger.set_terms(terms_at("2026-01-10T00:00:00Z", Some(30)));
    ledger.add_credits("sk-a", p(500)).await.unwrap();
    spend(&ledger, "sk-a", "gen-1", 800).await;
    ledger.set_terms(terms_at("2026-01-20T00:00:00Z", Some(30)));
    spend(&ledger, "sk-a", "gen-2", 300).await;
    let expected = purchases(&ledger, "sk-a");
    assert_eq!(
        expected.iter().map(|(a, u, _)| (*a, *u)).collect::<Vec<_>>(),
        [(p(1_000), p(1_000)), (p(500), p(100))]
    );
    let image = scratch("purchases-crash");
    crash_image(&dir.file(), &image);
    ledger.close().await.unwrap();
    for file in [dir.file(), image.file()] {
        let reopened = Ledger::open(&file).unwrap();
        assert_eq!(purchases(&reopened, "sk-a"), expected, "{}", file.display());
        // The stored dates still decide: past the second purchase's expiry
        // its unspent 400 is gone.
        reopened.set_terms(terms_at("2026-02-09T00:00:00Z", None));
        let balance = reopened.balance("sk-a").unwrap();
        assert_eq!((balance.available, balance.expired), (p(0), p(400)));
        reopened.close().await.unwrap();
        let report = Ledger::check(&file).unwrap();
        assert_eq!(report.problems, Vec::<String>::new());
    }
}

#[tokio::test]
async fn a_ledger_of_an_older_format_is_refused_with_its_format() {
    let dir = TempDir::new("old-format");
    Ledger::open(&dir.file()).unwrap().close().await.unwrap();
    super::store::set_format_for_test(&dir.file(), 2);
    let error = Ledger::open(&dir.file()).unwrap_err().to_string();
    assert!(
        error.contains("it is a ledger of format 2; this gauntlet reads format 3 only"),
        "{error}"
    );
}

#[tokio::test]
async fn purchases_that_do_not_add_up_are_refused_and_shown_by_the_check() {
    let dir = TempDir::new("purchases-sum");
    let ledger = Ledger::open(&dir.file()).unwrap();
    ledger.create_account("sk-a", "alice", p(1_000)).await.unwrap();
    ledger.close().await.unwrap();
    super::store::rewrite_account_for_test(&dir.file(), "sk-a", |credits, spent| (credits + p(1), spent));
    let error = Ledger::open(&dir.file()).unwrap_err().to_string();
    assert!(
        error.contains("account `sk-a` has $0.000000001001 in credits but its 1 purchases add up to $0.000000001"),
        "{error}"
    );
}

//! The retry budget: client requests and retries counted in a sliding window
//! shared by every request of a router, so that retries stay a fraction of
//! the traffic.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{BUDGET_BUCKETS, RetryPolicy, lock};

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    epoch: u64,
    requests: u64,
    retries: u64,
}

/// The counts of a retry budget's window at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSnapshot {
    pub requests: u64,
    pub retries: u64,
    /// Retries the window admits: max(`budget_min_retries`, ⌊ratio × requests⌋).
    pub limit: u64,
}

/// A router-wide retry budget: requests and retries counted in a sliding
/// window, a ring of [`BUDGET_BUCKETS`] buckets of `budget_window /
/// BUDGET_BUCKETS` each (the window is the current, partial bucket and the
/// ones before it).
#[derive(Debug)]
pub struct RetryBudget {
    origin: Instant,
    bucket_width: Duration,
    ratio: f64,
    min_retries: u32,
    buckets: Mutex<[Bucket; BUDGET_BUCKETS]>,
}

impl RetryBudget {
    /// A budget with the policy's window, ratio and floor, its buckets
    /// aligned to now.
    pub fn new(policy: &RetryPolicy) -> Self {
        RetryBudget {
            origin: Instant::now(),
            bucket_width: policy.budget_window() / BUDGET_BUCKETS as u32,
            ratio: policy.budget_ratio(),
            min_retries: policy.budget_min_retries(),
            buckets: Mutex::new([Bucket::default(); BUDGET_BUCKETS]),
        }
    }

    fn epoch(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.origin).as_nanos();
        let width = self.bucket_width.as_nanos().max(1);
        u64::try_from(elapsed / width).unwrap_or(u64::MAX)
    }

    fn snapshot_of(&self, buckets: &[Bucket; BUDGET_BUCKETS], epoch: u64) -> BudgetSnapshot {
        let live = buckets
            .iter()
            .filter(|b| b.epoch <= epoch && epoch - b.epoch < BUDGET_BUCKETS as u64);
        let (requests, retries) = live.fold((0u64, 0u64), |(q, r), b| {
            (q.saturating_add(b.requests), r.saturating_add(b.retries))
        });
        // `as` saturates: a huge product is simply a huge limit.
        let by_ratio = (self.ratio * requests as f64).floor() as u64;
        BudgetSnapshot {
            requests,
            retries,
            limit: by_ratio.max(u64::from(self.min_retries)),
        }
    }

    fn current(buckets: &mut [Bucket; BUDGET_BUCKETS], epoch: u64) -> &mut Bucket {
        let bucket = &mut buckets[(epoch % BUDGET_BUCKETS as u64) as usize];
        if bucket.epoch != epoch {
            *bucket = Bucket {
                epoch,
                requests: 0,
                retries: 0,
            };
        }
        bucket
    }

    /// Counts a client request.
    pub fn record_request(&self, now: Instant) {
        let epoch = self.epoch(now);
        let mut buckets = lock(&self.buckets);
        let bucket = Self::current(&mut buckets, epoch);
        bucket.requests = bucket.requests.saturating_add(1);
    }

    /// Admits and counts a retry if, counting it, the window's retries stay
    /// within its limit.
    pub fn try_acquire_retry(&self, now: Instant) -> bool {
        let epoch = self.epoch(now);
        let mut buckets = lock(&self.buckets);
        let snapshot = self.snapshot_of(&buckets, epoch);
        if snapshot.retries >= snapshot.limit {
            return false;
        }
        let bucket = Self::current(&mut buckets, epoch);
        bucket.retries = bucket.retries.saturating_add(1);
        true
    }

    /// The window's counts at `now`.
    pub fn snapshot(&self, now: Instant) -> BudgetSnapshot {
        self.snapshot_of(&lock(&self.buckets), self.epoch(now))
    }
}

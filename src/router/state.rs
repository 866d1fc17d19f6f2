//! The shared state of one router, which the service builds and every
//! request handler (the chat completion among them) reads.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};

use super::clock::CalendarClock;
use super::config::{KeyConfig, RouterConfig};
use super::ledger::Ledger;
use super::limits::Limiter;
use super::retry::Retrier;
use super::upstream::HttpClient;

/// Shared state of one router.
pub(crate) struct State {
    pub config: RouterConfig,
    pub client: HttpClient,
    pub ledger: Ledger,
    pub limiter: Limiter,
    pub clock: CalendarClock,
    pub keys: RwLock<HashMap<Arc<str>, Arc<KeyConfig>>>,
    pub retrier: Retrier,
    pub next_generation: AtomicU64,
    /// Makes generation ids unique across restarts (settling is idempotent by id).
    pub generation_prefix: String,
}

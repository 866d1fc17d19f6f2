//! The generation index: settled generations by id, kept compact, hashed once per settle and bounded in memory.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard};

use super::bloom::Bloom;
use super::store::{Op, Shared, StoreFailure};
use super::{GenerationRecord, Settlement, lock};
use crate::router::pricing::Picodollars;

pub(super) struct Generation {
    pub(super) record: GenerationRecord,
    pub(super) charged: Picodollars,
    pub(super) uncollected: Picodollars,
    /// The write that persists it; durable once the writer has committed it.
    pub(super) seq: u64,
}

impl Generation {
    pub(super) fn settlement(&self, replayed: bool) -> Settlement {
        Settlement {
            charged: self.charged,
            uncollected: self.uncollected,
            replayed,
        }
    }
}

/// How many generations an in-memory ledger keeps; the oldest are forgotten first.
pub(super) const MEMORY_LIMIT: usize = 50_000;
/// How many recently applied generations a durable ledger keeps in memory.
pub(super) const CACHE_LIMIT: usize = 4_096;

/// Settled generations by id. Every settle looks its id up and then adds it,
/// so the tables are kept compact and cheap to grow: each id is hashed once
/// per settle, before the lock is taken (SipHash with a random key, as
/// `HashMap` does), and a table is keyed by that hash with the generation
/// boxed, so growing it moves 16 bytes a generation and never re-hashes a
/// string. The id is stored once, in the record.
///
/// Memory is bounded. In memory, `table` holds the last [`MEMORY_LIMIT`]
/// generations. A durable ledger reads generations from its file: `table`
/// holds only those settled but not yet applied to the file, and `cache`
/// the last [`CACHE_LIMIT`] applied.
pub(super) struct Generations {
    hasher: RandomState,
    table: Mutex<GenerationTable>,
    cache: Mutex<GenerationTable>,
    durable: bool,
    /// Durable only: the ids the file may hold (all settled ones).
    stored: Mutex<Bloom>,
}

impl Default for Generations {
    /// The generations of an in-memory ledger.
    fn default() -> Self {
        Generations {
            hasher: RandomState::new(),
            table: Mutex::new(GenerationTable::bounded(MEMORY_LIMIT)),
            cache: Mutex::new(GenerationTable::default()),
            durable: false,
            stored: Mutex::new(Bloom::with_capacity(0)),
        }
    }
}

/// Generations by the hash of their id. Two ids with the same 64-bit hash
/// are told apart by `collided`, which is empty in practice.
#[derive(Default)]
pub(super) struct GenerationTable {
    by_hash: HashMap<u64, Box<Generation>, BuildHasherDefault<Prehashed>>,
    collided: HashMap<String, (u64, Box<Generation>)>,
    /// With a bound: hashes in the order they were inserted, to forget the oldest.
    order: VecDeque<u64>,
    limit: Option<usize>,
}

impl Generations {
    /// The generations of a durable ledger whose file holds the ids in `stored`.
    pub(super) fn durable(stored: Bloom) -> Generations {
        Generations {
            hasher: RandomState::new(),
            table: Mutex::new(GenerationTable::default()),
            cache: Mutex::new(GenerationTable::bounded(CACHE_LIMIT)),
            durable: true,
            stored: Mutex::new(stored),
        }
    }

    /// A durable ledger has settled `id`: the file will hold it. Called
    /// while the caller holds [`lock`](Self::lock).
    pub(super) fn settled(&self, id: &str) {
        if self.durable {
            lock(&self.stored).insert(id);
        }
    }

    pub(super) fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The table settles check and add to: all generations in memory, those
    /// not yet applied to the file in a durable ledger.
    pub(super) fn lock(&self) -> MutexGuard<'_, GenerationTable> {
        lock(&self.table)
    }

    /// Whether a durable ledger's file or cache has the generation `id`
    /// (hash `hash`): its settlement, read while the caller holds [`lock`](Self::lock).
    pub(super) fn settled_before(
        &self,
        hash: u64,
        id: &str,
        shared: &Shared,
    ) -> Result<Option<Settlement>, StoreFailure> {
        if !self.durable {
            return Ok(None);
        }
        if let Some(found) = lock(&self.cache).get(hash, id) {
            return Ok(Some(found.settlement(true)));
        }
        // Most ids are new: the filter says so without reading the file.
        if !lock(&self.stored).may_contain(id) {
            return Ok(None);
        }
        Ok(shared.stored_generation(id)?.map(|found| found.settlement(true)))
    }

    /// What `read` makes of the generation `id`, if it was settled (and, in
    /// memory, is not yet forgotten). A durable ledger that cannot read the
    /// record from its file answers `None`.
    pub(super) fn read<T>(&self, id: &str, shared: &Shared, read: impl Fn(&Generation) -> T) -> Option<T> {
        let hash = self.hash(id);
        if let Some(found) = self.lock().get(hash, id).map(&read) {
            return Some(found);
        }
        if !self.durable {
            return None;
        }
        if let Some(found) = lock(&self.cache).get(hash, id).map(&read) {
            return Some(found);
        }
        let stored = shared.stored_generation(id).ok().flatten()?;
        let found = read(&stored);
        lock(&self.cache).insert(hash, Box::new(stored));
        Some(found)
    }

    /// How many generation records are held in memory.
    #[cfg(test)]
    pub(super) fn held(&self) -> usize {
        self.lock().len() + lock(&self.cache).len()
    }

    /// The writer has applied `batch` to the file: its generations move from
    /// the table to the cache.
    pub(super) fn applied(&self, batch: &[Op]) {
        let mut moved = Vec::new();
        {
            let mut table = self.lock();
            for op in batch {
                if let Op::Settle { id, .. } = op {
                    let hash = self.hash(id);
                    if let Some(generation) = table.remove(hash, id) {
                        moved.push((hash, generation));
                    }
                }
            }
        }
        let mut cache = lock(&self.cache);
        for (hash, generation) in moved {
            if cache.get(hash, &generation.record.id).is_none() {
                cache.insert(hash, generation);
            }
        }
    }
}

impl GenerationTable {
    fn bounded(limit: usize) -> GenerationTable {
        GenerationTable {
            limit: Some(limit),
            ..GenerationTable::default()
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_hash.len() + self.collided.len()
    }

    /// The generation `id`, whose hash is `hash`.
    pub(super) fn get(&self, hash: u64, id: &str) -> Option<&Generation> {
        match self.by_hash.get(&hash) {
            Some(generation) if generation.record.id == id => Some(&**generation),
            // Only an id whose hash is taken can be in `collided`.
            Some(_) => self.collided.get(id).map(|(_, generation)| &**generation),
            None => None,
        }
    }

    /// Adds a generation whose id is not in the table; `hash` is its id's.
    /// A bounded table forgets its oldest generation when full.
    pub(super) fn insert(&mut self, hash: u64, generation: Box<Generation>) {
        if let Some(limit) = self.limit {
            while self.by_hash.len() >= limit {
                let Some(oldest) = self.order.pop_front() else { break };
                self.by_hash.remove(&oldest);
            }
            self.order.push_back(hash);
        }
        match self.by_hash.entry(hash) {
            Entry::Vacant(slot) => {
                slot.insert(generation);
            }
            Entry::Occupied(_) => {
                self.collided.insert(generation.record.id.clone(), (hash, generation));
            }
        }
    }

    /// Takes the generation `id` out of the table.
    fn remove(&mut self, hash: u64, id: &str) -> Option<Box<Generation>> {
        match self.by_hash.get(&hash) {
            Some(generation) if generation.record.id == id => {
                let removed = self.by_hash.remove(&hash);
                // A generation that collided with it takes its place.
                let heir = self
                    .collided
                    .iter()
                    .find(|(_, (other, _))| *other == hash)
                    .map(|(id, _)| id.clone());
                if let Some((_, moved)) = heir.and_then(|id| self.collided.remove(&id)) {
                    self.by_hash.insert(hash, moved);
                }
                removed
            }
            Some(_) => self.collided.remove(id).map(|(_, generation)| generation),
            None => None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(picos: i64) -> Picodollars {
        Picodollars(picos)
    }

    fn record(id: &str) -> GenerationRecord {
        GenerationRecord {
            id: id.to_string(),
            ..GenerationRecord::default()
        }
    }

    #[test]
    fn generations_whose_ids_hash_alike_are_told_apart() {
        let generation = |id: &str, cost: i64| {
            Box::new(Generation {
                record: record(id),
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
}

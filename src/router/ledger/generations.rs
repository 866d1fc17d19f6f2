//! The generation index: settled generations by id, kept compact and hashed once per settle.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

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

/// Settled generations by id. Every settle looks its id up and then adds it,
/// and the set only grows, so it is kept compact and cheap to grow: each id
/// is hashed once per settle, before the lock is taken (SipHash with a random
/// key, as `HashMap` does), and the table is keyed by that hash with the
/// generation boxed, so growing it moves 16 bytes a generation and never
/// re-hashes a string. The id is stored once, in the record.
#[derive(Default)]
pub(super) struct Generations {
    hasher: RandomState,
    table: Mutex<GenerationTable>,
}

/// Generations by the hash of their id. Two ids with the same 64-bit hash
/// are told apart by `collided`, which is empty in practice.
#[derive(Default)]
pub(super) struct GenerationTable {
    by_hash: HashMap<u64, Box<Generation>, BuildHasherDefault<Prehashed>>,
    collided: HashMap<String, Box<Generation>>,
}

impl Generations {
    pub(super) fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, GenerationTable> {
        lock(&self.table)
    }

    /// What `read` makes of the generation `id`, if it was settled.
    pub(super) fn read<T>(&self, id: &str, read: impl FnOnce(&Generation) -> T) -> Option<T> {
        let hash = self.hash(id);
        self.lock().get(hash, id).map(read)
    }

    /// Adds a generation read from the store.
    pub(super) fn load(&mut self, generation: Box<Generation>) {
        let hash = self.hash(&generation.record.id);
        let table = self.table.get_mut().unwrap_or_else(PoisonError::into_inner);
        if table.get(hash, &generation.record.id).is_none() {
            table.insert(hash, generation);
        }
    }
}

impl GenerationTable {
    /// The generation `id`, whose hash is `hash`.
    pub(super) fn get(&self, hash: u64, id: &str) -> Option<&Generation> {
        match self.by_hash.get(&hash) {
            Some(generation) if generation.record.id == id => Some(&**generation),
            // Only an id whose hash is taken can be in `collided`.
            Some(_) => self.collided.get(id).map(|generation| &**generation),
            None => None,
        }
    }

    /// Adds a generation whose id is not in the table; `hash` is its id's.
    pub(super) fn insert(&mut self, hash: u64, generation: Box<Generation>) {
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

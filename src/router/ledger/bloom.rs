//! Which generation ids the ledger file may hold: a Bloom filter, so that
//! settling a new generation does not read the file to learn it is new.
//!
//! A layered ("scalable") filter: each layer holds up to its capacity at
//! 16 bits an id and 8 probes (about one false positive in 2,000); when the
//! last layer is full a layer of twice the capacity is added. A false
//! positive only costs the read it would have saved; there are no false
//! negatives, so idempotence by id stays exact.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

const BITS_PER_ID: usize = 16;
const PROBES: u64 = 8;
/// The first layer's capacity.
const FIRST: usize = 1 << 16;

#[derive(Debug)]
pub(super) struct Bloom {
    layers: Vec<Layer>,
}

#[derive(Debug)]
struct Layer {
    bits: Vec<u64>,
    capacity: usize,
    len: usize,
}

impl Layer {
    fn new(capacity: usize) -> Layer {
        Layer {
            bits: vec![0; (capacity * BITS_PER_ID).div_ceil(64)],
            capacity,
            len: 0,
        }
    }

    fn probes(&self, (h1, h2): (u64, u64)) -> impl Iterator<Item = (usize, u64)> + use<> {
        let m = self.bits.len() as u64 * 64;
        (0..PROBES).map(move |i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % m;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }

    fn insert(&mut self, hashes: (u64, u64)) {
        for (word, mask) in self.probes(hashes) {
            self.bits[word] |= mask;
        }
        self.len += 1;
    }

    fn may_contain(&self, hashes: (u64, u64)) -> bool {
        self.probes(hashes).all(|(word, mask)| self.bits[word] & mask != 0)
    }
}

/// Two hashes of an id, the second odd (so the probes cover the layer).
fn hashes(id: &str) -> (u64, u64) {
    let hasher = BuildHasherDefault::<DefaultHasher>::default();
    (hasher.hash_one((0u8, id)), hasher.hash_one((1u8, id)) | 1)
}

impl Bloom {
    /// A filter for about `expected` ids to start with.
    pub(super) fn with_capacity(expected: usize) -> Bloom {
        Bloom {
            layers: vec![Layer::new(expected.max(FIRST))],
        }
    }

    pub(super) fn insert(&mut self, id: &str) {
        let full = self.layers.last().is_none_or(|layer| layer.len >= layer.capacity);
        if full {
            let capacity = self.layers.last().map_or(FIRST, |layer| layer.capacity * 2);
            self.layers.push(Layer::new(capacity));
        }
        if let Some(layer) = self.layers.last_mut() {
            layer.insert(hashes(id));
        }
    }

    /// False only for an id never inserted.
    pub(super) fn may_contain(&self, id: &str) -> bool {
        let hashes = hashes(id);
        self.layers.iter().any(|layer| layer.may_contain(hashes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_inserted_id_is_ever_missed_and_few_others_are_claimed() {
        let mut bloom = Bloom::with_capacity(0);
        for i in 0..200_000 {
            bloom.insert(&format!("gen-{i}"));
        }
        assert!(bloom.layers.len() >= 2, "it grew");
        assert!((0..200_000).all(|i| bloom.may_contain(&format!("gen-{i}"))));
        let claimed = (0..100_000)
            .filter(|i| bloom.may_contain(&format!("other-{i}")))
            .count();
        assert!(claimed < 300, "{claimed} false positives in 100,000");
    }
}

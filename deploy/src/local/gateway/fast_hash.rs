//! A hasher for the gateway's own maps looked up on every request (tenants
//! by name, keys by their SHA-256, usage by tenant and key id): the
//! standard SipHash was about 4 % of a GET's instructions. These maps hold
//! only what the deployed state put there, so a client choosing what is
//! looked up can make a lookup miss, never make the map slow; SipHash's
//! resistance to chosen keys is not needed.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map with [`Fx`] hashing.
pub(super) type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<Fx>>;

/// The multiply-rotate hash of rustc (`FxHasher`), 8 bytes at a time.
#[derive(Default, Clone, Copy)]
pub(super) struct Fx(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Fx {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length too, so "a" and "a\0" differ.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        // hashbrown takes its 7-bit tag from the top bits and the bucket
        // from the low ones: fold the high half down so both vary.
        self.0 ^ (self.0 >> 32)
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, BuildHasherDefault};

    use super::*;

    #[test]
    fn distinct_keys_hash_apart_and_maps_work() {
        let build = BuildHasherDefault::<Fx>::default();
        let words = [
            "",
            "a",
            "a\0",
            "b",
            "acme",
            "acme-2",
            "bench",
            "benc",
            "12345678",
            "123456789",
        ];
        let mut hashes: Vec<u64> = words.iter().map(|w| build.hash_one(w)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), words.len());

        let mut m: FastMap<String, usize> = FastMap::default();
        for i in 0..1000 {
            m.insert(format!("key-{i}"), i);
        }
        assert!((0..1000).all(|i| m[&format!("key-{i}")] == i));
        assert_eq!(m.get("key-1000"), None);
    }
}

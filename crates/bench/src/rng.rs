//! A small seeded generator (SplitMix64): the same seed gives the same data on every machine and
//! with every dependency version, which a crate's generator does not promise.

pub struct Rng(u64);

impl Rng {
    /// A generator for one item of a stream: `seed` and `index` mixed, so every person's data
    /// depends only on the seed and their own index, and rows can be made in any order.
    pub fn for_item(seed: u64, stream: u64, index: u64) -> Rng {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xA24B_AED4_963E_E407));
        rng.0 ^= rng.next_u64() ^ index.wrapping_mul(0x9FB2_1C65_1E98_DF25);
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn the_same_seed_gives_the_same_numbers_and_another_seed_others() {
        let take = |seed| {
            let mut rng = Rng::for_item(seed, 1, 42);
            (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(take(7), take(7));
        assert_ne!(take(7), take(8));
    }

    #[test]
    fn below_stays_in_range_and_reaches_both_ends() {
        let mut rng = Rng::for_item(1, 2, 3);
        let seen: Vec<u64> = (0..1000).map(|_| rng.below(3)).collect();
        assert!(seen.iter().all(|&n| n < 3));
        assert!(seen.contains(&0) && seen.contains(&2));
    }
}

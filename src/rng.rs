//! A tiny seeded pseudo-random generator (SplitMix64), for the few places
//! that need spread rather than secrecy: the scheduler's jitter, and the
//! load tools' random gaps and kill moments. No crate needed, and never a
//! security concern.

use std::time::Duration;

/// SplitMix64: one `u64` of state, uniform enough to spread runs.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with a fixed seed (tests, reproducible runs).
    pub fn from_seed(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// Seeded from the clock and the pid, so daemons on many hosts started
    /// by the same config do not jitter in lockstep.
    pub fn seeded() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        SplitMix64(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `0..n` (zero when `n` is zero).
    pub fn below_u64(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.next_u64() % n
    }

    /// A uniform duration in `0..max` at millisecond resolution (zero when
    /// `max` is below a millisecond).
    pub fn below(&mut self, max: Duration) -> Duration {
        let ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(self.below_u64(ms))
    }

    /// A uniform number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_stays_under_its_bound_and_spreads() {
        let mut rng = SplitMix64::from_seed(7);
        let max = Duration::from_millis(1000);
        let draws: Vec<Duration> = (0..1000).map(|_| rng.below(max)).collect();
        assert!(draws.iter().all(|d| *d < max));
        // Spread: both halves of the range are hit.
        assert!(draws.iter().any(|d| *d < Duration::from_millis(250)));
        assert!(draws.iter().any(|d| *d > Duration::from_millis(750)));
        assert_eq!(rng.below(Duration::ZERO), Duration::ZERO);
        assert_eq!(rng.below_u64(0), 0);
    }

    #[test]
    fn unit_is_uniform_in_the_unit_interval() {
        let mut r = SplitMix64::from_seed(42);
        let xs: Vec<f64> = (0..10_000).map(|_| r.unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }
}

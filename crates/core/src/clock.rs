//! Time and randomness as parameters, so tests of windows, expiry and lockout are exact.

/// Wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Unix time in milliseconds.
    fn now_ms(&self) -> i64;
    /// Unix time in seconds.
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// A source of cryptographically secure random bytes.
pub trait Random: Send + Sync + 'static {
    fn fill(&self, buf: &mut [u8]);
}

/// Random bytes of a fixed size.
pub fn random_array<const N: usize>(rng: &dyn Random) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill(&mut out);
    out
}

/// A random string of decimal digits, unbiased (rejection sampling).
pub fn random_digits(rng: &dyn Random, len: usize) -> String {
    let mut out = String::with_capacity(len);
    while out.len() < len {
        let [b] = random_array::<1>(rng);
        // 250 is the largest multiple of 10 below 256: reject above it to avoid modulo bias.
        if b < 250 {
            out.push(char::from(b'0' + b % 10));
        }
    }
    out
}

pub mod testing {
    //! Deterministic clock and randomness for tests of the engine's rules.
    use super::{Clock, Random};
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    #[derive(Default)]
    pub struct FixedClock(pub AtomicI64);
    impl FixedClock {
        pub fn at(t: i64) -> Self {
            Self(AtomicI64::new(t))
        }
        pub fn advance(&self, secs: i64) {
            self.0.fetch_add(secs, Ordering::SeqCst);
        }
    }
    impl Clock for FixedClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst) * 1000
        }
    }

    #[derive(Default)]
    pub struct CountingRandom(pub AtomicU64);
    impl Random for CountingRandom {
        fn fill(&self, buf: &mut [u8]) {
            for b in buf.iter_mut() {
                *b = (self.0.fetch_add(1, Ordering::SeqCst) % 251) as u8;
            }
        }
    }
}

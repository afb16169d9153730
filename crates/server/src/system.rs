//! The real clock and random source the engine gets in production.

use mfad_core::clock::{Clock, Random};
use std::time::{SystemTime, UNIX_EPOCH};

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// The operating system's CSPRNG.
pub struct OsRandom;

impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        // getrandom only fails when the kernel has no entropy source at all; a process
        // that cannot get randomness must not issue secrets, so stop here.
        if let Err(err) = getrandom::getrandom(buf) {
            eprintln!("error: the operating system random source failed: {err}");
            std::process::abort();
        }
    }
}

//! Counters of what the RADIUS front-end received and did with it, for logs, `/metrics` and tests.

use crate::handler::CHANNEL;
use mfad_core::engine::Outcome;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Live counters, shared by every task of one server. Relaxed ordering: each
/// counter is read on its own and only ever grows.
///
/// Each also has its `/metrics` handle, taken once when the server is made (after `mfad
/// serve` installed the recorder): the recorder's lookup by name and labels costs more
/// than the rest of a counted event.
#[derive(Debug)]
pub struct Stats {
    received: AtomicU64,
    accepted: AtomicU64,
    rejected: AtomicU64,
    challenged: AtomicU64,
    status_server: AtomicU64,
    accounting: AtomicU64,
    dropped_unknown_client: AtomicU64,
    dropped_bad_authenticator: AtomicU64,
    dropped_malformed: AtomicU64,
    duplicates: AtomicU64,
    metrics: [metrics::Counter; COUNTERS],
    /// `mfad_auth_duration_seconds` of an accept, a reject and a challenge.
    durations: [metrics::Histogram; 3],
}

impl Default for Stats {
    fn default() -> Self {
        let duration = |result: &'static str| metrics::histogram!("mfad_auth_duration_seconds", "channel" => CHANNEL.as_str(), "result" => result);
        Self {
            received: AtomicU64::default(),
            accepted: AtomicU64::default(),
            rejected: AtomicU64::default(),
            challenged: AtomicU64::default(),
            status_server: AtomicU64::default(),
            accounting: AtomicU64::default(),
            dropped_unknown_client: AtomicU64::default(),
            dropped_bad_authenticator: AtomicU64::default(),
            dropped_malformed: AtomicU64::default(),
            duplicates: AtomicU64::default(),
            metrics: ALL.map(metric),
            durations: ["accept", "reject", "challenge"].map(duration),
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatsSnapshot {
    /// Datagrams read from the socket.
    pub received: u64,
    /// Access-Accept sent for an authentication (not counting Status-Server).
    pub accepted: u64,
    /// Access-Reject sent.
    pub rejected: u64,
    /// Access-Challenge sent.
    pub challenged: u64,
    /// Status-Server requests answered (RFC 5997).
    pub status_server: u64,
    /// Accounting-Response sent.
    pub accounting: u64,
    /// From a source address that matches no client.
    pub dropped_unknown_client: u64,
    /// Wrong or required-but-missing Message-Authenticator, or a wrong
    /// accounting Request Authenticator.
    pub dropped_bad_authenticator: u64,
    /// Not a well-formed RADIUS request this server answers.
    pub dropped_malformed: u64,
    /// Retransmissions answered from the cache or dropped while the first
    /// copy was being decided (RFC 5080 §2.2.2).
    pub duplicates: u64,
}

/// Which counter to bump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub(crate) enum Counter {
    Received,
    Accepted,
    Rejected,
    Challenged,
    StatusServer,
    Accounting,
    DroppedUnknownClient,
    DroppedBadAuthenticator,
    DroppedMalformed,
    Duplicates,
}

const COUNTERS: usize = 10;

/// Every counter, in the order of its discriminant.
const ALL: [Counter; COUNTERS] = [
    Counter::Received,
    Counter::Accepted,
    Counter::Rejected,
    Counter::Challenged,
    Counter::StatusServer,
    Counter::Accounting,
    Counter::DroppedUnknownClient,
    Counter::DroppedBadAuthenticator,
    Counter::DroppedMalformed,
    Counter::Duplicates,
];

impl Stats {
    pub(crate) fn bump(&self, counter: Counter) {
        let cell = match counter {
            Counter::Received => &self.received,
            Counter::Accepted => &self.accepted,
            Counter::Rejected => &self.rejected,
            Counter::Challenged => &self.challenged,
            Counter::StatusServer => &self.status_server,
            Counter::Accounting => &self.accounting,
            Counter::DroppedUnknownClient => &self.dropped_unknown_client,
            Counter::DroppedBadAuthenticator => &self.dropped_bad_authenticator,
            Counter::DroppedMalformed => &self.dropped_malformed,
            Counter::Duplicates => &self.duplicates,
        };
        cell.fetch_add(1, Ordering::Relaxed);
        if let Some(metric) = self.metrics.get(counter as usize) {
            metric.increment(1);
        }
    }

    /// The time deciding an authentication took, for `/metrics` by result (the reject
    /// delay not included). The engine counts each attempt with its reason and method.
    pub(crate) fn time(&self, outcome: &Outcome, took: Duration) {
        let [accept, reject, challenge] = &self.durations;
        let histogram = match outcome {
            Outcome::Accept => accept,
            // A pending outcome is what `Engine::wait` gives back when the wait ended.
            Outcome::Reject(_) | Outcome::Pending { .. } => reject,
            Outcome::Challenge { .. } => challenge,
        };
        histogram.record(took.as_secs_f64());
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            received: get(&self.received),
            accepted: get(&self.accepted),
            rejected: get(&self.rejected),
            challenged: get(&self.challenged),
            status_server: get(&self.status_server),
            accounting: get(&self.accounting),
            dropped_unknown_client: get(&self.dropped_unknown_client),
            dropped_bad_authenticator: get(&self.dropped_bad_authenticator),
            dropped_malformed: get(&self.dropped_malformed),
            duplicates: get(&self.duplicates),
        }
    }
}

/// The same event's `/metrics` counter: datagrams received, replies by kind, drops by
/// cause, duplicate-cache hits.
fn metric(counter: Counter) -> metrics::Counter {
    let (name, label) = match counter {
        Counter::Received => ("mfad_radius_received_total", None),
        Counter::Duplicates => ("mfad_radius_duplicates_total", None),
        Counter::Accepted => ("mfad_radius_replies_total", Some(("kind", "accept"))),
        Counter::Rejected => ("mfad_radius_replies_total", Some(("kind", "reject"))),
        Counter::Challenged => ("mfad_radius_replies_total", Some(("kind", "challenge"))),
        Counter::StatusServer => ("mfad_radius_replies_total", Some(("kind", "status_server"))),
        Counter::Accounting => ("mfad_radius_replies_total", Some(("kind", "accounting"))),
        Counter::DroppedUnknownClient => (
            "mfad_radius_dropped_total",
            Some(("cause", "unknown_client")),
        ),
        Counter::DroppedBadAuthenticator => (
            "mfad_radius_dropped_total",
            Some(("cause", "bad_authenticator")),
        ),
        Counter::DroppedMalformed => ("mfad_radius_dropped_total", Some(("cause", "malformed"))),
    };
    match label {
        Some((key, value)) => metrics::counter!(name, key => value),
        None => metrics::counter!(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_counter_is_its_own() {
        let stats = Stats::default();
        stats.bump(Counter::Received);
        stats.bump(Counter::Received);
        stats.bump(Counter::Duplicates);
        let s = stats.snapshot();
        assert_eq!((s.received, s.duplicates, s.accepted), (2, 1, 0));
    }

    #[test]
    fn every_counter_has_its_place() {
        for (i, counter) in ALL.into_iter().enumerate() {
            assert_eq!(counter as usize, i, "{counter:?}");
        }
    }
}

//! Duplicate request detection (RFC 5080 §2.2.2): a retransmission is answered from a cache, never decided twice.
//!
//! A NAS retransmits with the same source address, Identifier and Request
//! Authenticator. Deciding such a copy again would consume a second one-time
//! code or issue a second challenge, so the first decision's reply octets are
//! kept for a while and sent again. Time is a parameter so tests are exact.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What identifies a retransmission (RFC 5080 §2.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestKey {
    pub source: SocketAddr,
    pub identifier: u8,
    pub authenticator: [u8; 16],
}

/// What [`DedupCache::begin`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// First sight: the caller decides it and then calls `finish` or `abandon`.
    New,
    /// The first copy is still being decided: drop this one; the NAS will
    /// retransmit again or the first reply will reach it.
    InProgress,
    /// Already answered: send these octets again.
    Answered(Arc<[u8]>),
}

#[derive(Debug)]
enum State {
    InProgress,
    /// The reply, replayed until `expires`.
    Answered {
        reply: Arc<[u8]>,
        expires: Instant,
    },
}

#[derive(Debug)]
struct Slot {
    state: State,
    /// Matches the queue entry that owns this slot; older queue entries for
    /// the same key are stale and skipped.
    generation: u64,
}

/// A bounded cache of recent requests and their replies.
///
/// A request in progress stays in progress until it is finished or abandoned,
/// however long that takes: a login held for a phone call or an SMS reply may
/// wait longer than the window, and a retransmission meanwhile must not start
/// a second call. Only answers expire and are evicted; the number of requests
/// in progress is bounded by the server's in-flight limit.
#[derive(Debug)]
pub struct DedupCache {
    window: Duration,
    capacity: usize,
    slots: HashMap<RequestKey, Slot>,
    /// Answers in the order they were stored, for expiry and eviction.
    order: VecDeque<(RequestKey, u64)>,
    next_generation: u64,
}

impl DedupCache {
    /// `window` is how long a reply is replayed (RFC 5080 §2.2.2 suggests the
    /// client's retransmission span, commonly 30 s); `capacity` bounds memory.
    pub fn new(window: Duration, capacity: usize) -> Self {
        DedupCache {
            window,
            capacity: capacity.max(1),
            slots: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Looks `key` up and, when it is new, records it as in progress.
    pub fn begin(&mut self, key: RequestKey, now: Instant) -> Seen {
        self.expire(now);
        match self.slots.get(&key) {
            Some(Slot {
                state: State::InProgress,
                ..
            }) => return Seen::InProgress,
            Some(Slot {
                state: State::Answered { reply, expires },
                ..
            }) if *expires > now => return Seen::Answered(Arc::clone(reply)),
            _ => {}
        }
        if self.slots.len() >= self.capacity {
            self.evict_one();
        }
        let generation = self.generation();
        self.slots.insert(
            key,
            Slot {
                state: State::InProgress,
                generation,
            },
        );
        Seen::New
    }

    /// Stores the reply of a request `begin` reported as new; retransmissions
    /// within the window get these octets.
    pub fn finish(&mut self, key: &RequestKey, reply: Arc<[u8]>, now: Instant) {
        // The window runs from the reply, which is when the NAS starts waiting
        // for it again should it be lost.
        let expires = self.deadline(now);
        let generation = self.generation();
        if let Some(slot) = self.slots.get_mut(key) {
            slot.state = State::Answered { reply, expires };
            slot.generation = generation;
            self.order.push_back((*key, generation));
        }
    }

    /// Forgets a request that got no reply (dropped or failed), so that a
    /// retransmission is decided afresh rather than ignored for the window.
    pub fn abandon(&mut self, key: &RequestKey) {
        if let Entry::Occupied(slot) = self.slots.entry(*key) {
            if matches!(slot.get().state, State::InProgress) {
                slot.remove();
            }
        }
    }

    fn generation(&mut self) -> u64 {
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        generation
    }

    /// When an entry made at `now` expires. A window too large for `Instant`
    /// degrades to no caching rather than a panic.
    fn deadline(&self, now: Instant) -> Instant {
        now.checked_add(self.window).unwrap_or(now)
    }

    /// Drops expired answers from the front of the queue (answers are queued in
    /// the order they were stored, so in the order they expire).
    fn expire(&mut self, now: Instant) {
        while let Some(&(key, generation)) = self.order.front() {
            match self.slots.get(&key) {
                Some(slot) if slot.generation == generation => {
                    if matches!(slot.state, State::Answered { expires, .. } if expires > now) {
                        return;
                    }
                    self.slots.remove(&key);
                }
                _ => {}
            }
            self.order.pop_front();
        }
    }

    /// Makes room for one entry: the oldest answer goes. Requests in progress
    /// are never evicted, so they are never decided twice.
    fn evict_one(&mut self) {
        while let Some((key, generation)) = self.order.pop_front() {
            if self
                .slots
                .get(&key)
                .is_some_and(|slot| slot.generation == generation)
            {
                self.slots.remove(&key);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> RequestKey {
        RequestKey {
            source: "192.0.2.1:1645".parse().unwrap(),
            identifier: n,
            authenticator: [n; 16],
        }
    }

    const WINDOW: Duration = Duration::from_secs(30);

    #[test]
    fn a_retransmission_during_processing_is_dropped_and_after_it_replayed() {
        let t0 = Instant::now();
        let mut cache = DedupCache::new(WINDOW, 100);
        assert_eq!(cache.begin(key(1), t0), Seen::New);
        assert_eq!(
            cache.begin(key(1), t0 + Duration::from_secs(1)),
            Seen::InProgress
        );
        let reply: Arc<[u8]> = Arc::from(&b"reply"[..]);
        cache.finish(&key(1), reply.clone(), t0 + Duration::from_secs(2));
        assert_eq!(
            cache.begin(key(1), t0 + Duration::from_secs(3)),
            Seen::Answered(reply)
        );
    }

    #[test]
    fn every_part_of_the_key_matters() {
        // RFC 5080 §2.2.2: source address and port, Identifier and Request
        // Authenticator together identify a request.
        let t0 = Instant::now();
        let mut cache = DedupCache::new(WINDOW, 100);
        let base = key(1);
        assert_eq!(cache.begin(base, t0), Seen::New);
        let mut other_port = base;
        other_port.source.set_port(1646);
        let mut other_id = base;
        other_id.identifier = 2;
        let mut other_auth = base;
        other_auth.authenticator[15] ^= 1;
        for k in [other_port, other_id, other_auth] {
            assert_eq!(cache.begin(k, t0), Seen::New);
        }
    }

    #[test]
    fn entries_expire_after_the_window() {
        let t0 = Instant::now();
        let mut cache = DedupCache::new(WINDOW, 100);
        assert_eq!(cache.begin(key(1), t0), Seen::New);
        cache.finish(&key(1), Arc::from(&b"r"[..]), t0);
        assert!(matches!(
            cache.begin(key(1), t0 + WINDOW - Duration::from_millis(1)),
            Seen::Answered(_)
        ));
        assert_eq!(cache.begin(key(1), t0 + WINDOW), Seen::New);
        // The expired entry was replaced, not kept beside the new one.
        assert_eq!(cache.len(), 1);
        cache.finish(&key(1), Arc::from(&b"r"[..]), t0 + WINDOW);
        cache.begin(key(2), t0 + WINDOW * 3);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn the_window_restarts_when_the_reply_is_stored() {
        let t0 = Instant::now();
        let mut cache = DedupCache::new(WINDOW, 100);
        cache.begin(key(1), t0);
        let answered_at = t0 + Duration::from_secs(20);
        cache.finish(&key(1), Arc::from(&b"r"[..]), answered_at);
        assert!(matches!(
            cache.begin(key(1), t0 + Duration::from_secs(40)),
            Seen::Answered(_)
        ));
    }

    #[test]
    fn an_abandoned_request_is_decided_again() {
        let t0 = Instant::now();
        let mut cache = DedupCache::new(WINDOW, 100);
        cache.begin(key(1), t0);
        cache.abandon(&key(1));
        assert_eq!(cache.begin(key(1), t0), Seen::New);
        // Abandon never removes an answer.
        cache.finish(&key(1), Arc::from(&b"r"[..]), t0);
        cache.abandon(&key(1));
        assert!(matches!(cache.begin(key(1), t0), Seen::Answered(_)));
    }

    #[test]
    fn capacity_evicts_the_oldest_answer_but_never_a_request_in_progress() {
        let t0 = Instant::now();
        let mut cache = DedupCache::new(WINDOW, 3);
        cache.begin(key(1), t0); // stays in progress
        cache.begin(key(2), t0);
        cache.finish(&key(2), Arc::from(&b"2"[..]), t0);
        cache.begin(key(3), t0);
        cache.finish(&key(3), Arc::from(&b"3"[..]), t0);
        assert_eq!(cache.begin(key(4), t0), Seen::New);
        assert_eq!(cache.len(), 3);
        assert_eq!(cache.begin(key(1), t0), Seen::InProgress);
        assert!(matches!(cache.begin(key(3), t0), Seen::Answered(_)));
        // key 2 was the oldest answer, so it went.
        assert_eq!(cache.begin(key(2), t0), Seen::New);
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn a_request_held_longer_than_the_window_stays_in_progress() {
        // A login waiting for a phone call (45 s by default) outlives the 30 s
        // window: its retransmissions must still be dropped, never decided again.
        let t0 = Instant::now();
        let mut cache = DedupCache::new(WINDOW, 2);
        assert_eq!(cache.begin(key(1), t0), Seen::New);
        for i in 2..10 {
            let later = t0 + WINDOW * i;
            assert_eq!(cache.begin(key(1), later), Seen::InProgress);
            assert_eq!(cache.begin(key(i as u8), later), Seen::New);
            cache.finish(&key(i as u8), Arc::from(&b"r"[..]), later);
        }
        cache.finish(&key(1), Arc::from(&b"1"[..]), t0 + WINDOW * 10);
        assert!(matches!(
            cache.begin(key(1), t0 + WINDOW * 10),
            Seen::Answered(_)
        ));
    }

    #[test]
    fn size_stays_bounded_under_a_flood() {
        let t0 = Instant::now();
        let mut cache = DedupCache::new(WINDOW, 50);
        for i in 0..10_000u32 {
            let mut k = key(0);
            k.authenticator[..4].copy_from_slice(&i.to_be_bytes());
            assert_eq!(cache.begin(k, t0), Seen::New);
            cache.finish(&k, Arc::from(&b"r"[..]), t0);
        }
        assert_eq!(cache.len(), 50);
        assert!(cache.order.len() <= 50);
    }
}

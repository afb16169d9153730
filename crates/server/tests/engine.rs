//! The verification engine's rules against the real SQLite store, with a controlled clock.

// Tests report failures by panicking.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mfad_core::clock::testing::FixedClock;
use mfad_core::clock::Random;
use mfad_core::engine::{ClientInfo, Engine, Outcome, Reason, Request, ServerInfo};
use mfad_core::model::{FirstFactor, NewToken, Prompt, Secret};
use mfad_core::otp::{format_code, hotp, totp_step, Algorithm, OtpKind};
use mfad_core::policy::{CacheMode, Policy};
use mfad_core::store::Store;
use mfad_store::conformance::{new_token, new_user};
use std::sync::Arc;
use zeroize::Zeroizing;

const KEY: &[u8] = b"12345678901234567890";
const T0: i64 = 1_795_564_800;

struct OsRandom;
impl Random for OsRandom {
    fn fill(&self, buf: &mut [u8]) {
        getrandom::getrandom(buf).unwrap();
    }
}

struct World {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    clock: Arc<FixedClock>,
    engine: Arc<Engine>,
}

async fn world(policy: Policy, kind: OtpKind) -> World {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let store = mfad_store::open(&url, &dir.path().join("k"), Default::default())
        .await
        .unwrap();
    let clock = Arc::new(FixedClock::at(T0));
    let engine = Arc::new(Engine::new(
        store.clone(),
        clock.clone(),
        Arc::new(OsRandom),
        policy,
        ServerInfo::default(),
    ));
    let user = store.create_user(&new_user("alice"), T0).await.unwrap();
    let token = NewToken {
        kind,
        algorithm: Algorithm::Sha1,
        secret: Secret::new(KEY.to_vec()),
        ..new_token("t1", Some(user.id))
    };
    store.create_tokens(&[token], T0).await.unwrap();
    World {
        _dir: dir,
        store,
        clock,
        engine,
    }
}

fn request(password: &str) -> Request {
    Request {
        username: "alice".into(),
        password: Some(Zeroizing::new(password.into())),
        state: None,
        client: ClientInfo {
            name: "vpn".into(),
            first_factor: FirstFactor::None,
            prompt: Prompt::Auto,
            require_user_match: true,
            code_separator: String::new(),
        },
        source_ip: "127.0.0.1".parse().unwrap(),
        channel: "test",
        calling_station: Some("203.0.113.9".into()),
        upstream: None,
    }
}

fn totp_at(t: i64) -> String {
    format_code(hotp(Algorithm::Sha1, KEY, totp_step(t, 30), 6), 6)
}

fn hotp_at(c: u64) -> String {
    format_code(hotp(Algorithm::Sha1, KEY, c, 6), 6)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_submissions_of_one_code_give_exactly_one_accept() {
    let w = world(Policy::default(), OtpKind::Totp).await;
    let code = totp_at(T0);
    let attempts: Vec<_> = (0..50)
        .map(|_| {
            let engine = w.engine.clone();
            let code = code.clone();
            tokio::spawn(async move { engine.authenticate(request(&code)).await })
        })
        .collect();
    let mut accepts = 0;
    for a in attempts {
        if a.await.unwrap() == Outcome::Accept {
            accepts += 1;
        }
    }
    assert_eq!(accepts, 1);
}

#[tokio::test]
async fn totp_accepts_one_step_either_side_and_no_further() {
    let w = world(Policy::default(), OtpKind::Totp).await;
    assert_eq!(
        w.engine.authenticate(request(&totp_at(T0 - 60))).await,
        Outcome::Reject(Reason::WrongCode)
    );
    assert_eq!(
        w.engine.authenticate(request(&totp_at(T0 - 30))).await,
        Outcome::Accept
    );
    // A later code moves the floor: the earlier current-step code is now too old.
    assert_eq!(
        w.engine.authenticate(request(&totp_at(T0 + 30))).await,
        Outcome::Accept
    );
    assert_eq!(
        w.engine.authenticate(request(&totp_at(T0))).await,
        Outcome::Reject(Reason::Replayed)
    );
    w.clock.advance(90);
    assert_eq!(
        w.engine.authenticate(request(&totp_at(T0 + 90))).await,
        Outcome::Accept
    );
}

#[tokio::test]
async fn hotp_resyncs_on_two_consecutive_codes_beyond_the_window() {
    let w = world(Policy::default(), OtpKind::Hotp).await;
    assert_eq!(
        w.engine.authenticate(request(&hotp_at(9))).await,
        Outcome::Accept,
        "inside look-ahead 10"
    );
    assert_eq!(
        w.engine.authenticate(request(&hotp_at(60))).await,
        Outcome::Reject(Reason::WrongCode)
    );
    assert_eq!(
        w.engine.authenticate(request(&hotp_at(62))).await,
        Outcome::Reject(Reason::WrongCode),
        "not consecutive"
    );
    assert_eq!(
        w.engine.authenticate(request(&hotp_at(63))).await,
        Outcome::Accept,
        "62 then 63"
    );
    assert_eq!(
        w.engine.authenticate(request(&hotp_at(64))).await,
        Outcome::Accept
    );
    assert_eq!(
        w.engine.authenticate(request(&hotp_at(63))).await,
        Outcome::Reject(Reason::Replayed)
    );
}

#[tokio::test]
async fn lockout_expires_and_failures_are_shared() {
    let policy = Policy {
        max_failures: 3,
        lockout_seconds: 600,
        ..Policy::default()
    };
    let w = world(policy, OtpKind::Hotp).await;
    for _ in 0..3 {
        assert_eq!(
            w.engine.authenticate(request("000000")).await,
            Outcome::Reject(Reason::WrongCode)
        );
    }
    assert_eq!(
        w.engine.authenticate(request(&hotp_at(0))).await,
        Outcome::Reject(Reason::Locked)
    );
    w.clock.advance(601);
    assert_eq!(
        w.engine.authenticate(request(&hotp_at(0))).await,
        Outcome::Accept,
        "the lock expired and the code was unused"
    );
}

#[tokio::test]
async fn cache_accepts_repeat_logins_for_its_lifetime_only() {
    let policy = Policy {
        cache: CacheMode::UserClientIp,
        cache_seconds: 60,
        ..Policy::default()
    };
    let w = world(policy, OtpKind::Hotp).await;
    assert_eq!(
        w.engine.authenticate(request(&hotp_at(0))).await,
        Outcome::Accept
    );
    assert_eq!(
        w.engine.authenticate(request("")).await,
        Outcome::Accept,
        "cached"
    );
    let mut other_ip = request("");
    other_ip.calling_station = Some("198.51.100.1".into());
    assert!(matches!(
        w.engine.authenticate(other_ip).await,
        Outcome::Challenge { .. }
    ));
    w.clock.advance(61);
    assert!(
        matches!(
            w.engine.authenticate(request("")).await,
            Outcome::Challenge { .. }
        ),
        "expired"
    );
}

#[tokio::test]
async fn an_expired_challenge_is_rejected() {
    let w = world(Policy::default(), OtpKind::Hotp).await;
    let Outcome::Challenge { state, .. } = w.engine.authenticate(request("")).await else {
        panic!("challenge expected")
    };
    w.clock.advance(121);
    let mut answer = request(&hotp_at(0));
    answer.state = Some(state);
    assert_eq!(
        w.engine.authenticate(answer).await,
        Outcome::Reject(Reason::ChallengeExpired)
    );
}

#[tokio::test]
async fn a_state_answered_from_another_client_is_rejected() {
    let w = world(Policy::default(), OtpKind::Hotp).await;
    let Outcome::Challenge { state, .. } = w.engine.authenticate(request("")).await else {
        panic!("challenge expected")
    };
    let mut answer = request(&hotp_at(0));
    answer.state = Some(state);
    answer.client.name = "other".into();
    assert_eq!(
        w.engine.authenticate(answer).await,
        Outcome::Reject(Reason::ChallengeExpired)
    );
    let _ = &w.store;
}

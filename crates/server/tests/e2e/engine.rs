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
use mfad_core::model::{ChallengeKind, FirstFactor, NewToken, Prompt, Secret};
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

/// Another engine on `w`'s store and clock: a second node.
fn second_node(w: &World, policy: Policy) -> Arc<Engine> {
    Arc::new(Engine::new(
        w.store.clone(),
        w.clock.clone(),
        Arc::new(OsRandom),
        policy,
        ServerInfo::default(),
    ))
}

#[tokio::test]
async fn lockout_expires_and_failures_are_shared() {
    let policy = Policy {
        max_failures: 3,
        lockout_seconds: 600,
        ..Policy::default()
    };
    let w = world(policy.clone(), OtpKind::Hotp).await;
    let other = second_node(&w, policy);
    // Two failures on one node and one on the other reach the limit of three together;
    // neither node alone has seen three.
    for engine in [&w.engine, &w.engine, &other] {
        assert_eq!(
            engine.authenticate(request("000000")).await,
            Outcome::Reject(Reason::WrongCode)
        );
    }
    for engine in [&w.engine, &other] {
        assert_eq!(
            engine.authenticate(request(&hotp_at(0))).await,
            Outcome::Reject(Reason::Locked),
            "locked on both nodes"
        );
    }
    w.clock.advance(601);
    assert_eq!(
        other.authenticate(request(&hotp_at(0))).await,
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
    // The same code answering a new challenge from the client it was issued to is
    // accepted: the other client was the only fault.
    let Outcome::Challenge { state, .. } = w.engine.authenticate(request("")).await else {
        panic!("challenge expected")
    };
    let mut answer = request(&hotp_at(0));
    answer.state = Some(state);
    assert_eq!(w.engine.authenticate(answer).await, Outcome::Accept);
}

/// The SMS provider for engine tests: keeps what would have been sent, or fails.
#[derive(Default)]
struct Texts {
    sent: std::sync::Mutex<Vec<(String, String)>>,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl mfad_core::delivery::SmsSender for Texts {
    async fn send_code(
        &self,
        to: &str,
        code: &str,
    ) -> Result<(), mfad_core::delivery::DeliveryError> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(mfad_core::delivery::DeliveryError("gateway down".into()));
        }
        self.sent.lock().unwrap().push((to.into(), code.into()));
        Ok(())
    }

    async fn send_reply_request(
        &self,
        to: &str,
        code: &str,
        _with_pin: bool,
        _client: &str,
    ) -> Result<(), mfad_core::delivery::DeliveryError> {
        self.send_code(to, code).await
    }
}

impl Texts {
    fn last(&self) -> (String, String) {
        self.sent
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("an SMS was sent")
    }
    fn count(&self) -> usize {
        self.sent.lock().unwrap().len()
    }
}

struct SmsWorld {
    w: World,
    texts: Arc<Texts>,
    engine: Arc<Engine>,
}

async fn sms_world(policy: Policy, pin_mode: mfad_core::model::PinMode) -> SmsWorld {
    let w = world(policy.clone(), OtpKind::Totp).await;
    let user = w.store.user_by_name("alice").await.unwrap().unwrap();
    let update = mfad_core::store::UserUpdate {
        method: Some(mfad_core::model::Method::Sms),
        pin_mode: Some(pin_mode),
        phone: Some("+14255550100".into()),
        ..Default::default()
    };
    w.store.update_user(user.id, &update).await.unwrap();
    let texts = Arc::new(Texts::default());
    let engine = Arc::new(
        Engine::new(
            w.store.clone(),
            w.clock.clone(),
            Arc::new(OsRandom),
            policy,
            ServerInfo::default(),
        )
        .with_sms(texts.clone()),
    );
    SmsWorld { w, texts, engine }
}

fn answer(state: &[u8], text: &str) -> Request {
    let mut req = request(text);
    req.state = Some(state.to_vec());
    req
}

async fn sms_challenge(s: &SmsWorld, password: &str) -> (Vec<u8>, String) {
    match s.engine.authenticate(request(password)).await {
        Outcome::Challenge { state, prompt } => (state, prompt),
        other => panic!("challenge expected, got {other:?}"),
    }
}

#[tokio::test]
async fn sms_code_is_accepted_once_and_only_at_the_number_on_file() {
    let s = sms_world(Policy::default(), Default::default()).await;
    let (state, prompt) = sms_challenge(&s, "first-factor-password").await;
    assert_eq!(prompt, "Enter the code sent to your phone");
    let (to, code) = s.texts.last();
    assert_eq!(to, "+14255550100");
    assert_eq!(code.len(), 6);
    assert_eq!(
        s.engine.authenticate(answer(&state, &code)).await,
        Outcome::Accept
    );
    assert_eq!(
        s.engine.authenticate(answer(&state, &code)).await,
        Outcome::Reject(Reason::ChallengeExpired),
        "a state and its code are single-use"
    );
}

/// The hash SMS codes were kept under before they were keyed: SHA-256(salt, 0, code).
fn unkeyed_code_hash(salt: &str, code: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::new()
        .chain_update(salt)
        .chain_update(b"\0")
        .chain_update(code)
        .finalize();
    data_encoding::HEXLOWER.encode(&digest)
}

/// The code key of a world's store, derived from its key file as the store does.
fn code_mac_of(w: &World) -> mfad_core::code_mac::CodeMac {
    let hex = std::fs::read_to_string(w._dir.path().join("k")).unwrap();
    let key = data_encoding::HEXLOWER_PERMISSIVE
        .decode(hex.trim().as_bytes())
        .unwrap();
    mfad_core::code_mac::CodeMac::derive(&key.try_into().unwrap())
}

#[tokio::test]
async fn a_stored_sms_code_is_keyed_with_the_key_file_and_not_a_plain_hash() {
    let s = sms_world(Policy::default(), Default::default()).await;
    let (state, _) = sms_challenge(&s, "").await;
    let (_, code) = s.texts.last();
    let stored = s.w.store.take_challenge(&state, T0).await.unwrap().unwrap();
    let ChallengeKind::SmsCode {
        salt, code_hash, ..
    } = stored.kind
    else {
        panic!("an SMS code challenge: {:?}", stored.kind)
    };
    assert_ne!(
        code_hash,
        unkeyed_code_hash(&salt, &code),
        "a reader of the database would find the code by trying all of them"
    );
    assert_eq!(code_hash, code_mac_of(&s.w).digest(&salt, &code));

    let mut policy = Policy::default();
    policy.sms.mode = mfad_core::policy::SmsMode::TwoWay;
    let s = sms_world(policy, Default::default()).await;
    let txn = pending(&s.engine, request("x")).await;
    let (_, code) = s.texts.last();
    let stored = s.w.store.take_challenge(txn.as_bytes(), T0).await.unwrap();
    let Some(ChallengeKind::SmsReply {
        salt, code_hash, ..
    }) = stored.map(|c| c.kind)
    else {
        panic!("a pending two-way SMS")
    };
    assert_ne!(code_hash, unkeyed_code_hash(&salt, &code));
    assert_eq!(code_hash, code_mac_of(&s.w).digest(&salt, &code));
}

#[tokio::test]
async fn sms_code_expires_at_its_time() {
    let s = sms_world(Policy::default(), Default::default()).await;
    let (state, _) = sms_challenge(&s, "").await;
    let (_, code) = s.texts.last();
    s.w.clock.advance(300);
    assert_eq!(
        s.engine.authenticate(answer(&state, &code)).await,
        Outcome::Reject(Reason::ChallengeExpired)
    );
    let (state, _) = sms_challenge(&s, "").await;
    let (_, code) = s.texts.last();
    s.w.clock.advance(299);
    assert_eq!(
        s.engine.authenticate(answer(&state, &code)).await,
        Outcome::Accept,
        "valid until the last second"
    );
}

#[tokio::test]
async fn wrong_sms_codes_rechallenge_until_the_attempts_run_out() {
    let s = sms_world(Policy::default(), Default::default()).await;
    let (state, _) = sms_challenge(&s, "").await;
    let (_, code) = s.texts.last();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let Outcome::Challenge {
        state: second,
        prompt,
    } = s.engine.authenticate(answer(&state, wrong)).await
    else {
        panic!("a wrong code gets another try")
    };
    assert!(prompt.starts_with("Wrong code."), "{prompt}");
    // The right code still works under the new state after one wrong try.
    assert_eq!(
        s.engine.authenticate(answer(&second, &code)).await,
        Outcome::Accept
    );

    let (state, _) = sms_challenge(&s, "").await;
    let (_, code) = s.texts.last();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let Outcome::Challenge { state, .. } = s.engine.authenticate(answer(&state, wrong)).await
    else {
        panic!("second try")
    };
    let Outcome::Challenge { state, .. } = s.engine.authenticate(answer(&state, wrong)).await
    else {
        panic!("third try")
    };
    assert_eq!(
        s.engine.authenticate(answer(&state, wrong)).await,
        Outcome::Reject(Reason::WrongCode),
        "the third wrong code ends the login"
    );
    // Slots are answered before their commit; a reader sees them after it.
    s.w.store.flush().await.unwrap();
    let user = s.w.store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(user.failures, 3, "wrong codes count towards the lockout");
}

#[tokio::test]
async fn a_resend_invalidates_the_old_code_and_keeps_the_failure_count() {
    let s = sms_world(Policy::default(), Default::default()).await;
    let (state, _) = sms_challenge(&s, "").await;
    let (_, old) = s.texts.last();
    let wrong = if old == "000000" { "111111" } else { "000000" };
    let Outcome::Challenge { state, .. } = s.engine.authenticate(answer(&state, wrong)).await
    else {
        panic!("one wrong try")
    };
    let Outcome::Challenge { state, prompt } =
        s.engine.authenticate(answer(&state, "resend")).await
    else {
        panic!("resend challenges again")
    };
    assert!(prompt.starts_with("A new code was sent."), "{prompt}");
    assert_eq!(s.texts.count(), 2);
    let (_, new) = s.texts.last();
    if new != old {
        let Outcome::Challenge { state: after, .. } =
            s.engine.authenticate(answer(&state, &old)).await
        else {
            panic!("the old code is just a wrong code now")
        };
        // Two wrong answers so far (one before the resend): the third ends it.
        assert_eq!(
            s.engine.authenticate(answer(&after, wrong)).await,
            Outcome::Reject(Reason::WrongCode),
            "the resend did not reset the attempts"
        );
    } else {
        assert_eq!(
            s.engine.authenticate(answer(&state, &new)).await,
            Outcome::Accept
        );
    }
}

#[tokio::test]
async fn resends_are_limited() {
    let s = sms_world(Policy::default(), Default::default()).await;
    let (mut state, _) = sms_challenge(&s, "").await;
    for _ in 0..2 {
        let Outcome::Challenge { state: next, .. } =
            s.engine.authenticate(answer(&state, "RESEND")).await
        else {
            panic!("resend within the limit")
        };
        state = next;
    }
    assert_eq!(
        s.engine.authenticate(answer(&state, "resend")).await,
        Outcome::Reject(Reason::ResendLimit)
    );
    assert_eq!(s.texts.count(), 3);
}

#[tokio::test]
async fn sms_pin_mode_checks_the_pin_before_sending_anything() {
    let s = sms_world(Policy::default(), mfad_core::model::PinMode::Pin).await;
    let user = s.w.store.user_by_name("alice").await.unwrap().unwrap();
    let pins =
        mfad_core::service::Pins::new(s.w.store.clone(), Arc::new(OsRandom), &Policy::default());
    pins.set(&user, "2580", false).await.unwrap();
    assert_eq!(
        s.engine.authenticate(request("9999")).await,
        Outcome::Reject(Reason::WrongPin)
    );
    assert_eq!(s.texts.count(), 0, "no SMS for a wrong PIN");
    let (state, _) = sms_challenge(&s, "2580").await;
    let (_, code) = s.texts.last();
    assert_eq!(
        s.engine.authenticate(answer(&state, &code)).await,
        Outcome::Accept
    );
}

#[tokio::test]
async fn a_gateway_failure_rejects_and_never_accepts() {
    let s = sms_world(Policy::default(), Default::default()).await;
    s.texts
        .down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        s.engine.authenticate(request("")).await,
        Outcome::Reject(Reason::DeliveryFailed)
    );
    let no_gateway = Engine::new(
        s.w.store.clone(),
        s.w.clock.clone(),
        Arc::new(OsRandom),
        Policy::default(),
        ServerInfo::default(),
    );
    assert_eq!(
        no_gateway.authenticate(request("")).await,
        Outcome::Reject(Reason::NoGateway)
    );
}

#[tokio::test]
async fn sms_per_user_limit_stops_sending_until_the_window_ends() {
    let mut policy = Policy::default();
    policy.limits.sms_per_user = 2;
    policy.limits.window_seconds = 600;
    let s = sms_world(policy, Default::default()).await;
    sms_challenge(&s, "").await;
    sms_challenge(&s, "").await;
    assert_eq!(
        s.engine.authenticate(request("")).await,
        Outcome::Reject(Reason::RateLimited)
    );
    assert_eq!(s.texts.count(), 2, "nothing sent beyond the limit");
    s.w.clock.advance(600);
    sms_challenge(&s, "").await;
    assert_eq!(s.texts.count(), 3);
}

#[tokio::test]
async fn sms_per_gateway_limit_holds_across_users_and_resends_count() {
    let mut policy = Policy::default();
    policy.limits.sms_per_gateway = 2;
    let s = sms_world(policy, Default::default()).await;
    let (state, _) = sms_challenge(&s, "").await;
    let Outcome::Challenge { state, .. } = s.engine.authenticate(answer(&state, "resend")).await
    else {
        panic!("the resend is the second SMS")
    };
    assert_eq!(
        s.engine.authenticate(answer(&state, "resend")).await,
        Outcome::Reject(Reason::RateLimited)
    );
    assert_eq!(s.texts.count(), 2);
}

/// The voice provider for engine tests: keeps the calls placed, with their transaction.
#[derive(Default)]
struct Phones {
    placed: std::sync::Mutex<Vec<(mfad_core::delivery::CallRequest, String)>>,
}

#[async_trait::async_trait]
impl mfad_core::delivery::VoiceCaller for Phones {
    async fn place(
        &self,
        call: &mfad_core::delivery::CallRequest,
        txn: &str,
    ) -> Result<(), mfad_core::delivery::CallResult> {
        self.placed.lock().unwrap().push((call.clone(), txn.into()));
        Ok(())
    }
}

/// Two engines (two nodes) on one store, with user alice on the call method.
async fn call_world() -> (World, Arc<Phones>, Arc<Engine>, Arc<Engine>) {
    let w = world(Policy::default(), OtpKind::Totp).await;
    let user = w.store.user_by_name("alice").await.unwrap().unwrap();
    let update = mfad_core::store::UserUpdate {
        method: Some(mfad_core::model::Method::Call),
        phone: Some("+14255550100".into()),
        ..Default::default()
    };
    w.store.update_user(user.id, &update).await.unwrap();
    let phones = Arc::new(Phones::default());
    let node = || {
        Arc::new(
            Engine::new(
                w.store.clone(),
                w.clock.clone(),
                Arc::new(OsRandom),
                Policy::default(),
                ServerInfo::default(),
            )
            .with_voice(phones.clone()),
        )
    };
    let (a, b) = (node(), node());
    (w, phones, a, b)
}

async fn pending(engine: &Engine, req: Request) -> String {
    match engine.authenticate(req).await {
        Outcome::Pending { txn } => txn,
        other => panic!("pending expected, got {other:?}"),
    }
}

async fn audit_records(store: &Arc<dyn Store>) -> Vec<mfad_core::audit::AuditRecord> {
    store.flush().await.unwrap();
    store
        .query_audit(&mfad_core::audit::AuditQuery::default())
        .await
        .unwrap()
}

const LONG: std::time::Duration = std::time::Duration::from_secs(20);

#[tokio::test]
async fn a_call_is_pending_until_its_webhook_decides_and_is_audited_once() {
    let (w, phones, a, _) = call_world().await;
    let txn = pending(&a, request("x")).await;
    assert_eq!(phones.placed.lock().unwrap().len(), 1);
    assert_eq!(phones.placed.lock().unwrap()[0].1, txn);
    assert!(
        audit_records(&w.store).await.is_empty(),
        "no record while pending"
    );
    let waiter = {
        let (a, txn) = (a.clone(), txn.clone());
        tokio::spawn(async move { a.wait(&txn, LONG).await })
    };
    let pressed = mfad_core::delivery::CallResult::Digits(Zeroizing::new(String::new()));
    assert!(a.call_ended(&txn, pressed.clone()).await.unwrap());
    assert_eq!(waiter.await.unwrap(), Outcome::Accept);
    assert!(
        !a.call_ended(&txn, pressed).await.unwrap(),
        "a decided call decides nothing more"
    );
    let log = audit_records(&w.store).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].result, Some(mfad_core::audit::AuditResult::Accept));
    assert_eq!(log[0].method, "call");
}

#[tokio::test]
async fn a_call_decided_on_another_node_ends_the_login_held_by_the_first() {
    let (w, _, a, b) = call_world().await;
    let txn = pending(&a, request("x")).await;
    // The fraud code, pressed in a call whose webhook reached node b.
    let fraud = mfad_core::delivery::CallResult::Digits(Zeroizing::new("0".into()));
    assert!(b.call_ended(&txn, fraud).await.unwrap());
    assert_eq!(
        a.wait(&txn, LONG).await,
        Outcome::Reject(Reason::FraudReported)
    );
    let user = w.store.user_by_name("alice").await.unwrap().unwrap();
    assert!(user.is_blocked(T0), "the fraud report blocked the user");
    let log = audit_records(&w.store).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].reason, "fraud_reported");
}

#[tokio::test]
async fn an_unanswered_call_times_out_and_a_late_answer_decides_nothing() {
    let (w, _, a, _) = call_world().await;
    let txn = pending(&a, request("x")).await;
    assert_eq!(
        a.wait(&txn, std::time::Duration::from_millis(50)).await,
        Outcome::Reject(Reason::CallTimeout)
    );
    let pressed = mfad_core::delivery::CallResult::Digits(Zeroizing::new(String::new()));
    assert!(!a.call_ended(&txn, pressed).await.unwrap());
    let log = audit_records(&w.store).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].reason, "call_timeout");
}

#[tokio::test]
async fn a_wrong_key_in_a_call_counts_a_failure() {
    let (w, _, a, _) = call_world().await;
    let txn = pending(&a, request("x")).await;
    let keys = mfad_core::delivery::CallResult::Digits(Zeroizing::new("5".into()));
    assert!(a.call_ended(&txn, keys).await.unwrap());
    assert_eq!(a.wait(&txn, LONG).await, Outcome::Reject(Reason::WrongCode));
    let user = w.store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(user.failures, 1);
}

/// A node in two-way SMS mode with alice's login pending: the world (its texts and
/// store), the engine and the login's transaction.
async fn two_way_login() -> (SmsWorld, Arc<Engine>, String) {
    let mut policy = Policy::default();
    policy.sms.mode = mfad_core::policy::SmsMode::TwoWay;
    let s = sms_world(policy, mfad_core::model::PinMode::Standard).await;
    let engine = Arc::clone(&s.engine);
    let txn = pending(&engine, request("x")).await;
    (s, engine, txn)
}

#[tokio::test]
async fn a_two_way_sms_is_decided_by_the_reply_from_the_users_number() {
    let (s, engine, txn) = two_way_login().await;
    let (to, code) = s.texts.last();
    assert_eq!(to, "+14255550100");
    assert!(
        !engine.sms_reply("+14255550199", &code).await.unwrap(),
        "another number's reply is ignored"
    );
    // The number as people write it is the same phone.
    assert!(engine.sms_reply("(425) 555-0100", &code).await.unwrap());
    assert_eq!(engine.wait(&txn, LONG).await, Outcome::Accept);
    assert!(!engine.sms_reply("+14255550100", &code).await.unwrap());
}

#[tokio::test]
async fn a_second_two_way_login_on_one_phone_ends_both() {
    let (s, engine, first) = two_way_login().await;
    let (_, code) = s.texts.last();
    assert_eq!(
        engine.authenticate(request("x")).await,
        Outcome::Reject(Reason::SmsReplyPending)
    );
    assert_eq!(s.texts.count(), 1, "the second login sends nothing");
    assert_eq!(
        engine.wait(&first, LONG).await,
        Outcome::Reject(Reason::SmsReplyPending)
    );
    assert!(
        !engine.sms_reply("+14255550100", &code).await.unwrap(),
        "the reply finds no login to decide"
    );
}

#[tokio::test]
async fn a_two_way_login_that_timed_out_leaves_the_phone_free() {
    let (s, engine, first) = two_way_login().await;
    assert_eq!(
        engine
            .wait(&first, std::time::Duration::from_millis(10))
            .await,
        Outcome::Reject(Reason::SmsNoReply)
    );
    let txn = pending(&engine, request("x")).await;
    let (_, code) = s.texts.last();
    assert!(engine.sms_reply("+14255550100", &code).await.unwrap());
    assert_eq!(engine.wait(&txn, LONG).await, Outcome::Accept);
}

#[tokio::test]
async fn a_wrong_two_way_reply_rejects_and_no_reply_times_out() {
    let (s, engine, txn) = two_way_login().await;
    let (_, code) = s.texts.last();
    let wrong = if code == "000000" { "111111" } else { "000000" };
    assert!(engine.sms_reply("+14255550100", wrong).await.unwrap());
    assert_eq!(
        engine.wait(&txn, LONG).await,
        Outcome::Reject(Reason::WrongCode)
    );
    let user = s.w.store.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(user.failures, 1);

    let txn = pending(&engine, request("x")).await;
    assert_eq!(
        engine
            .wait(&txn, std::time::Duration::from_millis(50))
            .await,
        Outcome::Reject(Reason::SmsNoReply)
    );
}

#[tokio::test]
async fn a_radius_state_naming_an_out_of_band_transaction_is_rejected_and_leaves_it_pending() {
    let (s, engine, txn) = two_way_login().await;
    let (to, code) = s.texts.last();
    for state in [
        txn.clone().into_bytes(),
        format!("sms-reply:{to}").into_bytes(),
    ] {
        let mut req = request(&code);
        req.state = Some(state);
        assert_eq!(
            engine.authenticate(req).await,
            Outcome::Reject(Reason::ChallengeExpired)
        );
    }
    assert!(engine.sms_reply(&to, &code).await.unwrap());
    assert_eq!(engine.wait(&txn, LONG).await, Outcome::Accept);
}
